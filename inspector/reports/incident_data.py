"""What a report is made of: the incidents of a period (with filters), read from the store, each with
the context a reader needs (station, rule, models, the steps people took, evidence on disk).

Everything is read in one go and returned as plain values; rendering (PDF, CSV, JSON) never
touches the database. Times are UTC; a period is ``[start, end)`` on the incident's opening time.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from inspector.store import incidents as store_incidents

EVIDENCE_ROLES = store_incidents.EVIDENCE_ROLES
IMAGES_DIR = "images"  # frames' image paths are relative to <data folder>/images


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a report period needs timezone-aware times")
        if self.end <= self.start:
            raise ValueError(f"a report period must end after it starts ({self.start} .. {self.end})")

    @classmethod
    def days(cls, first: date, last: date) -> Period:
        """Whole UTC days, ``last`` included."""
        return cls(datetime.combine(first, time(), timezone.utc),
                   datetime.combine(last + timedelta(days=1), time(), timezone.utc))

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> Period:
        """The period of the same length just before this one (for trends)."""
        return Period(self.start - self.length, self.start)

    def label(self) -> str:
        """``2026-12-01 .. 2026-12-07`` for whole days, else both instants."""
        s, e = self.start.astimezone(timezone.utc), self.end.astimezone(timezone.utc)
        if s.time() == time() and e.time() == time():
            last = (e - timedelta(days=1)).date()
            return s.date().isoformat() if last == s.date() else f"{s.date()} .. {last}"
        return f"{s:%Y-%m-%d %H:%M} .. {e:%Y-%m-%d %H:%M} UTC"

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.astimezone(timezone.utc).isoformat(),
                "end": self.end.astimezone(timezone.utc).isoformat()}


def _values(v: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
    return None if v is None else ((v,) if isinstance(v, str) else tuple(v))


@dataclass(frozen=True)
class ReportFilter:
    """Which incidents: None means any; each filter is one value or several (any of them)."""

    station: str | tuple[str, ...] | None = None
    camera: str | tuple[str, ...] | None = None
    zone: str | tuple[str, ...] | None = None
    kind: str | tuple[str, ...] | None = None
    state: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("station", "camera", "zone", "kind", "state"):  # lists from configs become tuples
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                object.__setattr__(self, name, tuple(v) or None)
        bad = sorted(set(_values(self.state) or ()) - set(store_incidents.STATUSES))
        if bad:
            raise ValueError(f"incident state must be among {', '.join(store_incidents.STATUSES)}, got {bad}")

    def as_dict(self) -> dict[str, Any]:
        """Only the filters that are set (what a report prints and hashes)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str        # "" when the store cannot tell which stored version ran
    sha256: str


@dataclass(frozen=True)
class AuditStep:
    """One audit row about an incident: who did what, when."""

    t: str
    actor: str
    action: str         # incident.new / .update / .end / .evidence / .acknowledged / .closed / ...


@dataclass(frozen=True)
class EvidenceRef:
    """One evidence frame of an incident and what is needed to show it safely."""

    role: str                       # first / worst / last
    frame_id: str | None
    path: Path | None               # the image on disk (None: not stored or pruned)
    sha256: str | None
    # Stored person and hard-hat boxes of the frame, every model's and the kept set (a box fusion
    # dropped is still a person): where the heads to redact are.
    worker_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    hat_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    incident_box: tuple[float, float, float, float] | None = None   # the worker the incident is about
    frame_size: tuple[int, int] | None = None                       # (width, height) the boxes refer to


@dataclass(frozen=True)
class IncidentDetail:
    row: dict[str, Any]                   # the store's incident (every column)
    station: str | None
    rule: dict[str, Any] | None           # the incident rule of the config that ran (site.incidents[])
    models: tuple[ModelInfo, ...]
    steps: tuple[AuditStep, ...]
    evidence: tuple[EvidenceRef, ...] = ()


