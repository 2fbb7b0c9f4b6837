"""The append-only, hash-chained audit table and its verification.

Every decision and every human action appends one audit row in the same transaction as the row
it describes. A row stores ``payload_sha256``: the sha256 of the canonical JSON of the audited
entity *as stored* (read back from the database, so writer and verifier hash the very same
values), and ``hash = sha256(prev_hash + canonical fields)``. :func:`verify` recomputes all of it
and does not rely on the triggers that refuse UPDATE / DELETE: those are only a first line of
defence, anyone with the file can drop them.

Limit of any hash chain kept in the same file: removing the newest audit rows *together with* the
entities they describe leaves a shorter chain that is still consistent. Publish
:func:`audit_head` somewhere else (MES, report, log) and pass it to ``verify(anchor=...)`` to catch that.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# canonical_json, iso_utc, sha256_text and GENESIS are defined once, in inspector.util; they stay
# importable from here for code that names them audit.X (store/export.py, tests).
from inspector.util.canonical import canonical_json, iso_utc, sha256_text
from inspector.util.hashchain import GENESIS, link_hash

__all__ = [
    "ENTITIES", "GENESIS", "INCIDENT_EXTENSION", "Anchor", "AnchorCheck", "Problem", "VerifyResult", "append",
    "audit_head", "canonical_json", "entity_content", "iso_utc", "label", "row_hash", "sha256_text", "verify",
]


def row_hash(prev_hash: str, seq: int, t: str, actor: str, action: str, entity: str, entity_id: str,
             payload_sha256: str) -> str:
    """Hash of one audit row: chains to the previous row and covers every field (seq too, so rows
    cannot be renumbered or reordered)."""
    return link_hash(prev_hash, [seq, t, actor, action, entity, entity_id, payload_sha256])


# --------------------------------------------------------------------------------------------
# Audited entities: their canonical content as stored
# --------------------------------------------------------------------------------------------

# Fixed column lists (never SELECT *): a later migration that adds a column must not change the
# hash of rows recorded before it. Frame columns that retention changes (image_path,
# image_pruned) are left out on purpose; the image *hash* is covered.
_DECISION_SQL = (
    "SELECT d.frame_id, d.verdict, d.reasons, d.model_set_version, d.config_hash, d.t_decided, d.error, d.extras,"
    " f.run_id, f.station_id, f.source, f.t_utc, f.image_sha256, f.width, f.height, f.context"
    " FROM decisions d LEFT JOIN frames f ON f.id = d.frame_id WHERE d.frame_id = ?"
)
_DETECTIONS_SQL = (
    "SELECT model_index, idx, x0, y0, x1, y1, score, class_id, class_name, support FROM detections"
    " WHERE frame_id = ? ORDER BY model_index, idx"
)


@dataclass(frozen=True)
class _Entity:
    table: str
    key: str                    # primary-key column
    integer_key: bool
    columns: tuple[str, ...]    # hashed columns (ignored for decisions, see _decision_content)
    label: Callable[[str], str]
    # Columns a later migration added: hashed only when set (not NULL), so a row audited before
    # they existed keeps its hash, while setting or clearing one still changes the content.
    extension: tuple[str, ...] = ()
    # Retention deletes such rows (delivered MES messages): a missing one is not tampering.
    prunable: bool = False
    # Audited only since a later Inspector: rows older than the first audited one have no audit row.
    covered_since_first: bool = False


# Migration 6 (automatic incidents, human steps with who / when).
INCIDENT_EXTENSION = (
    "key", "run_id", "track_id", "rule_id", "started", "ended", "end_reason", "seq", "first_frame_id",
    "worst_frame_id", "worst_score", "last_frame_id", "clip_path", "clip_sha256", "evidence", "model_set_version",
    "config_hash", "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "resolution_note",
)

ENTITIES: dict[str, _Entity] = {
    e.table: e
    for e in (
        _Entity("decisions", "frame_id", False, (), lambda i: f"decision frame {i}"),
        _Entity("reviews", "id", True, ("id", "frame_id", "user", "t", "action", "verdict", "labels", "note"),
                lambda i: f"review {i}"),
        _Entity("incidents", "id", True,
                ("id", "frame_id", "kind", "zone", "camera", "t", "severity", "note", "status"),
                lambda i: f"incident {i}", INCIDENT_EXTENSION),
        _Entity("configs", "hash", False, ("hash", "text", "created"), lambda i: f"config {i[:12]}"),
        _Entity("models", "sha256", False, ("sha256", "name", "version", "path", "created"),
                lambda i: f"model {i[:12]}"),
        _Entity("runs", "id", False, ("id", "station_id", "started", "ended", "config_hash", "model_set_version"),
                lambda i: f"run {i}"),
        # Never the password hash: the audit log may be exported; a swapped hash is outside its reach.
        _Entity("users", "name", False, ("name", "role", "active", "created", "updated"), lambda i: f"user {i}"),
        # Delivery bookkeeping (attempts, errors, delivered) changes after queueing: not hashed.
        _Entity("outbox", "id", True, (), lambda i: f"MES outbox message {i}", prunable=True,
                covered_since_first=True),
        # Stalls, freezes, reconnects, store gaps (inspector.store.events); an end updates the row
        # and appends a newer audit row, which is the one checked.
        _Entity("station_events", "id", True, (), lambda i: f"station event {i}"),
    )
}

_OUTBOX_SQL = "SELECT id, transport, key, stream, kind, body, meta, created FROM outbox WHERE id = ?"


def _outbox_content(conn: sqlite3.Connection, row_id: str) -> dict | None:
    try:
        key = int(row_id)
    except ValueError:
        return None
    row = conn.execute(_OUTBOX_SQL, (key,)).fetchone()
    if row is None:
        return None
    rid, transport, mkey, stream, kind, body, meta, created = tuple(row)
    # The body by its sha256 (a KLARF or report body can be large; the hash is what a receiver can check).
    return {"row": {"id": rid, "transport": transport, "key": mkey, "stream": stream, "kind": kind,
                    "body_sha256": sha256_text(str(body)), "meta": meta, "created": created}}


_EVENT_SQL = "SELECT id, run_id, t, t_end, source, kind, detail FROM station_events WHERE id = ?"


def _event_content(conn: sqlite3.Connection, row_id: str) -> dict | None:
    # The very dict inspector.store.events.get_event returns (detail as JSON): that is what event
    # audit rows hashed as their payload before the table was listed here, so those still verify.
    try:
        key = int(row_id)
    except ValueError:
        return None
    row = conn.execute(_EVENT_SQL, (key,)).fetchone()
    if row is None:
        return None
    rid, run_id, t, t_end, source, kind, detail = tuple(row)
    try:
        parsed: Any = json.loads(detail)
    except (TypeError, ValueError):  # not JSON any more: edited, and it cannot hash like the original
        parsed = {"unparsable": str(detail)}
    return {"id": rid, "run_id": run_id, "t": t, "t_end": t_end, "source": source, "kind": kind, "detail": parsed}


def _decision_content(conn: sqlite3.Connection, frame_id: str) -> dict | None:
    cur = conn.execute(_DECISION_SQL, (frame_id,))
    row = cur.fetchone()
    if row is None:
        return None
    cols = [c[0] for c in cur.description]
    dets = [list(r) for r in conn.execute(_DETECTIONS_SQL, (frame_id,))]
    # The decision with its frame identity and every stored box: editing any of them is tampering.
    return {"row": dict(zip(cols, tuple(row))), "detections": dets}


def entity_content(conn: sqlite3.Connection, entity: str, entity_id: str) -> dict | None:
    """The canonical content of an audited row as stored now, or None when the row is gone."""
    spec = ENTITIES[entity]
    if entity == "decisions":
        return _decision_content(conn, entity_id)
    if entity == "outbox":
        return _outbox_content(conn, entity_id)
    if entity == "station_events":
        return _event_content(conn, entity_id)
    key: Any = entity_id
    if spec.integer_key:
        try:
            key = int(entity_id)
        except ValueError:
            return None
    cols = spec.columns + spec.extension
    row = conn.execute(f"SELECT {', '.join(cols)} FROM {spec.table} WHERE {spec.key} = ?", (key,)).fetchone()
    if row is None:
        return None
    values = tuple(row)
    content: dict[str, Any] = {"row": dict(zip(spec.columns, values[:len(spec.columns)]))}
    ext = {c: v for c, v in zip(spec.extension, values[len(spec.columns):]) if v is not None}
    if ext:
        content["ext"] = ext
    return content


def label(entity: str, entity_id: str) -> str:
    spec = ENTITIES.get(entity)
    return spec.label(entity_id) if spec else f"{entity} {entity_id}"


# --------------------------------------------------------------------------------------------
# Appending
# --------------------------------------------------------------------------------------------


def append(conn: sqlite3.Connection, *, actor: str, action: str, entity: str, entity_id: str | int,
           payload: Mapping[str, Any] | None = None, t: datetime | None = None) -> int:
    """Append one audit row inside the caller's open (BEGIN IMMEDIATE) transaction; returns its seq.

    For an audited table (``ENTITIES``) the payload is read back from the database, so pass
    ``payload=None``; for other events (a user change, a retention run) pass what happened.
    """
    if not conn.in_transaction:
        # Outside a transaction the audit row could commit without its entity (or the reverse).
        raise RuntimeError("audit.append must run inside the transaction that writes the audited row")
    entity_id = str(entity_id)
    if entity in ENTITIES:
        if payload is not None:
            raise ValueError(f"audit of {entity}: the payload is read from the stored row; do not pass one")
        content = entity_content(conn, entity, entity_id)
        if content is None:
            raise LookupError(f"audit: {label(entity, entity_id)} does not exist; write the row before its audit row")
    else:
        content = dict(payload or {})
    payload_sha = sha256_text(canonical_json(content))
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (1, GENESIS) if last is None else (int(last[0]) + 1, str(last[1]))
    ts = iso_utc(t)
    h = row_hash(prev, seq, ts, actor, action, entity, entity_id, payload_sha)
    conn.execute(
        "INSERT INTO audit (seq, t, actor, action, entity, entity_id, payload_sha256, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, ts, actor, action, entity, entity_id, payload_sha, prev, h),
    )
    return seq


def audit_head(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """(seq, hash) of the newest audit row: publish it elsewhere to anchor the chain."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    seq: int | None          # audit seq the problem is attached to (None: no audit row at all)
    entity: str | None
    entity_id: str | None
    message: str


