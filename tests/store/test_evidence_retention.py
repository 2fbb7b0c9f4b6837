"""Incident evidence retention: clips and evidence images of incidents closed before the limit go,
open ones keep theirs at any age, shared files stay, the prune is audited and the chain verifies."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

from inspector.store import audit
from inspector.store.db import open_db, transaction
from inspector.store.evidence_retention import prune_incident_evidence

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
OLD, RECENT = "2026-01-05T10:00:00+00:00", "2026-05-30T10:00:00+00:00"


def _file(data, rel: str, size: int = 10) -> str:
    p = data / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x" * size)
    return rel


def _incident(conn, data, name: str, status: str, resolved_at: str | None, *, clip: str | None = None,
              image: str | None = None, image_sha: str | None = None) -> int:
    clip = clip or _file(data, f"clips/{name}.mp4", 100)
    image = image or _file(data, f"images/{name}.png")
    evidence = json.dumps({"worst": {"frame_id": f"{name}-f", "sha256": image_sha or f"sha-{name}", "path": image}})
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO incidents (kind, camera, t, severity, status, key, clip_path, clip_sha256, evidence,"
            " resolved_by, resolved_at) VALUES ('no_hard_hat', 'gate', ?, 'high', ?, ?, ?, ?, ?, ?, ?)",
            (OLD, status, name, clip, f"clip-{clip}", evidence, "sam" if resolved_at else None, resolved_at))
        audit.append(conn, actor="station", action="incident.new", entity="incidents", entity_id=cur.lastrowid)
    return int(cur.lastrowid)


def test_closed_old_incidents_lose_their_files_open_ones_and_shared_files_stay(tmp_path, caplog):
    data = tmp_path / "data"
    conn = open_db(data / "inspector.sqlite")
    closed = _incident(conn, data, "closed", "closed", OLD)
    false_alarm = _incident(conn, data, "fa", "false_alarm", OLD)
    _incident(conn, data, "open", "open", None)
    _incident(conn, data, "acked", "acknowledged", None)
    _incident(conn, data, "recent", "closed", RECENT)
    # An old closed incident sharing its clip with an open one: the clip stays.
    _incident(conn, data, "sharer", "closed", OLD, clip="clips/open.mp4")

    with caplog.at_level(logging.INFO, logger="inspector.store.evidence_retention"):
        r = prune_incident_evidence(conn, data, NOW - timedelta(days=90))
    gone = {p.relative_to(data).as_posix() for p in (data / "clips").iterdir()} | \
        {p.relative_to(data).as_posix() for p in (data / "images").iterdir()}
    assert gone == {"clips/open.mp4", "clips/acked.mp4", "clips/recent.mp4", "images/open.png",
                    "images/acked.png", "images/recent.png"}
    assert (r.incidents_pruned, r.files_deleted, r.files_missing, r.files_kept_shared) == (3, 5, 0, 1)
    assert r.incidents_kept_open == 2 and r.bytes_freed == 2 * 100 + 3 * 10
    marked = {row[0] for row in conn.execute("SELECT key FROM incidents WHERE evidence_pruned IS NOT NULL")}
    assert marked == {"closed", "fa", "sharer"}
    (ev,) = conn.execute("SELECT actor, action, entity FROM audit WHERE action = 'evidence.prune'").fetchall()
    assert tuple(ev) == ("retention", "evidence.prune", "incident_evidence")
    assert audit.verify(conn).ok  # the incidents' own audit hashes are untouched
    assert "3 closed incident(s)" in caplog.text
    assert closed and false_alarm

    again = prune_incident_evidence(conn, data, NOW - timedelta(days=90))
    assert (again.incidents_pruned, again.files_deleted) == (0, 0)  # nothing twice, nothing audited twice
    assert conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'evidence.prune'").fetchone()[0] == 1
    conn.close()


def test_an_evidence_image_a_kept_frame_still_shows_is_not_deleted(tmp_path):
    data = tmp_path / "data"
    conn = open_db(data / "inspector.sqlite")
    with transaction(conn):
        conn.execute("INSERT INTO stations (id, created) VALUES ('st', ?)", (OLD,))
        conn.execute("INSERT INTO runs (id, station_id, started) VALUES ('r', 'st', ?)", (OLD,))
        conn.execute("INSERT INTO frames (id, run_id, station_id, source, t_utc, image_sha256, image_path, width,"
                     " height) VALUES ('f1', 'r', 'st', 'gate', ?, 'sha-frame', 'ab/sha-frame.png', 4, 4)", (OLD,))
    image = _file(data, "images/ab/sha-frame.png")
    _incident(conn, data, "closed", "closed", OLD, image=image, image_sha="sha-frame")
    r = prune_incident_evidence(conn, data, NOW - timedelta(days=90))
    assert (data / image).exists() and not (data / "clips" / "closed.mp4").exists()
    assert (r.files_deleted, r.files_kept_shared) == (1, 1)
    conn.close()


def test_a_stored_path_outside_the_data_folder_is_never_deleted(tmp_path):
    data = tmp_path / "data"
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    conn = open_db(data / "inspector.sqlite")
    _incident(conn, data, "evil", "closed", OLD, clip="../precious.txt")
    prune_incident_evidence(conn, data, NOW - timedelta(days=90))
    assert outside.read_text() == "keep me"
    conn.close()
