"""`inspector analyze`: recorded video files through a station's judge, recorded like live runs."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from inspector.cli.common import load_station_config, log_to_data_dir
from inspector.util.clickopts import json_option, progress_option
from inspector.util.progress import Progress

_DATA_HELP = "Data folder for the database and images (default: $INSPECTOR_DATA, else storage.data_dir of the " \
             "config, else ./inspector-data)."


def _utc(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected an ISO 8601 time such as 2026-05-01T06:00:00Z, got {value!r}") from None
    if t.tzinfo is None:
        raise click.BadParameter(f"expected a time with its zone (Z or +hh:mm), got {value!r}")
    return t


@contextlib.contextmanager
def _stop_on_sigint(analysis: Any) -> Iterator[None]:
    """Ctrl-C / SIGTERM: the file being analysed ends at the frame reached (its run is recorded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        signal.signal(s, lambda *_: analysis.request_stop())
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def print_file_summary(s: dict[str, Any]) -> None:
    skipped = ", ".join(f"{k} {n}" for k, n in sorted(s["skipped_by_reason"].items())) or "none"
    click.echo(f"{s['video']}: run {s['run_id']}, camera {s['camera']}, {s['frames']} frames "
               f"({s['duration_s']:.1f} s of video) in {s['seconds']:.1f} s = {s['x_realtime']}x real time")
    click.echo(f"  inferred {s['inferred']} ({s['inferred_per_s']}/s; every {s['stride']} frame(s), every "
               f"{s['dense_stride']} while a violation is pending, where "
               f"{'motion' if s['motion_gate'] else 'anything'}), skipped {s['skipped']}: {skipped}; "
               f"decoded {s['decoded_frames']} ({s['decoder']})")
    incidents = ", ".join(f"{k} {n}" for k, n in sorted(s["incidents"].items())) or "none"
    click.echo(f"  incidents: {incidents}; verdicts: "
               + (", ".join(f"{k} {n}" for k, n in sorted(s["verdicts"].items())) or "none"))
    for e in s["errors"][-5:]:
        click.echo(f"  error: {e}", err=True)


@click.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="Station config YAML: its models, site rules and the zones of its camera.")
@click.option("--camera", default=None,
              help="Camera id of the config whose zones apply to these files (default: its first camera).")
@click.option("--no-motion-gate", is_flag=True, help="Infer every sampled frame, moving or not.")
@click.option("--stride", type=click.IntRange(min=1), default=None,
              help="Sample every N-th frame (default: about 5 per second of video; 1 = every frame).")
@click.option("--dense-stride", type=click.IntRange(min=1), default=None,
              help="Sample every N-th frame while a violation is pending or an incident open (default: about "
                   "12 per second of video; never sparser than --stride).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Frames per inference batch.")
@click.option("--max-skip-s", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Longest stretch without inference in a still scene (keep it below the tracker's lost_s).")
@click.option("--start-utc", default=None,
              help="When the recording started (ISO 8601 with zone; default: file time minus duration).")
@click.option("--store-images", type=click.Choice(["all", "flagged", "none"]), default=None,
              help="Which analysed frames keep their image (default: the config's storage.store_images).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model registry folder (default: $INSPECTOR_REGISTRY, else the shipped models/).")
@json_option
@progress_option
def analyze(videos: tuple[str, ...], config_path: str, camera: str | None, no_motion_gate: bool, stride: int | None,
            dense_stride: int | None, batch: int, max_skip_s: float, start_utc: str | None, store_images: str | None, data_dir: Path | None,
            registry: Path | None, as_json: bool, progress: Progress) -> None:
    """Analyse recorded video files with a station's models and rules, fast.

    Each file is decoded once and becomes one run in the store: decisions, incidents and the
    stretches looked at (inferred where there was motion, skipped where the scene was static,
    never longer than --max-skip-s without a look). Prints per file the frames, the frames
    inferred and skipped (by reason), the speed as a multiple of real time and incidents by kind.
    Ctrl-C ends the file being analysed at the frame reached and records its run.
    """
    from dataclasses import replace

    from inspector.capture.motion_gate import MotionGateParams
    from inspector.config import config_hash, resolve_data_dir
    from inspector.runtime.registry import RegistryError
    from inspector.station.archive import AnalyzeOptions, ArchiveAnalysis, ArchiveError
    from inspector.station.ensemble_builder import ModelLoadError, build_ensemble

    cfg = load_station_config(config_path)
    folder = data_dir if data_dir is not None else resolve_data_dir(cfg)
    log_to_data_dir(folder)
    options = AnalyzeOptions(motion_gate=not no_motion_gate, stride=stride, dense_stride=dense_stride, batch=batch,
                             gate=replace(MotionGateParams(), max_skip_s=max_skip_s), camera=camera,
                             start_utc=_utc(start_utc), store_images=store_images)
    try:
        ensemble = build_ensemble(cfg, registry)
    except (ModelLoadError, RegistryError) as e:
        raise click.ClickException(f"station {cfg.station.id}: cannot load the models: {e}") from None
    summaries, failed = [], []
    try:
        analysis = ArchiveAnalysis(cfg, config_hash(cfg), ensemble=ensemble, data_dir=folder, options=options,
                                   base_dir=Path(config_path).resolve().parent)
    except ArchiveError as e:
        raise click.ClickException(str(e)) from None
    with _stop_on_sigint(analysis):
        for v in videos:
            if analysis.stop_requested.is_set():
                break
            try:
                s = analysis.analyze(v, progress)
            except ArchiveError as e:
                failed.append({"video": v, "error": str(e)})
                click.echo(f"error: {e}", err=True)
                continue
            summaries.append(s)
            if not as_json:
                print_file_summary(s)
    if as_json:
        click.echo(json.dumps({"station": cfg.station.id, "files": summaries, "failed": failed}, indent=1,
                              default=str))
    if failed or any(s["errors"] for s in summaries):
        raise SystemExit(1)


__all__ = ["analyze"]
