"""The pipeline's guarantees: back-pressure, drop-oldest, one decision per frame, graceful stop."""

from __future__ import annotations

import threading
import time

import numpy as np

from inspector.config import default_config_path, load_config, load_config_text
from inspector.core.decision import Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.inspection import Inspection, NotInspected, WaferTracker
from inspector.station.judgement import Judgement
from inspector.station.pipeline import Pipeline
from inspector.station.sinks import DecisionSinkAdapter

NAMES = ("scratch", "particle")
CONFIG = """
version: 1
station: {{id: t, name: t, domain: generic}}
sources: [{{type: folder, path: imgs}}]
models: [{{name: m, registry: m, imgsz: 32, class_names: [scratch, particle]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
flow: {{mode: {mode}, queue_size: {queue_size}, batch_size: {batch_size}}}
"""


def cfg(mode="inspection", queue_size=2, batch_size=1):
    return load_config_text(CONFIG.format(mode=mode, queue_size=queue_size, batch_size=batch_size))


def tiny_frame(fid, source="src", ctx=None, size=8):
    return Frame(fid, "t", source, time.monotonic(), Frame.utc_now(), np.zeros((size, size, 3), np.uint8), ctx or {})


class ListSource:
    """``n`` tiny frames (``n=None``: endless); ``hold_after`` frames, wait for ``release``."""

    def __init__(self, n, name="src", hold_after=None, release=None):
        self.n, self.name, self.hold_after, self.release = n, name, hold_after, release
        self.closed = False
        self.yielded_at: list[float] = []
        self.exhausted = threading.Event()

    def frames(self):
        i = 0
        while (self.n is None or i < self.n) and not self.closed:
            if self.hold_after is not None and i == self.hold_after:
                self.release.wait(5)
            self.yielded_at.append(time.monotonic())
            yield tiny_frame(f"{self.name}-{i}", self.name)
            i += 1
        self.exhausted.set()

    def close(self):
        self.closed = True


class Fixed:
    class_names = NAMES

    def __init__(self, score=None, delay=0.0):
        self.score, self.delay = score, delay

    def detect(self, images):
        if self.delay:
            time.sleep(self.delay)
        if self.score is None:
            return [Detections.empty() for _ in images]
        return [Detections([[1, 1, 5, 5]], [self.score], [0]) for _ in images]


class Gated(Fixed):
    """Blocks inside the model until ``gate`` opens; ``started`` tells that a batch is inside."""

    def __init__(self):
        super().__init__()
        self.gate, self.started = threading.Event(), threading.Event()

    def detect(self, images):
        self.started.set()
        self.gate.wait(10)
        return super().detect(images)


class Collect(DecisionSinkAdapter):
    """A plain ``DecisionSink`` (``accept(frame, decision)``), adapted the way a station would."""

    def __init__(self):
        super().__init__(self, "collect")
        self.items, self._lock = [], threading.Lock()

    def accept(self, frame, decision):
        with self._lock:
            self.items.append((frame, decision))

    @property
    def ids(self):
        return [f.frame_id for f, _ in self.items]


class Results:
    """A full ``ResultSink``: keeps every result and wafer; ``fail`` makes ``accept_result`` raise."""

    def __init__(self, name="results", critical=False, fail=False):
        self.name, self.critical, self.fail = name, critical, fail
        self.results, self.wafers, self.events, self.flushed = [], [], [], 0

    def accept_result(self, result):
        if self.fail:
            raise OSError("disk full")
        self.results.append(result)

    def accept_wafer(self, summary):
        self.wafers.append(summary)

    def accept_events(self, events):
        self.events.append((len(self.results), tuple(events)))  # how many results came before them

    def flush(self, timeout=None):
        self.flushed += 1


