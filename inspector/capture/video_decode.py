"""Decoding recorded video for archive analysis: every frame once, converted only where needed.

Two decoders with one shape (:class:`VideoDecoder`): frames come out in order as cheap handles
(:class:`DecodedFrame`); a handle converts its frame only when asked, to a small grey image for
the motion gate (``grey``) or to full-size BGR for the model (``bgr``).

- :class:`AvDecoder` (PyAV, FFmpeg's libavcodec): multi-threaded decoding, and the small grey
  image scaled by libswscale straight from the decoder's YUV planes (no full-size BGR image is
  made for a frame the gate skips). ``skip_to_keyframe()`` stops decoding until the next keyframe:
  the packets in between are read from the file but never decoded. An archive uses it over still,
  empty stretches; with a CCTV recording's keyframe every 1-2 s that skips most of the decoding
  there. Frame numbers come from the timestamps, so the frames skipped are known exactly.
- :class:`CvDecoder` (OpenCV ``VideoCapture``): the fallback for files PyAV cannot open and for
  tests that hand in a capture; it cannot skip decoding (``skip_to_keyframe`` is a no-op).

Measured on the 2-core reference machine, 1080p 25 fps (``bench/bench_analyze.py --decode``):
see bench/RESULTS.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)


class DecodeError(Exception):
    """The file cannot be opened or has no usable video stream; the message says why."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    fps: float
    frames: int          # the container's frame count; 0 when it does not say
    width: int
    height: int
    decoder: str         # "pyav" / "opencv"


class DecodedFrame(Protocol):
    index: int           # 0-based frame number in the file
    t_s: float           # its position in the file, seconds (index / fps)

    def grey(self, width: int, height: int) -> np.ndarray | None:
        """The frame as a ``height`` x ``width`` uint8 grey image (area-averaged); None if it cannot be converted."""

    def bgr(self) -> np.ndarray | None:
        """The frame at full size, BGR uint8; None if it cannot be converted."""


class VideoDecoder(Protocol):
    info: VideoInfo

    def frames(self) -> Iterator[DecodedFrame]:
        """Every frame once, in order (gaps: frames that could not be decoded or were skipped)."""

    skipping: bool   # a skip was asked for and the next keyframe has not come yet

    def skip_to_keyframe(self) -> bool:
        """Decode nothing until the next keyframe; False when this decoder cannot."""

    def close(self) -> None: ...


# --- PyAV ---------------------------------------------------------------------------------------
class _AvFrame:
    __slots__ = ("frame", "index", "t_s")

    def __init__(self, frame: Any, index: int, t_s: float) -> None:
        self.frame, self.index, self.t_s = frame, index, t_s

    def grey(self, width: int, height: int) -> np.ndarray | None:
        try:
            return self.frame.to_ndarray(width=width, height=height, format="gray", interpolation="AREA")
        except Exception:  # noqa: BLE001 - a frame that cannot be converted is a decode error of that frame
            log.debug("frame %d: grey conversion failed", self.index, exc_info=True)
            return None

    def bgr(self) -> np.ndarray | None:
        try:
            return self.frame.to_ndarray(format="bgr24")
        except Exception:  # noqa: BLE001
            log.debug("frame %d: BGR conversion failed", self.index, exc_info=True)
            return None


