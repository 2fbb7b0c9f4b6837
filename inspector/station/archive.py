"""Archive analysis: recorded video files through the station's judge, fast, and recorded like a live run.

Per file, one run in the store (decisions and incidents through the ``StoreSink``, exactly as a
station records them) and the stretches it looked at (``analysis_segments``).

Why it is shaped like this (measured on the 2-core reference machine, 1080p 25 fps; see
bench/RESULTS.md):

- Decoding is PyAV's (:mod:`inspector.capture.video_decode`): multi-threaded, and a sampled frame
  is shrunk to the motion gate's small grey image by libswscale straight from the decoder's planes;
  the full-size BGR image is made only for a frame that is inferred. Where the scene is still and
  the judge saw nobody, the decoder skips to the next keyframe: those frames are never decoded.
- Samples are every ``stride``-th frame (about 5 per second) and every ``dense_stride``-th (about
  12 per second) while the judge has a violation pending or an incident open on the camera, so a
  short violation gets the looks persistence needs (:mod:`inspector.station.archive_reader`).
- A sample is inferred only where the motion gate sees motion (:mod:`inspector.capture.motion_gate`),
  and at least every ``max_skip_s`` so tracks and incidents stay alive at a still scene (every
  ``idle_max_skip_s`` where nobody is in sight).
- Decoding and gating run on a reader thread (PyAV and OpenCV release the GIL), the judge on the
  calling thread, the store on its writer thread: the two cores overlap.
- Time is video time: a frame's ``t_monotonic`` is its position in the file (seconds), so the
  tracker's ``lost_s`` and the incident rules' ``persist_s`` / ``clear_s`` count video seconds, not
  the seconds the analysis took; ``t_utc`` is the recording's start plus that position.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from inspector.capture.motion_gate import MotionGate, MotionGateParams
from inspector.capture.video_decode import CvDecoder, DecodeError, VideoDecoder, open_video
from inspector.config.loader import canonical_json
from inspector.config.schema import StationConfig
from inspector.core.frame import Frame
from inspector.runtime.ensemble import Ensemble
from inspector.station.evidence import EvidenceRecorder
from inspector.core.decision import Verdict
from inspector.station.archive_reader import End, Pace, Reader, Sample
from inspector.station.judgement import Judgement
from inspector.station.station import _model_path, new_run_id
from inspector.station.store_sink import StoreSink
from inspector.store.analysis import Segment, insert_segments, video_identity
from inspector.store.images import ImageStore
from inspector.store.writer import StoreWriter
from inspector.util.progress import NO_PROGRESS, Progress

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_HZ = 5.0
DEFAULT_DENSE_HZ = 12.5  # while a violation is pending or an incident open (every 2nd frame at 25 fps)
_LOOKAHEAD = 2           # samples a judge batch takes at most: the reader stays a sample or two ahead
_IDLE_AFTER_S = 1.0      # nothing detected for this long (and two looks): the scene counts as empty
_STORE_QUEUE_MAX = 64    # as the station: one batch gathers while the previous one commits
_STRETCH_MAX_S = 60.0    # longest stretch recorded as one row


class ArchiveError(Exception):
    """A file or the store cannot be analysed; the message names it."""


@dataclass(frozen=True, slots=True)
class AnalyzeOptions:
    """How to go through the files (the CLI's options)."""

    motion_gate: bool = True
    stride: int | None = None            # frames between samples; None: about DEFAULT_SAMPLE_HZ per second
    dense_stride: int | None = None      # ... while a violation is pending; None: about DEFAULT_DENSE_HZ
    batch: int = 8                       # frames per judge call, at most (and at most _LOOKAHEAD: see _consume)
    gate: MotionGateParams = field(default_factory=MotionGateParams)
    camera: str | None = None            # the config's camera whose zones apply; None: its first camera
    start_utc: datetime | None = None    # recording start; None: file modification time minus duration
    store_images: str | None = None      # all / flagged / none; None: the config's storage.store_images

    def stride_for(self, fps: float) -> int:
        if self.stride is not None:
            return max(1, int(self.stride))
        return max(1, round(fps / DEFAULT_SAMPLE_HZ))

    def dense_stride_for(self, fps: float) -> int:
        """Never sparser than the base stride."""
        dense = self.dense_stride if self.dense_stride is not None else round(fps / DEFAULT_DENSE_HZ)
        return max(1, min(int(dense), self.stride_for(fps)))


class _Stretches:
    """Consecutive frames with the same action and reason, merged into ``Segment``s."""

    def __init__(self, run_id: str, video: str, sha: str, camera: str, fps: float) -> None:
        self.base = Segment(run_id, video, sha, camera, 0, 0, 0.0, 0.0, "skipped", "")
        self.fps = fps
        # A long stretch is cut at a minute of video: what was looked at reaches the store as the
        # analysis goes, not only at the end of an hour-long file.
        self.max_frames = max(1, round(_STRETCH_MAX_S * fps))
        self.current: Segment | None = None
        self.closed: list[Segment] = []
        self.frames: Counter = Counter()   # ("inferred" | "skipped", reason) -> frames

    def add(self, first: int, last: int, inferred: bool, reason: str, stride: int = 1) -> None:
        """Frames first..last: ``first`` was sampled (inferred or not), the rest were not sampled."""
        if last < first:
            return
        action = "inferred" if inferred else "skipped"
        if inferred and stride > 1:
            reason = f"{reason};stride={stride}"  # what was looked at: one frame in `stride`
        self.frames[(action, reason)] += 1 if inferred else last - first + 1
        if inferred and last > first:
            self.frames[("skipped", "stride")] += last - first
        c = self.current
        if c is not None and c.action == action and c.reason == reason and c.last_frame + 1 == first \
                and last - c.first_frame < self.max_frames:
            self.current = replace(c, last_frame=last, t1_s=last / self.fps)
            return
        if c is not None:
            self.closed.append(c)
        self.current = replace(self.base, first_frame=first, last_frame=last, t0_s=first / self.fps,
                               t1_s=last / self.fps, action=action, reason=reason)

    def take(self, final: bool = False) -> list[Segment]:
        if final and self.current is not None:
            self.closed.append(self.current)
            self.current = None
        out, self.closed = self.closed, []
        return out


@dataclass
class _Tally:
    """Per file: frames judged, verdicts, incident events and incidents opened per kind."""

    verdicts: Counter = field(default_factory=Counter)
    incidents: Counter = field(default_factory=Counter)
    events: int = 0
    inferred: int = 0

    def add(self, j: Judgement) -> None:
        for r in j.results:
            self.inferred += 1
            self.verdicts[r.decision.verdict.value] += 1
            if r.site is not None:
                self._events(r.site.events)
        self._events(j.events)

    def _events(self, events: Sequence[Any]) -> None:
        for e in events:
            self.events += 1
            if e.event == "new":
                self.incidents[e.kind] += 1


def default_judge_factory(cfg: StationConfig, ensemble: Ensemble, cfg_hash: str,
                          base_dir: Path | None = None) -> Callable[[str], Any]:
    """``make(run_id)``: a fresh judge per file (a run per file: tracker and incident state start
    empty; incident keys carry the store's run id), as the station picks it for the domain."""
    if cfg.station.domain == "construction":
        from inspector.station.site_inspection import SiteInspection

        return lambda run_id: SiteInspection(cfg, ensemble, cfg_hash, base_dir, run_id=run_id)
    from inspector.station.inspection import Inspection

    return lambda run_id: Inspection(cfg, ensemble, cfg_hash, base_dir)


def config_cameras(cfg: StationConfig) -> list[str]:
    """The camera ids of the config's sources, in order (their zones apply to analysed files)."""
    return [str(s.camera) for s in cfg.sources if getattr(s, "camera", None)]


def pick_camera(cfg: StationConfig, camera: str | None) -> str:
    cams = config_cameras(cfg)
    if camera is None:
        if not cams:
            raise ArchiveError(f"station {cfg.station.id}: no source with a camera id; its zones would be unknown")
        return cams[0]
    if camera not in cams:
        raise ArchiveError(f"camera {camera!r} is not a source of station {cfg.station.id} "
                           f"(cameras: {', '.join(cams) or 'none'})")
    return camera


class ArchiveAnalysis:
    """Analyses video files one after another into one store; see the module doc."""

    def __init__(self, cfg: StationConfig, cfg_hash: str, *, ensemble: Ensemble, data_dir: str | Path,
                 options: AnalyzeOptions | None = None, judge_factory: Callable[[str], Any] | None = None,
                 base_dir: Path | None = None, open_capture: Callable[[str], Any] | None = None) -> None:
        self.cfg, self.cfg_hash, self.ensemble = cfg, cfg_hash, ensemble
        self.options = options or AnalyzeOptions()
        if self.options.batch < 1:
            raise ArchiveError(f"batch must be at least 1, got {self.options.batch}")
        self.camera = pick_camera(cfg, self.options.camera)
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / cfg.storage.db_name
        self.make_judge = judge_factory or default_judge_factory(cfg, ensemble, cfg_hash, base_dir)
        self.open_capture = open_capture
        self.stop_requested = threading.Event()

    def request_stop(self) -> None:
        """Non-blocking (signal handlers): finish the file being analysed at the frame reached."""
        self.stop_requested.set()

    def run(self, videos: Sequence[str | Path], progress: Progress = NO_PROGRESS) -> list[dict[str, Any]]:
        """Every file in turn (until a stop is requested); one summary per file analysed."""
        out = []
        for v in videos:
            if self.stop_requested.is_set():
                break
            out.append(self.analyze(v, progress))
        return out

    def analyze(self, video: str | Path, progress: Progress = NO_PROGRESS) -> dict[str, Any]:
        """One file as one run: decisions, incidents and analysed stretches into the store."""
        path = str(video)
        if not Path(path).is_file():
            raise ArchiveError(f"{path}: no such file")
        sha = video_identity(path)
        try:
            decoder: VideoDecoder = open_video(path) if self.open_capture is None else CvDecoder(self.open_capture(path))
        except DecodeError as e:
            raise ArchiveError(str(e)) from None
        if isinstance(decoder, CvDecoder) and not decoder.cap.isOpened():
            decoder.close()
            raise ArchiveError(f"{path}: OpenCV cannot open this video")
        try:
            return self._analyze(decoder, path, sha, progress)
        finally:
            decoder.close()

    # --- one file ------------------------------------------------------------------------------
    def _analyze(self, decoder: VideoDecoder, path: str, sha: str, progress: Progress) -> dict[str, Any]:
        opt = self.options
        fps, expected = decoder.info.fps, decoder.info.frames
        if not fps > 0:
            raise ArchiveError(f"{path}: the container gives no frame rate")
        stride, dense = opt.stride_for(fps), opt.dense_stride_for(fps)
        start_utc = opt.start_utc or datetime.fromtimestamp(Path(path).stat().st_mtime - expected / fps,
                                                            tz=timezone.utc)
        run_id = new_run_id()
        store, writer = self._open_store(run_id)
        judge = self.make_judge(run_id)
        stretches = _Stretches(run_id, path, sha, self.camera, fps)
        tally = _Tally()
        reader = Reader(decoder, stride, dense, MotionGate(replace(opt.gate)) if opt.motion_gate else None, Pace())
        make_frame = self._frame_maker(run_id, path, fps, start_utc)
        errors: list[str] = []
        seg_futures: list[Future] = []
        t0 = time.perf_counter()
        end: End | None = None
        reader.start()
        try:
            with progress.stage(f"analyze {Path(path).name}", total=expected or None, unit="frame") as st:
                end = self._consume(reader, judge, store, writer, stretches, tally, make_frame, st, t0, fps, opt,
                                    seg_futures)
            if end.error:
                errors.append(f"decoding stopped at frame {end.frames}: {end.error}")
            closing = judge.finish()
            if closing.events or store.evidence is not None:  # evidence completes its clips here
                store.accept_events(closing.events)
            tally.add(closing)
            self._record_segments(writer, stretches.take(final=True), seg_futures)
            store.flush()
            errors += [str(f.exception()) for f in seg_futures if f.exception() is not None]
            store.end_run()
        finally:
            reader.stop.set()
            reader.join()  # before the capture is released under its feet
            store.close()
        seconds = time.perf_counter() - t0
        return self._summary(path, sha, run_id, fps, stride, dense, decoder.info.decoder, end, stretches, tally, store,
                             seconds, errors)

    def _consume(self, reader: Reader, judge: Any, store: StoreSink, writer: StoreWriter, stretches: _Stretches,
                 tally: _Tally, make_frame: Callable[[Sample], Frame], st: Any, t0: float, fps: float,
                 opt: AnalyzeOptions, seg_futures: list[Future]) -> End:
        batch: list[Frame] = []
        prev: Sample | None = None
        pacer = _Pacer(reader.pace)
        # The pace follows the judge: a batch of at most _LOOKAHEAD samples (fewer when no more are
        # ready) keeps the reader, one queued sample ahead, within a sample or two of what the judge saw.
        # (The shipped models have a static batch of 1: larger batches would buy nothing.)
        max_batch = min(opt.batch, _LOOKAHEAD)

        def flush() -> None:
            if batch:
                j = judge.judge(batch)
                for r in j.results:
                    store.accept_result(r)
                tally.add(j)
                pacer.update(j)
                reader.pace.judged(len(batch))
                batch.clear()
            # After the judge: every closed stretch's inferred frames are judged and submitted.
            self._record_segments(writer, stretches.take(), seg_futures)

        while True:
            item = reader.out.get()
            if isinstance(item, End):
                break
            if prev is not None:
                stretches.add(prev.index, item.index - 1, prev.inferred, prev.reason, prev.stride)
            prev = item
            if item.image is not None:
                batch.append(make_frame(item))
                item.image = None  # the frame holds it now; the stretch keeps only the decision
                if len(batch) >= max_batch or reader.out.empty():
                    flush()
            elapsed = time.perf_counter() - t0
            st.update(done=item.index + 1, speed_x=round(item.t_s / elapsed, 2) if elapsed > 0 else None,
                      inferred=tally.inferred + len(batch))
            if self.stop_requested.is_set():
                reader.stop.set()
                item = End(item.index + 1, reader.expected, None, item.index + 1)
                break
        flush()
        end = item
        if prev is not None:
            stretches.add(prev.index, end.frames - 1, prev.inferred, prev.reason, prev.stride)
        if end.expected > end.frames and not self.stop_requested.is_set():
            # The container promised more frames than could be decoded: say which were never seen.
            stretches.add(end.frames, end.expected - 1, False, "decode_error")
        st.update(done=end.frames)
        return end

    @staticmethod
    def _record_segments(writer: StoreWriter, segs: list[Segment], futures: list[Future]) -> None:
        if segs:
            futures.append(writer.submit_job(lambda conn: insert_segments(conn, segs),
                                             f"analysed stretches of {segs[0].video} from frame {segs[0].first_frame}"))

    def _frame_maker(self, run_id: str, path: str, fps: float, start_utc: datetime) -> Callable[[Sample], Frame]:
        station, camera = self.cfg.station.id, self.camera

        def make(s: Sample) -> Frame:
            ctx = {"camera": camera, "frame_index": s.index, "t_video_s": s.t_s, "video": path}
            return Frame(f"{run_id}/{camera}:{s.index}", station, camera, s.t_s,
                         start_utc + timedelta(seconds=s.t_s), s.image, ctx)

        return make

    def _open_store(self, run_id: str) -> tuple[StoreSink, StoreWriter]:
        cfg, st = self.cfg, self.cfg.storage
        policy = self.options.store_images or st.store_images
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            images = None if policy == "none" else ImageStore(self.data_dir / "images", st.image_format,
                                                              st.jpeg_quality)
            writer = StoreWriter(self.db_path, images, queue_max=_STORE_QUEUE_MAX)
            writer.start()
        except Exception as e:
            raise ArchiveError(f"cannot open the store {self.db_path}: {e}") from e
        # Site incidents get their evidence as in a live run: a clip (of the frames judged: the
        # sampled ones) and the first / worst / last frames.
        evidence = EvidenceRecorder(cfg.site_config.evidence, self.data_dir, images) \
            if cfg.station.domain == "construction" else None
        sink = StoreSink(writer, run_id, tuple(self.ensemble.class_names), store_images=policy, evidence=evidence)
        models = [(m.name, m.version, m.sha256, _model_path(m.detector)) for m in self.ensemble.members]
        try:
            sink.start_run(cfg.station.id, self.cfg_hash, canonical_json(cfg), self.ensemble.version, models)
        except Exception as e:
            sink.close(5.0)
            raise ArchiveError(f"cannot record the run in {self.db_path}: {e}") from e
        return sink, writer

    def _summary(self, path: str, sha: str, run_id: str, fps: float, stride: int, dense: int, decoder: str,
                 end: End | None, stretches: _Stretches, tally: _Tally, store: StoreSink, seconds: float,
                 errors: list[str]) -> dict[str, Any]:
        decoded = end.decoded if end is not None else 0
        frames = sum(stretches.frames.values())  # decoded, plus those the container promised but never gave
        duration = frames / fps
        inferred: Counter = Counter()
        skipped: Counter = Counter()
        for (action, reason), n in stretches.frames.items():
            (inferred if action == "inferred" else skipped)[reason.split(";")[0]] += n
        return {
            "video": path,
            "video_sha256": sha,
            "run_id": run_id,
            "camera": self.camera,
            "fps": round(fps, 3),
            "stride": stride,
            "dense_stride": dense,
            "decoder": decoder,
            "motion_gate": self.options.motion_gate,
            "frames": frames,
            "decoded_frames": decoded,
            "duration_s": round(duration, 3),
            "inferred": tally.inferred,
            "inferred_by_reason": dict(inferred),
            "skipped": sum(skipped.values()),
            "skipped_by_reason": dict(skipped),
            "seconds": round(seconds, 3),
            "x_realtime": round(duration / seconds, 2) if seconds > 0 else None,
            "inferred_per_s": round(tally.inferred / seconds, 2) if seconds > 0 else None,
            "verdicts": dict(tally.verdicts),
            "incidents": dict(tally.incidents),
            "incident_events": tally.events,
            "stored": store.acked,
            "store_failed": store.failed,
            "stopped_early": self.stop_requested.is_set(),
            "db": str(self.db_path),
            "errors": errors + list(store.errors),
        }


class _Pacer:
    """Reads the judge's results into the reader's ``Pace`` (the judge's public values only: a
    ``SiteFrame`` lists the workers with their violations and the incident events; other judges'
    verdicts are REVIEW or FAIL while something is going on)."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.empty_since: float | None = None
        self.empty_looks = 0
        self.open: set[tuple[int, str]] = set()  # (track, kind) of the incidents open now

    def update(self, j: Judgement) -> None:
        if not j.results:
            return
        for res in j.results:
            for e in res.site.events if res.site is not None else ():
                if e.event == "new":
                    self.open.add((e.track_id, e.kind))
                elif e.event == "end":
                    self.open.discard((e.track_id, e.kind))
        r = j.results[-1]
        if r.site is None:  # not a site judge: its verdict says whether something is going on
            self.pace.dense = r.decision.verdict in (Verdict.FAIL, Verdict.REVIEW)
        else:
            # Dense while a violation is pending: whether and when it opens an incident decides recall. An
            # incident already open is followed at the base rate (measured: 17 % fewer inferences, recall
            # unchanged; bench/RESULTS.md).
            self.pace.dense = any((w.track_id, v) not in self.open for w in r.site.workers for v in w.violations)
        workers = r.site.workers if r.site is not None else ()
        t = r.frame.t_monotonic
        if workers or r.decision.verdict is not Verdict.PASS or (r.fused is not None and len(r.fused) > 0):
            self.empty_since, self.empty_looks = None, 0
        else:
            self.empty_since = t if self.empty_since is None else self.empty_since
            self.empty_looks += len(j.results)
        self.pace.idle = self.empty_since is not None and self.empty_looks >= 2 and t - self.empty_since >= _IDLE_AFTER_S


__all__ = ["AnalyzeOptions", "ArchiveAnalysis", "ArchiveError", "DEFAULT_DENSE_HZ", "DEFAULT_SAMPLE_HZ", "config_cameras",
           "default_judge_factory", "pick_camera"]