def make(config, sources, detector, sinks=(), **kw):
    ens = Ensemble([Member("m", "1", "0" * 64, detector)])
    flow = config.flow
    return Pipeline(sources, Inspection(config, ens, "h"), config_hash="h", model_set_version=ens.version,
                    mode=flow.mode, queue_size=flow.queue_size, batch_size=flow.batch_size, sinks=sinks, **kw)


def wait_until(cond, timeout=5.0):
    t = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < t, "condition not reached in time"
        time.sleep(0.005)


# --- inspection: back-pressure, never a loss ----------------------------------------------------


def test_inspection_back_pressure_blocks_the_source_and_loses_nothing():
    src, sink, delay = ListSource(12), Collect(), 0.02
    p = make(cfg(queue_size=2), [src], Fixed(delay=delay), [sink]).start()
    assert p.wait(10) and p.stop()
    assert sink.ids == [f"src-{i}" for i in range(12)]  # every frame, once, in order
    snap = p.metrics.snapshot()
    assert snap["frames"]["accepted"] == snap["frames"]["decided"] == 12 and snap["dropped"] == 0
    assert p._in_q.high_water <= 2
    # The source was held back by the slow model: queue (2) + model (1) + capture's hand (1) ahead.
    assert src.yielded_at[-1] - src.yielded_at[0] >= delay * (12 - 4) * 0.9
    assert snap["detector"]["capture_blocked_s"] > 0
    assert snap["state"] == "stopped"


def test_monitoring_drops_the_oldest_and_counts_every_drop():
    det = Gated()
    src = ListSource(10, hold_after=1, release=det.started)  # frame 0 enters the model, then 9 arrive
    sink = Collect()
    p = make(cfg(mode="monitoring", queue_size=3), [src], det, [sink]).start()
    assert src.exhausted.wait(5)
    det.gate.set()
    assert p.wait(5) and p.stop()
    # Queue of 3 behind the model: frames 1..6 were pushed out by newer ones; the latest won.
    assert sink.ids == ["src-0", "src-7", "src-8", "src-9"]
    assert p.metrics.drops == {"src": 6}
    snap = p.metrics.snapshot()
    assert snap["frames"]["accepted"] == 10 and snap["frames"]["decided"] == 4 and snap["dropped"] == 6


class Stepped:
    """A source that yields its next frame only when ``step()`` lets it, and returns once that frame
    was accepted (the capture worker asked for the one after)."""

    def __init__(self, name):
        self.name, self.closed = name, False
        self.go, self.asked = threading.Semaphore(0), 0

    def frames(self):
        i = 0
        while not self.closed:
            self.asked += 1
            while not self.go.acquire(timeout=0.02):
                if self.closed:
                    return
            yield tiny_frame(f"{self.name}-{i}", self.name)
            i += 1

    def step(self):
        n = self.asked
        self.go.release()
        wait_until(lambda: self.asked > n or self.closed)

    def close(self):
        self.closed = True


class PacedJudge(Fixed):
    """A slow judge: each judged frame takes as long as both sources take to deliver one frame."""

    def __init__(self, sources, frames):
        super().__init__()
        self.sources, self.left = sources, frames

    def detect(self, images):
        if self.left > 0:
            self.left -= 1
            for s in self.sources:
                s.step()
        return super().detect(images)


def test_monitoring_shares_the_judge_fairly_between_sources_at_the_same_rate():
    a, b = Stepped("a"), Stepped("b")
    sink = Collect()
    judge = PacedJudge([a, b], 60)
    p = make(cfg(mode="monitoring", queue_size=4), [a, b], judge, [sink]).start()
    wait_until(lambda: a.asked and b.asked)
    a.step()
    b.step()
    wait_until(lambda: judge.left == 0 and len(p._in_q) == 0)
    p.request_stop()
    assert p.wait(5) and p.stop()
    judged = {s: sum(f.source == s for f, _ in sink.items) for s in "ab"}
    # The shared drop-oldest queue, served oldest first, judged a alone once the queue was full.
    assert abs(judged["a"] - judged["b"]) <= 0.1 * max(judged.values()), judged
    drops = p.metrics.drops
    assert abs(drops["a"] - drops["b"]) <= 0.1 * max(drops.values()), drops
    snap = p.metrics.snapshot()
    assert snap["frames"]["accepted"] == snap["frames"]["decided"] + snap["dropped"] == 2 * 61


