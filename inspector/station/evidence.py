"""Evidence of site incidents: a clip per incident (pre-roll included) and its first / worst / last frames.

Per camera, a ring buffer keeps the last ``pre_s`` seconds of frames, sampled at ``clip_fps``
(references to the frames, never copies: frames are read-only). When an incident opens, its clip
starts with that pre-roll and takes every sampled frame until ``post_s`` after the incident ends,
or ``max_clip_s`` after it started (a longer incident keeps its first part). Encoding (OpenCV
'mp4v') and writing the evidence images happen on one thread of this recorder's own, in the order
the record thread handed them over: the record thread never waits for an encoder.

Each finished incident yields a ``Future`` of :class:`Evidence` (clip path and sha256, the evidence
images); the store sink records it on the incident. A failure to encode is reported in
``Evidence.error``; it never costs the station a record. Time is the frame's video time
(``context["t_video_s"]``, archive files and synthetic cameras) or else its monotonic time.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspector.config.schema.site import EvidenceConfig
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent
from inspector.station.judgement import FrameResult
from inspector.store.clips import Clip, ClipWriter, scale_for_clip
from inspector.store.images import ImageStore

log = logging.getLogger(__name__)

CLIPS_DIR = "clips"  # under the data folder
_SCALED_KEPT = 32    # clip-sized frames kept for overlapping clips (a pre-roll is 30 at the defaults)


@dataclass(frozen=True)
class Evidence:
    """What one incident left as evidence. Paths are relative to the data folder."""

    key: str
    camera: str
    clip_path: str | None
    clip_sha256: str | None
    clip_frames: int
    images: dict[str, dict[str, Any]]   # role (first / worst / last) -> {frame_id[, sha256, path]}
    error: str | None = None


@dataclass
class _Open:
    key: str
    camera: str
    writer: ClipWriter
    t_start: float
    t_end: float | None = None
    capped: bool = False
    last_added: str | None = None                               # frame id last handed to the clip
    refs: dict[str, Frame | str] = field(default_factory=dict)  # role -> frame (or its id when not at hand)
    clip: list[Clip] = field(default_factory=list)              # filled on the encoder thread
    errors: list[str] = field(default_factory=list)


@dataclass
class _Camera:
    ring: deque[tuple[float, Frame]] = field(default_factory=deque)
    last_sample: float | None = None
    open: dict[str, _Open] = field(default_factory=dict)


def frame_time(frame: Frame) -> float:
    t = frame.context.get("t_video_s")
    return float(t) if t is not None else float(frame.t_monotonic)


class EvidenceRecorder:
    """See the module doc. ``observe`` and ``finish`` run on the record thread; ``close`` waits
    for the encoder."""

    def __init__(self, cfg: EvidenceConfig, data_dir: str | Path, image_store: ImageStore | None = None) -> None:
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        self.clip_root = self.data_dir / CLIPS_DIR
        self.image_store = image_store
        self._cameras: dict[str, _Camera] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="evidence")
        self._scaled: OrderedDict[str, np.ndarray] = OrderedDict()  # frame id -> clip-sized image (encoder thread)
        self.started = 0
        self.finished = 0

    # --- the record thread ---------------------------------------------------------------------
    def observe(self, result: FrameResult) -> list[Future]:
        """Take one judged frame; returns the futures of the incidents whose evidence is now complete."""
        frame = result.frame
        camera = result.site.camera if result.site is not None else str(frame.context.get("camera", frame.source))
        cam = self._cameras.setdefault(camera, _Camera())
        t = frame_time(frame)
        sampled = self._sample(cam, t, frame)
        for e in result.site.events if result.site is not None else ():
            self._event(cam, e, frame, t)
        done: list[Future] = []
        for key, op in list(cam.open.items()):
            if sampled and not op.capped and op.last_added != frame.frame_id:
                self._add(op, frame)
            if not op.capped and t - op.t_start >= self.cfg.max_clip_s:
                op.capped = True
                self._pool.submit(self._close_clip, op)
            if op.t_end is not None and t >= op.t_end + self.cfg.post_s:
                done.append(self._finalise(cam, key))
        return done

    def finish(self, events: Iterable[IncidentEvent] = ()) -> list[Future]:
        """The run ended: apply its last events and complete every open incident's evidence now."""
        for e in events:
            cam = self._cameras.get(e.camera)
            op = cam.open.get(e.key) if cam is not None else None
            if op is not None and cam is not None and e.event == "end" and "last" not in op.refs:
                last_id = e.last_frame_id or e.frame_id
                last = self._lookup(cam, last_id)
                op.refs["last"] = last if last is not None else last_id
        done = []
        for cam in self._cameras.values():
            for key, op in list(cam.open.items()):
                if "last" not in op.refs and cam.ring:
                    op.refs["last"] = cam.ring[-1][1]
                done.append(self._finalise(cam, key))
        return done

    def close(self, timeout: float | None = None) -> None:
        """Wait for the encoder to finish what it was given."""
        del timeout  # ThreadPoolExecutor.shutdown waits without a limit; the tasks are bounded
        self._pool.shutdown(wait=True)

    # --- bookkeeping -------------------------------------------------------------------------
    def _sample(self, cam: _Camera, t: float, frame: Frame) -> bool:
        if cam.last_sample is not None and t - cam.last_sample < 1.0 / self.cfg.clip_fps - 1e-6:
            return False
        cam.last_sample = t
        cam.ring.append((t, frame))
        while cam.ring and t - cam.ring[0][0] > self.cfg.pre_s:
            cam.ring.popleft()
        return True

    @staticmethod
    def _lookup(cam: _Camera, frame_id: str) -> Frame | None:
        for _, f in reversed(cam.ring):
            if f.frame_id == frame_id:
                return f
        return None

    def _ref(self, cam: _Camera, frame_id: str, current: Frame) -> Frame | str:
        if frame_id == current.frame_id:
            return current
        found = self._lookup(cam, frame_id)
        return found if found is not None else frame_id

    def _event(self, cam: _Camera, e: IncidentEvent, frame: Frame, t: float) -> None:
        if e.event == "new":
            if e.key in cam.open:
                return
            pre = list(cam.ring)
            op = _Open(e.key, e.camera, ClipWriter(self.clip_root, self.cfg.clip_fps, self.cfg.clip_max_side),
                       pre[0][0] if pre else t)
            for _, f in pre:  # the current frame, when sampled, is the pre-roll's last
                self._add(op, f)
            op.refs.update(first=self._ref(cam, e.first_frame_id, frame), worst=self._ref(cam, e.worst_frame_id, frame))
            cam.open[e.key] = op
            self.started += 1
            return
        op = cam.open.get(e.key)
        if op is None:  # the incident began before this recorder did: no clip for it
            return
        op.refs["worst"] = self._ref(cam, e.worst_frame_id, frame)
        if e.event == "end":
            op.t_end = t
            op.refs["last"] = self._ref(cam, e.last_frame_id or e.frame_id, frame)

    def _add(self, op: _Open, frame: Frame) -> None:
        op.last_added = frame.frame_id
        self._pool.submit(self._encode, op, frame.frame_id, frame.image)

    def _finalise(self, cam: _Camera, key: str) -> Future:
        op = cam.open.pop(key)
        self.finished += 1
        return self._pool.submit(self._complete, op)

    # --- the encoder thread ------------------------------------------------------------------
    def _encode(self, op: _Open, frame_id: str, image: Any) -> None:
        if op.errors:  # the clip already failed: one error is enough
            return
        try:
            # Overlapping incidents put the same frame in several clips: scale it once (encoder thread only).
            scaled = self._scaled.get(frame_id)
            if scaled is None:
                scaled = self._scaled[frame_id] = scale_for_clip(np.asarray(image), self.cfg.clip_max_side)
                while len(self._scaled) > _SCALED_KEPT:
                    self._scaled.popitem(last=False)
            op.writer.add(scaled)
        except Exception as e:  # noqa: BLE001 - reported in Evidence.error
            op.errors.append(f"clip: {type(e).__name__}: {e}")

    @staticmethod
    def _close_clip(op: _Open) -> None:
        if op.errors:
            op.writer.abort()
            return
        try:
            op.clip.append(op.writer.finish())
        except Exception as e:  # noqa: BLE001 - reported in Evidence.error
            op.writer.abort()
            op.errors.append(f"clip: {type(e).__name__}: {e}")

    def _complete(self, op: _Open) -> Evidence:
        if not op.capped:
            self._close_clip(op)
        images: dict[str, dict[str, Any]] = {}
        for role in ("first", "worst", "last"):
            ref = op.refs.get(role)
            if ref is None:
                continue
            if isinstance(ref, str) or self.image_store is None:
                images[role] = {"frame_id": ref if isinstance(ref, str) else ref.frame_id}
                continue
            try:
                sha, rel = self.image_store.put(ref.image)
                path = os.path.relpath(self.image_store.root / rel, self.data_dir)
                images[role] = {"frame_id": ref.frame_id, "sha256": sha, "path": Path(path).as_posix()}
            except Exception as e:  # noqa: BLE001
                images[role] = {"frame_id": ref.frame_id}
                op.errors.append(f"{role} image: {type(e).__name__}: {e}")
        clip = op.clip[0] if op.clip else None
        if op.errors:
            log.warning("evidence of incident %s: %s", op.key, "; ".join(op.errors))
        return Evidence(op.key, op.camera, None if clip is None else f"{CLIPS_DIR}/{clip.path}",
                        None if clip is None else clip.sha256, 0 if clip is None else clip.frames, images,
                        "; ".join(op.errors) or None)


__all__ = ["CLIPS_DIR", "Evidence", "EvidenceRecorder", "frame_time"]
