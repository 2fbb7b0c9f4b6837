"""Durability under SIGKILL: kill the real station at random moments while it logs; nothing it
acknowledged may be missing, the database must stay sound and the audit chain must verify.

    python bench/durability.py --kills N [--domain wafer|construction] [--json] [--seed S] [--keep DIR] [--verbose]

Each round starts ``bench/durability_child.py``: a real ``Station`` built from a station config
(synthetic wafer line at 96 px dies, a tiny ONNX model registered in a temporary registry, so real
inference runs; every image stored) logging into one data folder and database that persist across
rounds. The child writes ``ACK <frame_id>`` to stdout once a decision's transaction has committed
(``synchronous=FULL``). The harness waits a random time, sends SIGKILL, keeps every ACK line the
child wrote before it died, then opens the database with a fresh connection and checks:

- every decision acknowledged so far (this round and all earlier ones) is in ``decisions``
  (``lost`` counts the missing ones), and its stored image exists with the recorded sha256;
- ``PRAGMA integrity_check`` is ``ok`` and ``PRAGMA foreign_key_check`` is empty;
- no frame row lacks its decision (a batch transaction is all or nothing);
- ``inspector.store.audit.verify`` passes (chain, entity hashes, coverage), across every torn run.

The next round continues into the same database (a new run id; frame ids are unique per run).
Most kills land 0.2-1.5 s after the first acknowledgement (mid-batch, between wafers, while wafer
events are written); some land during start-up (database open, run and config records, warm-up).

Scope: SIGKILL ends the process but not the OS, so data already in the page cache survives. This
proves the application-level protocol (acknowledge only after COMMIT, transactions atomic, the
audit chain consistent across restarts and torn batches), not durability across a power cut,
which rests on ``synchronous=FULL`` + fsync and the disk honouring them.

``--domain construction`` kills a construction station instead (``bench/durability_site.py``:
two synthetic site cameras, not paced, judged from their exact truth; the child is
``bench/durability_site_child.py``). Besides the checks above, every incident event the station
promised (the events of each acknowledged frame commit in its decision's transaction) must be in
the store with its MES outbox message, and none applied twice (``incidents``: offered / recorded /
lost / doubled). After the kills one more run on the same database ends by itself (a few seconds of
video): it must complete without errors, and the run-end events it promised must close every
incident it opened (``restart``).

Exit code 1 when a decision was lost or a check failed. ``--unsafe-ack-before-commit`` (hidden:
the harness's self-test) makes the child acknowledge each decision before handing it to the store;
the harness must then report lost decisions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from helpers import tiny_models as _helpers  # noqa: E402  (one tiny-model builder for tests and bench)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import durability_site as site  # noqa: E402  (the construction mode)

CHILD = Path(__file__).resolve().parent / "durability_child.py"
DOMAINS = ("wafer", "construction")
CLASSES = ("particle", "scratch", "residue", "pattern", "edge_chip")
DIE_PX = 96
SCOPE = ("SIGKILL of the station process (the OS and its page cache survive): proves the "
         "application-level protocol (acknowledge only after COMMIT, atomic transactions, audit chain "
         "consistent across restarts and torn batches), not durability across a power cut")

CONFIG = """\
version: 1
station: {{id: durability, name: Durability bench, domain: wafer}}
wafer: {{diameter_mm: 150, die_pitch_x_mm: 25, die_pitch_y_mm: 25, edge_exclusion_mm: 3}}
pixel_size_um: 260.4
sources:
  - {{type: synthetic_wafer, id: synthetic, seed: {seed}, lots: 1000, wafers_per_lot: 25, die_px: {die_px},
     defect_rate: 0.2}}
models:
  - {{name: tiny, registry: tiny, imgsz: {die_px}, class_names: [{classes}], conf: 0.25, max_det: 5,
     providers: [cpu]}}
rules:
  - {{id: any-defect, type: any_defect, min_score: 0.6, verdict: fail}}
wafer_rules:
  - {{id: defect-fraction, type: defect_die_fraction, max_fraction: 0.5, verdict: fail}}