# --- one decision per frame, whatever happens ---------------------------------------------------


class Flaky(Fixed):
    def __init__(self, fail_calls):
        super().__init__()
        self.fail_calls, self.calls = set(fail_calls), 0

    def detect(self, images):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise RuntimeError("device lost")
        return super().detect(images)


def test_a_raising_detector_gives_error_decisions_and_the_run_goes_on():
    sink = Collect()
    p = make(cfg(queue_size=4), [ListSource(6)], Flaky({2, 4}), [sink]).start()
    assert p.wait(5) and p.stop()
    verdicts = {f.frame_id: d.verdict for f, d in sink.items}
    assert len(sink.items) == 6 and verdicts["src-1"] is verdicts["src-3"] is Verdict.ERROR
    assert [v for v in verdicts.values()].count(Verdict.PASS) == 4
    errors = [d for _, d in sink.items if d.verdict is Verdict.ERROR]
    assert all("device lost" in d.error and d.config_hash == "h" for d in errors)


class RaisingJudge:
    def judge(self, frames):
        raise ValueError("rule table corrupt")

    def finish(self):
        return Judgement(())


def test_a_raising_judge_gives_error_decisions():
    sink = Collect()
    p = Pipeline([ListSource(3)], RaisingJudge(), config_hash="h", model_set_version="ms-x", sinks=[sink]).start()
    assert p.wait(5) and p.stop()
    assert [d.verdict for _, d in sink.items] == [Verdict.ERROR] * 3
    assert "rule table corrupt" in sink.items[0][1].error and sink.items[0][1].model_set_version == "ms-x"


def test_without_a_model_every_frame_is_recorded_not_inspected():
    sink = Collect()
    judge = NotInspected("no model loaded", "h")
    p = Pipeline([ListSource(4)], judge, config_hash="h", model_set_version="none", sinks=[sink]).start()
    assert p.wait(5) and p.stop()
    assert [d.verdict for _, d in sink.items] == [Verdict.NOT_INSPECTED] * 4


def test_stop_with_a_timeout_records_the_rest_as_not_inspected_and_never_twice():
    det, sink = Gated(), Collect()
    src = ListSource(5)
    p = make(cfg(queue_size=8), [src], det, [sink]).start()
    assert det.started.wait(5) and src.exhausted.wait(5)
    wait_until(lambda: p.metrics.counter("accepted") == 5)
    t0 = time.monotonic()
    assert p.stop(timeout=0.3) is False  # gave up on the stuck model
    assert time.monotonic() - t0 < 3
    assert sorted(sink.ids) == [f"src-{i}" for i in range(5)]
    assert all(d.verdict is Verdict.NOT_INSPECTED and "stopped" in d.error for _, d in sink.items)
    det.gate.set()  # the model returns late: its result is discarded, no second decision
    wait_until(lambda: p.metrics.counter("late_results_discarded") == 1)
    assert len(sink.items) == 5


def test_a_second_stop_request_gives_up_waiting_for_a_stuck_model():
    det, sink = Gated(), Collect()
    p = make(cfg(queue_size=8), [ListSource(3)], det, [sink]).start()
    assert det.started.wait(5)
    wait_until(lambda: p.metrics.counter("accepted") == 3)
    p.request_stop()  # first Ctrl-C: graceful, would wait for the model forever
    result = []
    stopper = threading.Thread(target=lambda: result.append(p.stop()))
    stopper.start()
    time.sleep(0.2)
    assert stopper.is_alive()
    p.request_stop()  # second Ctrl-C: record the rest as not inspected now
    stopper.join(5)
    assert result == [False] and len(sink.items) == 3
    assert {d.verdict for _, d in sink.items} == {Verdict.NOT_INSPECTED}
    det.gate.set()


