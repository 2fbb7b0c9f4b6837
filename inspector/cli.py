"""`inspector`: the station's command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from inspector import __version__
from inspector.cli_db import db


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


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Station config (default: the embedded wafer demo, station_configs/wafer-demo.yaml).")
@click.option("--max-frames", type=int, default=None, help="Stop after this many frames.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model registry folder (default: $INSPECTOR_REGISTRY, else the shipped models/).")
def demo(config_path: str | None, max_frames: int | None, as_json: bool, registry: Path | None) -> None:
    """Run the wafer demo: inspect the synthetic wafer line of the demo config and summarise it.

    Every die gets one decision (pass / fail / review, or error), every wafer a die map and its
    spatial signature. The config is validated and stored by hash in the data folder
    (INSPECTOR_DATA overrides it).
    """
    from inspector.config import config_hash, default_config_path, resolve_data_dir, snapshot_config
    from inspector.station.demo import run_demo

    cfg = _load(config_path or default_config_path())
    data_dir = resolve_data_dir(cfg)
    data_dir.mkdir(parents=True, exist_ok=True)
    snap = snapshot_config(cfg, data_dir)
    summary = run_demo(cfg, config_hash(cfg), max_frames=max_frames, registry_root=registry)
    summary.update({"config_snapshot": str(snap), "data_dir": str(data_dir)})
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"Station {summary['station']}  config {summary['config_hash'][:12]}  data {data_dir}")
    if not summary["inspected"]:
        click.echo(f"NOT INSPECTED: {summary['note']}")
    click.echo(f"{summary['frames']} dies from {summary['lots']} lot(s), {len(summary['wafers'])} wafer(s) in "
               f"{summary['seconds']:.1f} s ({summary['throughput_fps']} dies/s)")
    if summary["inspected"]:
        v = summary["verdicts"]
        click.echo("verdicts: " + ", ".join(f"{k} {n}" for k, n in v.items()))
        lat = summary["latency_ms"]
        click.echo(f"latency per die: p50 {lat['p50']} ms, p99 {lat['p99']} ms  (models {summary['model_set']})")
    for w, info in summary["wafers"].items():
        line = f"  {w}: truth {info['truth_signature']}"
        if "verdict" in info:
            line += (f" | found {info['signature']} | wafer {info['verdict']} | dies "
                     + ", ".join(f"{k} {n}" for k, n in info["dies"].items()))
        click.echo(line)


main.add_command(db)  # `inspector db ...` lives in its own module


if __name__ == "__main__":
    main()
