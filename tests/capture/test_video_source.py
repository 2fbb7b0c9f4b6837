"""inspector/capture/video.py: reader thread, stall / frozen watchdog, back-off, counters, real files.

Most tests use a scripted fake capture (``FakeCamera``): each open gets the next plan, a plan maps
the read index to a result or to ``BLOCK`` (``read()`` hangs until the test ends).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspector.capture import video as video_mod
from inspector.capture.health import CaptureError
from inspector.capture.video import VideoSource, is_live_uri, open_cv_capture, redact
from inspector.core.ports import FrameSource

BLOCK = object()
Plan = Callable[[int], Any]


def pic(n: int) -> np.ndarray:
    a = np.zeros((8, 8, 3), np.uint8)
    a[0, 0, 0], a[0, 0, 1] = n % 256, n // 256
    return a


class FakeCapture:
    def __init__(self, plan: Plan, gate: threading.Event, base: int, opened: bool = True) -> None:
        self.plan, self.gate, self.base, self.opened = plan, gate, base, opened
        self.i = 0
        self.released = False
        self.pos: int | None = None

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def read(self) -> tuple[bool, Any]:
        r = self.plan(self.i)
        self.i += 1
        if r is BLOCK:
            self.gate.wait()
            return False, None
        time.sleep(0.004)  # a ~250 fps camera
        return r

    def set(self, prop: int, value: float) -> bool:
        assert prop == cv2.CAP_PROP_POS_FRAMES
        self.pos = int(value)
        self.i = self.pos
        return True

    def release(self) -> None:
        self.released = True


class FakeCamera:
    """open_capture factory: one plan per open (the last repeats); None = the open fails."""

    def __init__(self, *plans: Plan | None) -> None:
        self.plans = plans
        self.opens: list[float] = []
        self.uris: list[str] = []
        self.captures: list[FakeCapture] = []
        self.gate = threading.Event()

    def __call__(self, uri: str) -> FakeCapture:
        k = len(self.opens)
        self.opens.append(time.monotonic())
        self.uris.append(uri)
        plan = self.plans[min(k, len(self.plans) - 1)]
        cap = FakeCapture(plan or (lambda i: (False, None)), self.gate, 1000 * (k + 1), opened=plan is not None)
        self.captures.append(cap)
        return cap


def distinct(base: int = 0, upto: int | None = None) -> Plan:
    """Fresh pictures (then BLOCK after ``upto`` reads)."""
    return lambda i: BLOCK if upto is not None and i >= upto else (True, pic(base + i))


class Collector:
    """Runs ``frames()`` in a thread, like the pipeline would."""

    def __init__(self, src: VideoSource) -> None:
        self.src, self.frames, self.error = src, [], None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        try:
            for f in self.src.frames():
                self.frames.append((time.monotonic(), f))
        except Exception as e:
            self.error = e


def wait_for(pred: Callable[[], bool], timeout: float = 3.0) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - t0


@pytest.fixture
def sources():
    made: list[tuple[VideoSource, FakeCamera | None]] = []

    def make(cam: FakeCamera | None, uri: str = "rtsp://user:secret@cam/1", **kw: Any) -> VideoSource:
        src = VideoSource(uri, camera="cam1", open_capture=cam, **kw)
        made.append((src, cam))
        return src

    yield make
    for src, cam in made:
        src.close()
        if cam is not None:
            cam.gate.set()  # let blocked fake reads return so their threads end


def test_frames_flow_with_ids_context_and_protocol(sources) -> None:
    cam = FakeCamera(distinct())
    src = sources(cam, source_id="front", station_id="st")
    assert isinstance(src, FrameSource) and src.name == "front" and src.live
    got = []
    for f in src.frames():
        got.append(f)
        if len(got) == 5:
            break
    assert [f.frame_id.rsplit("-", 1)[1] for f in got] == ["000000", "000001", "000002", "000003", "000004"]
    assert got[0].frame_id.startswith("front:") and got[0].frame_id.endswith("Z-000000")
    assert dict(got[0].context) == {"camera": "cam1", "source": "front"} and got[0].station_id == "st"
    assert [int(f.image[0, 0, 0]) for f in got] == [0, 1, 2, 3, 4]
    assert cam.uris == ["rtsp://user:secret@cam/1"]
    st = src.stats()
    assert st["frames"] >= 5 and st["stalls"] == 0 and st["reconnects"] == 0 and st["last_error"] is None


def test_close_is_prompt_while_read_blocks(sources) -> None:
    cam = FakeCamera(distinct(upto=2))
    src = sources(cam, stall_timeout_s=30)
    col = Collector(src)
    wait_for(lambda: len(col.frames) == 2)
    time.sleep(0.05)  # the reader is now inside a read() that never returns
    t0 = time.monotonic()
    src.close()
    assert time.monotonic() - t0 < 1.0
    assert not any(t.name == f"video-{src.name}" for t in threading.enumerate())  # supervisor joined
    col.t.join(1.0)
    assert not col.t.is_alive() and col.error is None and src.stats()["state"] == "closed"


def test_stall_is_detected_then_reconnects_with_backoff_and_frames_flow(sources) -> None:
    cam = FakeCamera(distinct(upto=5), distinct())
    src = sources(cam, stall_timeout_s=0.3, backoff_initial_s=0.2, backoff_max_s=1.0)
    col = Collector(src)
    wait_for(lambda: len(col.frames) == 5)
    t_last = col.frames[-1][0]
    wait_for(lambda: src.stats()["stalls"] == 1)
    detected_after = time.monotonic() - t_last
    wait_for(lambda: len(col.frames) > 10, timeout=3)
    st = src.stats()
    assert st["stalls"] == 1 and st["reconnects"] == 1 and "no new frame" in st["last_error"]
    assert "secret" not in st["last_error"] and "***@cam" in st["last_error"]
    assert len(cam.opens) == 2
    gap = cam.opens[1] - t_last
    assert 0.3 + 0.2 <= gap < 0.3 + 0.2 + 0.4  # timeout, then the first back-off step, then reopen
    assert 0.3 <= detected_after < 0.3 + 0.3
    assert int(col.frames[-1][1].image[0, 0, 0]) > 0  # fresh pictures from the new connection


def test_default_stall_timeout_detects_within_two_seconds(sources) -> None:
    cam = FakeCamera(distinct(upto=3), distinct())
    src = sources(cam, backoff_initial_s=0.05)  # stall_timeout_s: the default, 2 s
    col = Collector(src)
    wait_for(lambda: len(col.frames) == 3)
    t_last = col.frames[-1][0]
    wait_for(lambda: src.stats()["stalls"] == 1, timeout=4)
    lag = time.monotonic() - t_last
    assert 2.0 <= lag < 2.0 + 0.3  # the timeout itself, plus less than one watchdog tick of slack
    wait_for(lambda: len(col.frames) > 5)


def test_frozen_stream_is_detected_and_reopened(sources) -> None:
    same = pic(42)
    cam = FakeCamera(lambda i: (True, pic(i) if i < 3 else same.copy()), distinct(500))
    src = sources(cam, stall_timeout_s=0.25, backoff_initial_s=0.05)
    col = Collector(src)
    wait_for(lambda: src.stats()["frozen"] == 1)
    wait_for(lambda: any(int(f.image[0, 0, 0]) == (500 + 3) % 256 for _, f in col.frames))
    st = src.stats()
    assert st["frozen"] == 1 and st["stalls"] == 0 and st["reconnects"] == 1 and "the same image" in st["last_error"]
    assert cam.captures[0].released  # the frozen capture was let go


def test_open_failures_back_off_exponentially(sources) -> None:
    cam = FakeCamera(None, None, None, None, distinct())
    src = sources(cam, stall_timeout_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.2)
    col = Collector(src)
    wait_for(lambda: len(col.frames) >= 3)
    gaps = np.diff(cam.opens)
    expected = [0.05, 0.1, 0.2, 0.2]  # doubling, capped at backoff_max_s
    assert len(gaps) == 4
    for g, e in zip(gaps, expected):
        assert e * 0.95 <= g < e + 0.15, (gaps, expected)
    st = src.stats()
    assert st["open_failures"] == 4 and st["reconnects"] == 4 and "cannot open" in st["last_error"]


def test_failed_reads_and_empty_frames_are_counted(sources) -> None:
    def plan(i: int) -> Any:
        if i in (1, 2):
            return True, None
        if i == 3:
            return True, np.zeros((0, 0, 3), np.uint8)
        if i in (5, 6):
            return False, None
        return True, pic(i)

    src = sources(FakeCamera(plan), stall_timeout_s=5)
    got = []
    for f in src.frames():
        got.append(int(f.image[0, 0, 0]))
        if len(got) == 4:
            break
    assert got == [0, 4, 7, 8]
    st = src.stats()
    assert st["corrupt"] == 3 and st["read_failures"] == 2 and st["stalls"] == 0


def test_reads_failing_for_the_timeout_count_as_a_stall(sources) -> None:
    cam = FakeCamera(lambda i: (True, pic(i)) if i < 2 else (False, None), distinct())
    src = sources(cam, stall_timeout_s=0.2, backoff_initial_s=0.05)
    col = Collector(src)
    wait_for(lambda: src.stats()["stalls"] == 1 and len(col.frames) > 4)
    assert src.stats()["read_failures"] > 0 and cam.captures[0].released


def test_fps_limit_on_a_live_stream_skips_frames(sources) -> None:
    src = sources(FakeCamera(distinct()), fps_limit=10)
    col = Collector(src)
    time.sleep(0.55)
    n = len(col.frames)
    assert 3 <= n <= 7, n  # 0 s, 0.1 s, ... 0.5 s: at most 6 (+1 of slack); ~130 without the limit
    assert src.stats()["fps_skipped"] > 20


def test_latest_wins_or_back_pressure(sources) -> None:
    drop = sources(FakeCamera(distinct()), queue_size=3, drop_oldest=True, stall_timeout_s=0.2)
    keep = sources(FakeCamera(distinct()), queue_size=3, drop_oldest=False, stall_timeout_s=0.2)
    it_drop, it_keep = drop.frames(), keep.frames()
    first_drop, first_keep = next(it_drop), next(it_keep)  # start both, then stop consuming
    time.sleep(0.4)  # longer than the stall timeout: waiting for the consumer is no stall
    d, k = drop.stats(), keep.stats()
    assert d["queued"] == 3 and d["dropped"] > 10
    assert k["queued"] == 3 and k["dropped"] == 0 and k["stalls"] == 0 and k["frozen"] == 0
    assert [int(next(it_keep).image[0, 0, 0]) for _ in range(4)] == [1, 2, 3, 4]  # nothing lost
    assert int(next(it_drop).image[0, 0, 0]) > 10  # the oldest went
    assert int(first_drop.image[0, 0, 0]) == int(first_keep.image[0, 0, 0]) == 0


def test_file_end_is_end_of_stream_and_loop_replays(sources) -> None:
    three = lambda i: (True, pic(i)) if i < 3 else (False, None)  # noqa: E731
    src = sources(FakeCamera(three), uri="clip.avi", source_id="v", live=False, stall_timeout_s=0.2)
    assert [f.frame_id for f in src.frames()] == ["v:000000", "v:000001", "v:000002"]
    assert src.stats()["stalls"] == 0 and src.stats()["state"] == "ended"
    loop = sources(FakeCamera(three), uri="clip.avi", source_id="v", live=False, loop=True)
    ids = []
    for f in loop.frames():
        ids.append(f.frame_id)
        if len(ids) == 7:
            break
    assert ids == ["v:000000", "v:000001", "v:000002", "v:000000#2", "v:000001#2", "v:000002#2", "v:000000#3"]
    assert loop.stats()["reconnects"] == 0


def test_a_stalled_file_resumes_where_it_was(sources) -> None:
    first = lambda i: (True, pic(i)) if i < 3 else BLOCK  # noqa: E731
    rest = lambda i: (True, pic(i)) if i < 6 else (False, None)  # noqa: E731
    cam = FakeCamera(first, rest)
    src = sources(cam, uri="clip.avi", source_id="v", live=False, stall_timeout_s=0.2, backoff_initial_s=0.05)
    ids = [f.frame_id for f in src.frames()]
    assert ids == [f"v:{i:06d}" for i in range(6)]
    assert cam.captures[1].pos == 3 and src.stats()["stalls"] == 1


def test_real_video_file_through_opencv(tmp_path: Path, sources) -> None:
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    assert w.isOpened()
    for i in range(12):
        w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    w.release()
    src = sources(None, uri=str(path), source_id="clip", fps_limit=100)
    assert not src.live
    t0 = time.monotonic()
    frames = list(src.frames())
    elapsed = time.monotonic() - t0
    assert [f.frame_id for f in frames] == [f"clip:{i:06d}" for i in range(12)]
    assert all(f.image.shape == (48, 64, 3) for f in frames)
    assert [round(float(f.image.mean()) / 20) for f in frames] == list(range(12))  # order and content (JPEG)
    assert elapsed >= 0.1  # paced to 100 fps, not skipped: a file loses no frame
    assert src.stats()["frames"] == 12 and src.stats()["stalls"] == 0


def test_bad_files_are_clear_errors(tmp_path: Path, sources) -> None:
    with pytest.raises(CaptureError, match=r"file '.*missing.avi' does not exist"):
        VideoSource(str(tmp_path / "missing.avi"), camera="c")
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video")
    src = sources(None, uri=str(junk))
    with pytest.raises(CaptureError, match=r"cannot open '.*junk.avi' as a video"):
        list(src.frames())


def test_uri_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(video_mod.cv2, "VideoCapture", lambda *a: calls.append(a) or "cap")
    open_cv_capture("usb:2")
    open_cv_capture("rtsp://h/x")
    open_cv_capture("clip.mp4")
    assert calls[0] == (2,) and calls[2] == ("clip.mp4",)
    assert calls[1][:2] == ("rtsp://h/x", cv2.CAP_FFMPEG) and cv2.CAP_PROP_READ_TIMEOUT_MSEC in calls[1][2]
    assert is_live_uri("usb:0") and is_live_uri("http://h/mjpg") and not is_live_uri("a/b.mp4")
    assert redact("rtsp://admin:pw@10.0.0.2:554/s") == "rtsp://***@10.0.0.2:554/s"


# --- station events (stall, freeze, reconnect) -------------------------------------------------


def events_of(src: VideoSource) -> list:
    got: list = []
    src.listen_events(got.append)
    return got


def test_a_stall_is_an_event_with_its_times_ended_by_the_reconnect(sources) -> None:
    cam = FakeCamera(distinct(upto=5), distinct(100))
    src = sources(cam, stall_timeout_s=0.3, backoff_initial_s=0.05)
    got = events_of(src)
    col = Collector(src)
    wait_for(lambda: len(got) >= 3)
    stall, reconnect, end = got[:3]
    assert (stall.kind, stall.end, reconnect.kind, end.kind, end.end) == ("stall", False, "reconnect", "stall", True)
    assert stall.source == src.name and reconnect.detail["after"] == "stall"
    # The stall began at the last frame, not when the watchdog noticed it.
    assert 0.25 <= (end.t - stall.t).total_seconds() < 1.5 and end.detail["duration_s"] > 0.25
    assert src.stats()["stall_events"] == 1 and src.stats()["reconnect_events"] == 1
    assert col.error is None


def test_n_identical_pictures_in_a_row_are_one_freeze_event_and_monitoring_skips_the_repeats(sources) -> None:
    same = pic(7)
    # 3 new pictures, 20 repeats, then new pictures again; a file: no time-based reopen.
    plan = lambda i: (False, None) if i >= 40 else (True, pic(i) if i < 3 or i >= 23 else same.copy())  # noqa: E731
    src = sources(FakeCamera(plan), uri="clip.avi", live=False, freeze_frames=5, drop_oldest=True, queue_size=100)
    got = events_of(src)
    frames = list(src.frames())
    assert [(e.kind, e.end) for e in got] == [("freeze", False), ("freeze", True)]
    assert got[0].detail["frames"] == 5 and got[1].detail["until"] == "new picture"
    st = src.stats()
    # Of the 20 identical pictures the first 4 go out; the 5th opens the freeze and it and the 15
    # after it are skipped (a repeat is no new unit).
    assert st["frozen_skipped"] == 16 and st["freeze_events"] == 1
    assert len(frames) == 40 - 16


def test_inspection_flow_keeps_every_frozen_frame_but_still_records_the_freeze(sources) -> None:
    same = pic(9)
    plan = lambda i: (False, None) if i >= 12 else (True, same.copy())  # noqa: E731
    src = sources(FakeCamera(plan), uri="clip.avi", live=False, freeze_frames=5, drop_oldest=False, queue_size=100)
    got = events_of(src)
    assert len(list(src.frames())) == 12
    src.close()
    assert [(e.kind, e.end) for e in got] == [("freeze", False), ("freeze", True)]
    assert got[1].detail["until"] == "source closed" and src.stats()["frozen_skipped"] == 0


def test_the_freeze_check_costs_well_under_a_millisecond_at_1080p() -> None:
    img = np.random.default_rng(1).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    for _ in range(5):
        video_mod.frame_signature(img)
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        video_mod.frame_signature(img)
    per_frame = (time.perf_counter() - t0) / n
    print(f"frame_signature at 1080p: {per_frame * 1e6:.0f} us/frame")
    assert per_frame < 1e-3
