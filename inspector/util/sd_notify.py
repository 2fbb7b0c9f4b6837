"""systemd's notify protocol, without a dependency: tell the service manager we are ready, alive, stopping.

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service: a unix datagram socket, a path
(``/run/systemd/notify``) or an abstract-namespace name (starting with ``@``, which stands for the
leading NUL byte). Each message is one datagram of ``KEY=VALUE`` lines: ``READY=1`` once the
service works, ``WATCHDOG=1`` at least every ``WatchdogSec`` (else systemd kills and restarts the
service), ``STATUS=...`` a line shown by ``systemctl status``, ``STOPPING=1`` on a clean stop.

Without ``$NOTIFY_SOCKET`` (not run by systemd) every call is a no-op that returns False, so callers
never need to check. Sending never raises and never blocks: a full or vanished socket only returns False.
``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``) give the watchdog interval; ``watchdog_interval`` reads it.
"""

from __future__ import annotations

import os
import socket
import threading

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def _address(raw: str) -> str | bytes | None:
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace: no file, a leading NUL byte
    if raw.startswith("/"):
        return raw
    return None  # vsock and other kinds are not used for services on a station


class Notifier:
    """One connection to ``$NOTIFY_SOCKET`` (or to ``address``); thread-safe, never raises on send."""

    def __init__(self, address: str | None = None) -> None:
        raw = address if address is not None else os.environ.get(NOTIFY_SOCKET, "")
        self.address = _address(raw.strip())
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str, **values: object) -> bool:
        """Send one datagram: ``notify("READY=1")`` or ``notify(READY=1, STATUS="running")``."""
        if self.address is None:
            return False
        lines = list(fields) + [f"{k}={v}" for k, v in values.items()]
        # One field a line: a newline inside a value (a STATUS text) would start a bogus field.
        msg = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    # non-blocking: a full queue on the manager's side (only 10 datagrams by default,
                    # net.unix.max_dgram_qlen) drops this message instead of hanging the station
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                                               | socket.SOCK_NONBLOCK)
                self._sock.sendto(msg, self.address)
                return True
            except BlockingIOError:
                return False
            except OSError:
                self._close()
                return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        with self._lock:
            self._close()


def watchdog_interval() -> float | None:
    """Seconds between required ``WATCHDOG=1`` pings (``$WATCHDOG_USEC``), or None when no watchdog applies.

    ``$WATCHDOG_PID``, when set, names the process meant; another process gets None.
    """
    pid = os.environ.get("WATCHDOG_PID", "").strip()
    if pid and pid != str(os.getpid()):
        return None
    usec = os.environ.get("WATCHDOG_USEC", "").strip()
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1e6


def notify(*fields: str, **values: object) -> bool:
    """One-shot: send to ``$NOTIFY_SOCKET`` (a no-op returning False without it)."""
    n = Notifier()
    try:
        return n.notify(*fields, **values)
    finally:
        n.close()
