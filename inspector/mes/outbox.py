"""The durable MES outbox: rows written with the decisions, read and acknowledged by forwarders.

Lifecycle of a row (table ``outbox``, migration 4 of inspector.store.db):

1. inserted (``INSERT OR IGNORE`` on ``(transport, key)``) in the *same* transaction as its
   decision: :func:`write_drafts` is the StoreWriter's ``outbox_hook``. A JSON body gets the
   audit chain head as of that transaction (``audit_head``, after the decision's audit row), then
   each new row gets its own audit row (``outbox.queue``, hashing the body): an edited body is
   found by ``db verify``, and a receiver's copy anchors the chain outside the database;
2. read in ``id`` order by the transport's forwarder (:func:`pending`);
3. marked ``delivered`` only after the receiver acknowledged it (:func:`mark_delivered`); a
   failure only counts ``attempts`` and keeps ``last_error`` (:func:`record_failure`).

Delivery is at least once (a crash between the acknowledgement and the mark sends the row
again); receivers de-duplicate on the key. :func:`replay` puts delivered rows back in the queue;
:func:`prune_some` / :func:`prune_delivered` delete delivered rows past their retention (the
forwarders do it periodically, ``inspector mes prune`` on demand).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from inspector.mes.payload import with_audit_head
from inspector.store import audit
from inspector.store.db import transaction
from inspector.util.canonical import canonical_json, iso_utc

KINDS = ("unit", "wafer", "klarf", "incident.new", "incident.update", "incident.end", "report")


@dataclass(frozen=True)
class Draft:
    """One message before it is in the outbox. ``body`` is a dict (JSON; a ``"image"`` key is
    filled in with the stored image once the writer has it) or text (KLARF)."""

    transport: str
    key: str
    stream: str
    kind: str
    body: Any
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    transport: str
    key: str
    stream: str
    kind: str
    body: str
    meta: dict[str, Any]
    created: str
    attempts: int


def enqueue(conn: sqlite3.Connection, drafts: Iterable[Draft], *, image: Mapping[str, Any] | None = None,
            created: str | None = None, actor: str = "station") -> int:
    """Insert drafts (call inside the writing transaction); a key already queued for a transport is
    ignored. Returns the number of new rows.

    Order matters: the head is read before anything here is audited, so a JSON body carries the
    head that includes its decision's audit row; each new row's ``outbox.queue`` audit row follows
    (it hashes the body, so it cannot be inside it)."""
    created = created or iso_utc()
    head = audit.audit_head(conn)
    texts: dict[int, str] = {}  # one body dict is often shared by several transports: serialise once
    rows = []
    for d in drafts:
        if d.kind not in KINDS:
            raise ValueError(f"outbox message {d.key!r}: kind must be one of {', '.join(KINDS)}, got {d.kind!r}")
        if isinstance(d.body, Mapping):
            text = texts.get(id(d.body))
            if text is None:
                body = {**d.body, "image": dict(image)} if image is not None and "image" in d.body else d.body
                text = texts[id(d.body)] = canonical_json(with_audit_head(body, head))
        else:
            text = str(d.body)  # KLARF text: a fixed format, no place for the head
        rows.append((d.transport, d.key, d.stream, d.kind, text, canonical_json(dict(d.meta)), created))
    new = 0
    for row in rows:  # one by one: each new row's id names its audit row
        cur = conn.execute("INSERT OR IGNORE INTO outbox (transport, key, stream, kind, body, meta, created)"
                           " VALUES (?,?,?,?,?,?,?)", row)
        if cur.rowcount:
            new += 1
            audit.append(conn, actor=actor, action="outbox.queue", entity="outbox", entity_id=int(cur.lastrowid))
    return new


def write_drafts(conn: sqlite3.Connection, record: Any, stored: Any) -> None:
    """The StoreWriter's ``outbox_hook``: the record's drafts, with the image it just stored."""
    image = None
    if getattr(stored, "image_sha256", None):
        image = {"sha256": stored.image_sha256, "path": f"images/{stored.image_path}"}
    enqueue(conn, record.outbox, image=image)


def pending(conn: sqlite3.Connection, transport: str, limit: int = 200,
            exclude_streams: Iterable[str] = ()) -> list[OutboxRow]:
    """The oldest undelivered rows of a transport, in id (= delivery) order."""
    excl = list(exclude_streams)
    sql = ("SELECT id, transport, key, stream, kind, body, meta, created, attempts FROM outbox"
           " WHERE transport = ? AND delivered IS NULL")
    args: list[Any] = [transport]
    if excl:
        sql += f" AND stream NOT IN ({','.join('?' * len(excl))})"
        args += excl
    sql += " ORDER BY id LIMIT ?"
    args.append(int(limit))
    return [OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8])
            for r in conn.execute(sql, args)]


def mark_delivered(conn: sqlite3.Connection, ids: Sequence[int], when: str | None = None) -> None:
    """Mark rows acknowledged by their receiver (one transaction)."""
    if not ids:
        return
    when = when or iso_utc()
    with transaction(conn):
        conn.executemany("UPDATE outbox SET delivered = ?, last_error = NULL WHERE id = ?", [(when, i) for i in ids])


def record_failure(conn: sqlite3.Connection, row_id: int, error: str) -> None:
    with transaction(conn):
        conn.execute("UPDATE outbox SET attempts = attempts + 1, last_attempt = ?, last_error = ? WHERE id = ?",
                     (iso_utc(), error[:2000], row_id))


def depth(conn: sqlite3.Connection, transport: str) -> tuple[int, str | None]:
    """(pending rows, created time of the oldest) of one transport."""
    n, oldest = conn.execute("SELECT COUNT(*), MIN(created) FROM outbox WHERE transport = ? AND delivered IS NULL",
                             (transport,)).fetchone()
    return int(n), oldest


def age_s(created: str | None, now: datetime | None = None) -> float | None:
    if created is None:
        return None
    now = now or datetime.now(timezone.utc)
    return round((now - datetime.fromisoformat(created)).total_seconds(), 3)


def status(conn: sqlite3.Connection, transports: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Per transport: pending depth, oldest pending message and its age, delivered count, last error."""
    out: dict[str, dict[str, Any]] = {t: {"pending": 0, "oldest_pending": None, "oldest_age_s": None,
                                          "delivered": 0, "last_delivered": None, "last_error": None,
                                          "last_error_at": None, "max_attempts": 0} for t in transports}
    now = datetime.now(timezone.utc)

    def entry(t: str) -> dict[str, Any]:
        return out.setdefault(t, {"pending": 0, "oldest_pending": None, "oldest_age_s": None, "delivered": 0,
                                  "last_delivered": None, "last_error": None, "last_error_at": None,
                                  "max_attempts": 0})

    for t, n, oldest, attempts in conn.execute(
            "SELECT transport, COUNT(*), MIN(created), MAX(attempts) FROM outbox WHERE delivered IS NULL"
            " GROUP BY transport"):
        e = entry(t)
        e.update(pending=n, oldest_pending=oldest, oldest_age_s=age_s(oldest, now), max_attempts=attempts)
    for t, n, last in conn.execute("SELECT transport, COUNT(*), MAX(delivered) FROM outbox"
                                   " WHERE delivered IS NOT NULL GROUP BY transport"):
        entry(t).update(delivered=n, last_delivered=last)
    for t, err, at in conn.execute(
            "SELECT o.transport, o.last_error, o.last_attempt FROM outbox o JOIN"
            " (SELECT transport, MAX(last_attempt) AS at FROM outbox WHERE last_error IS NOT NULL GROUP BY transport) m"
            " ON m.transport = o.transport AND m.at = o.last_attempt WHERE o.last_error IS NOT NULL"):
        entry(t).update(last_error=err, last_error_at=at)
    return out


