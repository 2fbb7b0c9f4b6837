"""The SQLite schema, its numbered migrations, connections and small idempotent writes.

Migrations are a list of SQL scripts; ``PRAGMA user_version`` holds how many have been applied.
Opening an older database applies the missing ones (each in its own transaction); a database
written by a newer Inspector is refused with a clear error rather than misread.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from inspector.store import audit
from inspector.util.atomic import PRIVATE_DIR, PRIVATE_FILE, make_private_dirs, tighten
from inspector.util.canonical import canonical_json, iso_utc
from inspector.util.redact import redact_text

log = logging.getLogger(__name__)

__all__ = [
    "MIGRATIONS", "SchemaTooNewError", "StoreError", "canonical_json", "end_run", "ensure_station",
    "insert_config", "insert_model", "insert_run", "iso_utc", "migrate", "open_db", "schema_version",
    "transaction",
]

_APPEND_ONLY = ("decisions", "reviews", "audit")

# Triggers are a first line of defence only: audit.verify never relies on them.
_TRIGGERS = "\n".join(
    f"CREATE TRIGGER {t}_no_update BEFORE UPDATE ON {t} BEGIN SELECT RAISE(ABORT, '{t}: rows are append-only'); END;\n"
    f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} BEGIN SELECT RAISE(ABORT, '{t}: rows are append-only'); END;"
    for t in _APPEND_ONLY
)

MIGRATIONS: list[str] = [
    # 1: the traceable decision record.
    """
    CREATE TABLE stations (
        id TEXT PRIMARY KEY,
        name TEXT,
        domain TEXT,
        created TEXT NOT NULL
    );
    CREATE TABLE configs (
        hash TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE models (
        sha256 TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        path TEXT,
        created TEXT NOT NULL
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        station_id TEXT NOT NULL REFERENCES stations(id),
        started TEXT NOT NULL,
        ended TEXT,
        config_hash TEXT,
        model_set_version TEXT
    );
    CREATE TABLE frames (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        station_id TEXT NOT NULL,
        source TEXT NOT NULL,
        t_utc TEXT NOT NULL,
        image_sha256 TEXT,
        image_path TEXT,                 -- relative to the image root
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        context TEXT NOT NULL DEFAULT '{}',
        lot TEXT, wafer TEXT, die_x INTEGER, die_y INTEGER, camera TEXT, zone TEXT
    );
    CREATE INDEX frames_t ON frames(t_utc);
    CREATE INDEX frames_lot_wafer ON frames(lot, wafer);
    CREATE INDEX frames_camera_zone ON frames(camera, zone);
    CREATE INDEX frames_run ON frames(run_id);
    CREATE TABLE detections (
        frame_id TEXT NOT NULL REFERENCES frames(id),
        model_index INTEGER NOT NULL,    -- -1: the fused / kept set; else the ensemble member
        idx INTEGER NOT NULL,
        x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
        score REAL NOT NULL,
        class_id INTEGER NOT NULL,
        class_name TEXT,
        support INTEGER NOT NULL,        -- bitmask of the members that backed the box
        PRIMARY KEY (frame_id, model_index, idx)
    ) WITHOUT ROWID;
    CREATE INDEX detections_class ON detections(class_name, model_index);
    CREATE TABLE decisions (
        frame_id TEXT PRIMARY KEY REFERENCES frames(id),
        verdict TEXT NOT NULL CHECK (verdict IN ('pass', 'fail', 'review', 'error', 'not_inspected')),
        reasons TEXT NOT NULL,           -- JSON list with rule ids
        model_set_version TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        t_decided TEXT NOT NULL,
        error TEXT,
        extras TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX decisions_verdict ON decisions(verdict);
    CREATE TABLE reviews (
        id INTEGER PRIMARY KEY,
        frame_id TEXT NOT NULL REFERENCES frames(id),
        user TEXT NOT NULL,
        t TEXT NOT NULL,
        action TEXT NOT NULL,            -- accept / reject_false_alarm / change_class / relabel
        verdict TEXT,
        labels TEXT,                     -- corrected labels, JSON
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX reviews_frame ON reviews(frame_id);
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        frame_id TEXT REFERENCES frames(id),
        kind TEXT NOT NULL,
        zone TEXT,
        camera TEXT,
        t TEXT NOT NULL,
        severity TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'open'
    );
    CREATE INDEX incidents_frame ON incidents(frame_id);
    CREATE INDEX incidents_t ON incidents(t);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        t TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        entity TEXT NOT NULL,            -- table name (or event kind)
        entity_id TEXT NOT NULL,
        payload_sha256 TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_entity ON audit(entity, entity_id);
    """ + _TRIGGERS,
    # 2: image retention marks pruned frames (their row and hash stay; the file is gone).
    """
    ALTER TABLE frames ADD COLUMN image_pruned INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX frames_image ON frames(image_sha256);
    CREATE INDEX decisions_t ON decisions(t_decided);
    """,
    # 3: station users (inspector.store.users). Names are unique whatever their case, so 'Olga' and
    # 'olga' cannot be two people in the record. password_hash holds 'scrypt$n$r$p$salt$hash',
    # never the password. Users are deactivated, never deleted: reviews and audit rows name them.
    """
    CREATE TABLE users (
        name TEXT NOT NULL COLLATE NOCASE PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TRIGGER users_no_delete BEFORE DELETE ON users
    BEGIN SELECT RAISE(ABORT, 'users: rows are never deleted; deactivate the user instead'); END;
    """,
    # 4: the MES outbox (inspector.mes.outbox). A unit's message is inserted in the same transaction
    # as its decision, so a committed decision always has its pending message. One row per
    # (transport, key): the key (station/run/frame) is what receivers de-duplicate on. `id` gives
    # the delivery order; `stream` (lot/wafer or camera/zone) is the unit stream kept in order.
    # `delivered` stays NULL until the receiver acknowledged; the partial index keeps the pending
    # scan fast however many delivered rows accumulate.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        transport TEXT NOT NULL,         -- MES output id (config mes[].id)
        key TEXT NOT NULL,               -- idempotency key
        stream TEXT NOT NULL,            -- ordering unit
        kind TEXT NOT NULL,              -- unit / wafer / klarf
        body TEXT NOT NULL,              -- what is sent (JSON or KLARF text)
        meta TEXT NOT NULL DEFAULT '{}', -- transport details (MQTT topic, file name), JSON
        created TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt TEXT,
        last_error TEXT,
        delivered TEXT,
        UNIQUE (transport, key)
    );
    CREATE INDEX outbox_pending ON outbox(transport, id) WHERE delivered IS NULL;
    CREATE INDEX outbox_created ON outbox(created);
    """,
    # 5: MES housekeeping. (Retention finds old delivered rows through `outbox_created`: an index
    # on the delivery time cost the station 10-25 % of its write rate while a backlog drained,
    # measured with bench/bench_outbox.py.) `mes_wafers` marks each wafer whose wafer-level MES messages (wafer result,
    # KLARF) were queued, in the same transaction as them; a station start queues those of wafers
    # that have dies but no mark (the station stopped before the wafer was judged). The mark
    # outlives the pruned outbox rows, so a wafer is never sent twice. Wafers already in the store
    # are marked here: they were judged by the Inspector that recorded them.
    """
    CREATE TABLE mes_wafers (
        run_id TEXT NOT NULL,
        lot TEXT NOT NULL,               -- '' when the frames carried no lot
        wafer TEXT NOT NULL,
        queued TEXT NOT NULL,            -- when its wafer-level messages were queued
        how TEXT NOT NULL,               -- live / recovered / migration
        PRIMARY KEY (run_id, lot, wafer)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO mes_wafers (run_id, lot, wafer, queued, how)
        SELECT DISTINCT run_id, COALESCE(lot, ''), wafer, strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00', 'migration'
        FROM frames WHERE wafer IS NOT NULL;
    """,
    # 6: automatic incidents (construction site) and analysed archive stretches. An automatic
    # incident is keyed by the incident engine's `key` (camera/run/track/kind/number) so a replayed
    # event never makes a second row; `t` stays its opening time. Every column added here is NULL
    # on older rows, which is what keeps their audit hashes valid (inspector.store.audit hashes
    # such "extension" columns only when set). `status` gains 'false_alarm'; the human steps keep
    # who and when beside the audit rows. `analysis_segments` is written by inspector.store.analysis.
    """
    ALTER TABLE incidents ADD COLUMN key TEXT;
    ALTER TABLE incidents ADD COLUMN run_id TEXT;
    ALTER TABLE incidents ADD COLUMN track_id INTEGER;
    ALTER TABLE incidents ADD COLUMN rule_id TEXT;
    ALTER TABLE incidents ADD COLUMN started TEXT;            -- when the violation began (before persistence)
    ALTER TABLE incidents ADD COLUMN ended TEXT;              -- when the engine closed it (cleared, track lost, run end)
    ALTER TABLE incidents ADD COLUMN end_reason TEXT;
    ALTER TABLE incidents ADD COLUMN seq INTEGER;             -- last engine event applied (0 = new)
    ALTER TABLE incidents ADD COLUMN first_frame_id TEXT;
    ALTER TABLE incidents ADD COLUMN worst_frame_id TEXT;
    ALTER TABLE incidents ADD COLUMN worst_score REAL;
    ALTER TABLE incidents ADD COLUMN last_frame_id TEXT;
    ALTER TABLE incidents ADD COLUMN clip_path TEXT;          -- relative to the data folder
    ALTER TABLE incidents ADD COLUMN clip_sha256 TEXT;
    ALTER TABLE incidents ADD COLUMN evidence TEXT;           -- JSON: first / worst / last evidence images
    ALTER TABLE incidents ADD COLUMN model_set_version TEXT;
    ALTER TABLE incidents ADD COLUMN config_hash TEXT;
    ALTER TABLE incidents ADD COLUMN acknowledged_by TEXT;
    ALTER TABLE incidents ADD COLUMN acknowledged_at TEXT;
    ALTER TABLE incidents ADD COLUMN resolved_by TEXT;        -- who closed it or marked it a false alarm
    ALTER TABLE incidents ADD COLUMN resolved_at TEXT;
    ALTER TABLE incidents ADD COLUMN resolution_note TEXT;
    CREATE UNIQUE INDEX incidents_key ON incidents(key);
    CREATE INDEX incidents_camera ON incidents(camera, t);
    CREATE INDEX incidents_run ON incidents(run_id);
    CREATE TABLE analysis_segments (
      id INTEGER PRIMARY KEY,
      run_id TEXT NOT NULL,
      video TEXT NOT NULL,            -- the path as given
      video_sha256 TEXT NOT NULL,     -- sha256 of the first MiB plus the size: identity without reading it all
      camera TEXT NOT NULL,
      first_frame INTEGER NOT NULL,   -- inclusive, 0-based
      last_frame INTEGER NOT NULL,
      t0_s REAL NOT NULL,             -- video time of first_frame
      t1_s REAL NOT NULL,
      action TEXT NOT NULL CHECK (action IN ('inferred', 'skipped')),
      reason TEXT NOT NULL            -- motion, static, stride, decode_error, ...
    );
    CREATE INDEX analysis_segments_run ON analysis_segments(run_id, video, first_frame);
    """,
    # 7 (#15 points 1 and 5): station events (stalls, freezes, reconnects, store gaps): what happened
    # to the station between units, with times, so a gap in the record is itself on record.
    # `t_end` is NULL while the condition lasts (or when it never ended before the run did).
    # Written by inspector.store.events, each row audited.
    """
    CREATE TABLE station_events (
      id INTEGER PRIMARY KEY,
      run_id TEXT NOT NULL,
      t TEXT NOT NULL,                -- when it began (UTC ISO)
      t_end TEXT,                     -- when it ended; NULL while open
      source TEXT,                    -- camera / source id; NULL for the station itself (store_gap)
      kind TEXT NOT NULL CHECK (kind IN ('stall', 'freeze', 'reconnect', 'store_gap', 'unreadable')),
      detail TEXT NOT NULL DEFAULT '{}'   -- canonical JSON
    );
    CREATE INDEX station_events_run ON station_events(run_id, kind, t);
    """,
    # 8 (#15 point 4): log-in sessions and failed log-ins (inspector.store.sessions,
    # inspector.store.login_throttle). Only a token's sha256 is stored: a copy of the database
    # does not hand out live sessions. A system session (role 'system': the scheduler, the CLI)
    # names the permissions it was opened for in `scope`. `login_attempts` keys a user name by
    # the sha256 of its lower-cased form (a password typed into the name field is not kept).
    """
    CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT,                      -- system sessions: comma-separated permissions; NULL for a person
        reason TEXT,                     -- system sessions: why it was opened
        created TEXT NOT NULL,
        expires TEXT NOT NULL,
        revoked TEXT                     -- when it was logged out or revoked (password, role, deactivation)
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user ON sessions(user);
    CREATE TABLE login_attempts (
        key TEXT PRIMARY KEY,            -- 'name:<sha256 of the lower-cased name>', or '*' for all names
        failures INTEGER NOT NULL,
        last_failed TEXT NOT NULL,
        locked_until TEXT
    ) WITHOUT ROWID;
    """,
    # 9 (#15 point 2): audit anchors
    """
    -- reserved: audit anchors
    """,
    # 10 (#14 leftovers and #15 point 6): retention of incident evidence. `evidence_pruned` is when
    # retention deleted the clip and evidence images of a closed incident (NULL: still there). Not
    # an audited column (the incident's hash covers what it recorded, not what retention did later;
    # the prune itself is an audit event), so setting it keeps every incident's audit hash valid.
    """
    ALTER TABLE incidents ADD COLUMN evidence_pruned TEXT;
    """,
]


class StoreError(Exception):
    """A store operation failed; the message says what and which record."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer Inspector than this one."""


# --------------------------------------------------------------------------------------------
# Connections and migrations
# --------------------------------------------------------------------------------------------


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a migration script, one by one (a trigger's ``BEGIN ... END;`` body
    stays whole: ``sqlite3.complete_statement`` knows where a statement really ends)."""
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            text = "\n".join(ln for ln in buf.splitlines() if not ln.strip().startswith("--")).strip()
            if text.strip(";").strip():
                yield buf.strip()
            buf = ""


def migrate(conn: sqlite3.Connection) -> tuple[int, int]:
    """Apply the pending migrations; returns (version before, version after)."""
    before = schema_version(conn)
    if before > len(MIGRATIONS):
        raise SchemaTooNewError(
            f"database schema version {before} is newer than this Inspector understands (up to {len(MIGRATIONS)}); "
            "upgrade Inspector to open it")
    for number in range(before + 1, len(MIGRATIONS) + 1):
        # Each migration in its own transaction, so a failing one leaves the previous version, never
        # half a migration. The version is read again under the write lock: another process opening
        # the same new database may have applied it meanwhile (re-running it then would fail, or,
        # for a migration that cannot fail, set user_version back below the other's latest).
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) >= number:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return before, len(MIGRATIONS)


def _is_busy(e: sqlite3.OperationalError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(e) or "busy" in str(e)


def _switch_to_wal(conn: sqlite3.Connection, timeout_s: float) -> str:
    """``PRAGMA journal_mode = WAL``, retried while another connection holds a lock.

    On a database not yet in WAL mode (a brand-new file another process is creating at the same
    moment) the switch needs an exclusive lock, and SQLite answers SQLITE_BUSY at once instead of
    calling the busy handler (it would deadlock with a connection holding a lock it wants). So
    the busy timeout does not cover this step: retry with jittered back-off up to ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as e:
            if not _is_busy(e) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))  # jitter: racing processes do not retry in step
        delay = min(delay * 2, 0.1)