def test_graceful_stop_judges_every_accepted_frame():
    sink = Collect()
    p = make(cfg(queue_size=4), [ListSource(None)], Fixed(0.9, delay=0.003), [sink]).start()
    wait_until(lambda: p.metrics.counter("decided") >= 5)
    assert p.stop() is True
    accepted = p.metrics.counter("accepted")
    assert len(sink.items) == accepted == len(set(sink.ids))
    assert {d.verdict for _, d in sink.items} == {Verdict.FAIL}  # judged, not given up on


def test_pause_holds_the_capture_and_resume_continues():
    p = make(cfg(queue_size=2), [ListSource(None)], Fixed(), [Collect()]).start()
    wait_until(lambda: p.metrics.counter("decided") >= 3)
    p.pause()
    assert p.state == "paused"
    time.sleep(0.3)  # a frame already being fetched when the pause came may still arrive
    held = p.metrics.counter("accepted")
    time.sleep(0.15)
    assert p.metrics.counter("accepted") == held
    p.resume()
    wait_until(lambda: p.metrics.counter("accepted") > held + 2)
    assert p.stop() and p.state == "stopped"


def test_wafer_tracker_summarises_each_wafer_in_order():
    demo = load_config(default_config_path())
    from inspector.station.rules_builder import wafer_layout

    dies = wafer_layout(demo).dies
    frames = [tiny_frame(f"{w}-{d}", ctx={"lot": "L1", "wafer": w, "die_x": d[0], "die_y": d[1]}, size=32)
              for w in ("W1", "W2") for d in dies if not (w == "W2" and d == dies[0])]

    class Replay(ListSource):
        def frames(self):
            yield from frames

    sink = Results()
    p = make(demo, [Replay(None)], Fixed(), [sink], wafer_tracker=WaferTracker(demo)).start()
    assert p.wait(10) and p.stop()
    got = sink.wafers
    assert [s.wafer for s in got] == ["W1", "W2"] and p.wafers == got
    assert got[0].result.verdict is Verdict.PASS and got[1].result.verdict is Verdict.REVIEW  # W2 misses a die


# --- what the sinks get -------------------------------------------------------------------------


def test_sinks_get_the_judges_boxes_and_the_rules_time_is_measured():
    sink = Results()
    p = make(cfg(queue_size=4, batch_size=2), [ListSource(5)], Fixed(0.9), [sink]).start()
    assert p.wait(5) and p.stop()
    assert [r.frame.frame_id for r in sink.results] == [f"src-{i}" for i in range(5)] and sink.flushed == 1
    for r in sink.results:  # the fused and per-model boxes behind each decision, from the one judgement
        assert r.decision.verdict is Verdict.FAIL and len(r.fused) == 1
        assert len(r.per_model) == 1 and r.per_model[0].model_index.tolist() == [0]
    lat = p.metrics.snapshot()["latency_ms"]
    assert lat["rules"]["n"] == lat["inference"]["n"] == 3  # batches of 2, 2, 1


class Short:
    """A judge that loses a frame: the batch is recorded as ERROR, never half-judged."""

    def judge(self, frames):
        return NotInspected("x", "h").judge(frames[1:])

    def finish(self):
        return Judgement(())


def test_a_judgement_missing_a_frame_gives_error_decisions_for_the_batch():
    sink = Results()
    p = Pipeline([ListSource(2)], Short(), config_hash="h", model_set_version="ms-x", batch_size=2,
                 queue_size=2, sinks=[sink]).start()
    assert p.wait(5) and p.stop()
    assert sorted(r.frame.frame_id for r in sink.results) == ["src-0", "src-1"]
    assert {r.decision.verdict for r in sink.results} == {Verdict.ERROR}
    assert all(r.fused is None and r.per_model is None for r in sink.results)
    assert "returned 1 result(s) for 2 frame(s)" in sink.results[0].decision.error