def replay(conn: sqlite3.Connection, since: datetime | str, *, until: datetime | str | None = None,
           transport: str | None = None) -> int:
    """Queue delivered rows created in [since, until) again (receivers de-duplicate by key); returns how many."""
    def t(v: datetime | str) -> str:
        return iso_utc(v) if isinstance(v, datetime) else str(v)

    sql = "UPDATE outbox SET delivered = NULL, attempts = 0, last_error = NULL WHERE delivered IS NOT NULL AND created >= ?"
    args: list[Any] = [t(since)]
    if until is not None:
        sql += " AND created < ?"
        args.append(t(until))
    if transport is not None:
        sql += " AND transport = ?"
        args.append(transport)
    with transaction(conn):
        return conn.execute(sql, args).rowcount


def prune_some(conn: sqlite3.Connection, before: datetime | str, *, transport: str | None = None,
               batch: int = 500, budget_s: float | None = None) -> tuple[int, bool]:
    """Delete rows delivered before ``before``, ``batch`` rows per transaction, for at most about
    ``budget_s`` seconds; returns (rows deleted, whether more remain).

    Small transactions keep the station's writer from waiting long on the database lock; the
    candidates are read outside the transaction and re-checked by the DELETE, so a row that a
    replay put back in the queue meanwhile is never deleted. Undelivered rows are never touched."""
    if batch < 1:
        raise ValueError(f"prune batch must be at least 1, got {batch}")
    when = iso_utc(before) if isinstance(before, datetime) else str(before)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    if transport is None:  # one transport at a time
        total = 0
        for t in transports_in(conn):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            n, more = prune_some(conn, when, transport=t, batch=batch, budget_s=left)
            total += n
            if more:
                return total, True
        return total, False
    # A row is delivered after it was created, so `created < when` narrows the search through the
    # `outbox_created` index (no index on `delivered`: every delivery would have to update it; the
    # unary + keeps SQLite from scanning all of a transport's rows through its (transport, key) index).
    sql = ("SELECT id FROM outbox WHERE created < ? AND +transport = ? AND delivered IS NOT NULL AND delivered < ?"
           " ORDER BY created LIMIT ?")
    total = 0
    while True:
        ids = [r[0] for r in conn.execute(sql, (when, transport, when, batch))]
        if not ids:
            return total, False
        with transaction(conn):
            total += conn.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))})"
                                  " AND delivered IS NOT NULL AND delivered < ?", [*ids, when]).rowcount
        if len(ids) < batch:
            return total, False
        if deadline is not None and time.monotonic() >= deadline:
            return total, True