def _create_private(path: Path) -> None:
    """The data folder 0700 and a new database file 0600 before SQLite opens it (its -wal and
    -shm files get the database file's mode from SQLite), whatever the umask."""
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def _shared_folder(folder: Path) -> bool:
    """A folder that is not the station's to lock down: home, the root, a sticky shared one (/tmp)."""
    try:
        resolved = folder.resolve()
        st = resolved.stat()
        home = Path.home().resolve()
    except (OSError, RuntimeError):  # no HOME: do not guess, leave the folder alone
        return True
    return resolved in (home, Path(resolved.anchor)) or bool(st.st_mode & stat.S_ISVTX)


def _tighten_existing(path: Path) -> None:
    """An older station left its data world-readable (0755 / 0644, password hashes inside):
    tighten the folder and the database files, saying so (once: afterwards there is nothing to do)."""
    changed = []
    if not _shared_folder(path.parent) and (old := tighten(path.parent, PRIVATE_DIR)) is not None:
        changed.append(f"{path.parent} {old:o} -> {old & PRIVATE_DIR:o}")
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and (old := tighten(p, PRIVATE_FILE)) is not None:
            changed.append(f"{p.name} {old:o} -> {old & PRIVATE_FILE:o}")
    if changed:
        log.warning("store %s was readable by other users; permissions tightened: %s", path, ", ".join(changed))


