"""Fault-injection suite (#15): the station under the faults a line meets, each case with the same figures.

    python bench/faults.py [--cases kill,disk,camera,mes,fuzz,powercut] [--size small|default] [--json]
                           [--seed S] [--results]

Cases (one module each, ``bench/faults_<case>.py``; the docstrings say what each proves and what not):

- ``kill``: 1,000 SIGKILLs of a real station (bench/durability.py's rounds and checks), no
  acknowledged unit lost, database and audit chain sound after every kill;
- ``disk``: SQLITE_FULL under a running station, inspection flow (fault and stop) and monitoring
  flow (go on, store the gap as an event);
- ``camera``: a live camera that stalls, freezes and flaps, through the real video source;
- ``mes``: the MES receiver down for an hour of simulated time, the station restarted half-way;
- ``fuzz``: fuzzed configs, images (and a station replaying them) and YOLO label files (hypothesis);
- ``powercut``: SIGSTOP snapshots of the database and WAL of a writing station, with the unsynced
  WAL tail torn: recovery to exactly the committed transactions.

Every case reports ``offered``, ``recorded``, ``lost``, ``doubled``, ``time_to_detect_s``,
``wall_s``, ``ok`` and ``notes`` (``--json``: one object, ``cases`` by name). Exit code 1 when any
case lost or doubled a unit or failed a check. ``--results`` writes the ``faults`` section of
bench/RESULTS.md. ``--size small`` is what tests/bench/test_faults.py runs.

``--unsafe CASE:BREAKAGE`` (hidden; the suite's self-test) runs a case against a deliberately
broken station (acknowledging before commit, lying transports, silent passes, ...): the case must
then report a loss, a double or a failed check.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.faults_common import SIZES, CaseResult  # noqa: E402
from bench.results_md import write_section  # noqa: E402

CASES = ("kill", "disk", "camera", "mes", "fuzz", "powercut")
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def case_module(name: str) -> Any:
    if name not in CASES:
        raise ValueError(f"unknown case {name!r} (known: {', '.join(CASES)})")
    return importlib.import_module(f"bench.faults_{name}")


def run_case(name: str, size: str = "default", *, seed: int = 0, unsafe: str | None = None) -> CaseResult:
    """One case; an exception inside it is a failed case (with the error), never a crash of the suite."""
    mod = case_module(name)
    t0 = time.monotonic()
    try:
        return mod.run(size, seed=seed, unsafe=unsafe)
    except Exception as e:  # noqa: BLE001 - reported as the case's failure
        res = CaseResult(name)
        res.fail(f"the case itself failed: {type(e).__name__}: {e}")
        return res.finish(t0)


def run(cases: list[str], size: str = "default", *, seed: int = 0, unsafe: dict[str, str] | None = None,
        progress: Any = None) -> dict[str, Any]:
    t0 = time.monotonic()
    out: dict[str, Any] = {"size": size, "seed": seed, "cases": {}}
    for name in cases:
        res = run_case(name, size, seed=seed, unsafe=(unsafe or {}).get(name))
        out["cases"][name] = res.as_dict()
        if progress is not None:
            progress(res)
    out["ok"] = all(c["ok"] for c in out["cases"].values())
    out["wall_s"] = round(time.monotonic() - t0, 1)
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))


def markdown(res: dict[str, Any]) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [
        "## Fault injection (bench/faults.py)",
        "",
        f"`python bench/faults.py --size {res['size']} --json` on {when} ({platform.machine()}, "
        f"{platform.python_version()}; a machine shared with other jobs): all cases "
        f"{'passed' if res['ok'] else 'did NOT pass'}, {res['wall_s']} s in all. Each case's module docstring "
        "says what it proves and what not.",
        "",
        "| case | offered | recorded | lost | doubled | time to detect (s) | wall (s) | ok | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, c in res["cases"].items():
        note = c["notes"].replace("|", "/")
        if c.get("depends_on"):
            note += f" (depends on {c['depends_on']})"
        if c["failures"]:
            note += "; FAILED: " + "; ".join(c["failures"][:3]).replace("|", "/")
        lines.append(f"| {name} | {c['offered']} | {c['recorded']} | {c['lost']} | {c['doubled']} | "
                     f"{_fmt(c['time_to_detect_s'])} | {c['wall_s']} | {'yes' if c['ok'] else 'NO'} | {note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default: all)")
    ap.add_argument("--size", choices=SIZES, default="default", help="default: the figures of #15; small: the tests'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--results", action="store_true", help="write the faults section of bench/RESULTS.md")
    ap.add_argument("--unsafe", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        case_module(c)
    unsafe = dict(u.split(":", 1) for u in args.unsafe)

    def progress(r: CaseResult) -> None:
        print(f"{r.name}: offered {r.offered}, recorded {r.recorded}, lost {r.lost}, doubled {r.doubled}, "
              f"detect {_fmt(r.time_to_detect_s)} s, {r.wall_s} s, {'ok' if r.ok else 'FAILED'}"
              + (f" ({'; '.join(r.failures[:3])})" if r.failures else ""), file=sys.stderr, flush=True)

    res = run(cases, args.size, seed=args.seed, unsafe=unsafe, progress=progress)
    if args.results:
        write_section(RESULTS_MD, "faults", markdown(res))
    if args.json:
        print(json.dumps(res, default=str))
    else:
        print(markdown(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
