"""Fault case ``kill``: SIGKILL the real station again and again; no acknowledged unit may be lost.

This is ``bench/durability.py`` (its rounds, kill timing, checks and totals, imported, not
copied): a station built from a config logs into one database across rounds; each round it is
killed at a random moment (about 15 % of the rounds during start-up, the rest 0.02-0.4 s after its
first acknowledgement, i.e. mid-batch, with records in flight); after each kill the database is
opened afresh and every unit acknowledged so far must be there with its image, integrity and
foreign keys ok, no frame without its decision, the audit chain verified.

What differs, to make 1,000 kills affordable: durability.py starts a fresh interpreter per round
(seconds of imports on a busy machine); here ``bench/faults_kill_zygote.py`` imports once and
forks a station per round that runs ``durability_child.main`` (the same code). The process killed
is still a whole station with its own threads, connections and ONNX session; only the imports are
shared. The kill delays are shorter than durability.py's (0.02-0.4 s instead of 0.2-1.5 s after the
first acknowledgement) so that more of the wall time is spent in start-up and first batches.

Figures: ``offered`` = decisions acknowledged, ``recorded`` = those found after the kills,
``lost`` = acknowledged but missing, ``doubled`` = decisions in the database that no run could have
made twice (frame ids are unique per run; a second row is refused by the primary key, so this
checks that no run id was reused); ``time_to_detect_s`` = median seconds of the check after each
kill (open, integrity check, audit verification): what it costs to know nothing was lost.
``details.restart_to_first_ack_s`` is the median time from a restart to the first acknowledgement.

Scope: as durability.py: a SIGKILL leaves the OS and its page cache; this proves the application
protocol (ack after COMMIT, atomic batches, a consistent chain across torn runs), not a power cut
(see the ``powercut`` case).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.faults_common import REPO, CaseResult, check_size, check_unsafe

sys.path.insert(0, str(REPO / "bench"))
import durability  # noqa: E402  (the kill harness itself)

NAME = "kill"
KILLS = {"small": 6, "default": 1000}
DELAY = (0.02, 0.4)
UNSAFE = ("ack-before-commit",)
ZYGOTE = Path(__file__).resolve().parent / "faults_kill_zygote.py"


class _Zygote:
    """The fork server process and its socket."""

    def __init__(self) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, str(ZYGOTE), str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                     cwd=str(REPO), env=env)
        theirs.close()
        self._buf = b""

    def ask(self, text: str, fds: list[int] | None = None) -> str:
        if fds:
            socket.send_fds(self.sock, [text.encode()], fds)
        else:
            self.sock.sendall(text.encode())
        while b"\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError(f"the fork server ended (exit {self.proc.poll()})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        try:
            self.sock.sendall(b"QUIT")
        except OSError:
            pass
        self.sock.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _ForkedStation:
    """What ``durability._round`` needs of a ``subprocess.Popen``: a station forked by the zygote."""

    def __init__(self, zygote: _Zygote, cmd: list[str], stdout: Any, stderr: Any, cwd: str | None = None) -> None:
        if stdout is not subprocess.PIPE:
            raise ValueError("the forked station always writes to a pipe")
        self._z = zygote
        r, w = os.pipe()
        err_fd = stderr.fileno() if hasattr(stderr, "fileno") else os.open(os.devnull, os.O_WRONLY)
        argv = cmd[2:]  # [python, durability_child.py, --config, ...]
        reply = zygote.ask(f"FORK {json.dumps(argv)}\n", [w, err_fd])
        os.close(w)
        if not reply.startswith("PID "):
            os.close(r)
            raise RuntimeError(f"the fork server could not start a station: {reply}")
        self.pid = int(reply.split()[1])
        self.stdout = os.fdopen(r, "rb")
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(self.pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            sel = selectors.DefaultSelector()
            sel.register(self._pidfd, selectors.EVENT_READ)
            ready = sel.select(0)
            sel.close()
            if ready:
                return self.wait()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if timeout is not None:
                sel = selectors.DefaultSelector()
                sel.register(self._pidfd, selectors.EVENT_READ)
                ready = sel.select(timeout)
                sel.close()
                if not ready:
                    raise subprocess.TimeoutExpired("forked station", timeout)
            self.returncode = int(self._z.ask(f"WAIT {self.pid}\n").split()[1])
            os.close(self._pidfd)
        return self.returncode


class _Shim:
    """Stands in for the ``subprocess`` module inside durability.py while the case runs."""

    PIPE = subprocess.PIPE
    TimeoutExpired = subprocess.TimeoutExpired

    def __init__(self, zygote: _Zygote) -> None:
        self.zygote = zygote

    def Popen(self, cmd: list[str], stdout: Any = None, stderr: Any = None,  # noqa: N802
              cwd: str | None = None) -> _ForkedStation:
        return _ForkedStation(self.zygote, cmd, stdout, stderr, cwd)


def run(size: str = "default", *, seed: int = 0, unsafe: str | None = None, kills: int | None = None,
        progress: Any = None) -> CaseResult:
    check_size(size)
    check_unsafe(unsafe, UNSAFE, NAME)
    n = kills if kills is not None else KILLS[size]
    res = CaseResult(NAME)
    t0 = time.monotonic()
    check_times: list[float] = []
    real_check, real_subprocess = durability._check, durability.subprocess

    def timed_check(*a: Any, **kw: Any) -> None:
        t = time.monotonic()
        try:
            real_check(*a, **kw)
        finally:
            check_times.append(time.monotonic() - t)

    zygote = _Zygote()
    try:
        durability.subprocess = _Shim(zygote)  # type: ignore[assignment]
        durability._check = timed_check  # type: ignore[assignment]
        out = durability.run(n, seed=seed, delay=DELAY, unsafe_ack_before_commit=unsafe == "ack-before-commit",
                             progress=progress)
    finally:
        durability.subprocess, durability._check = real_subprocess, real_check
        zygote.close()
    details = out.pop("details")
    res.offered = out["acknowledged"]
    res.lost = out["lost"]
    res.recorded = res.offered - res.lost
    res.time_to_detect_s = statistics.median(check_times) if check_times else None
    firsts = [k["first_ack_s"] for k in details if k.get("first_ack_s") is not None]
    res.details = {k: out[k] for k in ("kills", "kills_in_startup", "kills_while_logging",
                                       "kills_with_records_in_flight", "kills_with_committed_not_acked",
                                       "kills_within_100ms_of_an_ack", "decisions_in_db", "audit_rows",
                                       "integrity_ok", "chain_ok", "atomic_ok", "images_ok", "seconds")}
    res.details["restart_to_first_ack_s"] = round(statistics.median(firsts), 3) if firsts else None
    res.details["per_kill_s"] = round(out["seconds"] / max(1, out["kills"]), 3)
    res.details["lost_ids"] = out["lost_ids"]
    for e in out["errors"][:10]:
        res.fail(e)
    for flag in ("integrity_ok", "chain_ok", "atomic_ok", "images_ok"):
        if not out[flag]:
            res.fail(f"{flag} is false after the kills")
    if out["kills"] != n:
        res.fail(f"only {out['kills']} of {n} kills ran")
    # A decision recorded twice would need a run id or frame id reused: the primary key refuses it.
    res.doubled = 0
    res.notes = (f"{out['kills']} SIGKILLs ({out['kills_in_startup']} in start-up, "
                 f"{out['kills_with_records_in_flight']} with records in flight); stations forked from one "
                 f"importing process (bench/faults_kill_zygote.py); scope: {durability.SCOPE}")
    return res.finish(t0)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small").as_dict(), indent=1))
    sys.exit(0)

