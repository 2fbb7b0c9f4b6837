"""Signed checkpoints of the audit chain: its head, signed with the station's ed25519 key, appended
to a JSON-lines file beside (not inside) the database.

Why: a chain kept in the database can be recomputed after an edit, or cut at the tail together
with the rows it describes, by anyone who can write the file. A checkpoint line cannot be forged
without the private key, which lives outside the data folder (config ``audit.checkpoint_key``,
created by ``inspector db keygen`` with 0600 permissions). ``inspector db verify`` checks every
line's signature with the public key and that the chain still holds each (seq, hash).

One line: ``{"seq", "hash", "t", "station", "key_id", "signature"}``; the signature covers the
canonical JSON of the other five fields. ``key_id`` is the first 16 hex digits of the sha256 of
the raw public key. The station writes a line every ``checkpoint_every_decisions`` committed
decisions or ``checkpoint_every_s`` seconds (whichever comes first, only when the head moved) and
once when its writer closes (run end), from the store writer's thread right after a COMMIT
(:class:`Checkpointer`): between checkpoints a commit costs a counter and a clock read; at a
checkpoint the writer reads the head, and signing and the fsynced append happen on another thread.

The file can still be truncated by someone who can write it: keep it on a different volume or
host (``audit.checkpoint_file`` takes an absolute path), or make it append-only (``chattr +a``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from inspector.store.audit import Anchor, audit_head
from inspector.util.canonical import canonical_json, iso_utc

log = logging.getLogger(__name__)

DEFAULT_FILE = "audit-checkpoints.jsonl"
_SIGNED = ("seq", "hash", "t", "station", "key_id")


class CheckpointKeyError(ValueError):
    """A checkpoint key cannot be used (missing, unreadable, not ed25519, inside the data folder)."""


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_path_for(private_path: str | Path) -> Path:
    return Path(str(private_path) + ".pub")


def generate_keypair(private_path: str | Path, *, overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write a new ed25519 key pair: the private key (PKCS#8 PEM, mode 0600, created with it: never
    readable by others even for a moment) and ``<path>.pub``; returns (private, public, key id)."""
    priv_path = Path(private_path)
    pub_path = public_path_for(priv_path)
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise FileExistsError(f"{priv_path} or {pub_path} already exists; a new key would orphan every checkpoint "
                              "signed with the old one (pass overwrite to replace it anyway)")
    priv_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if overwrite else os.O_EXCL)
    fd = os.open(priv_path, flags, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(priv_path, 0o600)  # an existing file (overwrite) keeps its mode otherwise
    pub = key.public_key()
    pub_path.write_bytes(pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(pub_path, 0o644)
    return priv_path, pub_path, key_id(pub)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointKeyError(f"checkpoint key {path}: cannot load it: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointKeyError(f"checkpoint key {path}: not an ed25519 key (create one with `inspector db keygen`)")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """A public key file (``.pub``); a private key file also works (its public half is used)."""
    data = Path(path).read_bytes()
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as e:
            raise CheckpointKeyError(f"public key {path}: cannot load it: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointKeyError(f"public key {path}: not an ed25519 key")
    return key


# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------


def sign_line(seq: int, digest: str, t: str, station: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    body = {"seq": int(seq), "hash": str(digest), "t": t, "station": station, "key_id": key_id(key.public_key())}
    sig = key.sign(canonical_json(body).encode("utf-8"))
    return {**body, "signature": base64.b64encode(sig).decode("ascii")}


def signature_ok(line: dict[str, Any], public: Ed25519PublicKey) -> bool:
    try:
        sig = base64.b64decode(str(line["signature"]), validate=True)
        public.verify(sig, canonical_json({k: line[k] for k in _SIGNED}).encode("utf-8"))
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False
    return True


def append_line(path: Path, line: dict[str, Any]) -> None:
    """Append one line and fsync it (O_APPEND: a concurrent writer never interleaves within a line)."""
    data = (json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class CheckpointReport:
    """What a checkpoint file holds: the anchors to check against the chain, and its own problems."""

    path: str
    lines: int
    anchors: tuple[Anchor, ...]
    problems: tuple[str, ...]          # unreadable lines, bad signatures, unknown keys
    signatures_checked: bool           # False: no public key was given (only seq / hash are compared)
    key_ids: tuple[str, ...] = field(default_factory=tuple)


def read_checkpoints(path: str | Path, public_keys: list[Ed25519PublicKey] | None = None) -> CheckpointReport:
    """Parse a checkpoint file. With public keys, a line whose signature does not verify (forged,
    edited, or signed by a key not given) is a problem and not used as an anchor."""
    path = Path(path)
    keys = {key_id(k): k for k in public_keys or ()}
    anchors: list[Anchor] = []
    problems: list[str] = []
    n = 0
    seen_ids: set[str] = set()
    for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not text.strip():
            continue
        n += 1
        where = f"checkpoint {path.name} line {number}"
        try:
            line = json.loads(text)
            seq, digest = int(line["seq"]), str(line["hash"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"{where}: not a checkpoint line")
            continue
        kid = str(line.get("key_id"))
        seen_ids.add(kid)
        if keys:
            public = keys.get(kid)
            if public is None:
                problems.append(f"{where} (seq {seq}): signed by key {kid}, not by the given public key(s) "
                                f"{', '.join(sorted(keys))}: forged or from another station")
                continue
            if not signature_ok(line, public):
                problems.append(f"{where} (seq {seq}): bad signature: the line was forged or edited")
                continue
        anchors.append(Anchor(seq, digest, "checkpoint", where, str(path)))
    return CheckpointReport(str(path), n, tuple(anchors), tuple(problems), bool(keys), tuple(sorted(seen_ids)))


# --------------------------------------------------------------------------------------------
# The station's writer
# --------------------------------------------------------------------------------------------


class Checkpointer:
    """Writes a signed checkpoint every ``every_decisions`` records or ``every_s`` seconds, from
    the store writer's thread after a COMMIT (``after_commit``), and one more at ``close``.

    The writer's thread only reads the head (a fraction of a millisecond); signing and the fsynced
    append (milliseconds) run on a thread of their own, so no batch waits for the disk twice.
    A checkpoint that cannot be written is logged and counted (``errors``), never raised: the
    decisions are committed already, and the next checkpoint covers them."""

    def __init__(self, path: str | Path, key: Ed25519PrivateKey, station: str, *, every_decisions: int = 1000,
                 every_s: float = 300.0, clock: Any = time.monotonic) -> None:
        if every_decisions < 1 or every_s <= 0:
            raise ValueError("checkpoints: every_decisions must be >= 1 and every_s > 0")
        self.path = Path(path)
        self.key = key
        self.station = station
        self.every_decisions = int(every_decisions)
        self.every_s = float(every_s)
        self._clock = clock
        self._since = 0                    # records committed since the last checkpoint
        self._due_at = clock() + self.every_s
        self._last: tuple[int, str] | None = None   # the newest head handed to the signer
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None
        self.write_s: list[float] = []      # durations of the last writes (benchmarks, metrics)

    def after_commit(self, conn: sqlite3.Connection, records: int) -> None:
        """Called by the writer after each COMMIT with the number of jobs it held."""
        self._since += records
        if self._since >= self.every_decisions or self._clock() >= self._due_at:
            self.checkpoint(conn, wait=False)

    def close(self, conn: sqlite3.Connection) -> None:
        """The writer closes (run end): a last checkpoint of what it committed; waits for every write."""
        self.checkpoint(conn, wait=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def wait(self) -> None:
        """Return once every checkpoint handed to the signer is written (or failed)."""
        if self._pool is not None:
            self._pool.submit(lambda: None).result()

    def checkpoint(self, conn: sqlite3.Connection, wait: bool = True) -> Future | None:
        """Sign and append the current head when it moved since the last one (None: it did not)."""
        self._since, self._due_at = 0, self._clock() + self.every_s
        try:
            head = audit_head(conn)
        except sqlite3.Error as e:
            self._failed(e)
            return None
        if head is None or head == self._last:
            return None
        self._last = head
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="audit-checkpoints")
        fut = self._pool.submit(self._write, head, iso_utc())
        if wait:
            fut.result()
        return fut

    def _write(self, head: tuple[int, str], t: str) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            line = sign_line(head[0], head[1], t, self.station, self.key)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            append_line(self.path, line)
        except Exception as e:  # noqa: BLE001 - never cost a committed decision; reported instead
            self._last = None  # the next checkpoint tries this head again
            self._failed(e)
            return None
        with self._lock:
            self.written += 1
            self.write_s = [*self.write_s[-99:], time.perf_counter() - t0]
        return line

    def _failed(self, e: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
        log.error("audit checkpoint not written to %s: %s", self.path, self.last_error)


def checkpointer_for(audit_cfg: Any, station: str, data_dir: str | Path) -> Checkpointer | None:
    """The station's checkpointer from its ``audit`` config section (None: no key configured).
    Refuses a private key inside the data folder: whoever copies or edits the data could then
    sign checkpoints too."""
    if audit_cfg is None or not audit_cfg.checkpoint_key:
        return None
    data = Path(data_dir).resolve()
    key_path = Path(audit_cfg.checkpoint_key).expanduser().resolve()
    if key_path == data or data in key_path.parents:
        raise CheckpointKeyError(f"audit.checkpoint_key: {key_path} is inside the data folder {data}; keep the "
                                 "private key elsewhere (only the station's user may read it)")
    if not key_path.is_file():
        raise CheckpointKeyError(f"audit.checkpoint_key: {key_path} not found (create it with "
                                 f"`inspector db keygen --key {key_path}`)")
    mode = key_path.stat().st_mode & 0o077
    if mode:
        raise CheckpointKeyError(f"audit.checkpoint_key: {key_path} is readable by other users (mode "
                                 f"{oct(key_path.stat().st_mode & 0o777)}); chmod 600 it")
    out = Path(audit_cfg.checkpoint_file).expanduser()
    return Checkpointer(out if out.is_absolute() else data / out, load_private_key(key_path), station,
                        every_decisions=audit_cfg.checkpoint_every_decisions, every_s=audit_cfg.checkpoint_every_s)


__all__ = ["DEFAULT_FILE", "CheckpointKeyError", "CheckpointReport", "Checkpointer", "append_line", "checkpointer_for",
           "generate_keypair", "key_id", "load_private_key", "load_public_key", "public_path_for", "read_checkpoints",
           "sign_line", "signature_ok"]
