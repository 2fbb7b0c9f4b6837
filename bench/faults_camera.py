"""Fault case ``camera``: a live camera that stalls, freezes and flaps, into a real station.

The source is the product's ``VideoSource`` (reader thread, stall / freeze watchdog, reconnect with
back-off), built by ``build_sources`` from a station config (``type: video``, an rtsp:// URI,
inspection flow); only ``cv2.VideoCapture`` is replaced (``open_capture``) by a scripted camera.
Each cycle of the script: normal frames; a **stall** (``read()`` blocks 3x the stall timeout); a
**freeze** (the same picture ``freeze_frames`` + 10 times while reads succeed); a **flap** (reads
fail, then the next two opens fail, then it comes back); normal frames again. Every picture that
is not a deliberate repeat carries a unique number in its pixels.

Checks: every frame the source delivered (``offered``) has exactly one decision (``recorded``;
``lost`` otherwise: inspection flow drops nothing); no numbered picture recorded twice
(``doubled``: a reconnect must not replay); the station is still running after the cycles and
stops cleanly; the store holds ``stall``, ``freeze`` and ``reconnect`` station events for the run
(#15 point 5, ``station_events``). ``time_to_detect_s``: the worst delay from a stall's start (the
read that blocked) to the source reporting it, over all cycles (bounded by the stall timeout plus
one watchdog tick).

Self-test breakages (``unsafe``): ``replay-after-reconnect`` (a source that yields its last frame
again after each reconnect: doubled), ``drop-events`` (a station that never hears the source's
events: the events are missing).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bench.faults_common import (CaseResult, build_station, check_size, check_unsafe, events_of, ro_db,
                                 station_events, station_files)

NAME = "camera"
UNSAFE = ("replay-after-reconnect", "drop-events")
CYCLES = {"small": 1, "default": 12}
STALL_TIMEOUT_S = 0.4
FREEZE_FRAMES = 8
FPS = 50.0


class Script:
    """The camera's behaviour, shared by every capture it opens (the camera outlives a connection)."""

    def __init__(self, cycles: int) -> None:
        plan: list[tuple[str, int]] = []
        for _ in range(cycles):
            plan += [("normal", 12), ("stall", 1), ("normal", 6), ("freeze", FREEZE_FRAMES + 10), ("normal", 6),
                     ("flap", int(2 * STALL_TIMEOUT_S * FPS)), ("normal", 12)]
        self.plan = plan
        self.step = 0
        self.left = plan[0][1]
        self.number = 0          # unique picture numbers
        self.frozen_picture: np.ndarray | None = None
        self.frozen: set[int] = set()     # numbers a freeze repeats on purpose
        self.fail_opens = 0
        self.lock = threading.Lock()
        self.stall_started: list[float] = []
        self.done = threading.Event()

    def phase(self) -> str:
        return self.plan[self.step][0] if self.step < len(self.plan) else "end"

    def advance(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.step += 1
            if self.step < len(self.plan):
                self.left = self.plan[self.step][1]
                if self.plan[self.step][0] == "flap":
                    self.fail_opens = 2
            else:
                self.done.set()

    def picture(self, n: int) -> np.ndarray:
        img = np.full((48, 64, 3), 40, np.uint8)
        bits = np.array([(n >> i) & 1 for i in range(24)], np.uint8) * 255
        img[0, :24, 0] = bits  # the number, readable from the image
        img[8:40, 8:56, 1] = (n * 37) % 251
        return img


def picture_number(img: np.ndarray) -> int:
    row = img[0, :24, 0] if img.ndim == 3 else img[0, :24]
    return int(sum(1 << i for i, v in enumerate(row) if v > 127))


class ScriptedCapture:
    """A ``cv2.VideoCapture`` stand-in driven by the shared ``Script``."""

    def __init__(self, script: Script) -> None:
        self.s = script
        self.opened = True
        with script.lock:
            if script.fail_opens > 0:
                script.fail_opens -= 1
                self.opened = False

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(1.0 / FPS)
        s = self.s
        with s.lock:
            phase = s.phase()
            if phase == "stall":
                s.stall_started.append(time.monotonic())
                s.advance()
                stall = True
            else:
                stall = False
        if stall:
            time.sleep(3 * STALL_TIMEOUT_S)  # the watchdog reconnects meanwhile; this read is abandoned
            return False, None
        with s.lock:
            phase = s.phase()
            if phase == "flap":
                s.advance()
                return False, None
            if phase == "freeze":
                if s.frozen_picture is None or s.left == s.plan[s.step][1]:
                    s.number += 1
                    s.frozen_picture = s.picture(s.number)
                    s.frozen.add(s.number)
                s.advance()
                return True, s.frozen_picture.copy()
            s.number += 1  # normal (and, after the script's end, a live camera that goes on)
            if phase != "end":
                s.advance()
            return True, s.picture(s.number)

    def get(self, _prop: int) -> float:
        return 0.0

    def set(self, _prop: int, _value: float) -> bool:
        return True

    def release(self) -> None:
        self.opened = False


class Watched:
    """The video source as the station sees it, noting what it yields and when its events arrive."""

    def __init__(self, inner: Any, unsafe: str | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.unsafe = unsafe
        self.yielded: dict[str, int] = {}       # frame id -> picture number
        self.events: list[tuple[float, Any]] = []
        self._reconnects = 0

    def listen_events(self, listener: Any) -> None:
        def hear(ev: Any) -> None:
            self.events.append((time.monotonic(), ev))
            if self.unsafe != "drop-events":
                listener(ev)

        self.inner.listen_events(hear)

    def frames(self) -> Iterator[Any]:
        import dataclasses

        last = None
        for f in self.inner.frames():
            self.yielded[f.frame_id] = picture_number(f.image)
            yield f
            reconnects = sum(1 for _, e in self.events if e.kind == "reconnect")
            if self.unsafe == "replay-after-reconnect" and last is not None and reconnects > self._reconnects:
                again = dataclasses.replace(last, frame_id=last.frame_id + "-again")
                self.yielded[again.frame_id] = picture_number(again.image)
                yield again
            self._reconnects = reconnects
            last = f

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


def run(size: str = "default", *, seed: int = 0, unsafe: str | None = None) -> CaseResult:
    check_size(size)
    check_unsafe(unsafe, UNSAFE, NAME)
    import logging

    from inspector.config import load_config
    from inspector.station.sources import build_sources

    res = CaseResult(NAME)
    t0 = time.monotonic()
    script = Script(CYCLES[size])
    with tempfile.TemporaryDirectory(prefix="inspector-faults-camera-") as tmp:
        src = (f"  - {{type: video, uri: 'rtsp://camera.invalid/line', camera: line, freeze_frames: {FREEZE_FRAMES},"
               f" reconnect: {{stall_timeout_s: {STALL_TIMEOUT_S}, backoff_initial_s: 0.05, backoff_max_s: 0.2}}}}")
        cfg_path, reg, data = station_files(Path(tmp), src, mode="inspection", batch=2)
        (video,) = build_sources(load_config(cfg_path), open_capture=lambda uri: ScriptedCapture(script))
        watched = Watched(video, unsafe)
        st = build_station(cfg_path, reg, data, sources=[watched])
        quiet = logging.getLogger("inspector")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            st.start()
            finished = script.done.wait(60 + 40 * CYCLES[size])
            time.sleep(0.3)
            running = st.state in ("running",)
            st.request_stop()
            clean = st.stop(30)
        finally:
            quiet.setLevel(level)
        if not finished:
            res.fail(f"the scripted camera did not finish its cycles (at step {script.step} of {len(script.plan)})")
        if not running:
            res.fail(f"the station was not running after the camera's faults (state {st.state})")
        if not clean:
            res.fail("the station did not stop cleanly after the faults")
        with ro_db(st.db_path) as conn:
            rows = conn.execute("SELECT id FROM frames WHERE run_id = ?", (st.run_id,)).fetchall()
            recorded_ids = {r[0] for r in rows}
            events = [e for e in station_events(conn) if e.get("run_id") == st.run_id]
        prefix = f"{st.run_id}/"
        offered = {prefix + fid: n for fid, n in watched.yielded.items()}
        res.offered = len(offered)
        res.recorded = len(recorded_ids & set(offered))
        res.lost = len(set(offered) - recorded_ids)
        numbers: dict[int, int] = {}
        for fid in recorded_ids & set(offered):
            numbers[offered[fid]] = numbers.get(offered[fid], 0) + 1
        frozen = script.frozen
        res.doubled = sum(c - 1 for n, c in numbers.items() if c > 1 and n not in frozen)
        kinds = {k: len(events_of(events, f'"kind": "{k}"')) for k in ("stall", "freeze", "reconnect")}
        heard = [(t, e.kind) for t, e in watched.events if not getattr(e, "end", False)]
        delays = []
        for t_stall in script.stall_started:
            later = [t for t, k in heard if k == "stall" and t >= t_stall]
            delays.append(later[0] - t_stall if later else None)
        missing_kinds = [k for k, n in kinds.items() if n == 0]
        if missing_kinds:
            res.fail(f"no {', '.join(missing_kinds)} event stored for the run (events: {kinds})")
        if any(d is None for d in delays):
            res.fail(f"{sum(d is None for d in delays)} of {len(delays)} stalls never reported by the source")
        found = [d for d in delays if d is not None]
        res.time_to_detect_s = max(found) if found else None
        if found and max(found) > STALL_TIMEOUT_S + 0.5:
            res.fail(f"a stall took {max(found):.2f} s to detect (timeout {STALL_TIMEOUT_S} s)")
        res.details = {"cycles": CYCLES[size], "events_stored": kinds, "events_heard": len(watched.events),
                       "source_stats": {k: v for k, v in watched.stats().items() if isinstance(v, (int, float))},
                       "stall_detect_s": [round(d, 3) for d in found], "state_after_faults": "running" if running
                       else st.state}
    res.notes = (f"{CYCLES[size]} cycle(s) of stall ({3 * STALL_TIMEOUT_S:.1f} s blocked read, timeout "
                 f"{STALL_TIMEOUT_S} s), freeze ({FREEZE_FRAMES + 10} identical pictures), flap "
                 f"({int(2 * STALL_TIMEOUT_S * FPS)} failed reads, 2 "
                 "failed opens) through the real VideoSource into a real station (inspection flow)")
    return res.finish(t0)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small").as_dict(), indent=1, default=str))
