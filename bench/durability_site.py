"""The construction mode of ``bench/durability.py``: its station config and its incident checks.

The station (``bench/durability_site_child.py``) watches two synthetic site cameras, not paced,
with short persistence and clear times so incidents open, improve and close every few seconds;
its incident events commit in the transaction of the decision of the frame that caused them, with
their MES messages (a file-drop output). After each kill the harness checks, against a fresh
connection, every event the station promised (the events of acknowledged frames, and the run-end
events of a graceful end):

- the incident of its key is stored, at least at that ``seq``, ended when the event was an end
  (``lost_events``);
- its outbox message (idempotency key ``<station>/<key>/<seq>``) is there;
- no event was applied twice: each incident has exactly ``seq + 1`` audit rows
  ``incident.new|update|end`` and ``seq + 1`` outbox messages (``doubled_events`` counts extras;
  fewer would be a gap, ``gapped_events``).
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHILD = Path(__file__).resolve().parent / "durability_site_child.py"
STATION_ID = "durability-site"
DURATION_S = 900.0   # video seconds per camera: far more than a round lasts (the kill ends it)
FINAL_DURATION_S = 4.0

CONFIG = """\
version: 1
station: {{id: {station}, name: Durability bench (construction site), domain: construction}}
sources:
  - {{type: synthetic_site, camera: gate, seed: {seed_a}, width: 480, height: 270, fps: 10, duration_s: {duration},
     workers: 6, p_no_hat: 0.5, p_no_vest: 0.5, occluders: 2, realtime: false,
     zones: [{{id: gate-ppe, kind: ppe_required, polygon: [[0, 140], [480, 140], [480, 270], [0, 270]]}},
             {{id: gate-danger, kind: restricted, polygon: [[300, 150], [460, 150], [480, 270], [280, 270]]}}]}}
  - {{type: synthetic_site, camera: yard, seed: {seed_b}, width: 480, height: 270, fps: 10, duration_s: {duration},
     workers: 5, p_no_hat: 0.5, p_no_vest: 0.4, occluders: 3, realtime: false,
     zones: [{{id: yard-ppe, kind: ppe_required, polygon: [[100, 140], [480, 140], [480, 270], [100, 270]]}},
             {{id: yard-danger, kind: restricted, polygon: [[10, 170], [160, 170], [170, 270], [0, 270]]}}]}}
models:
  - {{name: site-truth, registry: site-truth, imgsz: 480, class_names: [hat, vest, worker]}}
site:
  classes: {{worker: worker, hat: hat, vest: vest}}
  tracker: {{type: bytetrack, lost_s: 1.0, min_frames: 2}}
  ppe: {{smoothing_s: 0.3}}
  incidents:
    - {{id: no-hard-hat, kind: no_hard_hat, persist_s: 0.5, clear_s: 0.5, severity: high}}
    - {{id: no-vest, kind: no_vest, zones: [gate-ppe, yard-ppe], persist_s: 0.5, clear_s: 0.5}}
    - {{id: danger-zone, kind: in_danger_zone, zones: [gate-danger, yard-danger], persist_s: 0.3, clear_s: 0.3}}
  evidence: {{pre_s: 1.0, post_s: 0.5, max_clip_s: 5.0, clip_fps: 5.0}}
mes:
  - {{type: filedrop, id: drop, folder: mes-drop}}
flow: {{mode: monitoring, queue_size: 2, batch_size: 1}}
storage: {{image_format: jpeg, jpeg_quality: 80, store_images: all}}
"""


def prepare(workdir: Path, seed: int = 0) -> tuple[Path, Path]:
    """Config and data folder under ``workdir``; returns (config, data)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "site.yaml"
    cfg.write_text(CONFIG.format(station=STATION_ID, seed_a=11 + seed, seed_b=23 + seed, duration=DURATION_S))
    return cfg, workdir / "data"