class AvDecoder:
    """PyAV over one file; see the module doc."""

    frames_stay_valid = True  # a handed-out frame converts correctly after later ones were decoded

    def __init__(self, path: str, threads: int = 0) -> None:
        import av

        self._av = av
        try:
            self.container = av.open(path)
        except Exception as e:  # noqa: BLE001
            raise DecodeError(f"{path}: PyAV cannot open it: {e}") from e
        if not self.container.streams.video:
            self.container.close()
            raise DecodeError(f"{path}: no video stream")
        s = self.stream = self.container.streams.video[0]
        cc = s.codec_context
        s.thread_type = "AUTO"          # frame and slice threads: both cores decode
        if threads:
            cc.thread_count = threads
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else 0.0
        frames = int(s.frames or 0)
        if not frames and s.duration and s.time_base and fps:
            frames = int(round(float(s.duration * s.time_base) * fps))
        self.info = VideoInfo(fps, frames, int(cc.width or 0), int(cc.height or 0), "pyav")
        self._tb = float(s.time_base) if s.time_base else 0.0
        self._start = s.start_time
        self._skip = False
        self._next = 0  # the index after the last frame handed out

    def skip_to_keyframe(self) -> bool:
        self._skip = True
        return True

    @property
    def skipping(self) -> bool:
        """A skip was asked for and the next keyframe has not come yet."""
        return self._skip

    def _index(self, frame: Any) -> int:
        pts = frame.pts
        if pts is None or not self._tb or not self.info.fps:
            return self._next
        if self._start is None:
            self._start = pts
        return int(round((pts - self._start) * self._tb * self.info.fps))

    def frames(self) -> Iterator[DecodedFrame]:
        cc = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            if self._skip:
                if packet.size and not packet.is_keyframe:
                    continue  # read, never decoded
                if packet.size:
                    # At the keyframe: what the decoder still holds comes out first, then it starts afresh
                    # (nothing decoded later may refer to a frame that was never decoded).
                    yield from self._emit(self._drain(cc))
                    cc.flush_buffers()
                    self._skip = False
            try:
                decoded = cc.decode(packet)
            except self._av.error.EOFError:
                break
            except self._av.FFmpegError as e:
                log.debug("packet at pts %s: %s", packet.pts, e)  # a damaged packet: its frame never comes
                continue
            yield from self._emit(decoded)
        yield from self._emit(self._drain(cc))

    def _drain(self, cc: Any) -> list:
        try:
            return list(cc.decode(None))
        except self._av.FFmpegError:
            return []

    def _emit(self, decoded: list) -> Iterator[DecodedFrame]:
        fps = self.info.fps or 1.0
        for f in decoded:
            i = self._index(f)
            if i < self._next:
                continue  # out of order after a skip, or a duplicate timestamp: every index once
            self._next = i + 1
            yield _AvFrame(f, i, i / fps)

    def close(self) -> None:
        self.container.close()


# --- OpenCV -------------------------------------------------------------------------------------
class _CvFrame:
    __slots__ = ("cap", "index", "t_s", "_bgr", "_done")

    def __init__(self, cap: Any, index: int, t_s: float) -> None:
        self.cap, self.index, self.t_s = cap, index, t_s
        self._bgr: np.ndarray | None = None
        self._done = False

    def bgr(self) -> np.ndarray | None:
        if not self._done:  # retrieve() once, before the next grab(): the reader converts in order
            ok, img = self.cap.retrieve()
            self._bgr, self._done = (img if ok else None), True
        return self._bgr

    def grey(self, width: int, height: int) -> np.ndarray | None:
        img = self.bgr()
        if img is None:
            return None
        h, w = img.shape[:2]
        step = max(1, w // (2 * width))  # subsample first: resizing all of a 1080p image costs 2-3x more
        small = cv2.resize(img[::step, ::step], (width, height), interpolation=cv2.INTER_AREA)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGRA2GRAY if small.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
        return small


class CvDecoder:
    """An OpenCV ``VideoCapture`` (or anything with its grab / retrieve / get / release)."""

    def __init__(self, cap: Any) -> None:
        self.cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.info = VideoInfo(fps, max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)),
                              int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
                              "opencv")

    skipping = False

    def skip_to_keyframe(self) -> bool:
        return False

    def frames(self) -> Iterator[DecodedFrame]:
        i, fps = 0, self.info.fps or 1.0
        while self.cap.grab():
            yield _CvFrame(self.cap, i, i / fps)
            i += 1

    def close(self) -> None:
        self.cap.release()


def open_video(path: str, open_capture: Callable[[str], Any] | None = None) -> VideoDecoder:
    """PyAV where it is installed and opens the file; else OpenCV. ``open_capture`` (a
    ``cv2.VideoCapture``-like factory) forces the OpenCV path."""
    if open_capture is None:
        try:
            return AvDecoder(path)
        except ImportError:
            log.info("PyAV is not installed: decoding with OpenCV (no keyframe skipping)")
        except DecodeError as e:
            log.info("%s; trying OpenCV", e)
        open_capture = cv2.VideoCapture
    cap = open_capture(path)
    if not cap.isOpened():
        raise DecodeError(f"{path}: neither PyAV nor OpenCV can open this video")
    return CvDecoder(cap)


__all__ = ["AvDecoder", "CvDecoder", "DecodeError", "DecodedFrame", "VideoDecoder", "VideoInfo", "open_video"]
