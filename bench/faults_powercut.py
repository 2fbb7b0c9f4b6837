"""Fault case ``powercut``: an approximation of a power cut, with what it does and does not prove.

A real station (``bench/durability_child.py``, a fresh interpreter, the wafer line with images)
writes decisions. At random moments the harness freezes the whole process with SIGSTOP (every
thread stopped: each ``write()`` it issued has completed or not started), copies the database and
its WAL byte for byte, *not* the ``-shm`` index (shared memory is gone after a power cut), checks
the copy, and lets the station run again (SIGCONT). Every other snapshot is also **torn**: the WAL
bytes after the last commit frame (the part SQLite has not fsynced yet: with ``synchronous=FULL``
the WAL is synced at every commit) are partly overwritten with garbage or cut at a random byte, as
a disk might leave unsynced sectors.

Each snapshot is then opened as the next start would open it (WAL recovery from scratch) and must
show: ``integrity_check`` ok, no foreign-key violation, no frame without its decision (nothing
half-written visible), the audit chain verifying over everything present, and every decision the
station acknowledged before the SIGSTOP present (``lost`` otherwise).

What this proves: the store's state at *any* point of its write sequence, with the WAL index lost
and the unsynced tail torn, recovers to exactly the committed transactions, and an acknowledgement
is only given for a transaction whose bytes were issued (and, with ``synchronous=FULL``, synced)
before it. What it does not prove: that the disk honours fsync (a drive cache that acknowledges
writes it has not made durable breaks any database), reordering of writes *across* an fsync by the
drive, file-system metadata of image files (renames and folder entries are not in the snapshot:
images are outside this case; the kill case checks them under SIGKILL), or a cut in the middle of a
sector. A byte copy taken while the writer runs (without SIGSTOP) would not be a crash state at all
(the two files are copied at different moments, across a checkpoint), so it is not used; dropping
the page cache (``drop_caches``) drops only clean pages and needs root, so it proves nothing here.

Figures: ``offered`` = decisions acknowledged by the last snapshot (each checked in every snapshot
taken after its acknowledgement; ``details.unit_checks`` counts those checks); ``recorded`` = found
in all of them; ``lost`` = missing from any; ``doubled``: none possible (primary key; counted as rows per frame id > 1);
``time_to_detect_s`` = median seconds to open, recover and check one snapshot. Most snapshots land
between transactions (a commit takes milliseconds): ``details.torn_with_unsynced_tail`` says how
many caught bytes of a transaction in progress.

Self-test breakages (``unsafe``): ``ack-before-commit`` (the station acknowledges before the
store has the record), ``tear-committed`` (the tear cuts the WAL inside its first committed
transaction: a disk that lied about every fsync since the last checkpoint): both must show lost
decisions.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.faults_common import REPO, CaseResult, audit_ok, check_size, check_unsafe

sys.path.insert(0, str(REPO / "bench"))
import durability  # noqa: E402  (the station child, its config and the ACK reader)

NAME = "powercut"
UNSAFE = ("ack-before-commit", "tear-committed")
SNAPSHOTS = {"small": 8, "default": 120}


def _all_stopped(pid: int) -> bool:
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            if state not in ("T", "t", "Z", "X"):
                return False
    except FileNotFoundError:
        return True
    return True


def wal_commits(wal: bytes) -> tuple[int, list[int]]:
    """(page size, end offsets of every valid commit frame) of a WAL file's bytes."""
    if len(wal) < 32:
        return 0, []
    magic, _version, page_size, _ckpt, salt1, salt2 = struct.unpack(">IIIIII", wal[:24])
    if magic not in (0x377F0682, 0x377F0683) or page_size < 512:
        return 0, []
    ends = []
    off, frame = 32, 24 + page_size
    while off + frame <= len(wal):
        _pgno, commit, s1, s2 = struct.unpack(">IIII", wal[off:off + 16])
        if (s1, s2) != (salt1, salt2):
            break
        if commit:
            ends.append(off + frame)
        off += frame
    return page_size, ends


def tear(wal: Path, rng: random.Random, committed_too: bool) -> str:
    """Damage the unsynced tail of a WAL copy (after its last commit frame); what was done."""
    data = bytearray(wal.read_bytes())
    page_size, ends = wal_commits(bytes(data))
    if not page_size:
        return "no WAL frames"
    synced = ends[-1] if ends else 32
    if committed_too and ends:
        synced = 32 + rng.randrange(0, ends[0] - 32)  # inside the first committed transaction: fsync lied
    tail = len(data) - synced
    if tail <= 0:
        return "nothing after the last commit"
    if rng.random() < 0.5:
        cut = synced + rng.randrange(0, tail)
        wal.write_bytes(bytes(data[:cut]))
        return f"cut {len(data) - cut} of {tail} unsynced bytes"
    start = synced + rng.randrange(0, tail)
    n = rng.randrange(1, min(4096, len(data) - start) + 1)
    data[start:start + n] = rng.randbytes(n)
    wal.write_bytes(bytes(data))
    return f"garbled {n} of {tail} unsynced bytes"


