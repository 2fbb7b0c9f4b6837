"""`inspector-train dataset`: build a YOLO dataset (and COCO JSON) from labelled folders or from the
operator-confirmed reviews in a station's store (``--from-db``, see training/from_db.py).

With ``--json`` stdout carries one JSON summary (:func:`summary`); the readable report, progress
(``--progress``) and logs (``--log-level``) go to stderr.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from inspector.util.clickopts import current_log_level, json_option, log_level_option, progress_option
from inspector.util.logs import setup_logging
from inspector.util.progress import Progress

if TYPE_CHECKING:
    from training.datasets import DatasetBuild
    from training.from_db import DbExport

_SOURCES = ("from_yolo", "from_coco", "from_voc", "from_deeppcb", "from_pictor", "from_db")


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    p = Path(value)
    if p.is_file():
        return [s.strip() for s in p.read_text().splitlines() if s.strip()]
    return [s.strip() for s in value.split(",") if s.strip()]


@click.command("dataset")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from-yolo", type=click.Path(exists=True, path_type=Path),
              help="A YOLO dataset: its data.yaml, or a folder (data.yaml inside, or images with labels/ "
                   "beside them and classes.txt).")
@click.option("--from-coco", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A COCO detection JSON file (needs --images).")
@click.option("--images", "images_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder the COCO file_name entries (or VOC <filename>s) are relative to; with --from-db the "
                   "image store root (default: images/ beside the database).")
@click.option("--from-voc", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of Pascal VOC XML files (images beside them, in JPEGImages/, or in --images).")
@click.option("--from-deeppcb", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The DeepPCB folder holding trainval.txt and PCBData/ (see datasets/deeppcb.md).")
@click.option("--deeppcb-mode", type=click.Choice(["plain", "diff", "stack"]), default="plain", show_default=True,
              help="plain: the test image. diff: PNG with B=test, G=template, R=|test-template|. "
                   "stack: B=test, G=template, R=0. The model input stays 3 channels.")
@click.option("--from-pictor", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The Pictor-PPE folder holding images/ and labels/ (see datasets/pictor-ppe.md).")
@click.option("--pictor-approach", type=click.Choice(["01", "02"]), default="01", show_default=True,
              help="01: hat, vest, worker boxes. 02: one box per worker with W, WH, WV, WHV.")
@click.option("--pictor-splits", default="train,valid", show_default=True,
              help="Comma-separated Pictor label splits to pool before the group split.")
@click.option("--from-db", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A station's store database (SQLite): export the frames operators confirmed by review "
                   "(the latest review of each frame; unreviewed frames are left out). accept: the station's "
                   "kept detections; reject_false_alarm: an empty label file (a negative) except the boxes its "
                   "labels keep; change_class and relabel: the review's labels are the frame's full set. Labels: "
                   '[{"class": name, "xyxy": [x0, y0, x1, y1]}] in original image pixels. Writes provenance.jsonl '
                   "(image -> frame, review id, reviewer, action, time).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With --from-db: the station config whose models' class_names give the dataset's class names "
                   "and order (default: the named classes in the database, sorted by class id).")
@click.option("--names", "names", default=None,
              help="Class names (comma-separated, or a file with one per line) for YOLO / VOC sources that "
                   "carry none, or to replace theirs (same order as the class ids); with --from-db the dataset's "
                   "class names and order (overrides --config).")
@click.option("--group-by", default="auto", show_default=True,
              help="Split unit: auto (the source's natural unit) | none (each image) | parent (folder name) | "
                   "similar (near-duplicate clusters) | regex:<pattern with (?P<g>...)> on the relative path | "
                   "column:<name> of a CSV sidecar. With --from-db: auto (lot when every frame has one, else "
                   "camera-day) | lot | wafer | camera-day | none.")
@click.option("--group-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV for --group-by column:<name>, with a 'file' column (default: groups.csv in the source folder).")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.2, show_default=True,
              help="Target share of images in val (whole groups, so approximate).")
@click.option("--test-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
              help="Target share of images in a test split (0: no test split).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Split seed: the same seed and data give the same split.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Keep only the first N groups (sha256 order of the group name) for a quick, small build.")
@click.option("--copy-mode", type=click.Choice(["link", "copy"]), default=None,
              help="link: hard-link source images (symlink across file systems); copy: copy them. Default: link, "
                   "but copy with --from-db (a link into the image store would let a dataset edit change the "
                   "stored evidence).")
@click.option("--bad-labels", type=click.Choice(["image", "box"]), default="image", show_default=True,
              help="image: exclude an image with any bad label; box: drop only the bad boxes. Both are reported.")
@click.option("--coco", is_flag=True, help="Also write COCO JSON per split to OUT/coco/<split>.json.")
@click.option("--overwrite", is_flag=True,
              help="Replace a dataset already in OUT (only the files this command writes).")
@json_option
@progress_option
@log_level_option
def dataset(out: Path, from_yolo: Path | None, from_coco: Path | None, images_dir: Path | None,
            from_voc: Path | None, from_deeppcb: Path | None, deeppcb_mode: str, from_pictor: Path | None,
            pictor_approach: str, pictor_splits: str, from_db: Path | None, config_path: Path | None,
            names: str | None, group_by: str, group_csv: Path | None, val_fraction: float, test_fraction: float,
            seed: int, limit: int | None, copy_mode: str | None, bad_labels: str, coco: bool,
            overwrite: bool, as_json: bool, progress: Progress) -> None:
    """Build a YOLO-format dataset in OUT from one labelled source.

    Sources: a YOLO dataset, COCO JSON, Pascal VOC XML, DeepPCB or Pictor-PPE. Labels are
    validated: bad ones (out-of-range coordinates, unknown classes, malformed lines, missing,
    empty or unreadable images) are excluded and listed with file and line in OUT/issues.txt.

    Or --from-db DB: the labels operators confirmed in a station's store. Only the latest
    review of a frame counts; unreviewed frames are not exported. accept: the station's kept
    detections are the labels. reject_false_alarm: a negative (empty label file), except the
    boxes the review's labels keep. change_class, relabel: the review's labels are the full set
    of boxes. Labels are [{"class": name, "xyxy": [x0, y0, x1, y1]}] in pixels of the original
    image. Bad labels (unknown class, outside the image, zero size) and unusable images
    (pruned, missing, changed) are listed with frame and review id in OUT/issues.txt;
    OUT/provenance.jsonl maps every exported image to its review.

    The split is by group (lot / wafer, board, camera / day, near-duplicate cluster; see
    --group-by), never by frame, and deterministic for a seed. OUT/manifest.json records the
    sources, counts per class and split, the split rule, the groups of each split and a content
    hash of the images and labels.

    With --json, stdout holds one JSON object: counts per split and class, the content hash, the
    number of issues and the paths written.
    """
    from training.datasets import export_coco, split_by_group, write_yolo
    from training.importers import read_coco, read_deeppcb, read_pictor, read_voc, read_yolo

    setup_logging(current_log_level(default="") or None)

    given = [k for k, v in zip(_SOURCES, (from_yolo, from_coco, from_voc, from_deeppcb, from_pictor, from_db)) if v]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --from-yolo, --from-coco, --from-voc, --from-deeppcb, "
                               f"--from-pictor, --from-db (got {len(given)})")
    if config_path and not from_db:
        raise click.UsageError("--config goes with --from-db (it gives the class names of the station's models)")
    if from_db and group_csv:
        raise click.UsageError("--group-csv does not apply to --from-db (groups come from the frames' lot, wafer, "
                               "camera and capture day)")
    if from_coco and images_dir is None:
        raise click.UsageError("--from-coco needs --images DIR")
    if val_fraction + test_fraction >= 1.0:
        raise click.UsageError("--val-fraction + --test-fraction must be below 1")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise click.UsageError(f"{out} is not empty; pass --overwrite to replace the dataset there")
    common = {"group_by": group_by, "group_csv": group_csv, "limit": limit, "bad_labels": bad_labels,
              "progress": progress}
    db_export = None
    try:
        if from_db:
            db_export = _read_from_db(from_db, images_dir, config_path, names, group_by, limit, bad_labels, progress)
            build = db_export.build
        elif from_yolo:
            build = read_yolo(from_yolo, names=_names(names), **common)
        elif from_coco:
            build = read_coco(from_coco, images_dir, **common)
        elif from_voc:
            build = read_voc(from_voc, images_dir=images_dir, names=_names(names), **common)
        elif from_deeppcb:
            build = read_deeppcb(from_deeppcb, deeppcb_mode, **common)
        else:
            splits_ = tuple(s.strip() for s in pictor_splits.split(",") if s.strip())
            build = read_pictor(from_pictor, pictor_approach, splits_, **common)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if not build.samples:
        for issue in build.issues[:20]:
            click.echo(f"  {issue}", err=True)
        raise click.ClickException(f"no usable images ({len(build.issues)} issue(s))")
    splits = split_by_group(build.samples, val_fraction, seed, test_fraction)
    try:
        if db_export is not None:
            from training.from_db import write_db_dataset

            manifest = write_db_dataset(db_export, out, splits, copy_mode=copy_mode or "copy", overwrite=overwrite,
                                        progress=progress)
        else:
            manifest = write_yolo(build, out, splits, copy_mode=copy_mode or "link", overwrite=overwrite,
                                  progress=progress)
        if coco:
            for sp in manifest["images"]:
                export_coco(out, out / "coco" / f"{sp}.json", sp)
    except (ValueError, OSError) as e:
        raise click.ClickException(f"writing the dataset to {out} failed: {e}") from None
    _report(build, manifest, out, seed, coco, err=as_json)
    if as_json:
        click.echo(json.dumps(summary(build, manifest, out, coco), ensure_ascii=False))


def summary(build: DatasetBuild, manifest: Mapping[str, Any], out: Path, coco: bool) -> dict[str, Any]:
    """What ``--json`` prints: counts per split and class, the content hash, issues and the paths written."""
    out = out.resolve()
    prov = manifest.get("provenance")
    return {
        "out": str(out), "data_yaml": str(out / "data.yaml"), "manifest": str(out / "manifest.json"),
        "issues_file": str(out / "issues.txt"), "issues": len(build.issues),
        "content_hash": manifest["content_hash"], "class_names": list(build.class_names),
        "images": dict(manifest["images"]), "background_images": dict(manifest["background_images"]),
        "boxes": {sp: dict(b) for sp, b in manifest["boxes"].items()},
        "groups": {sp: len(g) for sp, g in manifest["groups"].items()}, "group_rule": build.group_rule,
        "split": manifest["split"], "notes": list(build.notes),
        "coco": {sp: str(out / "coco" / f"{sp}.json") for sp in manifest["images"]} if coco else None,
        "provenance": str(out / prov["file"]) if prov else None,
    }


def _report(build: DatasetBuild, manifest: Mapping[str, Any], out: Path, seed: int, coco: bool, err: bool) -> None:
    """The readable report (on stderr when stdout carries the JSON)."""
    def echo(msg: str, to_err: bool = False) -> None:
        click.echo(msg, err=err or to_err)

    n_img = sum(manifest["images"].values())
    n_box = sum(sum(b.values()) for b in manifest["boxes"].values())
    echo(f"wrote {n_img} images ({n_box} boxes, {len(build.class_names)} classes) to {out.resolve()}")
    echo(f"  split by group ({build.group_rule}), seed {seed}")
    for sp, n in manifest["images"].items():
        per_class = ", ".join(f"{c} {k}" for c, k in manifest["boxes"][sp].items())
        echo(f"  {sp:5s} {n:6d} images ({manifest['background_images'][sp]} background, "
             f"{len(manifest['groups'][sp])} groups): {per_class}")
    for note in build.notes:
        echo(f"  note: {note}")
    for sp in ("train", "val"):
        if n_img and not manifest["images"].get(sp):
            # Whole groups go to one split: too few groups leave one split empty, and training needs both.
            echo(f"  warning: the {sp} split is empty ({sum(len(g) for g in manifest['groups'].values())} "
                 "group(s) in all); add data from more groups or choose a finer --group-by", to_err=True)
    issues_path = (out / "issues.txt").resolve()
    echo(f"  issues: {len(build.issues)} (see {issues_path})")
    if build.issues:
        for issue in build.issues[:5]:
            echo(f"    {issue}")
        if len(build.issues) > 5:
            echo(f"    ... {len(build.issues) - 5} more in issues.txt")
    if coco:
        echo(f"  coco: {(out / 'coco').resolve()}/{{{','.join(manifest['images'])}}}.json")
    if manifest.get("provenance"):
        src = manifest["sources"][0]
        echo(f"  reviews: {len(src['review_ids'])} exported of {src['frames_reviewed']} reviewed frame(s); "
             f"provenance: {(out / manifest['provenance']['file']).resolve()}")
    echo(f"  content hash: {manifest['content_hash']}")
    echo(f"  data: {(out / 'data.yaml').resolve()}")


def _read_from_db(db: Path, images_dir: Path | None, config_path: Path | None, names: str | None, group_by: str,
                  limit: int | None, bad_labels: str, progress: Progress) -> DbExport:
    """--from-db: class names from --names, else --config, else the database; then read the reviews."""
    from training.from_db import class_names_from_config, read_db

    class_names, names_from = _names(names), "--names"
    if class_names is None and config_path is not None:
        from inspector.config import ConfigError

        try:
            class_names, names_from = class_names_from_config(config_path), f"config {config_path}"
        except ConfigError as e:
            raise click.ClickException(f"invalid station config ({len(e.errors)} error(s)):\n{e}") from None
    if class_names is None:
        names_from = None
    from inspector.store.db import SchemaTooNewError

    try:
        return read_db(db, images_root=images_dir, names=class_names, names_from=names_from,
                       group_by=group_by, limit=limit, bad_labels=bad_labels, progress=progress)
    except (SchemaTooNewError, sqlite3.DatabaseError) as e:
        raise click.ClickException(f"{db}: not a readable Inspector database ({e})") from None
