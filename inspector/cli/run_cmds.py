"""`inspector demo`, `run` and `gui`: run a station (headless or in the operator app), open the app."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from inspector.cli.common import load_station_config, log_to_data_dir
from inspector.cli.gui_launch import finish_gui, open_gui, open_station_gui, want_gui
from inspector.cli.run_progress import station_progress
from inspector.cli.run_summary import finish
from inspector.cli.run_watchdog import station_watchdog
from inspector.util.clickopts import json_option, progress_option
from inspector.util.progress import Progress

_REGISTRY_HELP = "Model registry folder (default: $INSPECTOR_REGISTRY, else the shipped models/)."
_HEADLESS_HELP = "Never open the GUI (the default without a display or PySide6, and with --json)."
_GUI_HELP = ("Open the operator app even where no display is detected (e.g. on Qt's offscreen platform, "
             "for tests and screenshots).")
_DATA_HELP = "Data folder for the database, images and config snapshots (default: $INSPECTOR_DATA, " \
             "else storage.data_dir of the config, else ./inspector-data)."


def _log_to_station_folder(cfg, data_dir: Path | None) -> None:
    """Log into the station's data folder (resolved as the station resolves it), before the station
    is built: what model loading logs (providers chosen, fallbacks) belongs in that file."""
    from inspector.config import resolve_data_dir

    log_to_data_dir(data_dir if data_dir is not None else resolve_data_dir(cfg))


def _run_station(cfg, *, max_frames: int | None, registry: Path | None, data_dir: Path | None,
                 allow_no_model: bool, progress: Progress) -> dict:
    """Build and run a station to its end (or max_frames, or SIGINT / SIGTERM: a graceful stop).
    ``allow_no_model`` (the demo): no loadable model records every frame as not inspected."""
    from inspector.config import config_hash
    from inspector.station.station import Station, StationError, stop_on_signals

    try:
        station = Station.from_config(cfg, config_hash(cfg), registry_root=registry, data_dir=data_dir,
                                      allow_no_model=allow_no_model)
        # under systemd: READY once running, WATCHDOG only while it makes progress (run_watchdog)
        with stop_on_signals(station), station_progress(station, progress, total=max_frames), \
                station_watchdog(station):
            return station.run(max_frames)
    except StationError as e:
        raise click.ClickException(str(e)) from None


@click.command()
@click.argument("name", required=False, type=click.Choice(["wafer", "construction"]))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Station config (default: the named demo's shipped config; wafer: station_configs/wafer-demo.yaml, "
                   "construction: station_configs/construction-demo.yaml).")
@click.option("--max-frames", type=click.IntRange(min=0), default=None, help="Stop after this many frames.")
@json_option
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None, help=_REGISTRY_HELP)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--headless", is_flag=True, help=_HEADLESS_HELP)
@click.option("--gui", "force_gui", is_flag=True, help=_GUI_HELP)
@progress_option
def demo(name: str | None, config_path: str | None, max_frames: int | None, as_json: bool, registry: Path | None,
         data_dir: Path | None, headless: bool, force_gui: bool, progress: Progress) -> None:
    """Run a demo station on synthetic data and summarise it: NAME is wafer (the default) or
    construction, or give any station config with --config.

    wafer: every die of the synthetic line gets one decision (pass / fail / review, or error),
    stored with the exact config and model versions; every wafer gets a die map and its spatial
    signature.

    construction: two synthetic site cameras played live (monitoring flow: the latest frame wins,
    every drop counted); workers are tracked, hard hats and vests associated, danger and PPE zones
    checked, and persistent violations become incidents. The summary gives frames, drops, tracks,
    incidents by kind and the tracker's MOTA / IDF1 against the cameras' exact ground truth.

    Without the shipped model every frame is recorded as not inspected, and the demo says so.
    Ctrl-C stops gracefully (every captured frame is still recorded). With a display (and PySide6)
    the demo opens the operator app and starts the station; with --max-frames the app closes when
    that run ends and prints the summary.
    """
    from inspector.station.demo import demo_config_path

    if name and config_path:
        raise click.UsageError(f"give the demo name ({name}) or --config {config_path}, not both")
    path = Path(config_path) if config_path else demo_config_path(name or "wafer")
    cfg = load_station_config(path)
    _log_to_station_folder(cfg, data_dir)
    if want_gui(headless, as_json, force_gui):
        finish_gui(open_station_gui(cfg, config_path=path, data_dir=data_dir, registry=registry,
                                    allow_no_model=True, max_frames=max_frames))
        return
    summary = _run_station(cfg, max_frames=max_frames, registry=registry, data_dir=data_dir, allow_no_model=True,
                           progress=progress)
    finish(summary, as_json)


@click.command()
@click.argument("config_arg", metavar="[CONFIG]", required=False, type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Station config YAML (or give it as the argument).")
@click.option("--headless", is_flag=True, help=_HEADLESS_HELP)
@click.option("--gui", "force_gui", is_flag=True, help=_GUI_HELP)
@click.option("--max-frames", type=click.IntRange(min=0), default=None,
              help="Stop after this many frames (default: until the sources end or Ctrl-C).")
@json_option
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None, help=_REGISTRY_HELP)
@progress_option
def run(config_arg: str | None, config_path: str | None, headless: bool, force_gui: bool, max_frames: int | None,
        as_json: bool, data_dir: Path | None, registry: Path | None, progress: Progress) -> None:
    """Run a station: capture, inspect with the configured models, record every decision.

    Every captured frame gets exactly one decision in the database (inspection flow), with the
    config hash and model versions; wafers get a die map and an audited wafer result. SIGINT /
    SIGTERM stop gracefully: capture ends, every accepted frame is judged and stored; a second
    signal records the frames not judged yet as not inspected instead of waiting.

    With a display (and PySide6) the operator app opens, logs the operator in and starts the
    station (in its own process); with --max-frames the app closes when that run ends and prints
    the summary. --headless, or --json, never open it.

    Exit status: 0 when every unit was judged and recorded; 1 when the run did not complete
    cleanly (units not inspected, records not acknowledged); 3 when the station faulted (the
    store refused a record: it stopped taking units; the summary names those not recorded).
    """
    if config_arg and config_path and config_arg != config_path:
        raise click.UsageError(f"two configs given: {config_arg} and --config {config_path}; give one")
    path = config_path or config_arg
    if not path:
        raise click.UsageError("give the station config: inspector run --config FILE")
    cfg = load_station_config(path)
    _log_to_station_folder(cfg, data_dir)
    if want_gui(headless, as_json, force_gui):
        finish_gui(open_station_gui(cfg, config_path=Path(path), data_dir=data_dir, registry=registry,
                                    allow_no_model=False, max_frames=max_frames))
        return
    summary = _run_station(cfg, max_frames=max_frames, registry=registry, data_dir=data_dir, allow_no_model=False,
                           progress=progress)
    finish(summary, as_json)


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True, help="Station config YAML.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None, help=_REGISTRY_HELP)
@click.option("--start", "autostart", is_flag=True, help="Start the station as soon as the window opens.")
def gui(config_path: str, data_dir: Path | None, registry: Path | None, autostart: bool) -> None:
    """Open the operator app: log in, live view, review queue, wafer map, history (and, for engineers,
    label editor, settings and models). Needs PySide6 and a display."""
    cfg = load_station_config(config_path)
    _log_to_station_folder(cfg, data_dir)
    sys.exit(open_gui(cfg, config_path=Path(config_path), data_dir=data_dir, registry=registry, autostart=autostart))
