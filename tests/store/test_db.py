"""Schema, numbered migrations, connection settings, append-only triggers, idempotent helpers."""

from __future__ import annotations

import sqlite3
import time

import pytest

from inspector.store import db
from inspector.store.db import MIGRATIONS, SchemaTooNewError, open_db, schema_version, transaction

TABLES = {"stations", "runs", "configs", "models", "frames", "detections", "decisions", "reviews", "incidents",
          "audit"}


def rows(conn, sql):
    return [tuple(r) for r in conn.execute(sql)]


def test_new_database_has_every_table_and_the_latest_version(tmp_path):
    conn = open_db(tmp_path / "sub" / "s.sqlite")
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert TABLES <= names
    assert schema_version(conn) == len(MIGRATIONS) >= 2
    frame_cols = {r[1] for r in conn.execute("PRAGMA table_info(frames)")}
    wanted = {"lot", "wafer", "die_x", "die_y", "camera", "zone", "image_sha256", "image_path", "image_pruned"}
    assert wanted <= frame_cols


def test_connection_is_wal_with_foreign_keys_and_full_sync(tmp_path):
    conn = open_db(tmp_path / "s.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.execute("INSERT INTO decisions VALUES ('nope', 'pass', '[]', 'm', 'c', 't', NULL, '{}')")


def test_opening_an_old_database_upgrades_it_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    raw = sqlite3.connect(path)
    raw.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    raw.execute("INSERT INTO stations VALUES ('st', NULL, NULL, 't')")
    raw.execute("INSERT INTO runs (id, station_id, started) VALUES ('r', 'st', 't')")
    raw.execute("INSERT INTO frames (id, run_id, station_id, source, t_utc, width, height) "
                "VALUES ('f1', 'r', 'st', 'cam', 't', 4, 4)")
    raw.commit()
    raw.close()

    conn = open_db(path)
    assert schema_version(conn) == len(MIGRATIONS)
    assert rows(conn, "SELECT id, image_pruned FROM frames") == [("f1", 0)]


def test_a_database_newer_than_the_code_is_refused_clearly(tmp_path):
    path = tmp_path / "new.sqlite"
    open_db(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
    raw.close()
    with pytest.raises(SchemaTooNewError, match=rf"version {len(MIGRATIONS) + 3} is newer .*upgrade Inspector"):
        open_db(path)


def test_a_failing_migration_leaves_the_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    open_db(path).close()
    bad = "CREATE TABLE extra (x); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(db, "MIGRATIONS", [*MIGRATIONS, bad])
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        open_db(path)
    monkeypatch.undo()
    conn = open_db(path)
    assert schema_version(conn) == len(MIGRATIONS)
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0


def test_read_open_never_creates_a_database(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Inspector database"):
        open_db(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()


@pytest.mark.parametrize("table", ["decisions", "reviews", "audit"])
def test_append_only_tables_refuse_update_and_delete(tmp_path, table):
    conn = open_db(tmp_path / "s.sqlite")
    with transaction(conn):
        db.insert_run(conn, "r", "st")
        conn.execute("INSERT INTO frames (id, run_id, station_id, source, t_utc, width, height)"
                     " VALUES ('f', 'r', 'st', 'cam', 't', 4, 4)")
        conn.execute("INSERT INTO decisions VALUES ('f', 'pass', '[]', 'm', 'c', 't', NULL, '{}')")
        conn.execute("INSERT INTO reviews (frame_id, user, t, action) VALUES ('f', 'ann', 't', 'accept')")
    col = {"decisions": "verdict = 'fail'", "reviews": "note = 'x'", "audit": "actor = 'x'"}[table]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(f"UPDATE {table} SET {col}")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(f"DELETE FROM {table}")
    assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] >= 1


def test_helpers_are_idempotent_and_audit_only_new_rows(tmp_path):
    conn = open_db(tmp_path / "s.sqlite")
    with transaction(conn):
        assert db.insert_config(conn, "h1", "station: {}") is True
        assert db.insert_model(conn, "a" * 64, "yolo", "3", "models/yolo.onnx") is True
        assert db.insert_run(conn, "r1", "st", config_hash="h1", model_set_version="ms") is True
    with transaction(conn):
        assert db.insert_config(conn, "h1", "other text") is False
        assert db.insert_model(conn, "a" * 64, "yolo", "3", None) is False
        assert db.insert_run(conn, "r1", "st") is False
        db.end_run(conn, "r1")
    assert rows(conn, "SELECT text FROM configs") == [("station: {}",)]
    actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY seq")]
    assert actions == ["config.add", "model.add", "run.start", "run.end"]
    assert rows(conn, "SELECT ended IS NOT NULL, config_hash FROM runs") == [(1, "h1")]
    with pytest.raises(db.StoreError, match="run 'nope' is not recorded"), transaction(conn):
        db.end_run(conn, "nope")


def test_transaction_rolls_back_on_error(tmp_path):
    conn = open_db(tmp_path / "s.sqlite")
    with pytest.raises(RuntimeError), transaction(conn):
        db.insert_config(conn, "h", "t")
        raise RuntimeError("boom")
    assert conn.execute("SELECT COUNT(*) FROM configs").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 0
    assert not conn.in_transaction


def _open_and_count(path: str, start: float) -> int:
    while time.time() < start:  # all processes open at (nearly) the same moment
        time.sleep(0.001)
    conn = open_db(path)
    try:
        return schema_version(conn)
    finally:
        conn.close()


def test_processes_opening_a_new_database_at_once_all_get_it_migrated(tmp_path):
    # The GUI and its station process may both be first to open a new store.
    import multiprocessing as mp

    path = str(tmp_path / "fresh.db")
    start = time.time() + 1.0
    with mp.get_context("fork").Pool(4) as pool:
        versions = pool.starmap(_open_and_count, [(path, start)] * 4)
    assert versions == [len(MIGRATIONS)] * 4
    conn = open_db(path)
    try:
        assert schema_version(conn) == len(MIGRATIONS)
    finally:
        conn.close()


def test_switching_a_new_file_to_wal_waits_for_a_process_holding_a_lock(tmp_path):
    # SQLite answers the WAL switch of a not-yet-WAL file with "database is locked" at once while
    # another connection holds a lock (no busy handler): the cause of the flaky test above.
    import threading

    path = tmp_path / "fresh.db"
    other = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process creating the same new store
    timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    timer.start()
    try:
        conn = open_db(path, timeout_s=5.0)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert schema_version(conn) == len(MIGRATIONS)
        conn.close()
    finally:
        timer.join()
        other.close()


def test_a_stored_config_copy_has_url_credentials_masked(tmp_path):
    conn = open_db(tmp_path / "s.sqlite")
    text = '{"mes": [{"url": "https://ann:hunter2@mes/x?token=t0k"}], "sources": [{"path": "rtsp://cam:pw@c/s"}]}'
    with transaction(conn):
        db.insert_config(conn, "h1", text)
    (stored,) = conn.execute("SELECT text FROM configs WHERE hash = 'h1'").fetchone()
    assert stored == '{"mes": [{"url": "https://ann:***@mes/x?token=***"}], "sources": [{"path": "rtsp://cam:***@c/s"}]}'


def test_a_process_that_read_an_old_version_leaves_the_new_one_in_place(tmp_path, monkeypatch):
    # Two processes open a new store: B reads version 5 while A is still migrating, then A finishes.
    # B must find each migration done under the write lock, not re-run it (a no-op one would set
    # user_version back, and the next one would then fail on A's columns).
    path = tmp_path / "s.sqlite"
    open_db(path).close()  # A: fully migrated
    conn = sqlite3.connect(str(path), isolation_level=None)
    real = db.schema_version
    calls = iter([5])
    monkeypatch.setattr(db, "schema_version", lambda c: next(calls, None) or real(c))
    assert db.migrate(conn) == (5, len(MIGRATIONS))
    monkeypatch.undo()
    assert schema_version(conn) == len(MIGRATIONS)
    conn.close()
