"""The reader thread of an archive analysis: decode, sample, gate; a short queue to the judge.

Sampling is paced by what the judge last saw (:class:`Pace`, set by the judging thread after each
batch): every ``dense_stride``-th frame while a violation is pending or an incident is open on the
camera (a short violation then gets the looks that persistence needs, as at full rate), every
``stride``-th frame otherwise. The queue holds one item, and the judge takes at most two samples a
batch: the reader runs at most a sample or two ahead of what the judge has seen, so the pace
changes within a couple of base samples.

Where the scene is still and the judge saw nobody (``Pace.idle``), the reader asks the decoder to
skip to the next keyframe (PyAV): those frames are never decoded, recorded as skipped ``idle``.
Gaps in the frame numbers that the reader did not ask for are frames that could not be decoded.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from inspector.capture.motion_gate import STATIC, GateDecision, MotionGate
from inspector.capture.video_decode import DecodedFrame, VideoDecoder

IDLE = "idle"              # skipped without decoding: still scene, nobody seen (to the next keyframe)
DECODE_ERROR = "decode_error"


@dataclass
class Pace:
    """What the judge's latest results ask of the reader (written by the judging thread only), and
    how many samples handed to the judge it has not judged yet."""

    dense: bool = False    # a violation pending / an incident open: sample every dense_stride frames
    idle: bool = False     # nothing detected lately: the gate may wait longer, the decoder may skip
    in_flight: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def handed(self) -> None:
        with self.cond:
            self.in_flight += 1

    def judged(self, n: int) -> None:
        with self.cond:
            self.in_flight = max(0, self.in_flight - n)
            self.cond.notify_all()

    def wait_judged(self, stop: threading.Event) -> None:
        with self.cond:
            while self.in_flight > 0 and not stop.is_set():
                self.cond.wait(0.2)


@dataclass(slots=True)
class Sample:
    """A sampled frame and the gate's word on it, or (``decision`` None) the start of frames that
    were not looked at: ``skip_reason`` says why (idle / decode_error)."""

    index: int
    t_s: float
    decision: GateDecision | None
    image: Any = None            # BGR, only when it is to be inferred
    stride: int = 1              # frames this sample stands for when inferred
    skip_reason: str | None = None

    @property
    def inferred(self) -> bool:
        return self.decision is not None and self.decision.infer

    @property
    def reason(self) -> str:
        if self.decision is None:
            return self.skip_reason or DECODE_ERROR
        return self.decision.reason


@dataclass(slots=True)
class End:
    frames: int                # frames reached (the last frame number + 1)
    expected: int              # the container's frame count (0 when it does not say)
    error: str | None = None
    decoded: int = 0           # frames actually decoded


class Reader(threading.Thread):
    """See the module doc."""

    def __init__(self, decoder: VideoDecoder, stride: int, dense_stride: int, gate: MotionGate | None,
                 pace: Pace, maxsize: int = 1) -> None:
        super().__init__(name="archive-reader", daemon=True)
        self.decoder, self.stride, self.dense_stride, self.gate, self.pace = decoder, stride, dense_stride, gate, pace
        info = decoder.info
        self.fps, self.expected = info.fps, info.frames
        self.grey_size = gate.params.size_for(info.width, info.height) if gate is not None and info.width else None
        self.out: queue.Queue = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()
        self._skip_requested = False

    def run(self) -> None:
        expected, last_sample, decoded, error = 0, None, 0, None
        # Frames decoded since the last sample (PyAV only: OpenCV converts a frame only before the next
        # grab), so that samples can be taken among them when the judge turns dense meanwhile.
        held: list[DecodedFrame] = []
        can_hold = bool(getattr(self.decoder, "frames_stay_valid", False)) and self.dense_stride < self.stride
        try:
            for fr in self.decoder.frames():
                if self.stop.is_set():
                    break
                decoded += 1
                i = fr.index
                if i > expected:  # frames never handed out: skipped on request, or undecodable
                    idle = self._skip_requested and not getattr(self.decoder, "skipping", False)
                    self._put(Sample(expected, expected / self.fps, None, skip_reason=IDLE if idle else DECODE_ERROR))
                    last_sample, held = None, []  # a stretch starts at a sample: the frame after the gap is one
                if self._skip_requested and not getattr(self.decoder, "skipping", False):
                    self._skip_requested = False
                expected = i + 1
                stride = self.dense_stride if self.pace.dense else self.stride
                if last_sample is not None and i - last_sample < stride:
                    if can_hold:
                        held.append(fr)
                    continue
                # At most one sample ahead of the judge: the pace below is the one its latest results ask for.
                self.pace.wait_judged(self.stop)
                if held and self.pace.dense and last_sample is not None:
                    for h in held:  # the judge turned dense after these were decoded: look at them now
                        if h.index - last_sample >= self.dense_stride:
                            last_sample = h.index
                            self._put(self._sample(h, self.dense_stride))
                            self.pace.wait_judged(self.stop)
                held = []
                if last_sample is not None and i - last_sample < (self.dense_stride if self.pace.dense else self.stride):
                    if can_hold:
                        held.append(fr)
                    continue
                last_sample = i
                self._put(self._sample(fr, self.dense_stride if self.pace.dense else self.stride))
            if self._skip_requested and not self.stop.is_set() and self.expected > expected:
                # The file ended before the keyframe the decoder was skipping to: the rest was idle too.
                self._put(Sample(expected, expected / self.fps, None, skip_reason=IDLE))
                expected = self.expected
        except Exception as e:  # noqa: BLE001 - the judge thread reports it with the frames it got
            error = f"{type(e).__name__}: {e}"
        finally:
            self._put(End(expected, self.expected, error, decoded), force=True)

    def _sample(self, fr: DecodedFrame, stride: int) -> Sample:
        i, t, gate = fr.index, fr.t_s, self.gate
        if gate is None:
            image = fr.bgr()
            if image is not None:
                self.pace.handed()
            return Sample(i, t, None if image is None else GateDecision(True, "all", 1.0), image, stride)
        if self.grey_size is not None:
            grey = fr.grey(*self.grey_size)
            if grey is None:
                return Sample(i, t, None, stride=stride)
            d = gate.decide_grey(grey, t, idle=self.pace.idle)
        else:  # the decoder does not know the frame size: the gate shrinks the full image
            image = fr.bgr()
            if image is None:
                return Sample(i, t, None, stride=stride)
            d = gate.decide(image, t, idle=self.pace.idle)
        if not d.infer:
            if d.reason == STATIC and self.pace.idle and not self.pace.dense and self.decoder.skip_to_keyframe():
                self._skip_requested = True
            return Sample(i, t, d, None, stride)
        image = fr.bgr()
        if image is not None:
            self.pace.handed()
        return Sample(i, t, d if image is not None else None, image, stride)

    def _put(self, item: Any, force: bool = False) -> None:
        while True:  # wake up now and then: a stopped consumer must not leave this thread blocked
            try:
                self.out.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop.is_set() and not force:
                    return
                if self.stop.is_set():
                    try:
                        self.out.get_nowait()  # make room for the end marker
                    except queue.Empty:
                        pass


__all__ = ["DECODE_ERROR", "IDLE", "End", "Pace", "Reader", "Sample"]
