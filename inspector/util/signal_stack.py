"""Keep this thread's alternate signal stack as it was across a call into a native library.

Why: OpenVINO's CPU plugin, the first time it compiles a model, replaces the calling thread's
alternate signal stack (``sigaltstack``) with one of its own, and unmaps it when the compiled
model and its ``Core`` are released. Released on another thread (the station's worker, a garbage
collection anywhere), the main thread is left pointing at unmapped memory: the next signal
delivered there (systemd's SIGTERM, Ctrl-C) cannot be given a frame and the kernel kills the
process with SIGSEGV, before faulthandler or any Python handler can say a word. Measured with
openvino 2026.4: compile on the main thread, drop on another, ``os.kill(pid, SIGTERM)`` -> exit 139.

:func:`kept_signal_stack` restores the stack the thread had before the call (faulthandler's, or
none), so that stack never leaves the thread's hands. Linux and macOS through libc; elsewhere, or
when libc cannot be asked, a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)


class _StackT(ctypes.Structure):
    # struct sigaltstack (stack_t): the same field order on Linux and macOS.
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc() -> ctypes.CDLL | None:
    if sys.platform == "win32":
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        lib.sigaltstack.argtypes = [ctypes.POINTER(_StackT), ctypes.POINTER(_StackT)]
        lib.sigaltstack.restype = ctypes.c_int
        return lib
    except (OSError, AttributeError):  # pragma: no cover - a libc without sigaltstack
        return None


_LIBC = _libc()
SS_DISABLE = 4 if sys.platform == "darwin" else 2


def _read() -> _StackT | None:
    """This thread's alternate signal stack; None where libc cannot be asked."""
    s = _StackT()
    return s if _LIBC is not None and _LIBC.sigaltstack(None, ctypes.byref(s)) == 0 else None


def current_signal_stack() -> tuple[int, int, int] | None:
    """This thread's alternate signal stack as (address, flags, size); None where it cannot be read."""
    s = _read()
    return None if s is None else (s.ss_sp or 0, s.ss_flags, s.ss_size)


@contextlib.contextmanager
def kept_signal_stack(what: str = "a native call") -> Iterator[None]:
    """Run the body, then give this thread back the alternate signal stack it had before."""
    before = _read()
    try:
        yield
    finally:
        after = _read()
        if before is not None and after is not None and (after.ss_sp, after.ss_flags, after.ss_size) != (
                before.ss_sp, before.ss_flags, before.ss_size):
            # SS_ONSTACK in the flags read back is state, not a request: only SS_DISABLE carries over.
            restore = _StackT(before.ss_sp, before.ss_flags & SS_DISABLE, before.ss_size)
            if _LIBC.sigaltstack(ctypes.byref(restore), None) != 0:  # pragma: no cover - only while on the stack
                log.warning("%s replaced this thread's signal stack and it could not be restored (errno %d)",
                            what, ctypes.get_errno())
            else:
                log.debug("%s replaced this thread's signal stack; restored", what)