def open_db(path: str | Path, *, create: bool = True, timeout_s: float = 30.0,
            check_same_thread: bool = True) -> sqlite3.Connection:
    """Open (and upgrade) a store database.

    WAL (readers never block the writer), foreign keys on, ``synchronous=FULL`` (a committed
    decision survives a power cut), autocommit mode: callers use :func:`transaction`.
    ``create=False`` refuses a missing file instead of creating an empty database. The folder is
    kept 0700 and the database files 0600 (they hold password hashes), see :func:`_tighten_existing`.
    """
    path = Path(path)
    if not create and not path.is_file():
        raise FileNotFoundError(f"no Inspector database at {path}")
    if create:
        _create_private(path)
    _tighten_existing(path)
    conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=check_same_thread)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        mode = _switch_to_wal(conn, timeout_s)
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot switch the database to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error). IMMEDIATE takes the write lock up front, so
    the audit chain's head read inside is the head the row will follow."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --------------------------------------------------------------------------------------------
# Idempotent writes (call inside a transaction)
# --------------------------------------------------------------------------------------------


def ensure_station(conn: sqlite3.Connection, station_id: str, name: str | None = None,
                   domain: str | None = None) -> None:
    conn.execute("INSERT OR IGNORE INTO stations (id, name, domain, created) VALUES (?, ?, ?, ?)",
                 (station_id, name, domain, iso_utc()))