flow: {{mode: inspection, queue_size: 8, batch_size: 2}}
storage: {{store_images: all, image_format: png}}
"""


# --------------------------------------------------------------------------------------------
# Set-up: a tiny registered model and the station config
# --------------------------------------------------------------------------------------------


def tiny_onnx(path: Path, class_names: tuple[str, ...] = CLASSES, imgsz: int = DIE_PX, bias: float = -0.35) -> Path:
    """The tests' tiny YOLO-shaped model (the image shifted by ``bias``, reshaped): real inference
    at almost no cost; bright pixels become boxes, so decisions carry detections."""
    return _helpers.tiny_onnx(path, class_names, imgsz, bias)


register = _helpers.register_production


def prepare(workdir: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """Registry, config and data folder under ``workdir``; returns (config, registry, data)."""
    workdir.mkdir(parents=True, exist_ok=True)
    reg = workdir / "registry"
    if not (reg / "index.json").is_file():
        reg.mkdir(exist_ok=True)
        register(reg, "tiny", tiny_onnx(workdir / "tiny.onnx"), CLASSES, DIE_PX)
    cfg = workdir / "station.yaml"
    cfg.write_text(CONFIG.format(seed=seed, die_px=DIE_PX, classes=", ".join(CLASSES)))
    return cfg, reg, workdir / "data"


# --------------------------------------------------------------------------------------------
# One round: start, kill, check
# --------------------------------------------------------------------------------------------


@dataclass
class Kill:
    """What one round saw; see ``run`` for the meaning of the totals."""

    index: int
    phase: str = ""                 # "startup": killed before its first ACK; "logging": after
    run_id: str | None = None
    killed_after_s: float = 0.0     # from spawn
    first_ack_s: float | None = None
    acknowledged: int = 0           # ACK lines of this round
    in_flight_at_last_ack: int | None = None  # records handed to the store but not yet acknowledged
    since_last_ack_ms: float | None = None    # from the newest ACK read to the kill
    run_decisions_in_db: int = 0    # this run's decisions found after the kill
    committed_not_acked: int = 0    # committed but killed before the ACK line was written
    lost: list[str] = field(default_factory=list)
    integrity_ok: bool = True
    foreign_keys_ok: bool = True
    atomic_ok: bool = True          # no frame row without its decision
    images_ok: bool = True          # every acknowledged image is there with its hash
    chain_ok: bool = True
    chain_message: str = ""
    audit_rows: int = 0
    wafer_events: int = 0           # wafer results audited so far (all runs)
    decisions_in_db: int = 0
    exit: int | None = None         # the child's exit status (-9 = SIGKILL)
    error: str | None = None        # the child ended by itself or never acknowledged
    incidents: site.IncidentCheck | None = None  # construction: the promised incident events (cumulative)
    events_acknowledged: int = 0    # construction: incident events promised in this round
    events_handed_to_store: int = 0  # construction: incident events handed to the store by the last ACK

    @property
    def ok(self) -> bool:
        return (not self.lost and self.integrity_ok and self.foreign_keys_ok and self.atomic_ok and self.images_ok
                and self.chain_ok and self.error is None and (self.incidents is None or self.incidents.ok))


class _Reader(threading.Thread):
    """Reads the child's stdout lines as they come, with the time each was read."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True, name="durability-reader")
        self.stream = stream
        self.acks: list[tuple[float, str, int]] = []  # (t read, frame id, submitted)
        self.events: list[site.Promised] = []        # construction: incident events promised
        self.events_submitted = 0                     # construction: as of the newest ACK
        self.summary: dict[str, Any] | None = None    # the child's own summary after a graceful end
        self.run_id: str | None = None
        self.ended = False
        self.first_ack = threading.Event()

    def run(self) -> None:
        for raw in self.stream:
            t = time.monotonic()
            parts = raw.decode(errors="replace").split()
            if len(parts) >= 2 and parts[0] == "ACK":
                self.acks.append((t, parts[1], int(parts[2]) if len(parts) > 2 else -1))
                if len(parts) > 3:
                    self.events_submitted = int(parts[3])
                self.first_ack.set()
            elif parts[:1] == ["EVT"]:
                event = site.parse_event(parts)
                if event is not None:
                    self.events.append(event)
            elif parts[:1] == ["SUMMARY"]:
                self.summary = json.loads(raw.decode(errors="replace").split(" ", 1)[1])
            elif len(parts) == 2 and parts[0] == "RUN":
                self.run_id = parts[1]
            elif parts == ["END"]:
                self.ended = True


