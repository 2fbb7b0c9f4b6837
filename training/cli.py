"""`inspector-train`: datasets, training and model management (one sub-command per task)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from inspector import __version__
from inspector.util.clickopts import (
    current_log_level,
    json_option,
    log_level_everywhere,
    log_level_option,
    progress_option,
)
from inspector.util.logs import setup_logging
from inspector.util.progress import Progress


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="inspector-train")
@log_level_option
def main() -> None:
    """Inspector training tools: build datasets, train, evaluate and manage models.

    Everything runs offline; datasets are written in the YOLO format.
    """
    # Without --log-level: the default set-up (warnings on stderr, or $INSPECTOR_LOG_LEVEL); a
    # --log-level given after the sub-command replaces it when that is parsed.
    setup_logging(current_log_level(default="") or None)


@main.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--images", "-n", type=click.IntRange(min=1), required=True,
              help="Exact number of images to write (train + val).")
@click.option("--seed", "-s", type=click.IntRange(min=0), required=True,
              help="Generator seed: the same seed gives byte-identical images and labels.")
@click.option("--domain", type=click.Choice(["wafer", "site"]), default="wafer", show_default=True,
              help="wafer: die images of the synthetic wafer line; site: frames of synthetic construction-site "
                   "cameras (hat, vest, worker).")
@click.option("--die-px", type=click.IntRange(min=64), default=640, show_default=True,
              help="Side of each square die image in pixels (wafer).")
@click.option("--width", type=click.IntRange(min=160), default=960, show_default=True,
              help="Frame width in pixels (site).")
@click.option("--height", type=click.IntRange(min=120), default=540, show_default=True,
              help="Frame height in pixels (site).")
@click.option("--frames-per-scene", type=click.IntRange(min=1), default=20, show_default=True,
              help="Frames taken from each scene: one camera, 1.5 s apart (site).")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.2, show_default=True,
              help="Share of images in the validation split (split by lot for wafers, by scene for sites; "
                   "never by image).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per CPU).")
@log_level_option
@json_option
@progress_option
def synth(out: Path, images: int, seed: int, domain: str, die_px: int, width: int, height: int,
          frames_per_scene: int, val_fraction: float, workers: int | None, as_json: bool, progress: Progress) -> None:
    """Render a synthetic dataset into OUT (YOLO format: images/, labels/, data.yaml, manifest.json).

    wafer: five classes (particle, scratch, residue, pattern, edge_chip) on die images. site: three
    classes (hat, vest, worker) on frames of synthetic site cameras. The manifest records the seed,
    the generator version, the split, the box counts per class and split and the content hash.
    """
    if out.exists() and any(out.iterdir()):
        click.echo(f"note: {out} is not empty; files with the same names are overwritten", err=True)
    if domain == "site":
        from training.synth_site import write_site_dataset  # lazy: keep `--help` fast

        summary = write_site_dataset(out, images, seed, width=width, height=height, val_fraction=val_fraction,
                                     frames_per_scene=frames_per_scene, workers=workers, progress=progress)
        if as_json:
            click.echo(json.dumps(summary, sort_keys=True, default=str))
            return
        imgs, boxes = summary["images"], summary["boxes"]
        click.echo(f"wrote {imgs['train'] + imgs['val']} images to {summary['out']} in {summary['seconds']:.1f} s")
        for split in ("train", "val"):
            per_class = ", ".join(f"{c} {n}" for c, n in boxes[split].items())
            click.echo(f"  {split:5s} {imgs[split]:6d} images ({summary['scenes'][split]} scenes): {per_class}")
        click.echo(f"  data: {summary['data_yaml']}")
        return
    from training.synth import write_yolo_dataset  # lazy: keep `--help` fast

    summary = write_yolo_dataset(out, images, seed, die_px=die_px, val_fraction=val_fraction, workers=workers,
                                 progress=progress)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True, default=str))
        return
    imgs, clean, boxes = summary["images"], summary["clean_images"], summary["boxes"]
    click.echo(f"wrote {imgs['train'] + imgs['val']} images to {summary['out']} in {summary['seconds']:.1f} s")
    for split in ("train", "val"):
        per_class = ", ".join(f"{c} {n}" for c, n in boxes[split].items())
        click.echo(f"  {split:5s} {imgs[split]:6d} images ({clean[split]} clean, {summary['wafers'][split]} wafers): "
                   f"{per_class}")
    share = ", ".join(f"{c} {v:.0%}" for c, v in summary["class_share"].items())
    click.echo(f"  class share of boxes: {share}")
    click.echo(f"  data: {summary['data_yaml']}")


@main.command("train")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The dataset's data.yaml (YOLO format), e.g. from `inspector-train synth` or `dataset`.")
@click.option("--model", default="yolo11n.yaml", show_default=True,
              help="A model YAML to train from scratch (yolo11n.yaml, yolo11s.yaml) or a .pt checkpoint to fine-tune.")
@click.option("--imgsz", type=click.IntRange(min=32), default=640, show_default=True,
              help="Training image size (multiple of 32); the station runs the model at this size.")
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True, help="Maximum epochs.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images per batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (deterministic training).")
@click.option("--device", default="cpu", show_default=True, help="cpu, or a CUDA device such as 0.")
@click.option("--patience", type=click.IntRange(min=1), default=15, show_default=True,
              help="Early stopping: stop after this many epochs without validation improvement.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data-loading workers.")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True,
              help="Folder holding run folders.")
@click.option("--name", default="train", show_default=True, help="Run folder name under --project.")
@click.option("--time-hours", type=click.FloatRange(min=0.01), default=None,
              help="Wall-clock budget in hours: overrides --epochs and fits the learning-rate schedule to it.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any other ultralytics training argument, e.g. --set flipud=0.5 (repeatable).")
@click.option("--resume", is_flag=True, help="Resume the interrupted run --project/--name from its last.pt.")
@log_level_option
@progress_option
def train_cmd(data: Path, model: str, imgsz: int, epochs: int, batch: int, seed: int, device: str, patience: int,
              workers: int, project: Path, name: str, time_hours: float | None, overrides: tuple[str, ...],
              resume: bool, progress: Progress) -> None:
    """Train a detector with ultralytics, offline; results, plots and logs go to PROJECT/NAME.

    Models are built from YAML (no pretrained download) or fine-tuned from a local .pt. Progress is
    printed per epoch; an interrupted run continues with --resume.
    """
    from training.train import TrainError, TrainSpec, parse_overrides, train

    try:
        extra = parse_overrides(overrides)
    except TrainError as e:
        raise click.BadParameter(str(e), param_hint="--set") from None
    if time_hours is not None:
        extra["time"] = time_hours
    spec = TrainSpec(data=data, model=model, imgsz=imgsz, epochs=epochs, batch=batch, seed=seed, device=device,
                     patience=patience, workers=workers, project=project, name=name, extra=extra)
    try:
        result = train(spec, resume=resume, progress=progress)
    except TrainError as e:
        raise click.ClickException(str(e)) from None
    m = result.metrics
    click.echo(f"run {result.run_dir} ({result.seconds / 60:.1f} min): best {result.best}")
    if m:
        click.echo(f"best epoch {m['epoch']:.0f}: mAP50 {m['map50']:.3f}  mAP50-95 {m['map50_95']:.3f}  "
                   f"P {m['precision']:.3f}  R {m['recall']:.3f}")


def _register_commands() -> None:
    """Sub-commands that live in their own modules (one module per area)."""
    from training.commands.dataset import dataset
    from training.commands.evaluate_export import evaluate, export
    from training.commands.registry_cmds import add_registry_commands
    from training.commands.retrain_cmd import retrain
    from training.commands.signing_cmds import keygen, sign

    main.add_command(dataset)
    main.add_command(evaluate)
    main.add_command(export)
    main.add_command(retrain)
    add_registry_commands(main)
    main.add_command(sign)  # signed model manifests
    main.add_command(keygen)
    log_level_everywhere(main)  # the commands that do not declare it still take --log-level


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
