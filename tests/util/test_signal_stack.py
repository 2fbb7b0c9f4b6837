"""kept_signal_stack: a call that swaps the thread's alternate signal stack gets it back afterwards."""

from __future__ import annotations

import ctypes
import sys

import pytest

from inspector.util import signal_stack
from inspector.util.signal_stack import current_signal_stack, kept_signal_stack

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no sigaltstack on Windows")


def _swap_in(buf: ctypes.Array) -> None:
    s = signal_stack._StackT(ctypes.addressof(buf), 0, len(buf))
    assert signal_stack._LIBC.sigaltstack(ctypes.byref(s), None) == 0


def test_a_replaced_stack_is_restored_and_an_untouched_one_is_left_alone() -> None:
    before = current_signal_stack()
    assert before is not None
    mine = ctypes.create_string_buffer(64 * 1024)
    with kept_signal_stack("a test"):
        _swap_in(mine)                      # what OpenVINO's CPU plugin does on its first compile
        assert current_signal_stack()[0] == ctypes.addressof(mine)
    assert current_signal_stack() == before
    with kept_signal_stack("a test"):
        pass
    assert current_signal_stack() == before


def test_no_stack_before_means_none_after(tmp_path) -> None:
    import threading

    seen = []

    def body() -> None:                     # a fresh thread has no alternate stack
        seen.append(current_signal_stack())
        with kept_signal_stack("a test"):
            _swap_in(ctypes.create_string_buffer(64 * 1024))
        seen.append(current_signal_stack())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen[0][1] & signal_stack.SS_DISABLE and seen[1] == seen[0]