@dataclass(frozen=True)
class IncidentData:
    period: Period
    filter: ReportFilter
    station: str | None                   # the station id (the filter's, or the only one stored)
    station_name: str | None
    incidents: tuple[IncidentDetail, ...]
    previous: tuple[dict[str, Any], ...]  # the previous period's incidents (same filters): trends


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class _Context:
    """Per-read caches: configs by hash, run -> station, models by name."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._configs: dict[str, dict[str, Any] | None] = {}
        self.run_station = {r[0]: r[1] for r in conn.execute("SELECT id, station_id FROM runs")}

    def config(self, config_hash: str | None) -> dict[str, Any] | None:
        if not config_hash:
            return None
        if config_hash not in self._configs:
            row = self.conn.execute("SELECT text FROM configs WHERE hash = ?", (config_hash,)).fetchone()
            try:
                self._configs[config_hash] = json.loads(row[0]) if row else None
            except ValueError:  # a config stored as YAML text by an older station: no details then
                self._configs[config_hash] = None
        return self._configs[config_hash]

    def station_of(self, row: Mapping[str, Any]) -> str | None:
        if row.get("run_id") in self.run_station:
            return self.run_station[row["run_id"]]
        if row.get("frame_id"):  # a manual incident: the station of the frame it cites
            r = self.conn.execute("SELECT station_id FROM frames WHERE id = ?", (row["frame_id"],)).fetchone()
            return r[0] if r else None
        return None


def _select(conn: sqlite3.Connection, ctx: _Context, period: Period, flt: ReportFilter) -> list[dict[str, Any]]:
    one = {k: v for k in ("camera", "kind", "zone") if isinstance(v := getattr(flt, k), str)}  # in SQL
    rows = store_incidents.incidents(conn, **one, status=flt.state, since=period.start, until=period.end)
    for k in ("camera", "kind", "zone"):  # several values: any of them
        many = getattr(flt, k)
        if isinstance(many, tuple):
            rows = [r for r in rows if r.get(k) in many]
    stations = _values(flt.station)
    if stations is not None:
        rows = [r for r in rows if ctx.station_of(r) in stations]
    return rows


def _rule(cfg: Mapping[str, Any] | None, rule_id: str | None) -> dict[str, Any] | None:
    site = (cfg or {}).get("site") or {}
    for rule in site.get("incidents") or ():
        if rule.get("id") == rule_id:
            return dict(rule)
    return None


def _models(conn: sqlite3.Connection, cfg: Mapping[str, Any] | None, model_set_version: str | None
            ) -> tuple[ModelInfo, ...]:
    """The models that ran, pinned by the model-set version when the stored models allow it."""
    members = [(m.get("registry") or m.get("name"), float(m.get("weight", 1.0))) for m in (cfg or {}).get("models") or ()]
    if not members:
        return ()
    stored = {name: [tuple(r) for r in conn.execute("SELECT name, version, sha256 FROM models WHERE name = ?"
                                                       " ORDER BY created", (name,))] for name, _ in members}
    if model_set_version:
        from itertools import product

        from inspector.runtime.ensemble import Member, model_set_version as ms_version

        for combo in product(*(stored[n] or [(n, "", "")] for n, _ in members)):
            ms = ms_version([Member(n, v, s, None, w) for (n, v, s), (_, w) in zip(combo, members)])  # type: ignore[arg-type]
            if ms == model_set_version:
                return tuple(ModelInfo(n, v, s) for n, v, s in combo)
    # Not pinned (the version does not match a stored model): name them without claiming a version.
    return tuple(ModelInfo(n, "", "") for n, _ in members)


def _steps(conn: sqlite3.Connection, incident_id: int) -> tuple[AuditStep, ...]:
    return tuple(AuditStep(t, actor, action) for t, actor, action in conn.execute(
        "SELECT t, actor, action FROM audit WHERE entity = 'incidents' AND entity_id = ? ORDER BY seq",
        (str(incident_id),)))


_WORKER = re.compile(r"\bworker (-?\d+)\b")


def _incident_box(conn: sqlite3.Connection, frame_id: str, row: Mapping[str, Any]) -> tuple[float, ...] | None:
    """The box of the worker the incident is about, from the frame's decision reasons (the site
    judge names the incident key, or the rule and the worker's track, with the detection index)."""
    r = conn.execute("SELECT reasons FROM decisions WHERE frame_id = ?", (frame_id,)).fetchone()
    if r is None or row.get("track_id") is None:
        return None
    try:
        reasons = json.loads(r[0])
    except ValueError:
        return None
    best = None
    for reason in reasons:
        msg = str(reason.get("message", ""))
        idx = reason.get("detection_indices") or []
        if not idx:
            continue
        m = _WORKER.search(msg)
        if row.get("key") and row["key"] in msg:
            best = idx[0]
            break
        if best is None and reason.get("rule_id") == row.get("rule_id") and m and int(m.group(1)) == int(row["track_id"]):
            best = idx[0]
    if best is None:
        return None
    b = conn.execute("SELECT x0, y0, x1, y1 FROM detections WHERE frame_id = ? AND model_index = -1 AND idx = ?",
                     (frame_id, int(best))).fetchone()
    return None if b is None else tuple(float(v) for v in b)


def _boxes(conn: sqlite3.Connection, frame_id: str, class_name: str) -> np.ndarray:
    return np.array([tuple(b) for b in conn.execute(
        "SELECT x0, y0, x1, y1 FROM detections WHERE frame_id = ? AND class_name = ? ORDER BY model_index, idx",
        (frame_id, class_name))], dtype=np.float64).reshape(-1, 4)


