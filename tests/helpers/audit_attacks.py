"""What an attacker with the database file (and nothing else) can do to the audit chain."""

from __future__ import annotations

import json

from inspector.store import audit
from inspector.store.db import transaction
from inspector.store.writer import Stored, write_record


def drop_triggers(conn) -> None:
    for t in ("decisions", "reviews", "audit"):
        conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_update")
        conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_delete")


def recompute_chain(conn, *, rewrite_messages: bool = False) -> None:
    """Re-hash every audited row as stored now and re-link the whole chain: self-consistent again.
    ``rewrite_messages``: also put the new hashes into the heads the outbox bodies carry (what a
    thorough attacker does; only anchors outside the file are left to tell)."""
    prev = audit.GENESIS
    new_hash: dict[int, str] = {}
    rows = conn.execute("SELECT seq, t, actor, action, entity, entity_id, payload_sha256 FROM audit ORDER BY seq")
    for seq, t, actor, action, entity, entity_id, payload in rows.fetchall():
        if entity == "outbox" and rewrite_messages:
            body = conn.execute("SELECT body FROM outbox WHERE id = ?", (int(entity_id),)).fetchone()
            msg = json.loads(body[0]) if body else None
            if isinstance(msg, dict) and msg.get("audit_head"):
                msg["audit_head"]["hash"] = new_hash[msg["audit_head"]["seq"]]
                conn.execute("UPDATE outbox SET body = ? WHERE id = ?", (audit.canonical_json(msg), int(entity_id)))
        if entity in audit.ENTITIES:
            content = audit.entity_content(conn, entity, entity_id)
            if content is not None:
                payload = audit.sha256_text(audit.canonical_json(content))
        h = audit.row_hash(prev, seq, t, actor, action, entity, entity_id, payload)
        conn.execute("UPDATE audit SET payload_sha256 = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                     (payload, prev, h, seq))
        prev = new_hash[seq] = h


def delete_tail(conn, after_seq: int) -> None:
    """Remove every audit row after ``after_seq`` *with* the decisions and outbox rows they describe."""
    tail = conn.execute("SELECT action, entity, entity_id FROM audit WHERE seq > ?", (after_seq,)).fetchall()
    for action, entity, entity_id in tail:
        if action == "run.end":  # the run looks as if it were still going
            conn.execute("UPDATE runs SET ended = NULL WHERE id = ?", (entity_id,))
        if entity == "decisions":
            for table, col in (("detections", "frame_id"), ("decisions", "frame_id"), ("frames", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {col} = ?", (entity_id,))
        elif entity == "outbox":
            conn.execute("DELETE FROM outbox WHERE id = ?", (int(entity_id),))
    conn.execute("DELETE FROM audit WHERE seq > ?", (after_seq,))


def write_with_messages(conn, records, hook) -> None:
    """What the station's writer does per record: the decision, then its outbox messages, one transaction."""
    for r in records:
        with transaction(conn):
            seq = write_record(conn, r)
            hook(conn, r, Stored(r.frame.frame_id, seq, None, None, None))


__all__ = ["delete_tail", "drop_triggers", "recompute_chain", "write_with_messages"]
