"""The checks every reader shares: images readable and of the stated size, boxes inside the image,
duplicates dropped, output names unique; then the :class:`DatasetBuild` with every issue."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from inspector.util.progress import NO_PROGRESS, Progress
from training.datasets import DatasetBuild, LabelIssue, Sample
from training.importers.groups import apply_limit, assign_groups
from training.importers.records import Box, Entry, Line, box_issue, line_of, make_issue
from training.yolo import IMAGE_SUFFIXES, image_size

TOLERANCE_PX = 1.0
BAD_LABEL_POLICIES = ("image", "box")


def probe_image(path: Path) -> tuple[int, int] | str:
    """(width, height) of a readable image, or why it cannot be used (a message without the path).

    Decodes at 1/4 scale (JPEG decodes scaled, several times faster) to prove the file is
    readable; the size comes from the header with the EXIF orientation applied, as
    ``cv2.imread`` and ultralytics see it.
    """
    if not path.is_file():
        return "missing image"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image format ultralytics reads ({path.suffix or 'no suffix'})"
    if path.stat().st_size == 0:
        return "empty image file (0 bytes)"
    img = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if img is None or img.size == 0:
        return f"unreadable image (cv2.imread returned {'None' if img is None else 'an empty array'})"
    try:
        w, h = image_size(path)
    except Exception:  # noqa: BLE001 - PIL cannot read some formats cv2 can
        full = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if full is None or full.size == 0:
            return "unreadable image (cv2.imread returned None)"
        h, w = full.shape[:2]
    if w < 1 or h < 1:
        return f"image has zero size ({w}x{h})"
    return w, h



_UNSAFE = re.compile(r"[^A-Za-z0-9._()+\-]")


def assign_names(entries: list[Entry]) -> None:
    def stem_of(e: Entry) -> str:
        return _UNSAFE.sub("_", e.stem or PurePosixPath(e.rel).stem)

    stems = Counter(stem_of(e) for e in entries)
    used: set[str] = set()
    for e in entries:
        stem = stem_of(e)
        long = str(PurePosixPath(e.rel).with_suffix("")).replace("/", "__")
        name = stem if stems[stem] == 1 else _UNSAFE.sub("_", long)
        if name in used or not name.strip("._"):
            name = f"{name}-{hashlib.sha1(e.rel.encode()).hexdigest()[:8]}"
        used.add(name)
        e.name = name


def validate_box(b: Box, w: int, h: int) -> tuple[tuple[float, float, float, float] | None, str | None]:
    """Pixel xyxy clipped to the image, or why the box is bad."""
    if not all(math.isfinite(v) for v in b.values):
        return None, f"coordinates must be finite numbers, got {b.values}"
    if b.norm:
        cx, cy, bw, bh = b.values
        if bw <= 0 or bh <= 0:
            return None, f"zero or negative width / height (w {bw:g}, h {bh:g})"
        x0, y0, x1, y1 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
    else:
        x0, y0, x1, y1 = b.values
        if x1 <= x0 or y1 <= y0:
            return None, f"zero or negative width / height (x1 {x0:g} x2 {x1:g} y1 {y0:g} y2 {y1:g})"
    over = max(-x0, -y0, x1 - w, y1 - h)
    if over > TOLERANCE_PX:
        return None, (f"box ({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}) px lies outside the {w}x{h} image by "
                      f"{over:.1f} px (tolerance {TOLERANCE_PX:g} px)")
    c = (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))
    if c[2] - c[0] <= 0 or c[3] - c[1] <= 0:
        return None, "box has no area inside the image"
    return c, None


def _check_entry(e: Entry, *, fmt: str, bad_labels: str, issues: list[LabelIssue],
                 make_image: Callable[[Entry], Any] | None) -> Sample | None:
    """The sample of one entry, or None when it is excluded; every problem is added to ``issues``."""
    problems = list(e.fatal)
    size = probe_image(e.image)
    if isinstance(size, str):
        problems.append(make_issue(e.ref[0], e.ref[1], size if e.ref[0] == str(e.image) else f"{size}: {e.image}"))
    elif e.expected_size and tuple(e.expected_size) != size:
        problems.append(make_issue(e.ref[0], e.ref[1], f"the label file says {e.expected_size[0]}x{e.expected_size[1]} "
                                                       f"but {e.image} is {size[0]}x{size[1]}"))
    if e.template is not None and not isinstance(size, str):
        tsize = probe_image(e.template)
        if isinstance(tsize, str):
            problems.append(make_issue(e.ref[0], e.ref[1], f"template: {tsize}: {e.template}"))
        elif tsize != size:
            problems.append(make_issue(e.ref[0], e.ref[1], f"template {e.template} is {tsize[0]}x{tsize[1]}, "
                                                           f"the test image {size[0]}x{size[1]}"))
    bad = list(e.bad)
    xyxy: list[tuple[float, float, float, float]] = []
    cls: list[int] = []
    dups: list[LabelIssue] = []
    if not isinstance(size, str):
        seen: dict[tuple, Line] = {}
        for b in e.boxes:
            box, why = validate_box(b, *size)
            if why:
                bad.append(box_issue(b, why))
                continue
            key = (b.cls, *(round(v, 4) for v in box))
            if key in seen:
                first = line_of(seen[key])
                dups.append(box_issue(b, f"duplicate of the box{f' on line {first}' if first else ''} "
                                          "(same class and coordinates); copy dropped"))
                continue
            seen[key] = b.line
            xyxy.append(box)
            cls.append(b.cls)
    issues.extend(problems)
    issues.extend(bad)
    issues.extend(dups)
    if problems:
        return None
    if bad and bad_labels == "image":
        issues.append(make_issue(bad[0].file, None, f"image {e.rel} excluded: {len(bad)} bad label(s) above "
                                                    "(policy --bad-labels image)"))
        return None
    return Sample(
        image=make_image(e) if make_image else e.image, xyxy=np.array(xyxy, dtype=np.float64).reshape(-1, 4),
        class_id=np.array(cls, dtype=np.int64), width=size[0], height=size[1], group=str(e.group),
        source=fmt, origin=e.origin, name=e.name)


def finish_build(entries: list[Entry], *, fmt: str, names: Sequence[str], root: Path, group_by: str,
                 group_csv: Path | None, auto_group: str, limit: int | None, bad_labels: str,
                 issues: list[LabelIssue], notes: list[str], source: dict[str, Any],
                 make_image: Callable[[Entry], Any] | None = None, progress: Progress = NO_PROGRESS
                 ) -> DatasetBuild:
    """Group, limit and name the entries, check every image and box, and build the result."""
    if bad_labels not in BAD_LABEL_POLICIES:
        raise ValueError(f"bad_labels must be one of {BAD_LABEL_POLICIES}, got {bad_labels!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (or None for all), got {limit}")
    listed = len(entries)
    entries, rule = assign_groups(entries, group_by, root, group_csv, auto_group, issues, progress)
    entries = apply_limit(entries, limit)
    assign_names(entries)
    samples: list[Sample] = []
    with progress.stage("check images", total=len(entries), unit="img") as stage:
        for e in entries:
            sample = _check_entry(e, fmt=fmt, bad_labels=bad_labels, issues=issues, make_image=make_image)
            if sample is not None:
                samples.append(sample)
            stage.advance()
    if rule.endswith("none: each image is its own group") or rule == "none":
        notes.append("split unit is the single image (no group rule): near-duplicate frames can straddle "
                     "train and val; pass --group-by when the data has lots, wafers, cameras or bursts")
    source = dict(source)
    source.update({"format": fmt, "images_listed": listed, "images_selected": len(entries),
                   "images_kept": len(samples), "images_excluded": len(entries) - len(samples),
                   "limit_groups": limit, "bad_labels": bad_labels})
    return DatasetBuild(samples=samples, class_names=list(names), issues=issues, sources=[source],
                        group_rule=rule, notes=notes)