def _evidence(conn: sqlite3.Connection, row: Mapping[str, Any], data_dir: Path | None, classes: Mapping[str, str]
              ) -> tuple[EvidenceRef, ...]:
    stored = row.get("evidence") or {}
    out = []
    for role in EVIDENCE_ROLES:
        entry = stored.get(role) if isinstance(stored, dict) else None
        fid = (entry or {}).get("frame_id") or row.get(f"{role}_frame_id") or (
            row.get("frame_id") if role == "worst" else None)
        if not fid:
            continue
        path: Path | None = None
        sha = (entry or {}).get("sha256")
        f = conn.execute("SELECT image_path, image_sha256, image_pruned, width, height FROM frames WHERE id = ?",
                         (fid,)).fetchone()
        if data_dir is not None:
            if entry and entry.get("path"):  # evidence images: relative to the data folder
                path = data_dir / entry["path"]
            elif f is not None and f[0] and not f[2]:
                path, sha = data_dir / IMAGES_DIR / f[0], f[1]
            if path is not None and not path.is_file():
                path = None
        size = (int(f[3]), int(f[4])) if f is not None and f[3] and f[4] else None
        out.append(EvidenceRef(role, fid, path, sha, _boxes(conn, fid, classes.get("worker", "worker")),
                               _boxes(conn, fid, classes.get("hat", "hat")), _incident_box(conn, fid, row), size))
    return tuple(out)


def _detail(conn: sqlite3.Connection, ctx: _Context, row: dict[str, Any], data_dir: Path | None,
            with_evidence: bool) -> IncidentDetail:
    cfg = ctx.config(row.get("config_hash"))
    classes = ((cfg or {}).get("site") or {}).get("classes") or {}
    return IncidentDetail(
        row=row, station=ctx.station_of(row), rule=_rule(cfg, row.get("rule_id")),
        models=_models(conn, cfg, row.get("model_set_version")), steps=_steps(conn, int(row["id"])),
        evidence=_evidence(conn, row, data_dir, classes) if with_evidence else ())


def _station(conn: sqlite3.Connection, ctx: _Context, flt: ReportFilter, details: Iterable[IncidentDetail]
             ) -> tuple[str | None, str | None]:
    ids = {d.station for d in details if d.station}
    if isinstance(flt.station, str):
        sid = flt.station
    elif len(ids) == 1:
        sid = ids.pop()
    else:
        known = [r[0] for r in conn.execute("SELECT id FROM stations ORDER BY id")]
        sid = known[0] if len(known) == 1 else None
    if sid is None:
        return None, None
    r = conn.execute("SELECT config_hash FROM runs WHERE station_id = ? ORDER BY started DESC LIMIT 1", (sid,)).fetchone()
    cfg = ctx.config(r[0]) if r else None
    return sid, ((cfg or {}).get("station") or {}).get("name")


def gather(conn: sqlite3.Connection, period: Period, flt: ReportFilter = ReportFilter(), *,
           data_dir: str | Path | None = None, with_evidence: bool = True) -> IncidentData:
    """The incidents opened in ``period`` that match ``flt``, oldest first, with their context, and the
    previous period's incidents (same filters) for trends. ``data_dir`` (the database's folder) locates
    evidence images; without it no image paths are resolved."""
    ctx = _Context(conn)
    root = None if data_dir is None else Path(data_dir)
    details = tuple(_detail(conn, ctx, r, root, with_evidence) for r in _select(conn, ctx, period, flt))
    previous = tuple(_select(conn, ctx, period.previous(), flt))
    sid, name = _station(conn, ctx, flt, details)
    return IncidentData(period, flt, sid, name, details, previous)


def gather_one(conn: sqlite3.Connection, incident_id: int, *, data_dir: str | Path | None = None) -> IncidentData:
    """One incident (for a single-incident report): its period is the time it was open."""
    row = store_incidents.incident(conn, int(incident_id))
    if row is None:
        raise LookupError(f"incident {incident_id} does not exist")
    ctx = _Context(conn)
    detail = _detail(conn, ctx, row, None if data_dir is None else Path(data_dir), True)
    start = datetime.fromisoformat(row.get("started") or row["t"])
    end = datetime.fromisoformat(row["ended"]) if row.get("ended") else datetime.fromisoformat(row["t"])
    opened = datetime.fromisoformat(row["t"])
    period = Period(min(start, opened), max(end, opened) + timedelta(microseconds=1))
    flt = ReportFilter(station=detail.station)
    sid, name = _station(conn, ctx, flt, (detail,))
    return IncidentData(period, flt, sid, name, (detail,), ())


__all__ = ["AuditStep", "EvidenceRef", "IncidentData", "IncidentDetail", "ModelInfo", "Period", "ReportFilter",
           "gather", "gather_one"]
