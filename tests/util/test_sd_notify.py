"""sd_notify against a real unix datagram socket, and the station watchdog that uses it.

The station side: READY once the pipeline runs, WATCHDOG=1 only while it makes progress (so
systemd kills a stuck station), STOPPING at the end; and end to end through `inspector run`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from types import SimpleNamespace

import pytest

from inspector.cli.run_watchdog import ProgressWatch, station_watchdog
from inspector.station.metrics import Metrics
from inspector.util.sd_notify import Notifier, notify, watchdog_interval


class Receiver:
    """The service manager's end: a bound unix datagram socket that collects what was sent."""

    def __init__(self, address: str) -> None:
        self.env = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.sock.settimeout(5)

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def drain(self, wait: float = 0.0) -> list[str]:
        out, end = [], time.monotonic() + wait
        self.sock.settimeout(0.05)
        while True:
            try:
                out.append(self.recv())
            except (TimeoutError, BlockingIOError, socket.timeout):
                if time.monotonic() >= end:
                    break
        self.sock.settimeout(5)
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def receiver(request, tmp_path):
    addr = str(tmp_path / "notify.sock") if request.param == "path" else f"@inspector-test-{uuid.uuid4().hex}"
    r = Receiver(addr)
    yield r
    r.close()


def test_ready_watchdog_status_stopping_arrive_as_datagrams(receiver, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.env)
    n = Notifier()
    assert n.enabled
    assert n.ready("loading done")
    assert receiver.recv() == "READY=1\nSTATUS=loading done"
    assert n.watchdog()
    assert receiver.recv() == "WATCHDOG=1"
    assert n.status("two\nlines")  # a newline would start a bogus field
    assert receiver.recv() == "STATUS=two lines"
    assert n.stopping()
    assert receiver.recv() == "STOPPING=1"
    n.close()
    assert notify("WATCHDOG=1")  # the one-shot helper
    assert receiver.recv() == "WATCHDOG=1"


def test_a_manager_that_does_not_read_never_blocks_the_sender(tmp_path):
    rx = Receiver(str(tmp_path / "notify.sock"))  # nobody reads: its queue fills up (10 datagrams by default)
    n = Notifier(rx.env)
    results: list[bool] = []
    sender = threading.Thread(target=lambda: results.extend(n.watchdog() for _ in range(100)), daemon=True)
    sender.start()
    sender.join(10)
    assert not sender.is_alive(), "sending blocked on the manager's full queue"
    assert results[0] and not all(results)  # some went through, the rest were dropped, none blocked
    assert rx.recv() == "WATCHDOG=1"
    rx.close()


def test_without_notify_socket_everything_is_a_quiet_no_op(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and not n.ready() and not n.watchdog() and not notify("READY=1")
    # a socket that went away: False, never an exception
    assert Notifier(str(tmp_path / "gone.sock")).watchdog() is False


def test_watchdog_interval_reads_systemds_variables(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None


def test_progress_watch_alive_on_decisions_or_idle_dead_when_frames_wait_or_faulted():
    w = ProgressWatch(stall_s=10)
    assert w.check(0, state="running", accepted=0, decided=0, dropped=0)
    assert w.check(5, state="running", accepted=3, decided=1, dropped=0)  # decisions came
    assert w.check(14, state="running", accepted=4, decided=1, dropped=0)  # waiting, not for long yet
    assert not w.check(16, state="running", accepted=4, decided=1, dropped=0)  # stuck for > 10 s
    assert w.check(17, state="running", accepted=4, decided=2, dropped=0)  # it moved again
    assert w.check(100, state="running", accepted=5, decided=3, dropped=2)  # idle: nothing waits (2 dropped)
    assert not w.check(101, state="faulted", accepted=5, decided=5, dropped=0)
    assert not w.check(102, state="stopped", accepted=5, decided=5, dropped=0)


def _station():
    m = Metrics()
    return SimpleNamespace(metrics=m, cfg=SimpleNamespace(station=SimpleNamespace(id="line-1")))


def test_station_watchdog_pings_only_while_the_pipeline_progresses(tmp_path):
    receiver = Receiver(str(tmp_path / "notify.sock"))
    st = _station()
    n = Notifier(receiver.env)
    with station_watchdog(st, notifier=n, interval_s=0.4):  # ticks every 0.1 s, stuck after 0.2 s
        assert receiver.drain(0.3) == []  # not ready before the pipeline runs
        st.metrics.state = "running"
        first = receiver.recv()
        assert first.startswith("READY=1\nSTATUS=line-1: running")
        for _ in range(5):  # frames flow: pings
            st.metrics.accepted()
            st.metrics.decided("pass")
            time.sleep(0.05)
        got = receiver.drain(0.3)
        assert any(m.startswith("WATCHDOG=1") for m in got), got
        st.metrics.accepted()  # a frame that never gets its decision: the pipeline is stuck
        receiver.drain(0.35)  # what was sent before the stall showed
        stuck = receiver.drain(0.5)
        assert stuck and not any("WATCHDOG=1" in m for m in stuck), stuck
        assert "NOT PROGRESSING" in stuck[-1]
        st.metrics.decided("pass")  # it recovers: pings again
        assert any(m.startswith("WATCHDOG=1") for m in receiver.drain(0.4))
    assert receiver.drain(0.1)[-1].startswith("STOPPING=1")
    receiver.close()


def test_inspector_run_tells_systemd_ready_watchdog_and_stopping(tmp_path, monkeypatch):
    """End to end: a headless `inspector run` under a fake service manager."""
    import cv2
    import numpy as np
    from click.testing import CliRunner
    from helpers.tiny_models import register_production, tiny_onnx

    from inspector.cli import main

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(6):
        cv2.imwrite(str(imgs / f"part_{i}.png"), np.full((40, 48, 3), 30 * i, np.uint8))
    reg = tmp_path / "reg"
    register_production(reg, "parts", tiny_onnx(tmp_path / "m.onnx"), ("scratch", "particle"), 32)
    cfg = tmp_path / "station.yaml"
    cfg.write_text(f"""
version: 1
station: {{id: parts-line, name: Parts line, domain: generic}}
sources: [{{type: folder, id: cam, path: '{imgs}', loop: true}}]
models: [{{name: parts, registry: parts, imgsz: 32, class_names: [scratch, particle]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
flow: {{mode: inspection, queue_size: 4, batch_size: 1}}
""")
    rx = Receiver(str(tmp_path / "notify.sock"))
    got: list[str] = []
    done = threading.Event()

    def listen() -> None:  # the service manager reads as messages come
        while not done.is_set():
            got.extend(rx.drain(0.05))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    monkeypatch.setenv("NOTIFY_SOCKET", rx.env)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    r = CliRunner().invoke(main, ["run", "--config", str(cfg), "--headless", "--json", "--data-dir",
                                  str(tmp_path / "data"), "--registry", str(reg), "--max-frames", "150"])
    assert r.exit_code == 0, r.output
    time.sleep(0.2)
    done.set()
    listener.join(5)
    rx.close()
    assert got[0].startswith("READY=1"), got
    assert any(m.startswith("WATCHDOG=1") for m in got), got
    assert got[-1].startswith("STOPPING=1"), got