def check_snapshot(folder: Path, acked: list[str]) -> dict[str, Any]:
    """Open a snapshot as the next start would, and check it against what was acknowledged."""
    t0 = time.monotonic()
    db = folder / "inspector.sqlite"
    out: dict[str, Any] = {"acked": len(acked)}
    conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, isolation_level=None, timeout=30)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        out["integrity_ok"] = [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
        if "decisions" not in tables:
            out.update(present=0, lost=len(acked), fk_ok=True, atomic_ok=True, chain_ok=not acked, doubled=0)
            return out
        stored = {r[0] for r in conn.execute("SELECT frame_id FROM decisions")}
        out["present"] = len(stored)
        out["lost_all"] = [f for f in acked if f not in stored]
        out["lost"] = len(out["lost_all"])
        out["doubled"] = conn.execute("SELECT COUNT(*) - COUNT(DISTINCT frame_id) FROM decisions").fetchone()[0]
        out["fk_ok"] = not conn.execute("PRAGMA foreign_key_check").fetchall()
        out["atomic_ok"] = conn.execute("SELECT COUNT(*) FROM frames f LEFT JOIN decisions d ON d.frame_id = f.id"
                                        " WHERE d.frame_id IS NULL").fetchone()[0] == 0
        out["chain_ok"], out["chain_message"] = audit_ok(conn)
    except sqlite3.DatabaseError as e:
        out.update(integrity_ok=False, error=f"{type(e).__name__}: {e}", lost=len(acked), present=0, doubled=0)
    finally:
        conn.close()
        out["check_s"] = time.monotonic() - t0
    return out


def run(size: str = "default", *, seed: int = 0, unsafe: str | None = None, snapshots: int | None = None
        ) -> CaseResult:
    check_size(size)
    check_unsafe(unsafe, UNSAFE, NAME)
    n = snapshots if snapshots is not None else SNAPSHOTS[size]
    rng = random.Random(seed)
    res = CaseResult(NAME)
    t0 = time.monotonic()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="inspector-faults-powercut-") as tmp:
        work = Path(tmp)
        cfg, reg, data = durability.prepare(work / "station", seed)
        cmd = [sys.executable, str(durability.CHILD), "--config", str(cfg), "--registry", str(reg),
               "--data-dir", str(data)]
        if unsafe == "ack-before-commit":
            cmd.append("--unsafe-ack-before-submit")
        db = data / "inspector.sqlite"
        with open(work / "child.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=str(REPO))
            reader = durability._Reader(proc.stdout)
            reader.start()
            try:
                if not reader.first_ack.wait(120):
                    res.fail("the station never acknowledged a decision")
                for i in range(n):
                    time.sleep(rng.uniform(0.005, 0.25))
                    if proc.poll() is not None:
                        res.fail(f"the station ended by itself (exit {proc.returncode})")
                        break
                    os.kill(proc.pid, signal.SIGSTOP)
                    while not _all_stopped(proc.pid):
                        time.sleep(0.001)
                    time.sleep(0.03)  # ACK lines already in the pipe were written before the stop
                    acked = [a[1] for a in reader.acks]
                    snap = work / f"snap{i:04d}"
                    snap.mkdir()
                    for suffix in ("", "-wal"):  # not -shm: the WAL index does not survive a power cut
                        src = Path(f"{db}{suffix}")
                        if src.exists():
                            shutil.copyfile(src, snap / src.name)
                    torn = None
                    wal = snap / "inspector.sqlite-wal"
                    if (i % 2 == 1 or unsafe == "tear-committed") and wal.exists():
                        torn = tear(wal, rng, unsafe == "tear-committed")
                    r = check_snapshot(snap, acked)
                    r["torn"] = torn
                    # Resumed only now: the database grows by the writing time alone, not by the
                    # checks' time, so the checks stay cheap over many snapshots.
                    os.kill(proc.pid, signal.SIGCONT)
                    results.append(r)
                    shutil.rmtree(snap, ignore_errors=True)
            finally:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                reader.join(10)
    # Units: every decision acknowledged by the last snapshot (each was checked in every snapshot
    # taken after its acknowledgement); lost: those missing from any snapshot taken after it.
    lost_ids = {f for r in results for f in r.get("lost_all", [])}
    res.offered = results[-1]["acked"] if results else 0
    res.lost = len(lost_ids) or sum(1 for r in results if r.get("lost"))
    res.recorded = max(0, res.offered - res.lost)
    res.doubled = sum(r.get("doubled", 0) for r in results)
    for i, r in enumerate(results):
        bad = [k for k in ("integrity_ok", "fk_ok", "atomic_ok", "chain_ok") if r.get(k) is False]
        if bad or r.get("error"):
            res.fail(f"snapshot {i} ({r.get('torn') or 'not torn'}): {', '.join(bad)} {r.get('error') or ''}"
                     f"{r.get('chain_message') or ''}".strip())
    checks = [r["check_s"] for r in results]
    res.time_to_detect_s = statistics.median(checks) if checks else None
    res.details = {"snapshots": len(results), "unit_checks": sum(r["acked"] for r in results),
                   "lost_ids": sorted(lost_ids)[:10], "torn": sum(1 for r in results if r.get("torn")),
                   "torn_with_unsynced_tail": sum(1 for r in results
                                                  if (r.get("torn") or "").startswith(("cut", "garbled"))),
                   "decisions_at_last_snapshot": results[-1].get("present") if results else None,
                   "acked_at_last_snapshot": results[-1]["acked"] if results else None}
    res.notes = ("SIGSTOP snapshots of db + WAL (no -shm) of a writing station, half of them with the unsynced WAL "
                 "tail torn; proves recovery to exactly the committed transactions at any point of the write "
                 "sequence; not fsync honesty of the drive, reordering across fsync, or image files")
    return res.finish(t0)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small").as_dict(), indent=1, default=str))
