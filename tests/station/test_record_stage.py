"""The record stage: wafers reach every sink before the die that starts the next wafer; a failing
sink costs only its own delivery; a failing critical sink faults the station once."""

from __future__ import annotations

import time

import numpy as np
import pytest

from inspector.config import default_config_path, load_config
from inspector.core.decision import Decision, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.station.inspection import WaferTracker
from inspector.station.judgement import FrameResult
from inspector.station.metrics import Metrics
from inspector.station.record_stage import RecordStage
from inspector.station.rules_builder import wafer_layout


class Log:
    """A ResultSink that logs every call into one shared list; ``fail`` names the calls that raise."""

    def __init__(self, name, log, critical=False, fail=()):
        self.name, self.log, self.critical, self.fail = name, log, critical, set(fail)

    def _call(self, what, arg):
        if what in self.fail:
            raise OSError(f"{self.name} {what} broke")
        self.log.append((self.name, what, arg))

    def accept_result(self, result):
        self._call("result", result.frame.frame_id)

    def accept_wafer(self, summary):
        self._call("wafer", summary.wafer)

    def flush(self, timeout=None):
        self._call("flush", timeout)


def result(fid, wafer="W1", die=(0, 0)):
    frame = Frame(fid, "t", "src", 0.0, Frame.utc_now(), np.zeros((4, 4), np.uint8),
                  {"lot": "L1", "wafer": wafer, "die_x": die[0], "die_y": die[1]})
    return FrameResult(frame, Decision(fid, Verdict.PASS, (), Detections.empty(), "ms", "h", Frame.utc_now()))


class Faults:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


def test_each_wafer_reaches_every_sink_before_the_next_wafers_first_die():
    cfg = load_config(default_config_path())
    d0 = wafer_layout(cfg).dies[0]
    log: list = []
    stage = RecordStage([Log("a", log), Log("b", log)], WaferTracker(cfg), Metrics(), Faults())
    stage.record_all([result("1", "W1", d0), result("2", "W2", d0)])
    stage.finish()
    assert log == [("a", "result", "1"), ("b", "result", "1"),
                   ("a", "wafer", "W1"), ("b", "wafer", "W1"), ("a", "result", "2"), ("b", "result", "2"),
                   ("a", "wafer", "W2"), ("b", "wafer", "W2")]
    assert [s.wafer for s in stage.wafers] == ["W1", "W2"]


def test_a_failing_sink_costs_only_its_own_delivery():
    log: list = []
    metrics, faults = Metrics(), Faults()
    stage = RecordStage([Log("gui", log, fail={"result"}), Log("store", log)], None, metrics, faults)
    stage.record(result("1"))
    assert log == [("store", "result", "1")] and metrics.counter("decided") == 1
    assert metrics.counter("sink_errors") == 1 and faults.calls == 0 and metrics.state != "faulted"
    assert metrics.snapshot()["errors"] == ["sink gui (frame 1): OSError: gui result broke"]


@pytest.mark.parametrize("fail", ["result", "flush"])
def test_a_failing_critical_sink_faults_the_station_once(fail):
    log: list = []
    metrics, faults = Metrics(), Faults()
    stage = RecordStage([Log("store", log, critical=True, fail={fail}), Log("gui", log)], None, metrics, faults)
    stage.record(result("1"))
    stage.record(result("2"))
    flushed = stage.flush(None)
    assert metrics.state == "faulted" and faults.calls == 1
    assert flushed is (fail != "flush")
    assert ("gui", "result", "2") in log and ("gui", "flush", None) in log  # the others still get everything


def test_a_failing_wafer_delivery_is_reported_and_does_not_fault():
    cfg = load_config(default_config_path())
    log: list = []
    metrics, faults = Metrics(), Faults()
    stage = RecordStage([Log("store", log, critical=True, fail={"wafer"}), Log("tally", log)], WaferTracker(cfg),
                        metrics, faults)
    stage.record(result("1", "W1", wafer_layout(cfg).dies[0]))
    stage.finish()
    assert ("tally", "wafer", "W1") in log and faults.calls == 0 and metrics.state != "faulted"
    assert any("wafer W1: sink store failed" in e for e in metrics.snapshot()["errors"])


def test_flush_gives_each_sink_the_time_left():
    log: list = []
    stage = RecordStage([Log("a", log)], None, Metrics(), Faults())
    assert stage.flush(None) is True and log == [("a", "flush", None)]
    stage.flush(time.monotonic() - 1.0)  # a deadline already passed: no time, never negative
    assert log[-1] == ("a", "flush", 0.0)