def test_a_failing_critical_sink_faults_the_pipeline_and_the_others_still_get_every_result():
    store, gui = Results("store", critical=True, fail=True), Results("gui")
    p = make(cfg(queue_size=2), [ListSource(None)], Fixed(), [store, gui]).start()
    assert p.wait(5)  # the endless capture stopped by itself
    assert p.stop() is False and p.state == "faulted"
    assert p.metrics.counter("sink_errors") == p.metrics.counter("accepted") > 0
    assert len(gui.results) == p.metrics.counter("accepted")
    assert any("sink store" in e and "disk full" in e for e in p.metrics.snapshot()["errors"])


def test_a_failing_non_critical_sink_does_not_stop_the_run():
    bad, good = Results("gui", fail=True), Results("store")
    p = make(cfg(queue_size=2), [ListSource(4)], Fixed(), [bad, good]).start()
    assert p.wait(5) and p.stop() is True
    assert len(good.results) == 4 and p.metrics.counter("sink_errors") == 4


# --- the run's end: judge.finish() ----------------------------------------------------------------


def end_event(key="cam/1/no_hard_hat"):
    from inspector.core.site.types import IncidentEvent

    now = Frame.utc_now()
    return IncidentEvent("end", key, 2, "cam", 1, "no_hard_hat", "hat", "high", None, now, "src-3", "src-0",
                         "src-1", 0.8, now, reason="run ended")


class Finishing:
    """A judge that keeps something open until the run ends (like a site judge's incidents)."""

    def __init__(self, events=(), fail=False):
        self.events, self.fail, self.finished, self.judged_before_finish = tuple(events), fail, 0, None
        self.judged = 0

    def judge(self, frames):
        self.judged += len(frames)
        return NotInspected("x", "h").judge(frames)

    def finish(self):
        self.finished += 1
        self.judged_before_finish = self.judged
        if self.fail:
            raise RuntimeError("tracker state lost")
        return Judgement((), events=self.events)


def test_finish_is_called_once_after_the_last_batch_and_its_events_reach_every_sink_last():
    judge, a, b = Finishing([end_event()]), Results("a"), Results("b")
    p = Pipeline([ListSource(5)], judge, config_hash="h", model_set_version="none", batch_size=2, queue_size=4,
                 sinks=[a, b]).start()
    assert p.wait(5) and p.stop()
    assert judge.finished == 1 and judge.judged_before_finish == 5
    for sink in (a, b):
        assert sink.events == [(5, judge.events)]  # once, after all 5 results
    assert p.metrics.counter("run_end_events") == 1


def test_no_run_end_events_means_no_call_and_a_failing_finish_is_reported():
    quiet = Results()
    p = Pipeline([ListSource(2)], Finishing(), config_hash="h", model_set_version="none", sinks=[quiet]).start()
    assert p.wait(5) and p.stop()
    assert quiet.events == [] and len(quiet.results) == 2
    judge, sink = Finishing(fail=True), Results()
    p = Pipeline([ListSource(3)], judge, config_hash="h", model_set_version="none", sinks=[sink]).start()
    assert p.wait(5) and p.stop()
    assert len(sink.results) == 3 and sink.events == []  # every frame still recorded
    assert any("judge finish failed" in e and "tracker state lost" in e for e in p.metrics.snapshot()["errors"])


def test_a_critical_sink_failing_on_run_end_events_faults_the_run():
    class Refuses(Results):
        def accept_events(self, events):
            raise OSError("disk full")

    store = Refuses("store", critical=True)
    p = Pipeline([ListSource(2)], Finishing([end_event()]), config_hash="h", model_set_version="none",
                 sinks=[store]).start()
    assert p.wait(5)
    assert p.stop() is False and p.state == "faulted" and len(store.results) == 2
