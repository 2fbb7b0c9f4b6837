"""What every case of ``bench/faults.py`` shares: the result record, sizes, a station built from a config.

Each case module exposes ``run(size="default", *, seed=0, unsafe=None) -> CaseResult`` and
``UNSAFE``: the names of the deliberate breakages (``unsafe``) its self-test uses to show that the
case does report a broken station (lost or doubled units, a crash, a silent pass).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "tests") not in sys.path:  # tests/helpers: the one tiny-model builder
    sys.path.insert(0, str(REPO / "tests"))

SIZES = ("small", "default")


@dataclass
class CaseResult:
    """One case's figures. ``offered``: units the fault met (frames taken, messages produced,
    inputs fuzzed); ``recorded``: units with their record (decision, delivered message, clean
    error); ``lost``: units promised (acknowledged, accepted) but missing; ``doubled``: units
    recorded twice; ``time_to_detect_s``: how long the station took to notice the fault (None
    when the case has nothing to detect); ``ok``: nothing lost or doubled and every check held;
    ``depends_on``: product work the case needs that is not in this checkout yet."""

    name: str
    offered: int = 0
    recorded: int = 0
    lost: int = 0
    doubled: int = 0
    time_to_detect_s: float | None = None
    wall_s: float = 0.0
    ok: bool = False
    notes: str = ""
    depends_on: str | None = None
    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.failures.append(why)

    def finish(self, t0: float) -> CaseResult:
        self.wall_s = round(time.monotonic() - t0, 2)
        self.ok = not self.failures and self.lost == 0 and self.doubled == 0
        if self.time_to_detect_s is not None:
            self.time_to_detect_s = round(self.time_to_detect_s, 3)
        return self

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failures"] = d["failures"][:20]
        return d


def check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")


def check_unsafe(unsafe: str | None, allowed: tuple[str, ...], case: str) -> None:
    if unsafe is not None and unsafe not in allowed:
        raise ValueError(f"case {case}: unknown self-test breakage {unsafe!r} (known: {', '.join(allowed) or 'none'})")


@contextmanager
def ro_db(path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh connection to a database (read-write: a WAL database needs its -shm)."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        yield conn
    finally:
        conn.close()


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def station_events(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every row of ``station_events`` (#15 points 1 and 5) as a dict; [] while the table is absent."""
    if "station_events" not in table_names(conn):
        return []
    cur = conn.execute("SELECT * FROM station_events")
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def event_text(ev: dict[str, Any]) -> str:
    """One event row as lower-case text (the kind and details, whatever the columns are called)."""
    return json.dumps(ev, default=str).lower()


def events_of(events: list[dict[str, Any]], *words: str) -> list[dict[str, Any]]:
    """Events whose text mentions any of ``words`` (stall, freeze, reconnect, gap, ...)."""
    return [e for e in events if any(w in event_text(e) for w in words)]


def audit_ok(conn: sqlite3.Connection) -> tuple[bool, str]:
    from inspector.store.audit import verify

    res = verify(conn)
    return res.ok, res.message


def decisions(conn: sqlite3.Connection, run_id: str | None = None) -> list[tuple[str, str]]:
    """(frame id, verdict) of every decision (of one run)."""
    if run_id is None:
        return conn.execute("SELECT frame_id, verdict FROM decisions").fetchall()
    return conn.execute("SELECT d.frame_id, d.verdict FROM decisions d JOIN frames f ON f.id = d.frame_id"
                        " WHERE f.run_id = ?", (run_id,)).fetchall()


# --------------------------------------------------------------------------------------------
# A small real station: a tiny registered ONNX model, any sources, the store in a data folder
# --------------------------------------------------------------------------------------------

CLASSES = ("particle", "scratch")
IMGSZ = 64

STATION_CONFIG = """\
version: 1
station: {{id: faults, name: Fault-injection bench, domain: generic}}
sources:
{sources}
models:
  - {{name: tiny, registry: tiny, imgsz: {imgsz}, class_names: [{classes}], conf: 0.25, max_det: 5, providers: [cpu]}}
rules:
  - {{id: any-defect, type: any_defect, min_score: 0.6, verdict: fail}}
flow: {{mode: {mode}, queue_size: {queue}, batch_size: {batch}}}
storage: {{store_images: {images}, image_format: png}}
"""


def station_files(workdir: Path, sources_yaml: str, *, mode: str = "inspection", queue: int = 8, batch: int = 2,
                  images: str = "none") -> tuple[Path, Path, Path]:
    """A registry with the tests' tiny model, a config and a data folder under ``workdir``:
    (config, registry, data)."""
    from helpers import tiny_models

    workdir.mkdir(parents=True, exist_ok=True)
    reg = workdir / "registry"
    if not (reg / "index.json").is_file():
        reg.mkdir(exist_ok=True)
        onnx = tiny_models.tiny_onnx(workdir / "tiny.onnx", CLASSES, IMGSZ, -0.35)
        tiny_models.register_production(reg, "tiny", onnx, CLASSES, IMGSZ)
    cfg = workdir / "station.yaml"
    cfg.write_text(STATION_CONFIG.format(sources=sources_yaml, imgsz=IMGSZ, classes=", ".join(CLASSES), mode=mode,
                                         queue=queue, batch=batch, images=images))
    return cfg, reg, workdir / "data"


def build_station(cfg_path: Path, reg: Path, data: Path, **kw: Any) -> Any:
    """``Station.from_config`` of that config (``kw``: sources=..., on_ack=...)."""
    from inspector.config import config_hash, load_config
    from inspector.station.station import Station

    cfg = load_config(cfg_path)
    return Station.from_config(cfg, config_hash(cfg), registry_root=reg, data_dir=data, **kw)
