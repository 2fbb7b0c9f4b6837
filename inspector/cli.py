"""`inspector`: the station's command line."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import click

from inspector import __version__


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
def demo(config_path: str | None, max_frames: int | None, as_json: bool) -> None:
    """Run the wafer demo: stream the synthetic wafer line of the demo config and summarise it.

    The config is validated and stored by hash in the data folder (INSPECTOR_DATA overrides it).
    """
    from inspector.config import config_hash, default_config_path, resolve_data_dir, snapshot_config
    from inspector.station.sources import build_sources

    cfg = _load(config_path or default_config_path())
    data_dir = resolve_data_dir(cfg)
    data_dir.mkdir(parents=True, exist_ok=True)
    snap = snapshot_config(cfg, data_dir)
    sources = build_sources(cfg)
    frames = 0
    lots: set[str] = set()
    wafers: dict[str, str] = {}
    truth = Counter()
    class_names = cfg.models[0].class_names
    t0 = time.monotonic()
    for src in sources:
        try:
            for frame in src.frames():
                frames += 1
                lots.add(str(frame.context.get("lot")))
                wafers[str(frame.context.get("wafer"))] = str(frame.context.get("wafer_signature"))
                gt = src.ground_truth(frame.frame_id) if hasattr(src, "ground_truth") else None
                if gt is not None:
                    truth.update(class_names[c] for c in gt.class_id.tolist())
                if max_frames is not None and frames >= max_frames:
                    break
        finally:
            src.close()
        if max_frames is not None and frames >= max_frames:
            break
    elapsed = time.monotonic() - t0
    summary = {
        "station": cfg.station.id,
        "config_hash": config_hash(cfg),
        "config_snapshot": str(snap),
        "data_dir": str(data_dir),
        "frames": frames,
        "lots": len(lots),
        "wafers": {w: {"signature": s} for w, s in sorted(wafers.items())},
        "ground_truth_defects": dict(sorted(truth.items())),
        "capture_fps": round(frames / elapsed, 1) if elapsed > 0 else None,
        "inspected": False,
        "note": "capture only: the station pipeline and the shipped wafer model are not part of this build yet",
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"Station {summary['station']}  config {summary['config_hash'][:12]}  data {data_dir}")
    click.echo(f"{frames} dies from {len(lots)} lot(s), {len(wafers)} wafer(s), {summary['capture_fps']} frames/s captured")
    for w, s in sorted(wafers.items()):
        click.echo(f"  {w}: signature {s}")
    click.echo("ground-truth defects: " + (", ".join(f"{k} {v}" for k, v in sorted(truth.items())) or "none"))
    click.echo(summary["note"])


if __name__ == "__main__":
    main()
