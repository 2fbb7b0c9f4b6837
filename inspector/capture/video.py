"""OpenCV video as a ``FrameSource``: video files, rtsp:// / http(s):// streams, USB cameras.

Threads, and why:

- a *reader* thread per opened capture calls ``read()``: a network read can block for a long time,
  and it must never block the pipeline (``frames()`` only waits on a buffer, with a timeout);
- a *supervisor* thread opens the capture and watches the reader. No new frame within
  ``stall_timeout_s`` is a **stall**; the same image for ``stall_timeout_s`` while reads still
  succeed is a **frozen** stream (a decoder that repeats its last picture; checked on live sources
  only, a file may hold a still scene). Either way the capture is reopened after a back-off that
  starts at ``backoff_initial_s`` and doubles up to ``backoff_max_s`` (reset once a connection has
  delivered frames). A reader stuck inside ``read()`` cannot be interrupted: it is abandoned (its
  frames are discarded by generation number) and releases its capture if ``read()`` ever returns.

Decisions:

- A video *file* that ends is the end of the stream, not a stall (``loop=True`` replays it). A file
  that cannot be opened ends ``frames()`` with a ``CaptureError``; a live source that cannot be
  opened is retried with back-off forever (a camera may come back).
- ``fps_limit``: live sources keep reading at full rate (so the driver buffer never grows stale)
  and deliver at most ``fps_limit`` frames per second, counting the rest as ``fps_skipped``; files
  are *paced* instead, so no frame of a file is lost.
- The buffer between reader and pipeline drops the oldest frame when full if ``drop_oldest``
  (monitoring: latest wins, each drop counted), else the reader waits (inspection: back-pressure).
  Time spent waiting for the consumer or pacing never counts towards a stall.
- Frame ids: ``<source>:<n>`` for files (n = index of the frame in the file, stable across runs;
  ``#<pass>`` appended from the second ``loop`` pass on) and ``<source>:<session start UTC>-<n>``
  for live sources (n counts delivered frames; unique across runs). A file reopened after a stall
  resumes at the frame it had reached (``CAP_PROP_POS_FRAMES``) so no unit is inspected twice.
- Freezes by count: ``freeze_frames`` identical pictures in a row (files too: a decoder or a
  recorder that repeats its last picture) open a ``freeze`` event, which ends with the next new
  picture (or the close). While frozen, a source that drops (monitoring) skips the repeats
  (``frozen_skipped``): a repeated picture is no new unit. Inspection flow still gets every frame.
- Events (``listen_events``): ``stall`` and time-based ``freeze`` begin when the watchdog fires
  and end, with a ``reconnect`` event, at the first frame of the reopened capture; each carries
  UTC times, so the station can store what happened and when.
- Credentials in stream URLs (``rtsp://user:pass@host``) are masked in logs and errors.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from inspector.capture.health import CaptureError, SourceEvent, SourceStats
from inspector.core.frame import Frame

log = logging.getLogger(__name__)

_USB = re.compile(r"^usb:(\d+)$")
_CREDENTIALS = re.compile(r"(//)[^/@]+@")
STREAM_TIMEOUT_MS = 5000  # FFmpeg open/read timeout for network streams (OpenCV's own is 30 s)


class CaptureLike(Protocol):
    """The part of ``cv2.VideoCapture`` the source uses (fakes implement just this)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


def redact(uri: str) -> str:
    """``rtsp://user:pass@host/x`` -> ``rtsp://***@host/x`` (for logs and errors)."""
    return _CREDENTIALS.sub(r"\1***@", uri)


def is_live_uri(uri: str) -> bool:
    """USB cameras and URLs are live; anything else is a file path."""
    return bool(_USB.match(uri)) or "://" in uri


def open_cv_capture(uri: str) -> CaptureLike:
    """``usb:N`` -> camera index N; URLs with bounded open/read times; files as given."""
    m = _USB.match(uri)
    if m:
        return cv2.VideoCapture(int(m.group(1)))
    if "://" in uri and hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC"):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
        return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(uri)


