"""``--from-yolo``: a YOLO dataset (a data.yaml, or a folder of images with their labels)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inspector.util.progress import NO_PROGRESS, Progress
from training.datasets import DatasetBuild, LabelIssue
from training.importers.records import Box, Entry, Line, make_issue
from training.importers.validate import finish_build
from training.yolo import (IMAGE_SUFFIXES, BadLine, find_data_yaml, image_dir_of, images_under, label_path,
                           parse_label_text, read_data_yaml, read_names_file, split_images)


def _parse_label(e: Entry, lab: Path, nc: int) -> int:
    """Add the label file's boxes (and bad lines) to ``e``; returns how many were polygon lines."""
    try:
        text = lab.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as ex:
        e.fatal.append(make_issue(lab, None, f"unreadable label file: {ex}"))
        return 0
    polygons = 0
    for item in parse_label_text(text, nc):
        if isinstance(item, BadLine):
            e.bad.append(make_issue(lab, item.line, item.message))
            continue
        polygons += item.polygon
        e.boxes.append(Box(item.box, item.class_id, str(lab), item.line, norm=True))
    return polygons


def _listed_images(yaml_file: Path) -> tuple[Path, list[str] | None, list[tuple[Path, tuple[str, Line]]]]:
    """(root, class names, images with where each is listed) of every split of a data.yaml."""
    dy = read_data_yaml(yaml_file)
    images: list[tuple[Path, tuple[str, Line]]] = []
    for split in dy.entries:
        for entry in dy.entry_paths(split):
            for img, listed_in, line in split_images(entry, dy.root):
                images.append((img, (str(listed_in), line)))
    return dy.root, list(dy.names) if dy.names else None, images


def read_yolo(path: Path, *, names: Sequence[str] | None = None, group_by: str = "auto",
              group_csv: Path | None = None, limit: int | None = None, bad_labels: str = "image",
              progress: Progress = NO_PROGRESS) -> DatasetBuild:
    """Read a YOLO dataset: a ``data.yaml`` (train / val / test: folders or .txt lists), or a folder
    (holding a data.yaml, or images with labels in a parallel ``labels/`` tree or beside them).

    Class names: ``names``, else the data.yaml's, else ``classes.txt`` / ``obj.names`` in the folder.
    A missing label file means a background image (a note counts them). Polygon (segment) lines
    are read as their bounding box. Label files without an image are reported.
    """
    path = Path(path)
    issues: list[LabelIssue] = []
    notes: list[str] = []
    yaml_file = path if path.is_file() else find_data_yaml(path)
    if yaml_file is not None:
        root, yaml_names, images = _listed_images(yaml_file)
        names = list(names) if names is not None else yaml_names
    else:
        if not path.is_dir():
            raise ValueError(f"{path}: not a folder or a data.yaml")
        root = path
        names = list(names) if names is not None else read_names_file(path)
        images = [(q, (str(q), None)) for q in images_under(path)]
    if not names:
        raise ValueError(f"{path}: no class names (give names=... / --names, a data.yaml, or classes.txt)")
    nc = len(names)
    entries: list[Entry] = []
    seen: set[Path] = set()
    twice = no_label = polygons = 0
    label_dirs: set[Path] = set()
    for img, ref in images:
        key = img.resolve() if img.exists() else img
        if key in seen:
            twice += 1
            continue
        seen.add(key)
        try:
            rel = img.relative_to(root).as_posix()
        except ValueError:
            rel = img.as_posix()
        lab = label_path(img)
        e = Entry(image=img, rel=rel, origin=str(lab), ref=ref)
        if lab.is_file():
            label_dirs.add(lab.parent)
            polygons += _parse_label(e, lab, nc)
        else:
            no_label += 1
            e.origin = str(img)
        entries.append(e)
    # label files that no image uses
    for d in sorted(label_dirs):
        img_dir = image_dir_of(d)
        stems = {p.stem for p in img_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES} if img_dir.is_dir() else set()
        for lab in sorted(d.glob("*.txt")):
            if lab.name not in ("classes.txt",) and lab.stem not in stems:
                issues.append(make_issue(lab, None, "label file without a matching image; ignored"))
    if twice:
        notes.append(f"{twice} image(s) listed more than once; each kept once")
    if no_label:
        notes.append(f"{no_label} image(s) without a label file kept as background images")
    if polygons:
        notes.append(f"{polygons} polygon (segment) label line(s) read as their bounding box")
    return finish_build(entries, fmt="yolo", names=names, root=root, group_by=group_by, group_csv=group_csv,
                        auto_group="none", limit=limit, bad_labels=bad_labels, issues=issues, notes=notes,
                        source={"path": str(path.resolve())}, progress=progress)
