"""Frame -> Decision for a construction-site station: the site domain's judge.

Per frame: ensemble -> fused boxes -> workers, hats, vests -> the camera's tracker -> PPE
association -> smoothing -> zones -> violations -> the camera's incident engine -> ``Decision``
(FAIL while the camera has an open incident, REVIEW while a violation waits for its persistence,
else PASS; reasons name the rule ids) and a ``FrameResult`` whose ``site`` carries the tracked
workers and the incident events the frame caused.

Single-threaded by design (trackers and incident engines keep state): the pipeline gives the
inspection stage its own thread. State is per camera (``frame.context["camera"]``, else the
frame's source), so frames of several cameras may arrive interleaved in one batch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from inspector.config.schema import StationConfig
from inspector.config.schema.station import source_id
from inspector.core.decision import Decision, Reason, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.incidents import IncidentEngine, IncidentStatus
from inspector.core.site.ppe import associate_ppe
from inspector.core.site.smoothing import PpeSmoother
from inspector.core.site.types import IncidentEvent, SiteFrame, TrackedWorker
from inspector.core.site.violations import SiteRule
from inspector.core.site.zones import SiteZone, zones_of
from inspector.runtime.ensemble import Ensemble
from inspector.runtime.tracker import WorkerTracker
from inspector.station.judgement import FrameResult, Judgement

_DEFAULT_FPS = 25.0  # a camera whose config names no frame rate (the tracker runs on timestamps anyway)


def frame_time(frame: Frame) -> float:
    """Seconds on the camera's own clock: video time when the source gives it (recordings are
    analysed faster than real time, and persistence is about seconds of video), else capture time."""
    t = frame.context.get("t_video_s")
    return float(t) if t is not None else frame.t_monotonic


def camera_of(frame: Frame) -> str:
    return str(frame.context.get("camera") or frame.source)


@dataclass
class _Camera:
    """Everything one camera remembers between frames."""

    name: str
    zones: tuple[SiteZone, ...]
    tracker: WorkerTracker
    smoother: PpeSmoother
    engine: IncidentEngine
    last_frame_id: str = ""
    last_t_utc: datetime | None = None
    seen: set[int] = field(default_factory=set)


class SiteInspection:
    """Judges site frames: every frame in gets exactly one result out, errors included.

    ``run_id`` goes into every incident key (pass the store's run id; a fresh one is made when
    left out)."""

    def __init__(self, cfg: StationConfig, ensemble: Ensemble, config_hash: str, base_dir: Path | None = None,
                 *, run_id: str | None = None) -> None:
        self.cfg = cfg
        self.ensemble = ensemble
        self.config_hash = config_hash
        self.base_dir = base_dir
        self.run_id = run_id or f"run-{uuid.uuid4().hex[:12]}"
        self.site = cfg.site_config
        names = list(ensemble.class_names)
        missing = [n for n in (self.site.classes.worker, self.site.classes.hat, self.site.classes.vest)
                   if n not in names]
        if missing:
            raise ValueError(f"site classes {missing} are not among the models' classes {names}")
        self.worker_id = names.index(self.site.classes.worker)
        self.hat_id = names.index(self.site.classes.hat)
        self.vest_id = names.index(self.site.classes.vest)
        self.rules = tuple(SiteRule.like(r) for r in self.site.incidents)
        self._sources = {}
        for i, src in enumerate(cfg.sources):
            for key in {getattr(src, "camera", None), source_id(src, i)} - {None}:
                self._sources[key] = src
        self._cameras: dict[str, _Camera] = {}

    # --- judging --------------------------------------------------------------------------------
    def judge(self, frames: Sequence[Frame]) -> Judgement:
        """Ensemble, then the site logic frame by frame, in order."""
        try:
            batch = self.ensemble.detect([f.image for f in frames])
        except Exception as e:  # a model failure must still leave one record per unit
            return Judgement.unjudged(frames, Verdict.ERROR, f"inference failed: {type(e).__name__}: {e}",
                                      self.ensemble.version, self.config_hash)
        t0 = time.perf_counter()
        out = [self._judge_one(f, r.fused, r.per_model) for f, r in zip(frames, batch.results)]
        return Judgement(tuple(out), {**batch.timings_ms, "rules_ms": (time.perf_counter() - t0) * 1e3})

    def finish(self) -> Judgement:
        """The run's end: every camera's open incidents end (reason "run ended"); no frame results."""
        events: list[IncidentEvent] = []
        for cam in self._cameras.values():
            events.extend(cam.engine.finish(cam.last_t_utc or Frame.utc_now(), cam.last_frame_id))
        return Judgement((), {}, tuple(events))

    def _judge_one(self, f: Frame, fused: Detections, per_model: tuple[Detections, ...]) -> FrameResult:
        cam = self._camera(camera_of(f))
        t = frame_time(f)
        ppe = self.site.ppe
        cls, score = fused.class_id, fused.score
        w_idx = np.flatnonzero((cls == self.worker_id) & (score >= self.site.tracker.min_score))
        h_idx = np.flatnonzero((cls == self.hat_id) & (score >= ppe.hat_min_score))
        v_idx = np.flatnonzero((cls == self.vest_id) & (score >= ppe.vest_min_score))
        w_xyxy, w_score = fused.xyxy[w_idx], score[w_idx]

        ids = cam.tracker.update(w_xyxy, w_score, t)
        hat_s, vest_s = associate_ppe(w_xyxy, fused.xyxy[h_idx], score[h_idx], fused.xyxy[v_idx], score[v_idx], ppe)
        hat, vest = cam.smoother.update(t, ids, hat_s > 0, vest_s > 0)
        in_zones = zones_of(w_xyxy, cam.zones)
        workers = []
        for i in range(len(w_idx)):  # one object per worker (a handful per frame)
            w = TrackedWorker(int(ids[i]), tuple(float(v) for v in w_xyxy[i]), float(w_score[i]), bool(hat[i]),
                              bool(vest[i]), float(hat_s[i]), float(vest_s[i]), in_zones[i])
            workers.append(replace(w, violations=cam.engine.check.kinds(w)))
        cam.seen.update(int(i) for i in ids if i >= 0)
        events = cam.engine.update(t, f.t_utc, f.frame_id, workers)
        cam.last_frame_id, cam.last_t_utc = f.frame_id, f.t_utc

        kept_idx = np.concatenate([w_idx, h_idx, v_idx])
        kept = fused[kept_idx] if len(kept_idx) else Detections.empty()
        verdict, reasons = self._verdict(cam.engine.status(), ids)
        d = Decision(f.frame_id, verdict, reasons, kept, self.ensemble.version, self.config_hash, Frame.utc_now(),
                     extras={"camera": cam.name, "tracks": int(np.count_nonzero(ids >= 0))})
        site = SiteFrame(cam.name, tuple(workers), events, tuple(z.as_tuple() for z in cam.zones))
        return FrameResult(f, d, fused, per_model, site=site)

    @staticmethod
    def _verdict(status: IncidentStatus, ids: np.ndarray) -> tuple[Verdict, tuple[Reason, ...]]:
        """FAIL while an incident is open on this camera; REVIEW while a violation is pending."""
        reasons = []
        for a in status.open:
            reasons.append(Reason(a.rule_id, Verdict.FAIL, f"{a.kind}: worker {a.track_id}"
                                  + (f" in {a.zone}" if a.zone else "") + f" (incident {a.key})",
                                  _rows(ids, a.track_id)))
        for a in status.pending:
            reasons.append(Reason(a.rule_id, Verdict.REVIEW, f"{a.kind}: worker {a.track_id}"
                                  + (f" in {a.zone}" if a.zone else "") + " (not yet persistent)",
                                  _rows(ids, a.track_id)))
        return Verdict.worst(r.verdict for r in reasons), tuple(reasons)

    # --- per camera state -----------------------------------------------------------------------
    def _camera(self, name: str) -> _Camera:
        cam = self._cameras.get(name)
        if cam is None:
            src = self._sources.get(name)
            zones = tuple(SiteZone(z.id, z.kind, tuple((float(x), float(y)) for x, y in z.polygon))
                          for z in getattr(src, "zones", None) or [])
            fps = getattr(src, "fps", None) or getattr(src, "fps_limit", None) or _DEFAULT_FPS
            tr = self.site.tracker
            cam = _Camera(
                name, zones, WorkerTracker(tr, float(fps)),
                PpeSmoother(self.site.ppe.smoothing_s, forget_s=max(10.0, 4 * tr.lost_s)),
                IncidentEngine(self.rules, name, self.run_id, zones, lost_s=tr.lost_s),
            )
            self._cameras[name] = cam
        return cam

    def tracks_seen(self) -> dict[str, int]:
        """Distinct confirmed tracks per camera so far (for a run's summary)."""
        return {name: len(cam.seen) for name, cam in self._cameras.items()}


def _rows(ids: np.ndarray, track_id: int) -> tuple[int, ...]:
    """The worker's row in the decision's kept boxes (workers come first there), if in this frame."""
    return tuple(int(i) for i in np.flatnonzero(ids == track_id))