def frame_signature(img: np.ndarray) -> int:
    """Cheap fingerprint of an image (a ~64x64 subsample): equal for a repeated picture.

    Real sensors add noise to every frame, so a repeated fingerprint means a repeated picture.
    """
    h, w = img.shape[:2]
    sample = np.ascontiguousarray(img[:: max(1, h // 64), :: max(1, w // 64)])
    return zlib.crc32(sample.tobytes(), zlib.crc32(repr(img.shape).encode()))


class VideoSource:
    """Frames from ``cv2.VideoCapture`` (or an injected ``open_capture``), with a stall watchdog."""

    COUNTERS = ("frames", "corrupt", "read_failures", "stalls", "frozen", "reconnects", "open_failures",
                "dropped", "fps_skipped", "frozen_skipped")

    def __init__(
        self,
        uri: str,
        *,
        camera: str,
        source_id: str | None = None,
        station_id: str = "station",
        fps_limit: float | None = None,
        stall_timeout_s: float = 2.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        loop: bool = False,
        live: bool | None = None,
        drop_oldest: bool | None = None,
        queue_size: int = 4,
        open_capture: Callable[[str], CaptureLike] | None = None,
        freeze_frames: int | None = 50,
    ) -> None:
        if stall_timeout_s <= 0 or backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("VideoSource: need stall_timeout_s > 0 and 0 < backoff_initial_s <= backoff_max_s")
        if fps_limit is not None and fps_limit <= 0:
            raise ValueError(f"VideoSource: fps_limit must be > 0, got {fps_limit}")
        if queue_size < 1:
            raise ValueError(f"VideoSource: queue_size must be >= 1, got {queue_size}")
        if freeze_frames is not None and freeze_frames < 2:
            raise ValueError(f"VideoSource: freeze_frames must be >= 2 (or None), got {freeze_frames}")
        self.freeze_frames = freeze_frames
        self.uri = uri
        self.camera = camera
        self.name = source_id or camera
        self.station_id = station_id
        self.fps_limit = fps_limit
        self.stall_timeout_s = float(stall_timeout_s)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.loop = loop
        self.live = is_live_uri(uri) if live is None else live
        self.detect_frozen = self.live
        self.drop_oldest = self.live if drop_oldest is None else drop_oldest
        self.queue_size = queue_size
        self._open_capture = open_capture or open_cv_capture
        if open_capture is None and not self.live and not Path(uri).is_file():
            raise CaptureError(f"video source {self.name!r}: file '{uri}' does not exist "
                               f"(relative paths resolve against {Path.cwd()})")
        self._stats = SourceStats(self.COUNTERS)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._buf: deque[Frame] = deque()
        self._gen = 0  # generation of the current reader; older readers' frames are discarded
        self._ended = False
        self._end_error: str | None = None
        self._eos_gen = -1
        self._last_read = self._last_new = 0.0
        self._last_sig: int | None = None
        self._gen_good = 0
        self._waiting = False
        self._seq = 0
        self._file_pos = 0  # frames read from the file in this pass (ids, resume after a stall)
        self._pass = 1
        self._next_t = 0.0
        self._session = ""
        self._supervisor: threading.Thread | None = None
        self._same = 0                 # identical pictures in a row, this one included
        self._same_since: datetime | None = None  # UTC of the first of them
        self._open_events: dict[str, datetime] = {}      # open events: kind -> since (UTC)
        self._outage: str | None = None           # stall / frozen the watchdog reopened for

    def listen_events(self, listener: Callable[[SourceEvent], None] | None) -> None:
        """Stalls, freezes and reconnects go to ``listener`` (on this source's threads; it must not block)."""
        self._stats.listen(listener)

    def _event(self, kind: str, t: datetime, *, end: bool = False, **detail: Any) -> None:
        """Begin or end an event once (under no lock: the listener may take its own)."""
        with self._cond:
            if end:
                since = self._open_events.pop(kind, None)
                if since is None:
                    return
                detail["duration_s"] = round((t - since).total_seconds(), 3)
            elif kind != "reconnect":
                if kind in self._open_events:
                    return
                self._open_events[kind] = t
        self._stats.event(SourceEvent(self.name, kind, t, end, detail))

    # --- public --------------------------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        """Frames as the reader delivers them; ends at the end of a file, on ``close()`` or error."""
        self._start()
        while True:
            with self._cond:
                while not self._buf and not self._ended and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._stop.is_set():
                    return
                if not self._buf:  # ended and drained
                    if self._end_error:
                        raise CaptureError(self._end_error)
                    return
                frame = self._buf.popleft()
                self._cond.notify_all()  # a reader waiting for room (back-pressure)
            yield frame

    def stats(self) -> dict[str, Any]:
        """frames, corrupt, read_failures, stalls, frozen, reconnects, open_failures, dropped,
        fps_skipped, frozen_skipped, <kind>_events, queued, state, last_error."""
        with self._cond:
            queued = len(self._buf)
        return self._stats.snapshot(queued=queued)

    def close(self) -> None:
        """Stop within a second: the supervisor is joined, a reader stuck in ``read()`` abandoned."""
        self._stop.set()
        with self._cond:
            self._gen += 1
            self._cond.notify_all()
            still_open = list(self._open_events)
        t = self._supervisor
        if t is not None and t is not threading.current_thread():
            t.join(timeout=1.0)
        now = datetime.now(timezone.utc)
        for kind in still_open:  # the run ends during the condition: it lasted at least until now
            self._event(kind, now, end=True, until="source closed")
        self._stats.set_state("closed")

    def __repr__(self) -> str:
        return f"VideoSource({self.name!r}, uri='{redact(self.uri)}', live={self.live})"

    # --- supervisor ----------------------------------------------------------------------------
    def _start(self) -> None:
        with self._cond:
            if self._supervisor is not None or self._stop.is_set():
                return
            self._session = Frame.utc_now().strftime("%Y%m%dT%H%M%SZ")
            self._supervisor = threading.Thread(target=self._supervise_safely, name=f"video-{self.name}",
                                                daemon=True)
        self._supervisor.start()

    def _supervise_safely(self) -> None:
        try:
            self._supervise()
        except Exception as e:  # a bug here must end frames() with the reason, not hang it
            log.exception("video source %r: supervisor failed", self.name)
            self._finish(f"video source {self.name!r}: supervisor failed: {type(e).__name__}: {e}")

    def _supervise(self) -> None:
        backoff = self.backoff_initial_s
        reopen = False
        while not self._stop.is_set():
            if reopen:
                self._stats.inc("reconnects")
            reopen = True
            cap = self._open()
            if self._stop.is_set():
                _release(cap)
                return
            if cap is None:
                if not self.live:  # a file that does not open now will not open later
                    self._finish(f"video source {self.name!r}: cannot open '{redact(self.uri)}' as a video")
                    return
                self._stats.set_state("reconnecting")
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            if not self.live and self._file_pos:
                self._seek(cap, self._file_pos)
            gen = self._start_reader(cap)
            outcome = self._watch(gen)
            if outcome == "closed":
                return
            if outcome == "end":
                self._finish(None)
                return
            if outcome == "rewind":
                reopen = False  # replaying a file is not a reconnect
                self._file_pos, self._pass = 0, self._pass + 1
                continue
            self._stats.inc("stalls" if outcome == "stall" else "frozen")
            with self._cond:
                delivered = self._gen_good > 0
                self._gen += 1  # abandon the reader; its capture is released when read() returns
                last = self._last_read if outcome == "stall" else self._last_new
                self._outage = outcome
            since = datetime.now(timezone.utc) - timedelta(seconds=max(0.0, time.monotonic() - last))
            self._event("stall" if outcome == "stall" else "freeze", since, timeout_s=self.stall_timeout_s,
                        uri=redact(self.uri))
            msg = (f"video source {self.name!r}: {'no new frame' if outcome == 'stall' else 'the same image'} for "
                   f"{self.stall_timeout_s:g} s from '{redact(self.uri)}' ({outcome}); reconnecting")
            self._stats.error(msg)
            log.warning(msg)
            if delivered:
                backoff = self.backoff_initial_s
            self._stats.set_state("reconnecting")
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, self.backoff_max_s)

    def _open(self) -> CaptureLike | None:
        try:
            cap = self._open_capture(self.uri)
        except Exception as e:  # a driver error must not kill the supervisor
            cap, why = None, f"{type(e).__name__}: {e}"
        else:
            why = "not opened"
            if cap is not None and not cap.isOpened():
                _release(cap)
                cap = None
        if cap is None:
            self._stats.inc("open_failures")
            msg = f"video source {self.name!r}: cannot open '{redact(self.uri)}' ({why})"
            self._stats.error(msg)
            log.warning(msg)
        return cap

    def _seek(self, cap: CaptureLike, pos: int) -> None:
        setter = getattr(cap, "set", None)
        if setter is None or not setter(cv2.CAP_PROP_POS_FRAMES, pos):
            log.warning("video source %r: cannot seek to frame %d after reopening; the file restarts", self.name, pos)
            self._file_pos = 0

    def _start_reader(self, cap: CaptureLike) -> int:
        with self._cond:
            self._gen += 1
            gen = self._gen
            now = time.monotonic()
            self._last_read = self._last_new = now  # the timeout counts from the open
            self._last_sig = None
            self._gen_good = 0
        self._stats.set_state("running")
        threading.Thread(target=self._read_loop, args=(gen, cap), name=f"video-reader-{self.name}-{gen}",
                         daemon=True).start()
        return gen

    def _watch(self, gen: int) -> str:
        tick = min(0.05, self.stall_timeout_s / 5)
        while not self._stop.wait(tick):
            with self._cond:
                if self._eos_gen == gen:
                    return "rewind" if self.loop else "end"
                if self._waiting:
                    continue
                now = time.monotonic()
                if now - self._last_read > self.stall_timeout_s:
                    return "stall"
                if self.detect_frozen and now - self._last_new > self.stall_timeout_s:
                    return "frozen"
        return "closed"

    def _finish(self, error: str | None) -> None:
        with self._cond:
            self._ended = True
            self._end_error = error
            self._cond.notify_all()
        if error:
            self._stats.error(error)
            log.error(error)
        self._stats.set_state("ended")

    # --- reader ----------------------------------------------------------------------------------
    def _current(self, gen: int) -> bool:
        return gen == self._gen and not self._stop.is_set()

    def _read_loop(self, gen: int, cap: CaptureLike) -> None:
        try:
            while self._current(gen):
                try:
                    ok, img = cap.read()
                except Exception as e:  # treated like a failed read; the watchdog decides
                    ok, img = False, None
                    self._stats.error(f"video source {self.name!r}: read() raised {type(e).__name__}: {e}")
                now = time.monotonic()
                if not self._current(gen):
                    return
                if not ok:
                    if not self.live:
                        with self._cond:
                            self._eos_gen = gen
                        return
                    self._stats.inc("read_failures")
                    self._stop.wait(0.01)  # a dead stream returns False at once: do not spin
                    continue
                pos = self._file_pos
                self._file_pos += 1
                if not isinstance(img, np.ndarray) or img.size == 0:
                    self._stats.inc("corrupt")
                    self._stop.wait(0.005)
                    continue
                sig = frame_signature(img)
                with self._cond:
                    if gen != self._gen:
                        return
                    self._last_read = now
                    new_picture = sig != self._last_sig
                    if new_picture:
                        self._last_sig, self._last_new = sig, now
                        self._same, self._same_since = 1, None
                    else:
                        self._same += 1
                    reconnected, self._outage = (self._outage, None) if self._gen_good == 0 else (None, self._outage)
                    self._gen_good += 1
                    same = self._same
                    frozen = "freeze" in self._open_events
                if reconnected is not None:
                    self._reconnected(reconnected)
                if self._check_freeze(new_picture, same, frozen):
                    continue
                if self.fps_limit and not self._pace(gen, now):
                    continue
                self._deliver(gen, img, now, pos)
        except Exception:  # the watchdog sees the silence and reopens; say why here
            log.exception("video source %r: reader failed", self.name)
        finally:
            _release(cap)

    def _reconnected(self, outage: str) -> None:
        # The first frame of a reopened capture: the stall (or freeze) that made us reopen ended.
        now = datetime.now(timezone.utc)
        self._event("reconnect", now, after=outage, reconnects=self._stats.get("reconnects"))
        self._event("stall" if outage == "stall" else "freeze", now, end=True, until="reconnected")

    def _check_freeze(self, new_picture: bool, same: int, frozen: bool) -> bool:
        """Freeze events by count; True when this frame is a repeat to skip (monitoring, frozen).
        A new picture costs one clock read; a repeat, a compare."""
        if new_picture:
            self._same_since = datetime.now(timezone.utc)
            if frozen and self._outage is None:
                self._event("freeze", self._same_since, end=True, until="new picture")
            return False
        if self.freeze_frames is not None and same == self.freeze_frames:
            self._event("freeze", self._same_since or datetime.now(timezone.utc), frames=same)
            frozen = True
        if frozen and self.drop_oldest:
            self._stats.inc("frozen_skipped")
            return True
        return False

    def _pace(self, gen: int, now: float) -> bool:
        """True when this frame may go out now (live: skip early ones; file: wait for its slot)."""
        period = 1.0 / self.fps_limit  # type: ignore[operator]
        if now < self._next_t:
            if self.live:
                self._stats.inc("fps_skipped")
                return False
            self._wait_outside_watchdog(gen, lambda: self._stop.wait(self._next_t - time.monotonic()))
        self._next_t = max(self._next_t + period, time.monotonic())
        return self._current(gen)

    def _wait_outside_watchdog(self, gen: int, wait: Callable[[], Any]) -> None:
        # Waiting for the consumer or for the pace is not the stream's fault: shift the timers.
        with self._cond:
            self._waiting = True
        t0 = time.monotonic()
        try:
            wait()
        finally:
            waited = time.monotonic() - t0
            with self._cond:
                self._waiting = False
                if gen == self._gen:
                    self._last_read += waited
                    self._last_new += waited

    def _deliver(self, gen: int, img: np.ndarray, t_read: float, pos: int) -> None:
        if self.live:
            with self._cond:
                seq = self._seq
            fid = f"{self.name}:{self._session}-{seq:06d}"
        else:
            fid = f"{self.name}:{pos:06d}" + ("" if self._pass == 1 else f"#{self._pass}")
        try:
            frame = Frame(fid, self.station_id, self.name, t_read, Frame.utc_now(), img,
                          {"camera": self.camera, "source": self.name})
        except (TypeError, ValueError) as e:
            self._stats.inc("corrupt")
            self._stats.error(str(e))
            return
        with self._cond:
            if len(self._buf) >= self.queue_size and not self.drop_oldest:
                self._waiting = True
                t0 = time.monotonic()
                while len(self._buf) >= self.queue_size and gen == self._gen and not self._stop.is_set():
                    self._cond.wait(0.1)
                waited = time.monotonic() - t0
                self._waiting = False
                self._last_read += waited
                self._last_new += waited
            if gen != self._gen or self._stop.is_set():
                return
            if len(self._buf) >= self.queue_size:  # drop_oldest: the latest frame wins
                self._buf.popleft()
                self._stats.inc("dropped")
            self._buf.append(frame)
            self._seq += 1
            self._cond.notify_all()
        self._stats.inc("frames")


def _release(cap: CaptureLike | None) -> None:
    if cap is None:
        return
    try:
        cap.release()
    except Exception as e:  # releasing a broken capture must not take a thread down
        log.debug("release() failed: %s", e)


__all__ = ["CaptureLike", "VideoSource", "frame_signature", "is_live_uri", "open_cv_capture", "redact",
           "STREAM_TIMEOUT_MS"]
