"""A station built from its config: sources, ensemble, rules, store, pipeline; start / stop / summary.

``Station.from_config(cfg, hash)`` builds everything that can fail without side effects first
(sources listed, models verified and loaded, rules built), so a bad config or a missing model
is an error before anything is written. ``start()`` opens the store (data folder, database,
images), records the config, the models and the run, then starts the pipeline.

Frame ids are prefixed with the run id (``<run>/<source frame id>``): sources give ids that are
stable across runs, and the store must hold every run of the same frames.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.config.loader import canonical_json, config_hash, resolve_data_dir, snapshot_config
from inspector.capture.health import SourceEvent
from inspector.config.schema import StationConfig, source_id
from inspector.core.ports import FrameSource
from inspector.core.site.types import IncidentEvent
from inspector.core.wafer import Die, WaferLayout
from inspector.mes import outbox
from inspector.mes.hub import MesConfigError, MesHub
from inspector.runtime.ensemble import Ensemble
from inspector.runtime.registry import RegistryError
from inspector.station.bridge import Bridge
from inspector.station.ensemble_builder import ModelLoadError, build_ensemble
from inspector.station.evidence import EvidenceRecorder
from inspector.station.inspection import Inspection, NotInspected, WaferSummary, WaferTracker
from inspector.station.judgement import FrameResult, Judge
from inspector.station.metrics import Metrics, verdict_counts
from inspector.station.pipeline import Pipeline
from inspector.station.report_scheduler import ReportScheduler
from inspector.station.rules_builder import wafer_layout
from inspector.station.site_scoring import truth_cameras, truth_scorer
from inspector.station.site_tally import SiteTally
from inspector.station.sources import build_sources
from inspector.station.store_sink import StoreSink
from inspector.store.checkpoints import checkpointer_for
from inspector.store.images import ImageStore
from inspector.store.writer import StoreWriter

log = logging.getLogger(__name__)

# Records waiting for the store hold their frame's pixels: bound them (back-pressure beyond).
_STORE_QUEUE_MAX = 64  # = the writer's batch_max: one batch can gather while the previous one commits
DIE_CHARS = {"pass": ".", "fail": "X", "review": "?", "error": "!", "not_inspected": "-"}


class StationError(Exception):
    """The station cannot be built or started; the message says what and where."""


def new_run_id(now: datetime | None = None) -> str:
    """``run-20250101T120000Z-a1b2c3``: sortable by start time, unique without coordination."""
    now = now or datetime.now(timezone.utc)
    return f"run-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def die_map_ascii(layout: WaferLayout, die_map: Mapping[Die, str]) -> list[str]:
    """One string per wafer row (top row = highest die y): ``.`` pass, ``X`` fail, ``?`` review,
    ``!`` error, ``-`` not inspected, blank off the wafer."""
    chars = {d: DIE_CHARS.get(v, "?") for d, v in die_map.items() if d in layout}
    grid = layout.die_grid(chars, fill=" ", dtype=object)
    return ["".join(row) for row in grid]


class _RunTally:
    """Per-run facts for the summary (lots, dies, each wafer's true signature); a ``ResultSink``,
    record thread only."""

    name = "tally"
    critical = False

    def __init__(self) -> None:
        self.lots: set[str] = set()
        self.dies = 0
        self.wafers: dict[str, dict[str, Any]] = {}
        self.summaries: list[WaferSummary] = []

    def accept_result(self, result: FrameResult) -> None:
        ctx = result.frame.context
        if "lot" in ctx:
            self.lots.add(str(ctx["lot"]))
        if "die_x" in ctx and "die_y" in ctx:
            self.dies += 1
        if "wafer" in ctx:
            w = str(ctx["wafer"])
            if w not in self.wafers:
                self.wafers[w] = {"lot": None if "lot" not in ctx else str(ctx["lot"]),
                                  "truth_signature": ctx.get("wafer_signature")}

    def accept_wafer(self, summary: WaferSummary) -> None:
        self.summaries.append(summary)

    def accept_events(self, events: Sequence[IncidentEvent]) -> None:
        pass  # incidents are the site tally's

    def flush(self, timeout: float | None = None) -> None:
        pass  # counted as it arrives: nothing waits


def camera_ids(cfg: StationConfig) -> dict[str, str]:
    """Source id -> camera id (the source id when the source names no camera)."""
    return {source_id(src, i): getattr(src, "camera", None) or source_id(src, i) for i, src in enumerate(cfg.sources)}


def _judge_for(cfg: StationConfig, ensemble: Ensemble, cfg_hash: str, base_dir: Path | None, run_id: str) -> Judge:
    """The domain's judge: a site judge (tracks, PPE, zones, incidents; incident keys carry the
    run id) for construction, else frame-by-frame inspection."""
    if cfg.station.domain == "construction":
        # Imported here: it brings the tracker (supervision), which no other station needs.
        from inspector.station.site_inspection import SiteInspection

        return SiteInspection(cfg, ensemble, cfg_hash, base_dir, run_id=run_id)
    return Inspection(cfg, ensemble, cfg_hash, base_dir)


def _unrecorded(store: StoreSink) -> dict[str, Any]:
    """Units taken but not on record (the store refused them): by name, so they can be re-run, and
    when; a run whose store stayed full has its gap recorded from this at the next start."""
    span = store.unrecorded_span
    return {"count": store.failed, "frames": list(store.unrecorded),
            "t_first": None if span is None else span[0].isoformat(),
            "t_last": None if span is None else span[1].isoformat()}


def _model_path(detector: Any) -> str | None:
    while detector is not None:  # a TiledDetector wraps the detector that has the file
        path = getattr(detector, "path", None)
        if path is not None:
            return str(path)
        detector = getattr(detector, "inner", None)
    return None


class Station:
    """One inspection station run; see the module doc. Single use: build another for a new run."""

    def __init__(self, cfg: StationConfig, cfg_hash: str, *, sources: Sequence[FrameSource],
                 ensemble: Ensemble | None, data_dir: str | Path, note: str | None = None,
                 headless: bool = True, base_dir: Path | None = None,
                 on_ack: Callable[[str], None] | None = None) -> None:
        if cfg_hash != config_hash(cfg):
            raise StationError(f"station {cfg.station.id}: config hash {cfg_hash[:12]} is not the hash of this config "
                               f"({config_hash(cfg)[:12]}); decisions must point at the exact config")
        self.cfg = cfg
        self.config_hash = cfg_hash
        self.sources = list(sources)
        self.ensemble = ensemble
        self.note = note
        self.headless = headless
        self.on_ack = on_ack
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / cfg.storage.db_name
        self.run_id = new_run_id()
        self.metrics = Metrics()
        self.bridge = Bridge()
        self.tally = _RunTally()
        self.layout = wafer_layout(cfg)
        self.judge: Judge
        if ensemble is not None:
            self.judge = _judge_for(cfg, ensemble, cfg_hash, base_dir, self.run_id)
            self.model_set_version = ensemble.version
            self.class_names = tuple(ensemble.class_names)
        else:
            no_model = NotInspected(f"not inspected: {note or 'no model loaded'}", cfg_hash)
            self.judge = no_model
            self.model_set_version = no_model.model_set_version
            self.class_names = tuple(cfg.models[0].class_names)
        self.tracker = WaferTracker(cfg) if self.layout is not None else None
        # Construction site: tracks and incidents per camera; tracks kept for scoring only where
        # a camera knows the truth (synthetic), so a live run's memory stays flat.
        self.site_tally = SiteTally(list(camera_ids(cfg).values()), keep_tracks=list(truth_cameras(self.sources))) \
            if cfg.station.domain == "construction" else None
        self._site_summary: dict[str, Any] | None = None
        # MES outputs are checked now (env vars, CA files, optional packages): a bad one fails
        # before anything is written; nothing connects until start().
        self.mes: MesHub | None = None
        if cfg.mes:
            members = ensemble.members if ensemble is not None else ()
            try:
                self.mes = MesHub.from_config(
                    cfg, cfg_hash, self.run_id, self.data_dir, class_names=self.class_names,
                    models=[{"name": m.name, "version": m.version, "sha256": m.sha256} for m in members],
                    state=lambda: self.metrics.state, model_set_version=self.model_set_version)
            except MesConfigError as e:
                raise StationError(f"station {cfg.station.id}: MES output {e}") from e
        self.store: StoreSink | None = None
        self.pipeline: Pipeline | None = None
        self.reports: ReportScheduler | None = None
        self.config_snapshot: Path | None = None
        self.summary_file: Path | None = None
        self._complete: bool | None = None
        self._stop_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: StationConfig, cfg_hash: str, *, registry_root: Path | None = None,
                    data_dir: str | Path | None = None, headless: bool = True, allow_no_model: bool = False,
                    ensemble: Ensemble | None = None, sources: Sequence[FrameSource] | None = None,
                    base_dir: Path | None = None, on_ack: Callable[[str], None] | None = None) -> Station:
        """Build a station. ``data_dir`` overrides ``resolve_data_dir(cfg)``; ``allow_no_model``
        (the demo) records every frame as NOT_INSPECTED when no model loads instead of failing;
        ``ensemble`` / ``sources`` replace what the config would build (tests, simulators);
        ``on_ack(frame_id)`` is called once each decision is committed (``StoreSink``)."""
        sid = cfg.station.id
        note = None
        if sources is None:
            try:
                sources = build_sources(cfg)
            except Exception as e:
                raise StationError(f"station {sid}: cannot build the frame sources: {e}") from e
        if ensemble is None:
            try:
                ensemble = build_ensemble(cfg, registry_root)
            except (ModelLoadError, RegistryError) as e:
                if not allow_no_model:
                    raise StationError(f"station {sid}: cannot load the models: {e}") from e
                note = f"no model could be loaded ({e}); frames were captured but not inspected"
        return cls(cfg, cfg_hash, sources=sources, ensemble=ensemble, note=note, headless=headless,
                   data_dir=Path(data_dir) if data_dir is not None else resolve_data_dir(cfg), base_dir=base_dir,
                   on_ack=on_ack)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, max_frames: int | None = None) -> Station:
        """Open the store, record config, models and run start, warm the models, start the pipeline."""
        if self.pipeline is not None:
            raise StationError(f"station {self.cfg.station.id}: run {self.run_id} was already started")
        cfg = self.cfg
        self._warmup()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.config_snapshot = snapshot_config(cfg, self.data_dir)
        except OSError as e:
            raise StationError(f"station {cfg.station.id}: data folder {self.data_dir} is not writable: {e}") from e
        st = cfg.storage
        images = None if st.store_images == "none" else ImageStore(self.data_dir / "images", st.image_format,
                                                                   st.jpeg_quality)
        try:  # signed audit checkpoints (config `audit`): a bad key stops the start, before any record
            checkpoints = checkpointer_for(cfg.audit, cfg.station.id, self.data_dir)
        except ValueError as e:
            raise StationError(f"station {cfg.station.id}: {e}") from e
        writer = StoreWriter(self.db_path, images, queue_max=_STORE_QUEUE_MAX,
                             outbox_hook=outbox.write_drafts if self.mes is not None else None,
                             checkpoints=checkpoints)
        try:
            writer.start()
        except Exception as e:
            raise StationError(f"station {cfg.station.id}: cannot open the store {self.db_path}: {e}") from e
        # Site incidents get their evidence (clip from a pre-event ring buffer, first / worst / last frames).
        evidence = EvidenceRecorder(cfg.site_config.evidence, self.data_dir, images) \
            if self.site_tally is not None else None
        self.store = StoreSink(writer, self.run_id, self.class_names, store_images=st.store_images,
                               metrics=self.metrics, on_ack=self.on_ack, mes=self.mes, evidence=evidence)
        members = self.ensemble.members if self.ensemble is not None else ()
        models = [(m.name, m.version, m.sha256, _model_path(m.detector)) for m in members]
        try:
            self.store.start_run(cfg.station.id, self.config_hash, canonical_json(cfg), self.model_set_version, models,
                                 summaries=self.data_dir / "runs")
        except Exception as e:
            self.store.close(5.0)
            raise StationError(f"station {cfg.station.id}: cannot record the run in {self.db_path}: {e}") from e
        self.metrics.add_gauge("store", lambda: len(self.store.pending_ids()) if self.store else 0)
        if self.mes is not None:
            # Forwarders resume whatever earlier runs left pending (an outage across a restart).
            try:
                self.mes.start(self.db_path)
            except Exception as e:
                self.mes.stop(5.0)
                self.store.close(5.0)
                raise StationError(f"station {cfg.station.id}: cannot start the MES outputs: {e}") from e
            self.metrics.add_gauge("mes", self.mes.stats)  # outbox depth / oldest age / last error per output
        self.pipeline = Pipeline(
            self.sources, self.judge, config_hash=self.config_hash, model_set_version=self.model_set_version,
            mode=cfg.flow.mode, queue_size=cfg.flow.queue_size, batch_size=cfg.flow.batch_size,
            sinks=[s for s in (self.tally, self.site_tally, self.store, self.bridge) if s is not None],
            wafer_tracker=self.tracker, metrics=self.metrics,
            frame_id_prefix=f"{self.run_id}/")
        if cfg.flow.mode == "inspection":
            # Every unit must be recorded: the first record the store refuses faults the station,
            # and while the store retries a failed commit no new unit is taken.
            self.store.on_failure = self.pipeline.fault
            self.store.on_hold, self.store.on_release = self.pipeline.hold, self.pipeline.release
        for src in self.sources:  # stalls, freezes, reconnects: stored as station events
            listen = getattr(src, "listen_events", None)
            if callable(listen):
                listen(self._source_event)
        self.pipeline.start(max_frames)
        # Scheduled reports: their own thread and connection, never in the pipeline's way.
        self.reports = ReportScheduler.for_station(cfg, db_path=self.db_path, data_dir=self.data_dir,
                                                   run_id=self.run_id)
        if self.reports is not None:
            self.reports.start()
        log.info("station %s: run %s started (%s flow, models %s, config %s, store %s)", cfg.station.id, self.run_id,
                 cfg.flow.mode, ", ".join(f"{m.name}@{m.version}" for m in members) or "none",
                 self.config_hash[:12], self.db_path)
        return self

    def _source_event(self, ev: SourceEvent) -> None:
        """On a capture thread: count it (live view, summary) and hand it to the store (never blocks)."""
        self.metrics.event(ev.kind, ev.source, ev.t, end=ev.end)
        (log.info if ev.end else log.warning)("source %s: %s %s at %s %s", ev.source, ev.kind,
                                              "ended" if ev.end else "began", ev.t.isoformat(), dict(ev.detail))
        if self.store is not None:
            self.store.record_event(ev.kind, ev.t, ev.source, end=ev.end, detail=ev.detail)

    def _warmup(self) -> None:
        # First-frame latency should not include the runtime's lazy setup; a model that cannot
        # run one image fails here, before the run is recorded.
        for m in self.ensemble.members if self.ensemble is not None else ():
            warm = getattr(m.detector, "warmup", None)
            if callable(warm):
                try:
                    warm(self.cfg.flow.batch_size)
                except Exception as e:
                    raise StationError(f"station {self.cfg.station.id}: model {m.name}@{m.version} fails on a "
                                       f"warm-up image: {type(e).__name__}: {e}") from e

    def run(self, max_frames: int | None = None) -> dict[str, Any]:
        """Start, wait until the sources end (or ``max_frames``, or ``request_stop()``), stop; the summary."""
        self.start(max_frames)
        assert self.pipeline is not None
        try:
            while not self.pipeline.wait(0.2):  # short waits: signal handlers run in between
                pass
        finally:
            self.stop()
        return self.summary()

    def request_stop(self) -> None:
        """Non-blocking (signal handlers): end capture; a second call gives up waiting for inference."""
        if self.pipeline is not None:
            self.pipeline.request_stop()

    def pause(self) -> None:
        if self.pipeline is not None:
            self.pipeline.pause()

    def resume(self) -> None:
        if self.pipeline is not None:
            self.pipeline.resume()

    def stop(self, timeout: float | None = None) -> bool:
        """Drain every accepted frame into the store, record the run end, close; idempotent.
        False when frames had to be recorded as NOT_INSPECTED or the store did not acknowledge all."""
        with self._stop_lock:
            if self._complete is not None:
                return self._complete
            if self.pipeline is None:
                self._complete = True
                return True
            if self.reports is not None:
                self.reports.stop()
            complete = self.pipeline.stop(timeout)
            if self.store is not None:
                try:
                    self.store.end_run(fault=self._fault_text() if self.metrics.state == "faulted" else None)
                except Exception as e:  # noqa: BLE001
                    self.metrics.error(f"store: run end not recorded in {self.db_path}: {e}")
                    complete = False
                self.store.close()
                complete = complete and self.store.failed == 0 and not self.store.pending_ids()
            if self.mes is not None:  # undelivered messages stay in the outbox for the next start
                self.mes.stop()
            self.bridge.close()
            self._complete = complete
            if self.site_tally is not None:  # scored once, after the last result
                self._site_summary = self._site(score=True)
            self._write_summary()
            if self.metrics.state == "faulted":
                log.error("station %s: run %s FAULTED: %s", self.cfg.station.id, self.run_id, self._fault_text())
            else:
                log.log(logging.INFO if complete else logging.WARNING, "station %s: run %s stopped (%s)",
                        self.cfg.station.id, self.run_id, "complete" if complete else
                        "INCOMPLETE: frames not inspected or not acknowledged by the store")
            return complete

    @property
    def state(self) -> str:
        return self.metrics.state

    def _fault_text(self) -> str:
        store = self.store
        if store is not None and store.failed:
            first = store.errors[0] if store.errors else "?"
            return (f"the store {self.db_path} refused {store.failed} record(s) (first: {first}); "
                    f"the station stopped taking units; {store.acked} recorded")
        errors = self.metrics.snapshot()["errors"]
        return errors[-1] if errors else "a pipeline stage failed"

    def snapshot(self) -> dict[str, Any]:
        """Live metrics (GUI status bar, `inspector run` progress)."""
        return self.metrics.snapshot()

    # --- summary ------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        snap = self.metrics.snapshot()
        lat = snap["latency_ms"]
        e2e = lat["end_to_end"] if lat["end_to_end"]["n"] else lat["record"]
        store = self.store
        return {
            "station": self.cfg.station.id,
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "model_set_version": self.model_set_version,
            "models": [f"{m.name}@{m.version}" for m in self.ensemble.members] if self.ensemble else [],
            "inspected": self.ensemble is not None,
            "note": self.note,
            "mode": self.cfg.flow.mode,
            "state": snap["state"],
            "complete": self._complete,
            "frames": snap["frames"]["accepted"],
            "decisions": snap["frames"]["decided"],
            "verdicts": verdict_counts(snap["verdicts"]),
            "dropped": snap["dropped"],
            "drops": snap["drops"],
            "corrupt": snap["corrupt"],
            "stored": None if store is None else store.acked,
            "store_failed": None if store is None else store.failed,
            # Units taken but not on record (the store refused them): by name, so they can be re-run.
            "unrecorded": None if store is None else _unrecorded(store),
            "fault": self._fault_text() if snap["state"] == "faulted" else None,
            "events": {"counts": snap["events"]["counts"], "open": snap["events"]["open"]},
            "seconds": snap["elapsed_s"],
            "throughput_fps": snap["throughput_fps"],
            "latency_ms": {"p50": e2e["p50"], "p99": e2e["p99"]},
            "stages_ms": {s: {"p50": v["p50"], "p99": v["p99"]} for s, v in lat.items()},
            "detector": snap["detector"],
            "lots": len(self.tally.lots),
            "lot_ids": sorted(self.tally.lots),
            "wafers": self._wafers(),
            "dies": self.tally.dies,
            "db": str(self.db_path),
            "data_dir": str(self.data_dir),
            "config_snapshot": None if self.config_snapshot is None else str(self.config_snapshot),
            "summary_file": None if self.summary_file is None else str(self.summary_file),
            "errors": snap["errors"],
            "mes": None if self.mes is None else self.mes.stats(),
            "site": self._site_summary if self._site_summary is not None else self._site(score=False),
        }

    def _site(self, score: bool) -> dict[str, Any] | None:
        """The construction-site facts (None for other stations); tracking scores only once stopped."""
        if self.site_tally is None:
            return None
        scorer = truth_scorer(truth_cameras(self.sources)) if score else None
        try:
            return self.site_tally.summary(self._camera_drops(), scorer)
        except Exception as e:  # noqa: BLE001 - a scoring failure must not cost the run its summary
            self.metrics.error(f"site summary: tracking scores failed: {type(e).__name__}: {e}")
            return self.site_tally.summary(self._camera_drops(), None)

    def _camera_drops(self) -> dict[str, int]:
        """Frames of each camera that never reached the model: dropped by the pipeline (latest wins)
        or by the source's own buffer (a video reader that fell behind); the metrics count both."""
        cameras = camera_ids(self.cfg)
        out: dict[str, int] = {}
        for name, n in self.metrics.snapshot()["drops"].items():
            out[cameras.get(name, name)] = out.get(cameras.get(name, name), 0) + int(n)
        return out

    def _wafers(self) -> dict[str, dict[str, Any]]:
        out = {w: dict(info) for w, info in self.tally.wafers.items()}
        events = {id(s): f for s, f in (self.store.wafer_events if self.store else [])}
        for s in list(self.tally.summaries):
            r = s.result
            info = out.setdefault(s.wafer, {"lot": s.lot, "truth_signature": None})
            fut = events.get(id(s))
            info.update(
                verdict=r.verdict.value, signature=r.signature, defect_fraction=round(float(r.defect_fraction), 4),
                dies_seen=s.dies_seen, dies=dict(Counter(r.die_map.values())), rules=[x.rule_id for x in r.reasons],
                map=die_map_ascii(self.layout, r.die_map) if self.layout is not None else None,
                audit_seq=fut.result() if fut is not None and fut.done() and fut.exception() is None else None)
        return out

    def _write_summary(self) -> None:
        # The run summary (wafer results included) next to the database: the audited wafer events
        # keep only a hash, this file is the content that hash can be checked against.
        try:
            folder = self.data_dir / "runs"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self.run_id}.json"
            self.summary_file = path
            path.write_text(json.dumps(self.summary(), indent=1, default=str), encoding="utf-8")
        except OSError as e:
            self.summary_file = None
            self.metrics.error(f"run summary not written to {self.data_dir / 'runs'}: {e}")


@contextlib.contextmanager
def stop_on_signals(station: Station) -> Iterator[None]:
    """SIGINT / SIGTERM stop the station gracefully (a second one gives up on inference, the rest
    is recorded as NOT_INSPECTED). Only the main thread can install handlers; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {s: signal.getsignal(s) for s in sigs}

    def handler(signum: int, _frame: Any) -> None:
        log.warning("signal %s: stopping the station (again to give up on frames not judged yet)",
                    signal.Signals(signum).name)
        station.request_stop()

    for s in sigs:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def display_available() -> bool:
    """Whether a GUI could open here (Windows and macOS always have a display)."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