def _kill_delay(rng: random.Random, in_startup: bool, startup_s: float, delay: tuple[float, float]) -> float:
    """Seconds to wait: from spawn for a start-up kill (a fraction of the usual time to the first
    acknowledgement), else from the first acknowledgement."""
    return rng.uniform(0.15, 1.0) * startup_s if in_startup else rng.uniform(*delay)


def _round(k: Kill, rng: random.Random, cmd: list[str], log_path: Path, in_startup: bool, startup_s: float,
           delay: tuple[float, float], ack_timeout_s: float) -> tuple[list[str], list[site.Promised]]:
    """Start the child, kill it, fill ``k``; returns the frame ids and incident events it acknowledged."""
    wait_s = _kill_delay(rng, in_startup, startup_s, delay)
    with open(log_path, "ab") as log:
        log.write(f"--- round {k.index} ---\n".encode())
        log.flush()
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=str(REPO))
        reader = _Reader(proc.stdout)
        reader.start()
        try:
            if in_startup:
                deadline = t0 + wait_s
            else:
                got = False
                while not got and time.monotonic() - t0 < ack_timeout_s and proc.poll() is None:
                    got = reader.first_ack.wait(0.05)
                if not got:
                    k.error = ("the station ended by itself before its first acknowledgement" if proc.poll() is not None
                               else f"no acknowledgement within {ack_timeout_s:.0f} s")
                deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
            t_kill = time.monotonic()
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            elif k.error is None:
                k.error = f"the station ended by itself (exit {proc.returncode}) before the kill"
        finally:
            if proc.poll() is None:  # an exception above: never leave a child behind
                os.kill(proc.pid, signal.SIGKILL)
            k.exit = proc.wait()
            reader.join(30)
            if proc.stdout is not None:
                proc.stdout.close()
    k.killed_after_s = round(t_kill - t0, 3)
    k.run_id = reader.run_id
    acks = reader.acks  # every line the child wrote before it died (read before or after the kill)
    k.acknowledged = len(acks)
    k.phase = "logging" if acks else "startup"  # every ACK line was written before the kill
    if acks:
        k.first_ack_s = round(acks[0][0] - t0, 3)
        k.in_flight_at_last_ack = max(0, acks[-1][2] - len(acks)) if acks[-1][2] >= 0 else None
        k.since_last_ack_ms = round(max(0.0, t_kill - acks[-1][0]) * 1e3, 1)
        if k.run_id is None:
            k.run_id = acks[0][1].split("/", 1)[0]
    k.events_acknowledged, k.events_handed_to_store = len(reader.events), reader.events_submitted
    return [a[1] for a in acks], reader.events


