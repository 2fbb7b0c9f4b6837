"""``SyntheticSiteCamera``: the ``FrameSource`` of a synthetic site camera, its exact ground truth
per frame, and ``render_video`` (an MP4 of it for benches and archive tests)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.capture.synthetic_site.motion import Visit, simulate
from inspector.capture.synthetic_site.people import Box, Pose, draw_worker, pose
from inspector.capture.synthetic_site.scene import Occluder, Perspective, make_occluders, render_background
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.util.progress import NO_PROGRESS, Progress

CLASS_NAMES: tuple[str, ...] = ("hat", "vest", "worker")  # Pictor approach 01's names and order
CLASS_ID: dict[str, int] = {n: i for i, n in enumerate(CLASS_NAMES)}

ZoneSpec = tuple[str, str, tuple[tuple[float, float], ...]]  # (id, kind, polygon)


@dataclass(frozen=True)
class WorkerTruth:
    """One worker in one frame, exactly as drawn. Boxes are ``(x0, y0, x1, y1)`` image pixels clipped
    to the image; ``box`` is the whole worker (hat included) even where something hides part of it,
    ``visible_box`` the extent of what can be seen. ``hat`` / ``vest`` are None when not worn;
    ``head`` is always given (for anonymisation checks). Visibilities are the share of each box not
    hidden by occluders, workers in front or the image edge (box area, not silhouette)."""

    track_id: int
    box: Box
    visible_box: Box | None
    head: Box
    hat: Box | None
    vest: Box | None
    visibility: float
    head_visibility: float
    hat_visibility: float
    vest_visibility: float
    zones: tuple[str, ...]
    walking: bool

    @property
    def foot(self) -> tuple[float, float]:
        """Bottom centre of ``box``: the point whose zones ``zones`` lists."""
        return (self.box[0] + self.box[2]) / 2, self.box[3]


@dataclass(frozen=True)
class SiteTruth:
    """Ground truth of one frame: every worker at least partly in view, farthest first."""

    frame_index: int
    t_video_s: float
    workers: tuple[WorkerTruth, ...]

    def detections(self, min_visibility: float = 0.0, part_min_visibility: float = 0.5) -> Detections:
        """The truth as detections of ``CLASS_NAMES`` (score 1): a worker when at least
        ``min_visibility`` of it shows, its hat / vest when worn and ``part_min_visibility`` of it
        shows. Worker boxes are the visible extent (what a detector can see)."""
        xyxy: list[Box] = []
        cls: list[int] = []
        for w in self.workers:
            if w.visible_box is None or w.visibility < min_visibility:
                continue
            xyxy.append(w.visible_box)
            cls.append(CLASS_ID["worker"])
            if w.hat is not None and w.hat_visibility >= part_min_visibility:
                xyxy.append(w.hat)
                cls.append(CLASS_ID["hat"])
            if w.vest is not None and w.vest_visibility >= part_min_visibility:
                xyxy.append(w.vest)
                cls.append(CLASS_ID["vest"])
        arr = np.array(xyxy, np.float32).reshape(-1, 4)
        return Detections(arr, np.ones(len(arr), np.float32), np.array(cls, np.int32))

    def visible_heads(self) -> np.ndarray:
        """Exact head boxes cut to each worker's visible extent (outside it the head is hidden);
        heads with no visible part are left out. What anonymisation must cover."""
        out = []
        for w in self.workers:
            if w.visible_box is None or w.head_visibility <= 0:
                continue
            h, v = w.head, w.visible_box
            box = (max(h[0], v[0]), max(h[1], v[1]), min(h[2], v[2]), min(h[3], v[3]))
            if box[2] > box[0] and box[3] > box[1]:
                out.append(box)
        return np.array(out, np.float64).reshape(-1, 4)


def _clip(b: Box, w: int, h: int) -> Box:
    """``b`` clipped to the image (a box wholly outside becomes an empty box on the edge)."""
    x0, x1 = min(max(b[0], 0.0), float(w)), min(max(b[2], 0.0), float(w))
    y0, y1 = min(max(b[1], 0.0), float(h)), min(max(b[3], 0.0), float(h))
    return x0, y0, x1, y1


def _solid_rects(ps: Pose) -> list[Box]:
    """Rectangles a worker certainly covers (used to hide workers behind it)."""
    legs_x = [e[0] for _, e in ps.legs] + [s[0] for s, _ in ps.legs]
    rects = [ps.vest or ps.torso, ps.head,
             (min(legs_x) - ps.limb_px / 2, ps.torso[3], max(legs_x) + ps.limb_px / 2, ps.body[3])]
    if ps.hat is not None:
        rects.append(ps.hat)
    return rects


class SyntheticSiteCamera:
    """A seeded synthetic construction-site camera (``FrameSource``).

    The scene (background, occluders) and every worker's visit are fixed by ``seed``; frame ``i``
    is a pure function of ``(seed, parameters, i)``, so ``render(i)`` and ``truth(i)`` work in any
    order. ``frames()`` yields ``duration_s * fps`` frames with context ``camera``, ``frame_index``
    and ``t_video_s``, paced at ``fps`` when ``realtime``.
    """

    def __init__(self, camera: str = "cam-1", *, seed: int = 0, width: int = 960, height: int = 540,
                 fps: float = 10.0, duration_s: float = 60.0, workers: int = 6, p_no_hat: float = 0.3,
                 p_no_vest: float = 0.3, occluders: int = 2, realtime: bool = False,
                 zones: Sequence[ZoneSpec] = (), source_id: str | None = None, station_id: str = "synthetic",
                 noise: bool = True) -> None:
        if fps <= 0 or duration_s <= 0:
            raise ValueError(f"SyntheticSiteCamera: fps and duration_s must be > 0, got {fps}, {duration_s}")
        self.camera, self.seed, self.fps, self.realtime = camera, int(seed), float(fps), bool(realtime)
        self.width, self.height = int(width), int(height)
        self.station_id = station_id
        self.name = source_id or camera
        self.zones: tuple[ZoneSpec, ...] = tuple((z, k, tuple((float(x), float(y)) for x, y in poly))
                                                 for z, k, poly in zones)
        self._zone_polys = [(z, np.array(poly, np.float32).reshape(-1, 1, 2)) for z, _, poly in self.zones]
        self.n_frames = max(int(round(duration_s * fps)), 1)
        self.perspective = Perspective.for_image(self.width, self.height)
        rng = np.random.default_rng([self.seed, 1])
        background = render_background(rng, self.perspective)
        occ = make_occluders(rng, self.perspective, occluders)
        self.visits: tuple[Visit, ...] = tuple(simulate(self.seed, self.perspective, self.fps, self.n_frames,
                                                        workers, p_no_hat, p_no_vest))
        # the camera's tone curve is baked into everything once, not applied per frame (speed)
        lut = self._lighting(rng)
        self._background = cv2.LUT(background, lut)
        self.occluders: tuple[Occluder, ...] = tuple(o.toned(lut) for o in occ)
        self._looks = {v.track_id: v.look.toned(lut) for v in self.visits}
        # sensor noise: a few fixed patterns (+ and -) cycled over frames: cheap, and never a frozen image
        nrng = np.random.default_rng([self.seed, 2])
        self._noise = [(np.clip(nrng.normal(0, 2.5, (self.height, self.width, 3)), 0, 255).astype(np.uint8),
                        np.clip(nrng.normal(0, 2.5, (self.height, self.width, 3)), 0, 255).astype(np.uint8))
                       for _ in range(3)] if noise else []
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, src: Any, *, source_id: str | None = None, station_id: str = "synthetic"
                    ) -> "SyntheticSiteCamera":
        """Built from a ``SyntheticSiteSource`` (config schema)."""
        zones = [(z.id, z.kind, tuple(tuple(pt) for pt in z.polygon)) for z in src.zones]
        return cls(src.camera, seed=src.seed, width=src.width, height=src.height, fps=src.fps,
                   duration_s=src.duration_s, workers=src.workers, p_no_hat=src.p_no_hat, p_no_vest=src.p_no_vest,
                   occluders=src.occluders, realtime=src.realtime, zones=zones, source_id=source_id,
                   station_id=station_id)

    def _lighting(self, rng: np.random.Generator) -> np.ndarray:
        """A per-camera look-up table: exposure, contrast and colour temperature of this camera."""
        gain = rng.uniform(0.85, 1.12)
        contrast = rng.uniform(0.85, 1.1)
        warm = rng.uniform(-0.06, 0.06)  # >0: warmer (more red, less blue)
        v = np.arange(256, dtype=np.float32)
        chans = []
        for c_gain in (1 - warm, 1.0, 1 + warm):  # B, G, R
            chans.append(np.clip(((v - 128) * contrast + 128) * gain * c_gain, 0, 255))
        return np.stack(chans, -1).astype(np.uint8).reshape(256, 1, 3)

    def __len__(self) -> int:
        return self.n_frames

    def frame_id(self, i: int) -> str:
        return f"{self.camera}-{i:06d}"

    def t_video_s(self, i: int) -> float:
        return i / self.fps

    def _active(self, i: int) -> list[tuple[Visit, Pose, float]]:
        """Visits in view at frame ``i`` with their poses and feet rows, far to near."""
        out = []
        p = self.perspective
        for v in self.visits:
            if v.first <= i <= v.last:
                k = i - v.first
                x, y = float(v.x[k]), float(v.y[k])
                ps = pose(v.look, x, y, p.person_px(y), float(v.phase[k]), bool(v.walking[k]))
                b = ps.body
                if b[2] <= 0 or b[0] >= self.width or b[3] <= 0 or b[1] >= self.height:
                    continue
                out.append((v, ps, y))
        out.sort(key=lambda t: (t[2], t[0].track_id))
        return out

    def render(self, i: int) -> np.ndarray:
        """Frame ``i`` as a BGR uint8 image."""
        self._check(i)
        return self._draw(i, self._active(i))

    def _draw(self, i: int, active: list[tuple[Visit, Pose, float]]) -> np.ndarray:
        img = self._background.copy()
        occ = list(self.occluders)  # sorted by base row
        j = 0
        for v, ps, y in active:
            while j < len(occ) and occ[j].base_y <= y:
                occ[j].paste(img)
                j += 1
            draw_worker(img, self._looks[v.track_id], ps)
        for o in occ[j:]:
            o.paste(img)
        if self._noise:
            pos, neg = self._noise[i % len(self._noise)]
            cv2.add(img, pos, dst=img)
            cv2.subtract(img, neg, dst=img)
        return img

    def truth(self, i: int) -> SiteTruth:
        """Exact ground truth of frame ``i``."""
        self._check(i)
        return self._truth(i, self._active(i))

    def render_with_truth(self, i: int) -> tuple[np.ndarray, SiteTruth]:
        self._check(i)
        active = self._active(i)
        return self._draw(i, active), self._truth(i, active)

    def _truth(self, i: int, active: list[tuple[Visit, Pose, float]]) -> SiteTruth:
        w, h = self.width, self.height
        workers = []
        for n, (v, ps, y) in enumerate(active):
            x0, y0 = math.floor(ps.body[0]), math.floor(ps.body[1])
            x1, y1 = math.ceil(ps.body[2]), math.ceil(ps.body[3])
            seen = np.zeros((y1 - y0, x1 - x0), bool)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if cx0 < cx1 and cy0 < cy1:
                seen[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = True
            for o in self.occluders:
                if o.base_y > y:
                    self._hide(seen, x0, y0, o.box, o.mask)
            for _, front, _ in active[n + 1:]:
                for r in _solid_rects(front):
                    self._hide(seen, x0, y0, (math.floor(r[0]), math.floor(r[1]), math.ceil(r[2]), math.ceil(r[3])))
            if not seen.any():
                continue

            def share(b: Box | None) -> float:
                if b is None:
                    return 0.0
                bx0, by0 = max(int(b[0]) - x0, 0), max(int(b[1]) - y0, 0)
                bx1, by1 = max(math.ceil(b[2]) - x0, 0), max(math.ceil(b[3]) - y0, 0)
                part = seen[by0:by1, bx0:bx1]
                return float(part.mean()) if part.size else 0.0

            rows, cols = np.flatnonzero(seen.any(1)), np.flatnonzero(seen.any(0))
            vis_box = _clip((float(max(x0 + cols[0], ps.body[0])), float(max(y0 + rows[0], ps.body[1])),
                             float(min(x0 + cols[-1] + 1, ps.body[2])), float(min(y0 + rows[-1] + 1, ps.body[3]))), w, h)
            box = _clip(ps.body, w, h)
            foot = ((box[0] + box[2]) / 2, box[3])  # bottom centre of the box, as the station takes it
            zones = tuple(z for z, poly in self._zone_polys if cv2.pointPolygonTest(poly, foot, False) >= 0)
            workers.append(WorkerTruth(
                v.track_id, box, vis_box, _clip(ps.head, w, h),
                None if ps.hat is None else _clip(ps.hat, w, h), None if ps.vest is None else _clip(ps.vest, w, h),
                float(seen.mean()), share(ps.head), share(ps.hat), share(ps.vest), zones,
                bool(v.walking[i - v.first])))
        return SiteTruth(i, self.t_video_s(i), tuple(workers))

    @staticmethod
    def _hide(seen: np.ndarray, x0: int, y0: int, box: tuple[int, int, int, int], mask: np.ndarray | None = None
              ) -> None:
        """Clear ``seen`` (whose top-left pixel is ``(x0, y0)``) where ``box`` (with ``mask``) covers it."""
        bx0, by0, bx1, by1 = box
        sx0, sy0 = max(bx0, x0), max(by0, y0)
        sx1, sy1 = min(bx1, x0 + seen.shape[1]), min(by1, y0 + seen.shape[0])
        if sx0 >= sx1 or sy0 >= sy1:
            return
        target = seen[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        if mask is None:
            target[:] = False
        else:
            target &= ~mask[sy0 - by0:sy1 - by0, sx0 - bx0:sx1 - bx0]

    def _check(self, i: int) -> None:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"{self.name}: frame {i} is outside 0..{self.n_frames - 1}")

    def context(self, i: int) -> dict[str, Any]:
        return {"camera": self.camera, "frame_index": i, "t_video_s": round(self.t_video_s(i), 6)}

    def frames_with_truth(self) -> Iterator[tuple[Frame, SiteTruth]]:
        t_next = time.monotonic()
        for i in range(self.n_frames):
            if self._closed:
                return
            if self.realtime:
                delay = t_next - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t_next = max(t_next, time.monotonic()) + 1.0 / self.fps  # a late frame does not burst
            image, truth = self.render_with_truth(i)
            yield Frame(self.frame_id(i), self.station_id, self.name, time.monotonic(), Frame.utc_now(), image,
                        self.context(i)), truth

    def frames(self) -> Iterator[Frame]:
        for frame, _ in self.frames_with_truth():
            yield frame

    def close(self) -> None:
        """Stop: a running ``frames()`` ends before its next frame."""
        self._closed = True


def render_video(path: str | Path, source_cfg: Any, *, frames: int | None = None,
                 progress: Progress = NO_PROGRESS,
                 camera_factory: Callable[..., SyntheticSiteCamera] = SyntheticSiteCamera.from_config) -> dict[str, Any]:
    """Write a ``SyntheticSiteSource``'s video (or its first ``frames``) as an MP4 (cv2 'mp4v') at
    its fps and size. Returns ``{"path", "frames", "fps", "width", "height", "seconds"}``."""
    cam = camera_factory(source_cfg)
    n = cam.n_frames if frames is None else min(int(frames), cam.n_frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), cam.fps, (cam.width, cam.height))
    if not writer.isOpened():
        raise OSError(f"render_video: cannot open {path} for writing (mp4v)")
    t0 = time.perf_counter()
    try:
        with progress.stage("render", total=n, unit="frame") as stage:
            for i in range(n):
                writer.write(cam.render(i))
                stage.advance()
    finally:
        writer.release()
    return {"path": str(path), "frames": n, "fps": cam.fps, "width": cam.width, "height": cam.height,
            "seconds": round(time.perf_counter() - t0, 3)}
