"""Retention of incident evidence: the clip and evidence images of incidents closed long ago.

An incident's evidence is kept while anyone may still act on it: open and acknowledged incidents
keep theirs whatever their age. A closed incident (``closed`` or ``false_alarm``) whose resolution
is older than the retention limit loses its clip and evidence image files; its row, its hashes
and its audit trail stay (the row is marked ``evidence_pruned``; the prune is an audit event).
A file is never deleted while something kept still points at it: another incident's evidence
(same content-addressed file) or a frame whose image is kept.

As with :func:`inspector.store.images.retention`, the database is updated first, then files are
removed: a crash in between leaves an orphan file, never a kept record whose file is gone.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from inspector.store import audit
from inspector.store.db import transaction
from inspector.store.images import delete_stored
from inspector.util.canonical import iso_utc

log = logging.getLogger(__name__)

CLOSED = ("closed", "false_alarm")


@dataclass(frozen=True)
class EvidencePruneReport:
    incidents_pruned: int     # closed incidents whose evidence files were released
    files_deleted: int
    files_missing: int        # already gone from disk
    bytes_freed: int
    files_kept_shared: int    # still used by a kept incident or frame
    incidents_kept_open: int  # old incidents kept because they are not closed


def _files_of(clip_path: str | None, clip_sha: str | None, evidence: str | None) -> list[tuple[str, str | None]]:
    """(path relative to the data folder, sha256) of an incident's evidence files."""
    out = [(clip_path, clip_sha)] if clip_path else []
    try:
        ev = json.loads(evidence) if evidence else {}
    except ValueError:  # unreadable evidence JSON: nothing to find, nothing deleted
        ev = {}
    for item in ev.values() if isinstance(ev, dict) else ():
        if isinstance(item, dict) and item.get("path"):
            out.append((str(item["path"]), item.get("sha256")))
    return out


def prune_incident_evidence(conn: sqlite3.Connection, data_dir: str | Path, older_than: datetime, *,
                            actor: str = "retention") -> EvidencePruneReport:
    """Delete the evidence files of incidents closed before ``older_than`` (see the module doc)."""
    cutoff = iso_utc(older_than)
    data_dir = Path(data_dir).resolve()
    with transaction(conn):
        rows = conn.execute(
            "SELECT id, status, resolved_at, clip_path, clip_sha256, evidence, evidence_pruned FROM incidents"
            " WHERE t < ?", (cutoff,)).fetchall()
        prune = [r for r in rows if r["status"] in CLOSED and r["resolved_at"] and r["resolved_at"] < cutoff
                 and r["evidence_pruned"] is None]
        kept_open = sum(r["status"] not in CLOSED for r in rows)
        pruned_ids = {int(r["id"]) for r in prune}
        # Everything a kept incident points at (newer ones too), by path and by content hash.
        kept_paths: set[str] = set()
        kept_shas: set[str] = set()
        for r in conn.execute("SELECT id, clip_path, clip_sha256, evidence FROM incidents"
                              " WHERE evidence_pruned IS NULL"):
            if int(r["id"]) in pruned_ids:
                continue
            for path, sha in _files_of(r["clip_path"], r["clip_sha256"], r["evidence"]):
                kept_paths.add(path)
                if sha:
                    kept_shas.add(sha)
        wanted: dict[str, str | None] = {}
        for r in prune:
            wanted.update(_files_of(r["clip_path"], r["clip_sha256"], r["evidence"]))
        shared = 0
        paths = []
        for path, sha in sorted(wanted.items()):
            frame_keeps = sha is not None and conn.execute(
                "SELECT 1 FROM frames WHERE image_sha256 = ? AND image_pruned = 0 LIMIT 1", (sha,)).fetchone()
            if path in kept_paths or (sha is not None and sha in kept_shas) or frame_keeps:
                shared += 1
                continue
            paths.append(path)
        now = iso_utc()
        conn.executemany("UPDATE incidents SET evidence_pruned = ? WHERE id = ?", [(now, i) for i in sorted(pruned_ids)])
        if pruned_ids:
            audit.append(conn, actor=actor, action="evidence.prune", entity="incident_evidence",
                         entity_id="retention", payload={"older_than": cutoff, "incidents": sorted(pruned_ids),
                                                         "files": paths})
    deleted, missing, freed = delete_stored(data_dir, paths)
    if pruned_ids:
        log.info("evidence retention: %d closed incident(s) before %s: %d file(s) deleted (%.1f MB), %d missing, "
                 "%d kept (shared); %d older incident(s) kept because still open", len(pruned_ids), cutoff,
                 deleted, freed / 1e6, missing, shared, kept_open)
    return EvidencePruneReport(len(pruned_ids), deleted, missing, freed, shared, kept_open)


__all__ = ["CLOSED", "EvidencePruneReport", "prune_incident_evidence"]