def command(cfg: Path, data: Path, *, unsafe: bool = False, duration_s: float | None = None) -> list[str]:
    """The child's command line (``duration_s``: a run that ends by itself)."""
    cmd = [sys.executable, str(CHILD), "--config", str(cfg), "--data-dir", str(data)]
    if duration_s is not None:
        cmd += ["--duration-s", str(duration_s)]
    if unsafe:
        cmd.append("--unsafe-ack-before-submit")
    return cmd


@dataclass(frozen=True, slots=True)
class Promised:
    """One incident event the station promised: ``frame`` is its frame, ``-`` for a run-end event."""

    frame: str
    event: str
    key: str
    seq: int


def parse_event(parts: list[str]) -> Promised | None:
    """``EVT <frame> <event> <key> <seq>`` -> a ``Promised``; None for any other line."""
    if len(parts) == 5 and parts[0] == "EVT" and parts[4].isdigit():
        return Promised(parts[1], parts[2], parts[3], int(parts[4]))
    return None


@dataclass
class IncidentCheck:
    """The incident side of one kill's check (cumulative over every round so far)."""

    promised: int = 0               # events promised so far (acknowledged frames' events + run-end events)
    recorded: int = 0               # of those, found in the store with their outbox message
    lost: list[str] = field(default_factory=list)  # "key/seq" of promised events not found
    missing_messages: int = 0       # promised events whose outbox message is not there
    doubled: int = 0                # audit rows or outbox messages beyond one per applied event
    gapped: int = 0                 # incidents whose applied events skip a seq (an event missing)
    incidents_in_db: int = 0
    events_in_db: int = 0           # incident.new|update|end audit rows (all runs)
    open_after_clean_end: int = 0   # set by the final round: its incidents still open after a graceful end

    @property
    def ok(self) -> bool:
        return not self.lost and not self.missing_messages and not self.doubled and not self.gapped \
            and not self.open_after_clean_end


def check_incidents(conn: sqlite3.Connection, promised: list[Promised], station: str = STATION_ID) -> IncidentCheck:
    """Compare the promised events with the store (read-only)."""
    out = IncidentCheck(promised=len(promised))
    rows = {r[0]: (r[1], r[2], r[3]) for r in conn.execute("SELECT id, key, seq, ended FROM incidents"
                                                           " WHERE key IS NOT NULL")}
    by_key = {key: (iid, seq, ended) for iid, (key, seq, ended) in rows.items()}
    audits: dict[int, int] = {}
    for eid, n in conn.execute("SELECT entity_id, COUNT(*) FROM audit WHERE entity = 'incidents' AND action IN"
                               " ('incident.new', 'incident.update', 'incident.end') GROUP BY entity_id"):
        audits[int(eid)] = n
    messages: dict[str, int] = {}
    for key, n in conn.execute("SELECT key, COUNT(*) FROM outbox WHERE kind LIKE 'incident.%' GROUP BY key"):
        messages[key] = n
    prefix = f"{station}/"
    per_incident: dict[str, int] = {}
    for k in messages:
        if k.startswith(prefix):
            ikey = k[len(prefix):].rsplit("/", 1)[0]
            per_incident[ikey] = per_incident.get(ikey, 0) + messages[k]
    out.incidents_in_db = len(rows)
    out.events_in_db = sum(audits.values())
    for p in promised:
        row = by_key.get(p.key)
        if row is None or row[1] is None or row[1] < p.seq or (p.event == "end" and row[2] is None):
            out.lost.append(f"{p.key}/{p.seq}")
            continue
        if f"{prefix}{p.key}/{p.seq}" not in messages:
            out.missing_messages += 1
            continue
        out.recorded += 1
    for iid, (key, seq, _) in rows.items():
        expected = int(seq) + 1 if seq is not None else 1
        for n in (audits.get(iid, 0), per_incident.get(key, 0)):
            out.doubled += max(0, n - expected)
            out.gapped += n < expected
    return out


def open_incidents(conn: sqlite3.Connection, run_id: str) -> int:
    """Incidents of ``run_id`` not ended (after a graceful end: none)."""
    return conn.execute("SELECT COUNT(*) FROM incidents WHERE run_id = ? AND ended IS NULL", (run_id,)).fetchone()[0]
