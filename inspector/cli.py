"""`inspector`: the station's command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from inspector import __version__
from inspector.cli_db import db
from inspector.cli_mes import mes
from inspector.cli_users import users


def _load(path: str | Path):
    from inspector.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        raise click.ClickException(f"invalid station config ({len(e.errors)} error(s)):\n{e}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="inspector")
def main() -> None:
    """Inspector: a computer-vision inspection station.

    A station captures frames, runs an ensemble of detection models, applies rules and records one
    traceable decision per frame. Start with `inspector demo`; check a config with
    `inspector config check FILE`.
    """


@main.group()
def config() -> None:
    """Validate station configs and export their JSON schema."""


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def config_check(files: tuple[str, ...]) -> None:
    """Validate station config FILES; print every error (file, field path, what was expected)."""
    from inspector.config import ConfigError, config_hash, load_config

    failed = 0
    for f in files:
        try:
            cfg = load_config(f)
        except ConfigError as e:
            failed += 1
            click.echo(f"{f}: {len(e.errors)} error(s)", err=True)
            click.echo(str(e), err=True)
            continue
        click.echo(f"{f}: ok (station {cfg.station.id}, domain {cfg.station.domain}, "
                   f"{len(cfg.models)} model(s), {len(cfg.rules)} rule(s), config {config_hash(cfg)[:12]})")
    if failed:
        sys.exit(1)


@config.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def config_schema(output: str | None) -> None:
    """Print the JSON schema of station configs (for editor completion and validation)."""
    from inspector.config import export_json_schema, write_json_schema

    if output:
        write_json_schema(Path(output))
    else:
        click.echo(json.dumps(export_json_schema(), indent=2, sort_keys=True))


_REGISTRY_HELP = "Model registry folder (default: $INSPECTOR_REGISTRY, else the shipped models/)."
_HEADLESS_HELP = "Never open the GUI (the default without a display or PySide6, and with --json)."
_GUI_HELP = ("Open the operator app even where no display is detected (e.g. on Qt's offscreen platform, "
             "for tests and screenshots).")
# Qt platforms that draw nowhere a person can see: a window there would wait for nobody.
_INVISIBLE_QPA = ("offscreen", "minimal")
_DATA_HELP = "Data folder for the database, images and config snapshots (default: $INSPECTOR_DATA, " \
             "else storage.data_dir of the config, else ./inspector-data)."


def _run_station(cfg, *, max_frames: int | None, registry: Path | None, data_dir: Path | None,
                 allow_no_model: bool) -> dict:
    """Build and run a station to its end (or max_frames, or SIGINT / SIGTERM: a graceful stop)."""
    from inspector.config import config_hash
    from inspector.station.station import Station, StationError, stop_on_signals

    try:
        station = Station.from_config(cfg, config_hash(cfg), registry_root=registry, data_dir=data_dir,
                                      allow_no_model=allow_no_model)
        with stop_on_signals(station):
            return station.run(max_frames)
    except StationError as e:
        raise click.ClickException(str(e)) from None


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def _print_summary(s: dict) -> None:
    click.echo(f"Station {s['station']}  run {s['run_id']}  config {s['config_hash'][:12]}  "
               f"models {s['model_set_version']}")
    if not s["inspected"]:
        click.echo(f"NOT INSPECTED: {s['note']}")
    unit = "dies" if s["dies"] else "frames"
    fps = "-" if s["throughput_fps"] is None else f"{s['throughput_fps']:.1f}"
    click.echo(f"{s['frames']} frames ({s['dies']} dies) from {s['lots']} lot(s), {len(s['wafers'])} wafer(s) in "
               f"{s['seconds']:.1f} s ({fps} {unit}/s), {s['decisions']} decisions, {s['stored']} stored")
    click.echo("verdicts: " + ", ".join(f"{k} {n}" for k, n in s["verdicts"].items()))
    st = s["stages_ms"]
    click.echo(f"latency per frame (capture -> stored): p50 {_fmt_ms(s['latency_ms']['p50'])}, "
               f"p99 {_fmt_ms(s['latency_ms']['p99'])}; inference p50 {_fmt_ms(st['inference']['p50'])}, "
               f"rules p50 {_fmt_ms(st['rules']['p50'])}")
    if s["dropped"] or s["corrupt"]:
        click.echo(f"dropped {s['dropped']} (monitoring: oldest frame dropped when behind), corrupt {s['corrupt']}")
    for w, info in s["wafers"].items():
        line = f"wafer {w}: truth {info.get('truth_signature') or '-'}"
        if "verdict" in info:
            line += (f" | found {info['signature']} | wafer {info['verdict']} | dies "
                     + ", ".join(f"{k} {n}" for k, n in sorted(info["dies"].items())))
        click.echo(line)
        for row in info.get("map") or ():
            click.echo("    " + row)
    if any("map" in i for i in s["wafers"].values()):
        click.echo("    (. pass  X fail  ? review  ! error  - not inspected)")
    for err in s["errors"][-5:]:
        click.echo(f"warning: {err}", err=True)
    click.echo(f"database {s['db']}")


def _finish(summary: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        _print_summary(summary)
    if not summary["complete"]:
        raise click.ClickException(
            f"run {summary['run_id']} did not complete cleanly (state {summary['state']}, "
            f"{summary['verdicts']['not_inspected']} not inspected, {summary['store_failed']} store failure(s)); "
            f"see {summary['summary_file'] or summary['db']}")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Station config (default: the embedded wafer demo, station_configs/wafer-demo.yaml).")
@click.option("--max-frames", type=click.IntRange(min=0), default=None, help="Stop after this many frames.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None, help=_REGISTRY_HELP)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--headless", is_flag=True, help=_HEADLESS_HELP)
@click.option("--gui", "force_gui", is_flag=True, help=_GUI_HELP)
def demo(config_path: str | None, max_frames: int | None, as_json: bool, registry: Path | None,
         data_dir: Path | None, headless: bool, force_gui: bool) -> None:
    """Run the wafer demo: inspect the synthetic wafer line of the demo config and summarise it.

    Every die gets one decision (pass / fail / review, or error), stored with the exact config
    and model versions in the data folder's database; every wafer gets a die map and its spatial
    signature. Without the shipped model every die is recorded as not inspected, and the demo
    says so. Ctrl-C stops gracefully (every captured die is still recorded).

    With a display (and PySide6) the demo opens the operator app and starts the line; with
    --max-frames the app closes when that run ends and prints the summary.
    """
    from inspector.config import config_hash, default_config_path
    from inspector.station.demo import run_demo
    from inspector.station.station import StationError

    cfg = _load(config_path or default_config_path())
    if _want_gui(headless, as_json, force_gui):
        path = Path(config_path or default_config_path())
        _finish_gui(_open_station_gui(cfg, config_path=path, data_dir=data_dir, registry=registry,
                                      allow_no_model=True, max_frames=max_frames))
        return
    try:
        summary = run_demo(cfg, config_hash(cfg), max_frames=max_frames, registry_root=registry, data_dir=data_dir)
    except StationError as e:
        raise click.ClickException(str(e)) from None
    _finish(summary, as_json)


@main.command()
@click.argument("config_arg", metavar="[CONFIG]", required=False, type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Station config YAML (or give it as the argument).")
@click.option("--headless", is_flag=True, help=_HEADLESS_HELP)
@click.option("--gui", "force_gui", is_flag=True, help=_GUI_HELP)
@click.option("--max-frames", type=click.IntRange(min=0), default=None,
              help="Stop after this many frames (default: until the sources end or Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as one JSON object on stdout.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None, help=_REGISTRY_HELP)
def run(config_arg: str | None, config_path: str | None, headless: bool, force_gui: bool, max_frames: int | None,
        as_json: bool, data_dir: Path | None, registry: Path | None) -> None:
    """Run a station: capture, inspect with the configured models, record every decision.

    Every captured frame gets exactly one decision in the database (inspection flow), with the
    config hash and model versions; wafers get a die map and an audited wafer result. SIGINT /
    SIGTERM stop gracefully: capture ends, every accepted frame is judged and stored; a second
    signal records the frames not judged yet as not inspected instead of waiting.

    With a display (and PySide6) the operator app opens, logs the operator in and starts the
    station (in its own process); with --max-frames the app closes when that run ends and prints
    the summary. --headless, or --json, never open it.
    """
    if config_arg and config_path and config_arg != config_path:
        raise click.UsageError(f"two configs given: {config_arg} and --config {config_path}; give one")
    path = config_path or config_arg
    if not path:
        raise click.UsageError("give the station config: inspector run --config FILE")
    cfg = _load(path)
    if _want_gui(headless, as_json, force_gui):
        _finish_gui(_open_station_gui(cfg, config_path=Path(path), data_dir=data_dir, registry=registry,
                                      allow_no_model=False, max_frames=max_frames))
        return
    summary = _run_station(cfg, max_frames=max_frames, registry=registry, data_dir=data_dir, allow_no_model=False)
    _finish(summary, as_json)


def _gui_possible(force: bool = False) -> tuple[bool, str]:
    """Whether the GUI can open here, and if not why: a display (DISPLAY / WAYLAND_DISPLAY, or a Qt
    platform a person can see in QT_QPA_PLATFORM, such as eglfs / linuxfb on panel PCs; not
    offscreen, unless ``force``) and PySide6."""
    import importlib.util
    import os

    from inspector.station.station import display_available

    qpa = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if not (force or display_available() or (qpa and qpa not in _INVISIBLE_QPA)):
        if qpa:
            return False, f"no display (Qt platform {qpa!r} draws nowhere visible; --gui opens the app anyway)"
        return False, "no display (DISPLAY / WAYLAND_DISPLAY / QT_QPA_PLATFORM not set)"
    if importlib.util.find_spec("PySide6") is None:
        return False, "PySide6 is not installed (pip install 'inspector-station[gui]')"
    return True, ""


def _want_gui(headless: bool, as_json: bool, force: bool = False) -> bool:
    """GUI unless --headless or --json (stdout is then a JSON document for a script); a one-line note
    on stderr when the GUI was wanted but cannot open. --gui with --headless or --json is refused."""
    if force and (headless or as_json):
        raise click.UsageError("--gui cannot be combined with --headless or --json")
    if headless or as_json:
        return False
    ok, why = _gui_possible(force)
    if not ok:
        if force:
            raise click.ClickException(f"--gui: the operator app cannot open: {why}")
        click.echo(f"inspector: running headless: {why}", err=True)
    return ok


def _open_station_gui(cfg, **kwargs) -> tuple[int, dict | None]:
    import importlib

    from inspector.config import config_hash

    try:
        app = importlib.import_module("inspector.gui.app")
    except ImportError as e:
        raise click.ClickException(f"the GUI needs PySide6 (pip install 'inspector-station[gui]'): {e}") from None
    return app.run_station_gui(cfg, config_hash(cfg), autostart=True, **kwargs)


def _finish_gui(result: tuple[int, dict | None]) -> None:
    code, summary = result
    if summary is not None:
        _finish(summary, False)
    if code:
        sys.exit(code)


def _open_gui(cfg, **kwargs) -> int:
    # The GUI is loaded by name: inspector.cli must not import inspector.gui or Qt (import-linter
    # layers), so the headless commands work on a station installed without the `gui` extra.
    import importlib

    from inspector.config import config_hash

    try:
        app = importlib.import_module("inspector.gui.app")
    except ImportError as e:
        raise click.ClickException(f"the GUI needs PySide6 (pip install 'inspector-station[gui]'): {e}") from None
    return int(app.run_gui(cfg, config_hash(cfg), **kwargs))


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True, help="Station config YAML.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None, help=_REGISTRY_HELP)
@click.option("--start", "autostart", is_flag=True, help="Start the station as soon as the window opens.")
def gui(config_path: str, data_dir: Path | None, registry: Path | None, autostart: bool) -> None:
    """Open the operator app: log in, live view, review queue, wafer map, history (and, for engineers,
    label editor, settings and models). Needs PySide6 and a display."""
    cfg = _load(config_path)
    sys.exit(_open_gui(cfg, config_path=Path(config_path), data_dir=data_dir, registry=registry, autostart=autostart))


main.add_command(db)  # `inspector db ...` lives in its own module
main.add_command(users)  # `inspector users ...` too
main.add_command(mes)  # `inspector mes ...`: the MES outbox


if __name__ == "__main__":
    main()
