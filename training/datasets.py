"""Detection datasets in memory, the leak-free group split, and the YOLO / COCO writers.

Importers (``training/importers.py``) turn labelled folders into a :class:`DatasetBuild`: the
samples that passed validation, the class names, and every :class:`LabelIssue` that excluded
something. This module splits a build by group and writes it.

Written layout (``write_yolo``)::

    images/{train,val[,test]}/<name>.<ext>   the source file (hard link, else symlink, or a copy),
                                            or a lossless PNG for rendered images (DeepPCB diff/stack)
    labels/{train,val[,test]}/<name>.txt     "cls cx cy w h" normalised, 6 decimals; an empty file
                                            marks a background image (no objects)
    data.yaml                                path (absolute), train, val[, test], nc, names
    manifest.json                            sources, names, counts per class and split, split rule
                                            and the groups of each split, issues count, notes,
                                            content hash
    issues.txt                               one line per excluded label or image: "file:line: message"

Content hash (``dataset_content_hash``; ``manifest.json`` ``content_hash``): the one dataset hash,
defined and computed by :func:`training.yolo.content_hash` (the module that owns the YOLO format).

The split (``split_by_group``) assigns whole groups (lot / wafer, board, camera / day, a cluster
of near-duplicate photos), never single frames: groups are ordered by ``sha256(f"{seed}:{group}")``
and each one, in that order, joins ``test`` if that brings the test image count closer to its
target, else ``val`` on the same condition, else ``train``. So a split misses its target by at most
half of the largest group, the same seed always gives the same split, and a group never straddles
two splits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from inspector.util.progress import NO_PROGRESS, Progress
from training.yolo import (HASH_VERSION, IMAGE_SUFFIXES, SPLITS, BadLine, DatasetError, content_hash, file_sha256,
                           format_label_line, image_size, images_under, parse_label_text, read_data_yaml,
                           read_label_text, write_data_yaml)

COPY_MODES = ("link", "copy")
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
_WRITTEN = ("images", "labels", "coco", "data.yaml", "manifest.json", "issues.txt")


@runtime_checkable
class ImageSource(Protocol):
    """An image that is rendered on demand (written as PNG), e.g. a DeepPCB test/template composite."""

    def load(self) -> np.ndarray:
        """The image as a uint8 (H, W, 3) BGR or (H, W) grey array."""
        ...

    def describe(self) -> str:
        """One line saying where the pixels come from (for messages)."""
        ...


ImageLike = Path | np.ndarray | ImageSource


@dataclass(frozen=True)
class LabelIssue:
    """Something that was excluded: ``line`` is 1-based, or None when the whole file is meant."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line is not None else f"{self.file}: {self.message}"


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its boxes.

    image: a file (copied or linked as is), an array, or an :class:`ImageSource` (both written as PNG).
    xyxy: (n, 4) float64 pixel corners, inside [0, width] x [0, height], positive width and height.
    class_id: (n,) int64 indices into the build's class names.
    group: the split unit (lot, wafer, board, camera/day, near-duplicate cluster); never straddles splits.
    source: which reader / source it came from (``deeppcb``, ``yolo``, a review database ...).
    origin: where its labels came from (``file:line``, ``file``, or a review id).
    name: output file stem, unique within a build.
    """

    image: ImageLike
    xyxy: np.ndarray
    class_id: np.ndarray
    width: int
    height: int
    group: str
    source: str
    origin: str
    name: str

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if len(xyxy) != len(cls):
            raise ValueError(f"Sample {self.name}: {len(xyxy)} boxes but {len(cls)} class ids")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"Sample {self.name}: image size must be positive, got {self.width}x{self.height}")
        if not self.name or "/" in self.name or "\\" in self.name:
            raise ValueError(f"Sample name must be a non-empty file stem, got {self.name!r}")
        if isinstance(self.image, (str, os.PathLike)) and not isinstance(self.image, Path):
            object.__setattr__(self, "image", Path(self.image))
        xyxy.setflags(write=False)
        cls.setflags(write=False)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "class_id", cls)

    @property
    def suffix(self) -> str:
        """File suffix in the written dataset (the source's for files, ``.png`` for rendered images)."""
        return self.image.suffix.lower() if isinstance(self.image, Path) else ".png"

    def yolo_lines(self) -> list[str]:
        """Label lines ``cls cx cy w h`` normalised to [0, 1], 6 decimals."""
        w, h = float(self.width), float(self.height)
        return [format_label_line(c, box, w, h) for box, c in zip(self.xyxy.tolist(), self.class_id.tolist())]

    def load_image(self) -> np.ndarray:
        """The pixels (reads the file for path images)."""
        if isinstance(self.image, Path):
            img = cv2.imread(str(self.image), cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f"cannot read image {self.image}")
            return img
        if isinstance(self.image, np.ndarray):
            return self.image
        return self.image.load()


@dataclass
class DatasetBuild:
    """What an importer produced: kept samples, class names, every exclusion, and provenance."""

    samples: list[Sample]
    class_names: list[str]
    issues: list[LabelIssue] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    group_rule: str = "none"  # how Sample.group was derived, recorded in the manifest
    notes: list[str] = field(default_factory=list)  # things kept or skipped on purpose (not errors)

    def __post_init__(self) -> None:
        if len(set(self.class_names)) != len(self.class_names) or not all(self.class_names):
            raise ValueError(f"class names must be non-empty and unique, got {self.class_names}")
        seen: set[str] = set()
        nc = len(self.class_names)
        for s in self.samples:
            if s.name in seen:
                raise ValueError(f"duplicate sample name {s.name!r}")
            seen.add(s.name)
            if len(s.class_id) and (s.class_id.min() < 0 or s.class_id.max() >= nc):
                raise ValueError(f"sample {s.name}: class id outside 0..{nc - 1}")

    def box_counts(self, samples: Iterable[Sample] | None = None) -> dict[str, int]:
        """Boxes per class name (all classes listed, zeros included)."""
        cnt = Counter(c for s in (self.samples if samples is None else samples) for c in s.class_id.tolist())
        return {n: int(cnt.get(i, 0)) for i, n in enumerate(self.class_names)}


class Splits(dict):
    """``{split: [Sample, ...]}`` plus ``rule``: how it was made (recorded in the manifest)."""

    rule: dict[str, Any]


def _group_key(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def split_by_group(samples: Sequence[Sample], val_fraction: float, seed: int,
                   test_fraction: float = 0.0) -> Splits:
    """Deterministic, leak-free split: whole groups go to ``train``, ``val`` (and ``test``).

    Groups are visited in ``sha256(f"{seed}:{group}")`` order; each joins ``test`` if that brings
    the test image count closer to ``test_fraction * N``, else ``val`` on the same condition for
    ``val_fraction * N``, else ``train``. Each split then misses its target by at most half the
    largest group, unless one of the two guarantees below had to move a group. When
    ``val_fraction > 0`` and there are at least two groups, val is never left empty (the smallest train group moves there) and train is never empty. ``test`` is a key
    only when ``test_fraction > 0``.
    """
    if not 0.0 <= val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise ValueError(f"fractions must be >= 0 with val + test < 1, got val {val_fraction}, test {test_fraction}")
    sizes = Counter(s.group for s in samples)
    order = sorted(sizes, key=lambda g: (_group_key(seed, g), g))
    n = sum(sizes.values())
    targets = {"test": test_fraction * n, "val": val_fraction * n}
    where: dict[str, str] = {}
    count = {"train": 0, "val": 0, "test": 0}
    for g in order:
        k = sizes[g]
        dest = "train"
        for sp in ("test", "val"):
            if targets[sp] > 0 and abs(count[sp] + k - targets[sp]) < abs(count[sp] - targets[sp]):
                dest = sp
                break
        where[g] = dest
        count[dest] += k
    # Guarantees a trainer relies on: a non-empty val (when asked for) and a non-empty train.
    if len(order) >= 2:
        if val_fraction > 0 and count["val"] == 0:
            g = min((x for x in order if where[x] == "train"), key=lambda x: sizes[x], default=None)
            if g is not None:
                where[g] = "val"
                count["train"] -= sizes[g]
                count["val"] += sizes[g]
        if count["train"] == 0:
            # the smallest group of a split that keeps at least one group; else the test group
            donors = [sp for sp in ("test", "val") if sum(where[x] == sp for x in order) > 1] or ["test"]
            g = min((x for x in order if where[x] in donors), key=lambda x: sizes[x])
            count[where[g]] -= sizes[g]
            where[g] = "train"
            count["train"] += sizes[g]
    names = ("train", "val", "test") if test_fraction > 0 else ("train", "val")
    out = Splits({sp: [] for sp in names})
    for s in samples:
        out[where[s.group]].append(s)
    out.rule = {
        "by": "group",
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "method": "groups in sha256(f'{seed}:{group}') order; each joins test, else val, when that brings the "
                  "split's image count closer to its target, else train",
    }
    return out


# ---------------------------------------------------------------- writing


def dataset_content_hash(root: Path, names: Sequence[str] | None = None) -> str:
    """The content hash of the YOLO dataset at ``root`` (``"sha256:<hex>"``; see :mod:`training.yolo`)."""
    return content_hash(root, names)


def _place(src: Path, dst: Path, copy_mode: str) -> str:
    """Put ``src`` at ``dst``; returns how: hardlink, symlink or copy."""
    if copy_mode == "link":
        try:
            os.link(src, dst)
            return "hardlink"
        except OSError:
            try:
                os.symlink(src.resolve(), dst)
                return "symlink"
            except OSError:
                pass
    shutil.copyfile(src, dst)
    return "copy"


def _check_boxes(s: Sample) -> None:
    if not len(s.xyxy):
        return
    x0, y0, x1, y1 = s.xyxy.T
    ok = (np.isfinite(s.xyxy).all() and (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= s.width).all()
          and (y1 <= s.height).all() and (x1 > x0).all() and (y1 > y0).all())
    if not ok:
        raise ValueError(f"sample {s.name} ({s.origin}): boxes must lie inside the {s.width}x{s.height} image "
                         f"with positive size; importers validate and clip them")


def write_yolo(build: DatasetBuild, out: Path, splits: Mapping[str, Sequence[Sample]], *, copy_mode: str = "link",
               split_rule: Mapping[str, Any] | None = None, overwrite: bool = False,
               progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """Write ``splits`` (from :func:`split_by_group`) of ``build`` as a YOLO dataset at ``out``.

    copy_mode ``link`` hard-links source image files (symlink across file systems; a copy if
    neither works); ``copy`` copies them. Rendered images are always written as PNG. ``out`` must
    be empty unless ``overwrite`` (which removes only what this function writes there).
    Returns the manifest (also written to ``out/manifest.json``).
    """
    if copy_mode not in COPY_MODES:
        raise ValueError(f"copy_mode must be one of {COPY_MODES}, got {copy_mode!r}")
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; expected {SPLITS}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty (pass overwrite=True / --overwrite to replace a dataset)")
        for name in _WRITTEN:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    split_names = [sp for sp in SPLITS if sp in splits]
    for sp in split_names:
        (out / "images" / sp).mkdir(parents=True, exist_ok=True)
        (out / "labels" / sp).mkdir(parents=True, exist_ok=True)

    total = sum(len(splits[sp]) for sp in split_names)
    placed: Counter[str] = Counter()
    seen: set[str] = set()
    with progress.stage("write dataset", total=total, unit="img") as stage:
        for sp, s in ((sp, s) for sp in split_names for s in splits[sp]):
            if s.name in seen:
                raise ValueError(f"sample {s.name!r} appears twice in the splits")
            seen.add(s.name)
            _check_boxes(s)
            dst = out / "images" / sp / f"{s.name}{s.suffix}"
            if isinstance(s.image, Path):
                placed[_place(s.image, dst, copy_mode)] += 1
            else:
                img = s.load_image()
                if img.shape[:2] != (s.height, s.width):
                    raise ValueError(f"sample {s.name}: rendered image is {img.shape[1]}x{img.shape[0]}, "
                                     f"expected {s.width}x{s.height}")
                if not cv2.imwrite(str(dst), img, _PNG_PARAMS):
                    raise OSError(f"could not write {dst}")
                placed["png"] += 1
            lines = s.yolo_lines()
            (out / "labels" / sp / f"{s.name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            stage.advance()

    write_data_yaml(out, build.class_names, split_names)
    issues_path = out / "issues.txt"
    head = [f"# {len(build.issues)} excluded label(s) or image(s); format: file:line: message"]
    issues_path.write_text("\n".join(head + [str(i) for i in build.issues]) + "\n")
    chash = dataset_content_hash(out, build.class_names)
    rule = dict(split_rule if split_rule is not None else getattr(splits, "rule", {}) or {})
    rule["group_rule"] = build.group_rule
    manifest: dict[str, Any] = {
        "format": "yolo",
        "created_by": "inspector-train dataset",
        "sources": build.sources,
        "names": list(build.class_names),
        "images": {sp: len(splits[sp]) for sp in split_names},
        "background_images": {sp: sum(1 for s in splits[sp] if not len(s.class_id)) for sp in split_names},
        "boxes": {sp: build.box_counts(splits[sp]) for sp in split_names},
        "split": rule,
        "groups": {sp: sorted({s.group for s in splits[sp]}) for sp in split_names},
        "issues": len(build.issues),
        "issues_file": "issues.txt",
        "notes": list(build.notes),
        "files": dict(sorted(placed.items())),
        "content_hash": chash,
        "content_hash_rule": f"{HASH_VERSION}: sha256 over names, then sorted (split, image path, image sha256, "
                             "label sha256); see training/yolo.py",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ---------------------------------------------------------------- COCO export


def export_coco(yolo_dataset_dir: Path, out_json: Path, split: str) -> dict[str, Any]:
    """Write ``split`` of a YOLO dataset as COCO detection JSON; returns the JSON object.

    - ``images``: ids 1..N in sorted file order; ``file_name`` relative to ``images/<split>``
      (so ``read_coco(out_json, yolo_dataset_dir / "images" / split)`` reads it back).
    - ``annotations``: ids 1..M; ``bbox`` ``[x, y, w, h]`` in absolute pixels (4 decimals),
      ``area`` = w * h, ``iscrowd`` 0, ``segmentation`` [].
    - ``categories``: ``id`` = YOLO class index + 1 (COCO ids are 1-based), ``name``, ``supercategory`` "".
    """
    root = Path(yolo_dataset_dir)
    names = list(read_data_yaml(root / "data.yaml").names or [])
    img_dir = root / "images" / split
    if not img_dir.is_dir():
        raise FileNotFoundError(f"no split {split!r} in {root} (missing {img_dir})")
    images, annotations = [], []
    for image_id, img in enumerate(images_under(img_dir), start=1):
        w, h = image_size(img)
        rel = img.relative_to(img_dir)
        images.append({"id": image_id, "file_name": rel.as_posix(), "width": w, "height": h})
        lab = root / "labels" / split / rel.with_suffix(".txt")
        if not lab.is_file():
            continue
        for item in parse_label_text(read_label_text(lab), len(names)):
            if isinstance(item, BadLine):
                raise DatasetError(f"{lab}:{item.line}: {item.message}")
            c, (cx, cy, bw, bh) = item.class_id, item.box
            x, y, ww, hh = (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": c + 1,
                "bbox": [round(x, 4), round(y, 4), round(ww, 4), round(hh, 4)],
                "area": round(ww * hh, 4), "iscrowd": 0, "segmentation": [],
            })
    coco = {
        "info": {"description": f"{root.name} {split}", "version": "1", "contributor": "inspector-train dataset"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(names)],
    }
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(coco, indent=1) + "\n")
    return coco


__all__ = [
    "SPLITS", "IMAGE_SUFFIXES", "ImageSource", "LabelIssue", "Sample", "DatasetBuild", "Splits", "split_by_group",
    "write_yolo", "write_data_yaml", "dataset_content_hash", "file_sha256", "image_size", "export_coco",
]