@dataclass(frozen=True)
class Anchor:
    """A chain head (seq, hash) published outside the database, and where it was found."""

    seq: int
    hash: str
    kind: str                # checkpoint / mes-message / outbox / argument
    where: str               # names it in messages: a file and line, an outbox row, ...
    source: str = ""         # groups it in reports: the file or folder it came from


@dataclass(frozen=True)
class AnchorCheck:
    anchor: Anchor
    found: str | None        # the chain's hash at the anchor's seq (None: the chain has no such row)

    @property
    def ok(self) -> bool:
        return self.found == self.anchor.hash


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    audit_rows: int          # audit rows whose hash and link were recomputed
    entities_checked: int    # audited rows whose content was re-hashed
    problems: tuple[Problem, ...]
    anchors: tuple[AnchorCheck, ...] = ()

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def first_seq(self) -> int | None:
        return self.first.seq if self.first else None

    @property
    def message(self) -> str:
        if self.ok:
            held = f", {len(self.anchors)} published head(s) held" if self.anchors else ""
            return (f"ok: {self.audit_rows} audit rows chained, {self.entities_checked} audited rows match their "
                    f"hashes{held}")
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        return self.problems[0].message + more


def verify(conn: sqlite3.Connection, anchor: tuple[int, str] | None = None,
           anchors: Iterable[Anchor] = ()) -> VerifyResult:
    """Recompute the chain and every audited row; report the first tampered seq / entity.

    Checks: ``PRAGMA integrity_check``; seq contiguity from 1; each row's hash from its fields and
    the previous hash; that the newest audit row of each audited row still matches the stored row;
    that no such row exists without an audit row; and that the chain still holds every published
    head: ``anchor`` (seq, hash) and ``anchors`` (see :mod:`inspector.store.anchors`).
    A file too damaged to read gives a failed result, not an exception.
    """
    wanted = list(anchors)
    if anchor is not None:
        wanted.append(Anchor(int(anchor[0]), str(anchor[1]), "argument", "--anchor", "--anchor"))
    try:
        return _verify(conn, wanted)
    except sqlite3.DatabaseError as e:
        return VerifyResult(False, 0, 0, (Problem(None, None, None, f"database file is damaged: {e}"),))