def _check(k: Kill, db: Path, image_root: Path, acknowledged: list[str], new: list[str],
           promised: list[site.Promised] | None = None) -> None:
    """Open the database afresh and check it against everything acknowledged so far
    (``promised``: the incident events acknowledged so far, construction only)."""
    from inspector.store.audit import verify

    if promised is not None:  # replaced below once the incidents can be read
        k.incidents = site.IncidentCheck(promised=len(promised), lost=[f"{p.key}/{p.seq}" for p in promised])
    if not db.is_file():
        k.lost = list(acknowledged)
        if acknowledged:
            k.integrity_ok = k.chain_ok = False
            k.chain_message = "no database"
        return
    conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "decisions" not in tables:  # killed before the first migration committed
            k.lost = list(acknowledged)
            k.integrity_ok = [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
            k.chain_ok = not acknowledged
            k.chain_message = "no schema yet"
            return
        stored = {r[0] for r in conn.execute("SELECT frame_id FROM decisions")}
        k.decisions_in_db = len(stored)
        k.lost = [f for f in acknowledged if f not in stored]
        k.integrity_ok = [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
        k.foreign_keys_ok = not conn.execute("PRAGMA foreign_key_check").fetchall()
        k.atomic_ok = conn.execute("SELECT COUNT(*) FROM frames f LEFT JOIN decisions d ON d.frame_id = f.id"
                                   " WHERE d.frame_id IS NULL").fetchone()[0] == 0
        if k.run_id is not None:
            k.run_decisions_in_db = conn.execute("SELECT COUNT(*) FROM frames WHERE run_id = ?",
                                                 (k.run_id,)).fetchone()[0]
            k.committed_not_acked = max(0, k.run_decisions_in_db - k.acknowledged)
        for fid, sha, rel in conn.execute("SELECT id, image_sha256, image_path FROM frames WHERE id IN (SELECT value"
                                          " FROM json_each(?))", (json.dumps(new),)):
            path = image_root / rel if rel else None
            if sha is None or path is None or not path.is_file() \
                    or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                k.images_ok = False
                k.chain_message += f" image of {fid} missing or altered;"
        k.wafer_events = conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'wafer.judged'").fetchone()[0]
        if promised is not None:
            k.incidents = site.check_incidents(conn, promised)
        res = verify(conn)
        k.chain_ok, k.audit_rows = res.ok, res.audit_rows
        if not res.ok:
            k.chain_message += " " + res.message
        k.chain_message = k.chain_message.strip()
    finally:
        conn.close()


def _restart_round(k: Kill, cmd: list[str], log_path: Path, timeout_s: float) -> tuple[list[str], list[site.Promised]]:
    """After the kills: one more run on the same database that ends by itself; fills ``k``
    (``error`` unless it ended cleanly, complete and without errors); returns what it acknowledged."""
    k.phase = "restart"
    with open(log_path, "ab") as log:
        log.write(f"--- round {k.index} (restart, ends by itself) ---\n".encode())
        log.flush()
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=str(REPO))
        reader = _Reader(proc.stdout)
        reader.start()
        try:
            k.exit = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            k.exit = proc.wait()
            k.error = f"the restarted run did not end within {timeout_s:.0f} s"
        reader.join(30)
        if proc.stdout is not None:
            proc.stdout.close()
    k.killed_after_s = round(time.monotonic() - t0, 3)
    k.run_id = reader.run_id
    k.acknowledged = len(reader.acks)
    run_end = sum(e.frame == "-" for e in reader.events)  # handed to the store after the last ACK
    k.events_acknowledged, k.events_handed_to_store = len(reader.events), reader.events_submitted + run_end
    summary = reader.summary or {}
    if k.error is None and (k.exit != 0 or not reader.ended):
        k.error = f"the restarted run failed (exit {k.exit})"
    elif k.error is None and (summary.get("complete") is not True or summary.get("errors")):
        k.error = f"the restarted run was not clean: complete={summary.get('complete')}, errors={summary.get('errors')}"
    return [a[1] for a in reader.acks], reader.events


def _incident_totals(rounds: list[Kill], promised: list[site.Promised]) -> dict[str, Any]:
    """The construction mode's incident figures over every round."""
    checks = [k.incidents for k in rounds if k.incidents is not None]
    last = checks[-1] if checks else site.IncidentCheck()
    lost = sorted({x for c in checks for x in c.lost})
    return {
        "offered": sum(k.events_handed_to_store for k in rounds),  # handed to the store, as of each round's last ACK
        "acknowledged": len(promised),   # promised: events of acknowledged frames, and acknowledged run-end events
        "recorded": last.recorded,
        "lost": len(lost),
        "doubled": max((c.doubled for c in checks), default=0),
        "gapped": max((c.gapped for c in checks), default=0),
        "missing_messages": max((c.missing_messages for c in checks), default=0),
        "by_event": {e: sum(p.event == e for p in promised) for e in ("new", "update", "end")},
        "incidents_in_db": last.incidents_in_db,
        "events_in_db": last.events_in_db,
        "lost_ids": lost[:20],
    }


def run(kills: int, *, domain: str = "wafer", seed: int = 0, workdir: Path | None = None,
        unsafe_ack_before_commit: bool = False, startup_fraction: float = 0.15,
        delay: tuple[float, float] | None = None, ack_timeout_s: float = 120.0, restart: bool = True,
        progress: Any = None) -> dict[str, Any]:
    """Kill the station ``kills`` times; the totals (and ``details``: one ``Kill`` dict per round).

    ``domain``: ``wafer`` or ``construction`` (incident events checked too, and, with ``restart``
    and a safe station, a last run that ends by itself). ``delay``: seconds from the first
    acknowledgement to the kill (default 0.2-1.5 for wafer, 0.3-2.5 for construction, whose
    incident events are sparser). ``workdir``: where the registry, config and data folder go
    (kept); None: a temporary folder, removed afterwards. ``progress(kill)`` is called after each round.
    """
    if kills < 1:
        raise ValueError(f"kills must be at least 1, got {kills}")
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    construction = domain == "construction"
    if delay is None:
        delay = (0.3, 2.5) if construction else (0.2, 1.5)
    rng = random.Random(seed)
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="inspector-durability-")
        workdir = Path(tmp)
    workdir = Path(workdir)
    t_start = time.monotonic()
    try:
        if construction:
            cfg, data = site.prepare(workdir, seed)
            cmd = site.command(cfg, data, unsafe=unsafe_ack_before_commit)
        else:
            cfg, reg, data = prepare(workdir, seed)
            cmd = [sys.executable, str(CHILD), "--config", str(cfg), "--registry", str(reg), "--data-dir", str(data)]
            if unsafe_ack_before_commit:
                cmd.append("--unsafe-ack-before-submit")
        db = data / "inspector.sqlite"
        log_path = workdir / "child.log"
        # Which rounds aim at the start-up: a fixed share (at least one in five kills), rounds drawn at random.
        n_startup = 0 if startup_fraction <= 0 else max(int(kills >= 5), round(kills * startup_fraction))
        startup_rounds = set(rng.sample(range(kills), min(kills, n_startup)))
        acknowledged: list[str] = []
        promised: list[site.Promised] | None = [] if construction else None
        rounds: list[Kill] = []
        startups: list[float] = []

        def checked(k: Kill, new: list[str], events: list[site.Promised]) -> None:
            nonlocal acknowledged
            acknowledged += new
            if promised is not None:
                promised.extend(events)
            if k.error is not None:
                tail = log_path.read_text(errors="replace")[-600:].strip()
                k.error += f" (child log: ...{tail})" if tail else ""
            _check(k, db, data / "images", acknowledged, new, promised)
            rounds.append(k)
            if progress is not None:
                progress(k)

        for i in range(kills):
            k = Kill(i + 1)
            startup_s = statistics.median(startups) if startups else 1.5
            new, events = _round(k, rng, cmd, log_path, i in startup_rounds, startup_s, delay, ack_timeout_s)
            if k.first_ack_s is not None:
                startups.append(k.first_ack_s)
            checked(k, new, events)
            if k.error is not None and k.phase == "startup" and not k.acknowledged and "no acknowledgement" in k.error:
                break  # the station cannot start here: more rounds would only wait again
        restarted = None
        if construction and restart and not unsafe_ack_before_commit and len(rounds) == kills:
            restarted = Kill(kills + 1)
            new, events = _restart_round(restarted, site.command(cfg, data, duration_s=site.FINAL_DURATION_S),
                                         log_path, ack_timeout_s)
            checked(restarted, new, events)
            if restarted.incidents is not None and restarted.run_id is not None and db.is_file():
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:  # a graceful end closes every incident it opened (the run-end events)
                    restarted.incidents.open_after_clean_end = site.open_incidents(conn, restarted.run_id)
                finally:
                    conn.close()
        killed = [k for k in rounds if k.phase != "restart"]
        lost = sorted({f for k in rounds for f in k.lost})
        logging = [k for k in killed if k.phase == "logging"]
        result: dict[str, Any] = {
            "domain": domain,
            "kills": len(killed),
            "acknowledged": len(acknowledged),
            "lost": len(lost),
            "integrity_ok": all(k.integrity_ok and k.foreign_keys_ok for k in rounds),
            "chain_ok": all(k.chain_ok for k in rounds),
            "atomic_ok": all(k.atomic_ok for k in rounds),
            "images_ok": all(k.images_ok for k in rounds),
            "decisions_in_db": rounds[-1].decisions_in_db if rounds else 0,
            "audit_rows": rounds[-1].audit_rows if rounds else 0,
            "wafer_events": rounds[-1].wafer_events if rounds else 0,
            "kills_in_startup": sum(k.phase == "startup" for k in killed),
            "kills_while_logging": len(logging),
            "kills_with_records_in_flight": sum(bool(k.in_flight_at_last_ack) or k.committed_not_acked > 0
                                                for k in logging),
            "kills_with_committed_not_acked": sum(k.committed_not_acked > 0 for k in killed),
            "kills_within_100ms_of_an_ack": sum(k.since_last_ack_ms is not None and k.since_last_ack_ms <= 100
                                                for k in logging),
            "errors": [f"round {k.index}: {k.error}" for k in rounds if k.error],
            "seconds": round(time.monotonic() - t_start, 1),
            "seed": seed,
            "unsafe_ack_before_commit": unsafe_ack_before_commit,
            "scope": SCOPE,
            "lost_ids": lost[:20],
            "details": [{**asdict(k), "lost": len(k.lost)} for k in rounds],
        }
        if construction:
            result["incidents"] = _incident_totals(rounds, promised or [])
            result["kills_with_events_in_flight"] = sum(k.events_handed_to_store > k.events_acknowledged
                                                        for k in logging)
            result["restart"] = None if restarted is None else {
                "ok": restarted.ok, "decisions": restarted.acknowledged, "events": restarted.events_acknowledged,
                "open_after_clean_end": restarted.incidents.open_after_clean_end if restarted.incidents else None,
                "error": restarted.error}
        incidents_ok = all(k.incidents is None or k.incidents.ok for k in rounds)
        result["ok"] = bool(result["kills"] == kills and not lost and result["integrity_ok"] and result["chain_ok"]
                            and result["atomic_ok"] and result["images_ok"] and not result["errors"] and incidents_ok)
        return result
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="how many times to SIGKILL the station (default 20)")
    ap.add_argument("--domain", choices=DOMAINS, default="wafer",
                    help="wafer: the synthetic wafer line (default); construction: synthetic site cameras, "
                         "incident events checked too")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times and the synthetic line")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR",
                    help="work in DIR and keep it (database, images, child.log); default: a temporary folder")
    ap.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    ap.add_argument("--verbose", action="store_true", help="one line per kill on stderr; details in the JSON")
    ap.add_argument("--unsafe-ack-before-commit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    def progress(k: Kill) -> None:
        if args.verbose:
            inc = k.incidents
            print(f"kill {k.index:3d} {k.phase:8s} at {k.killed_after_s:5.2f} s: {k.acknowledged:3d} acked, "
                  f"in flight {k.in_flight_at_last_ack}, committed-not-acked {k.committed_not_acked}, "
                  f"lost so far {len(k.lost)}, db {k.decisions_in_db}, integrity {k.integrity_ok}, chain {k.chain_ok}"
                  + (f", incident events {inc.recorded}/{inc.promised} recorded, {len(inc.lost)} lost, "
                     f"{inc.doubled} doubled" if inc is not None else "")
                  + (f", error: {k.error}" if k.error else "") + (f" ({k.chain_message})" if k.chain_message else ""),
                  file=sys.stderr, flush=True)

    res = run(args.kills, domain=args.domain, seed=args.seed, workdir=args.keep,
              unsafe_ack_before_commit=args.unsafe_ack_before_commit, progress=progress)
    if not args.verbose:
        res.pop("details")
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['kills']} kills ({res['kills_in_startup']} during start-up, {res['kills_with_records_in_flight']} "
              f"with records in flight): {res['acknowledged']} decisions acknowledged, {res['lost']} lost; "
              f"integrity {'ok' if res['integrity_ok'] else 'FAILED'}, audit chain "
              f"{'ok' if res['chain_ok'] else 'FAILED'}; {res['decisions_in_db']} decisions in the database; "
              f"{res['seconds']} s")
        inc = res.get("incidents")
        if inc is not None:
            print(f"incident events: {inc['offered']} offered to the store, {inc['acknowledged']} acknowledged, "
                  f"{inc['recorded']} recorded, {inc['lost']} lost, {inc['doubled']} doubled; restart: "
                  f"{'ok' if res['restart'] and res['restart']['ok'] else res['restart']}")
        print(f"scope: {res['scope']}")
        for e in res["errors"]:
            print(f"error: {e}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