def prune_delivered(conn: sqlite3.Connection, before: datetime | str, *, transport: str | None = None,
                    batch: int = 500) -> int:
    """Delete every row delivered before ``before`` (in small transactions; the decisions stay in
    the store); returns how many."""
    return prune_some(conn, before, transport=transport, batch=batch)[0]


WAFER_MARKS = ("live", "recovered")


def mark_wafer(conn: sqlite3.Connection, run_id: str, lot: str, wafer: str, how: str = "live") -> bool:
    """Note (inside the transaction that queues them) that a wafer's wafer-level messages are queued;
    False when it already was. The mark outlives pruned outbox rows (table ``mes_wafers``)."""
    if how not in WAFER_MARKS:
        raise ValueError(f"wafer mark: how must be one of {', '.join(WAFER_MARKS)}, got {how!r}")
    return conn.execute("INSERT OR IGNORE INTO mes_wafers (run_id, lot, wafer, queued, how) VALUES (?,?,?,?,?)",
                        (run_id, lot, wafer, iso_utc(), how)).rowcount == 1


def unmarked_wafers(conn: sqlite3.Connection, run_ids: Iterable[str]) -> list[tuple[str, str, str]]:
    """(run, lot, wafer) of the given runs that have dies in the store but no wafer mark, oldest first."""
    out: list[tuple[str, str, str]] = []
    for run in run_ids:
        out += [(run, lot, wafer) for lot, wafer in conn.execute(
            "SELECT COALESCE(f.lot, '') AS l, f.wafer FROM frames f WHERE f.run_id = ? AND f.wafer IS NOT NULL"
            " AND f.die_x IS NOT NULL AND f.die_y IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mes_wafers m"
            " WHERE m.run_id = f.run_id AND m.lot = COALESCE(f.lot, '') AND m.wafer = f.wafer)"
            " GROUP BY l, f.wafer ORDER BY MIN(f.rowid)", (run,))]
    return out


def transports_in(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT transport FROM outbox ORDER BY transport")]


__all__ = ["Draft", "KINDS", "OutboxRow", "WAFER_MARKS", "age_s", "depth", "enqueue", "mark_delivered",
           "mark_wafer", "pending", "unmarked_wafers",
           "prune_delivered", "prune_some", "record_failure", "replay", "status", "transports_in", "write_drafts"]