def _anchor_problems(checks: list[AnchorCheck], last_seq: int) -> list[Problem]:
    """One problem per failed anchor, naming the seq and, for a rewrite, the newest anchor that still holds."""
    held = sorted(c.anchor.seq for c in checks if c.ok)
    out = []
    for c in checks:
        if c.ok:
            continue
        a = c.anchor
        if c.found is None:
            msg = (f"audit row {a.seq} is missing (the chain ends at {last_seq}): the chain was truncated after "
                   f"its head was published ({a.where})")
        else:
            before = [s for s in held if s < a.seq]
            since = f" after seq {before[-1]} (the newest published head that still holds)" if before else ""
            msg = (f"audit row {a.seq} differs from the published hash ({a.where}): the chain was rewritten at "
                   f"or before seq {a.seq}{since}")
        out.append(Problem(a.seq, None, None, msg))
    return out


def _verify(conn: sqlite3.Connection, anchors: list[Anchor]) -> VerifyResult:
    integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    head: list[Problem] = []
    if integrity != ["ok"]:
        head.append(Problem(None, None, None, "database file is damaged (PRAGMA integrity_check): "
                            + "; ".join(str(m) for m in integrity[:5])))

    chain: list[Problem] = []
    latest: dict[tuple[str, str], tuple[int, str]] = {}  # (entity, id) -> newest (seq, payload_sha256)
    wanted = {a.seq for a in anchors}
    seen: dict[int, str] = {}  # the stored hash at each anchored seq (not every hash: stores grow large)
    expected_seq, prev_hash, rows = 1, GENESIS, 0
    cur = conn.execute(
        "SELECT seq, t, actor, action, entity, entity_id, payload_sha256, prev_hash, hash FROM audit ORDER BY seq")
    for seq, t, actor, action, entity, entity_id, payload_sha, stored_prev, stored_hash in cur:
        rows += 1
        if seq != expected_seq:
            gap = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
            chain.append(Problem(expected_seq, None, None,
                                 f"audit row {gap} {'is' if seq == expected_seq + 1 else 'are'} missing "
                                 f"(seq jumps from {expected_seq - 1} to {seq}): audit rows were deleted"))
        elif stored_prev != prev_hash:
            chain.append(Problem(seq, entity, entity_id,
                                 f"audit row {seq}: chain broken, its prev_hash does not match the hash of row "
                                 f"{seq - 1}: row {seq - 1} was rewritten"))
        if row_hash(str(stored_prev), int(seq), t, actor, action, entity, entity_id, payload_sha) != stored_hash:
            chain.append(Problem(seq, entity, entity_id,
                                 f"audit row {seq} was modified after it was written (its hash no longer matches "
                                 f"its fields: {action} of {label(entity, entity_id)})"))
        if entity in ENTITIES:
            latest[(entity, entity_id)] = (int(seq), payload_sha)
        if int(seq) in wanted:
            seen[int(seq)] = stored_hash
        expected_seq, prev_hash = int(seq) + 1, stored_hash

    checks = [AnchorCheck(a, seen.get(a.seq)) for a in anchors]
    chain += _anchor_problems(checks, expected_seq - 1)

    # Entity checks: the newest audit row of each entity must hash the row as it is stored now.
    entity_problems: list[Problem] = []
    for (entity, entity_id), (seq, payload_sha) in latest.items():
        content = entity_content(conn, entity, entity_id)
        if content is None:
            if ENTITIES[entity].prunable:
                continue
            what = "deleted"
        elif sha256_text(canonical_json(content)) != payload_sha:
            what = "modified"
        else:
            continue
        entity_problems.append(Problem(seq, entity, entity_id,
                                       f"audit row {seq}: {label(entity, entity_id)} was {what} after it was recorded"))

    # Coverage: a row no audit row points at was written around the store (or its audit row removed).
    unaudited: list[Problem] = []
    for entity, spec in ENTITIES.items():
        sql = (f"SELECT CAST({spec.key} AS TEXT) FROM {spec.table} WHERE CAST({spec.key} AS TEXT) NOT IN"
               f" (SELECT entity_id FROM audit WHERE entity = ?)")
        args: tuple[Any, ...] = (entity,)
        if spec.covered_since_first:  # rows queued before auditing began have no audit row (no NULL compare: none)
            sql += (f" AND {spec.key} >= (SELECT MIN(CAST(entity_id AS INTEGER)) FROM audit WHERE entity = ?)")
            args += (entity,)
        for (entity_id,) in conn.execute(sql + f" ORDER BY {spec.key}", args):
            unaudited.append(Problem(None, entity, entity_id,
                                     f"{label(entity, entity_id)} has no audit row: it was written outside the store "
                                     "or its audit row was removed"))

    by_seq = sorted(chain + entity_problems, key=lambda p: p.seq if p.seq is not None else 0)  # stable: chain first
    problems = tuple(head + by_seq + unaudited)
    return VerifyResult(not problems, rows, len(latest), problems, tuple(checks))