def insert_run(conn: sqlite3.Connection, run_id: str, station_id: str, *, started: datetime | None = None,
               config_hash: str | None = None, model_set_version: str | None = None,
               actor: str = "station") -> bool:
    """Record a run start once; returns True when it was new (and audited)."""
    ensure_station(conn, station_id)
    cur = conn.execute(
        "INSERT OR IGNORE INTO runs (id, station_id, started, config_hash, model_set_version) VALUES (?, ?, ?, ?, ?)",
        (run_id, station_id, iso_utc(started), config_hash, model_set_version))
    if cur.rowcount:
        audit.append(conn, actor=actor, action="run.start", entity="runs", entity_id=run_id)
    return bool(cur.rowcount)


def end_run(conn: sqlite3.Connection, run_id: str, *, ended: datetime | None = None, actor: str = "station") -> None:
    cur = conn.execute("UPDATE runs SET ended = ? WHERE id = ?", (iso_utc(ended), run_id))
    if not cur.rowcount:
        raise StoreError(f"run {run_id!r} is not recorded; cannot end it")
    audit.append(conn, actor=actor, action="run.end", entity="runs", entity_id=run_id)


def insert_config(conn: sqlite3.Connection, config_hash: str, text: str, *, actor: str = "station") -> bool:
    """Store a config by hash once (a config change is audited); True when it was new.

    The stored copy has URL credentials masked (``inspector.util.redact``: a database copy must not
    hand out the MES or camera passwords); ``config_hash`` stays the hash of the config the station
    ran, so a changed password is still a new config version."""
    cur = conn.execute("INSERT OR IGNORE INTO configs (hash, text, created) VALUES (?, ?, ?)",
                       (config_hash, redact_text(text), iso_utc()))
    if cur.rowcount:
        audit.append(conn, actor=actor, action="config.add", entity="configs", entity_id=config_hash)
    return bool(cur.rowcount)


def insert_model(conn: sqlite3.Connection, sha256: str, name: str, version: str, path: str | None,
                 *, actor: str = "station") -> bool:
    """Store a model by sha256 once; True when it was new (and audited)."""
    cur = conn.execute("INSERT OR IGNORE INTO models (sha256, name, version, path, created) VALUES (?, ?, ?, ?, ?)",
                       (sha256, name, version, path, iso_utc()))
    if cur.rowcount:
        audit.append(conn, actor=actor, action="model.add", entity="models", entity_id=sha256)
    return bool(cur.rowcount)
