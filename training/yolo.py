"""The YOLO dataset format, in one place: ``data.yaml``, image <-> label paths, label lines, image
sizes, class names, and the one dataset content hash. Importers, evaluation, INT8 calibration, the
synthetic and the review-database datasets all read and write the format through this module.

Layout (what ultralytics trains on)::

    data.yaml                       path, train, val[, test] (a folder or a .txt list of images), names
    images/<split>/<name>.<ext>     any of IMAGE_SUFFIXES
    labels/<split>/<name>.txt       one "class cx cy w h" line per box, normalised to [0, 1]; a polygon
                                    line "class x1 y1 x2 y2 ..." is read as its bounding box; a missing
                                    or empty file is a background image

A label file sits where the image is, with the last ``images`` folder of its path replaced by
``labels`` and the suffix by ``.txt`` (ultralytics' rule).

Content hash (:func:`content_hash`, written ``sha256:<hex>``; ``manifest.json`` ``content_hash``): the
sha256 of this UTF-8 text::

    inspector-dataset-v1\\n
    names\\t<json.dumps(list of class names)>\\n
    then, for every image under images/<split>/, sorted by (split, relative path):
    <split>\\t<image path relative to the dataset root, '/' separated>\\t<sha256 hex of the image
    file's bytes>\\t<sha256 hex of the label file's bytes (of b"" when there is none)>\\n

It covers exactly what a training run reads (pixels, labels, split membership, class names) and
nothing else: not ``data.yaml`` (its ``path`` is absolute), not the manifest, not ultralytics'
``labels/*.cache`` files. Hard-linked and copied datasets have the same hash. A dataset without an
``images/`` folder (its data.yaml lists images elsewhere) hashes the images each data.yaml split
lists, in the same row form (path relative to the root when it lies inside it, else absolute).
This is the hash the registry, the model cards and every evaluation record (``dataset_hash``).
"""

from __future__ import annotations

import math

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspector.core.detections import Detections

SPLITS = ("train", "val", "test")
HASH_VERSION = "inspector-dataset-v1"
# Image suffixes ultralytics trains on (its IMG_FORMATS, lower case, without the video formats).
IMAGE_SUFFIXES = frozenset({".avif", ".bmp", ".dng", ".heic", ".heif", ".jp2", ".jpeg", ".jpg", ".mpo", ".png",
                            ".tif", ".tiff", ".webp"})
DATA_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")
NAMES_FILES = ("classes.txt", "obj.names")


class DatasetError(ValueError):
    """A dataset or split cannot be read; the message names the file (and line) and what was expected."""


# ---------------------------------------------------------------- paths, images


def label_path(image: Path | str) -> Path:
    """The label file of ``image``: the last ``images`` folder becomes ``labels``, the suffix ``.txt``."""
    parts = list(Path(image).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def image_dir_of(label_dir: Path) -> Path:
    """The image folder that ``label_dir`` holds labels for (the inverse of :func:`label_path`)."""
    parts = list(Path(label_dir).parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "labels":
            parts[i] = "images"
            return Path(*parts)
    return Path(label_dir)  # labels beside their images


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def images_under(folder: Path) -> list[Path]:
    """Every image file below ``folder``, sorted; files inside a ``labels`` folder are not images."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if is_image_file(p)
                  and "labels" not in p.relative_to(folder).parts[:-1])


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as ``cv2.imread`` would return it (EXIF orientation applied), from the header."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        try:
            orientation = im.getexif().get(0x0112, 1)
        except Exception:  # noqa: BLE001 - a broken EXIF block must not hide the size
            orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------- class names


def names_from(obj: Any, where: str) -> tuple[str, ...]:
    """Class names from a data.yaml ``names`` value: a list, or a mapping of ids 0..n-1 -> name."""
    if isinstance(obj, Mapping):
        try:
            keys = sorted(int(k) for k in obj)
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: class ids in 'names' must be integers, got {list(obj)}") from None
        if keys != list(range(len(keys))):
            raise DatasetError(f"{where}: class ids must be 0..n-1, got {keys}")
        return tuple(str(obj[k] if k in obj else obj[str(k)]) for k in keys)
    if isinstance(obj, (list, tuple)) and obj:
        return tuple(str(n) for n in obj)
    raise DatasetError(f"{where}: 'names' must be a list or a mapping of id -> name")


def read_names_file(folder: Path) -> list[str] | None:
    """Class names, one a line, from ``classes.txt`` (or darknet's ``obj.names``) in ``folder``."""
    for n in NAMES_FILES:
        p = Path(folder) / n
        if p.is_file():
            return [s.strip() for s in p.read_text().splitlines() if s.strip()]
    return None


# ---------------------------------------------------------------- data.yaml


@dataclass(frozen=True)
class DataYaml:
    """A read ``data.yaml``: the dataset root, class names (None when it has none) and split entries."""

    path: Path
    root: Path
    names: tuple[str, ...] | None
    entries: dict[str, list[str]]  # split -> folders or .txt lists, as written (relative to root)

    def entry_paths(self, split: str) -> list[Path]:
        return [p if p.is_absolute() else self.root / p for p in map(Path, self.entries.get(split, []))]


def find_data_yaml(folder: Path) -> Path | None:
    folder = Path(folder)
    return next((folder / n for n in DATA_YAML_NAMES if (folder / n).is_file()), None)


def read_data_yaml(path: Path) -> DataYaml:
    """Read a data.yaml. ``path:`` (the root) is relative to the file; without it the root is the file's folder."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise DatasetError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, Mapping):
        raise DatasetError(f"{path}: expected a mapping")
    root = Path(data["path"]) if data.get("path") else path.parent
    if not root.is_absolute() and data.get("path"):
        root = path.parent / root
    names = names_from(data["names"], str(path)) if data.get("names") else None
    entries = {}
    for key in SPLITS:
        v = data.get(key)
        if v not in (None, ""):
            entries[key] = [str(e) for e in (v if isinstance(v, list) else [v])]
    return DataYaml(path, root, names, entries)


def split_images(entry: Path, root: Path) -> list[tuple[Path, Path, int | None]]:
    """The images one data.yaml split entry names: (image, file that lists it, 1-based line or None).

    A folder gives its images (:func:`images_under`); a ``.txt`` file lists one image a line, ``./x``
    relative to the list (as ultralytics reads it), other relative paths to the dataset root.
    """
    if entry.is_dir():
        return [(p, p, None) for p in images_under(entry)]
    if entry.is_file() and entry.suffix == ".txt":
        out: list[tuple[Path, Path, int | None]] = []
        for i, line in enumerate(entry.read_text(encoding="utf-8").splitlines(), start=1):
            s = line.strip()
            if not s:
                continue
            p = Path(s)
            if not p.is_absolute():
                p = entry.parent / s[2:] if s.startswith("./") else root / p
            out.append((p, entry, i))
        return out
    raise DatasetError(f"split entry {entry} is neither a folder of images nor a .txt list of images")


def write_data_yaml(out: Path, names: Sequence[str], splits: Iterable[str] = ("train", "val")) -> Path:
    """``out/data.yaml``; ``path`` is absolute (ultralytics resolves a relative one against its own
    datasets folder, not against the yaml file)."""
    body = [f"path: {json.dumps(str(Path(out).resolve()))}"]
    body += [f"{sp}: images/{sp}" for sp in SPLITS if sp in set(splits)]
    body += [f"nc: {len(names)}", "names:"] + [f"  {i}: {json.dumps(n)}" for i, n in enumerate(names)]
    p = Path(out) / "data.yaml"
    p.write_text("\n".join(body) + "\n")
    return p


# ---------------------------------------------------------------- label lines


@dataclass(frozen=True)
class LabelLine:
    """One good label line: class id and the normalised box (cx, cy, w, h)."""

    line: int
    class_id: int
    box: tuple[float, float, float, float]
    polygon: bool = False  # read from a polygon (segment) line as its bounding box


@dataclass(frozen=True)
class BadLine:
    """One label line that cannot be read, and why (the message names neither file nor line)."""

    line: int
    message: str


def class_index(tok: str, nc: int) -> tuple[int | None, str | None]:
    """The class id a token names, or why it names none (not a number, not an integer, out of range)."""
    try:
        c = float(tok)
    except ValueError:
        return None, f"class id is not a number: {tok!r}"
    if not c.is_integer():
        return None, f"class id must be an integer, got {tok!r}"
    if not 0 <= c < nc:
        return None, f"unknown class id {int(c)} (known: 0..{nc - 1})"
    return int(c), None


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def parse_label_text(text: str, nc: int) -> list[LabelLine | BadLine]:
    """Every non-empty line of a label file, read or refused (``nc``: the number of classes)."""
    out: list[LabelLine | BadLine] = []
    for i, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5 and not (len(parts) >= 7 and len(parts) % 2 == 1):
            out.append(BadLine(i, f"expected 5 fields 'class cx cy w h' (or a polygon), got {len(parts)}"))
            continue
        c, why = class_index(parts[0], nc)
        bad_tok = next((t for t in parts[1:] if not _is_number(t)), None)
        if bad_tok is not None:
            out.append(BadLine(i, f"not a number: {bad_tok!r}"))
            continue
        if why:
            out.append(BadLine(i, why))
            continue
        vals = [float(t) for t in parts[1:]]
        if not all(math.isfinite(v) for v in vals):  # 'nan' / 'inf' parse as floats but are no coordinates
            out.append(BadLine(i, f"coordinates must be finite numbers, got {' '.join(parts[1:])}"))
            continue
        if len(vals) > 4:  # polygon (segment) line: its bounding box
            xs, ys = vals[0::2], vals[1::2]
            box = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys))
            out.append(LabelLine(i, int(c), box, polygon=True))
        else:
            out.append(LabelLine(i, int(c), (vals[0], vals[1], vals[2], vals[3])))
    return out


def read_label_text(label: Path) -> str:
    try:
        return label.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{label}: unreadable label file: {e}") from None


def read_label_file(label: Path, width: int, height: int, nc: int) -> Detections:
    """The boxes of a label file in pixel xyxy (score 1); a missing file is a background image.

    The first bad line raises :class:`DatasetError` naming the file and the line.
    """
    if not label.is_file():
        return Detections.empty()
    boxes, classes = [], []
    for item in parse_label_text(read_label_text(label), nc):
        if isinstance(item, BadLine):
            raise DatasetError(f"{label}:{item.line}: {item.message}")
        cx, cy, bw, bh = item.box
        boxes.append([(cx - bw / 2) * width, (cy - bh / 2) * height, (cx + bw / 2) * width, (cy + bh / 2) * height])
        classes.append(item.class_id)
    if not boxes:
        return Detections.empty()
    return Detections(np.array(boxes, np.float32), np.ones(len(boxes), np.float32), np.array(classes, np.int32))


def format_label_line(class_id: int, xyxy: Sequence[float], width: float, height: float) -> str:
    """One label line ``cls cx cy w h`` from pixel corners, normalised, 6 decimals."""
    x0, y0, x1, y1 = xyxy
    return (f"{int(class_id)} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
            f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")


# ---------------------------------------------------------------- one split


@dataclass(frozen=True)
class YoloSplit:
    root: Path  # dataset root (data.yaml's `path`)
    data_yaml: Path | None
    split: str
    images: list[Path]
    labels: list[Path]  # one per image (the file may not exist: a background image)
    class_names: tuple[str, ...]


def yolo_split(dataset: Path | str, split: str = "val") -> YoloSplit:
    """Locate a split of a YOLO dataset: a ``data.yaml`` file, or a folder holding one (or holding
    ``images/<split>`` with class names in ``manifest.json`` / ``classes.txt``)."""
    ds = Path(dataset)
    if ds.is_file():
        data_yaml: Path | None = ds
    elif ds.is_dir():
        data_yaml = find_data_yaml(ds)
    else:
        raise DatasetError(f"dataset {ds} does not exist (give a data.yaml or a YOLO dataset folder)")
    if data_yaml is not None:
        dy = read_data_yaml(data_yaml)
        root = dy.root if dy.root.is_absolute() else dy.root.resolve()
        if dy.names is None:
            raise DatasetError(f"{data_yaml}: no 'names' (class names)")
        names = dy.names
        if split not in dy.entries:
            raise DatasetError(f"{data_yaml}: no '{split}' split (it has: {', '.join(dy.entries) or 'none'})")
        entries = [p if p.is_absolute() else root / p for p in map(Path, dy.entries[split])]
        images = [img for e in entries for img, _, _ in split_images(e, root)]
    else:
        root = ds.resolve()
        names_src: Any = None
        if (root / "manifest.json").is_file():
            names_src = json.loads((root / "manifest.json").read_text(encoding="utf-8")).get("names")
        if not names_src:
            names_src = read_names_file(root)
        if not names_src:
            raise DatasetError(f"{root}: no data.yaml, and no class names in manifest.json or classes.txt")
        names = names_from(names_src, str(root))
        if not (root / "images" / split).is_dir():
            raise DatasetError(f"{root}: no data.yaml and no images/{split} folder")
        images = images_under(root / "images" / split)
    if not images:
        raise DatasetError(f"dataset {ds}: split '{split}' has no images")
    return YoloSplit(root, data_yaml, split, images, [label_path(p) for p in images], names)


def read_yolo_split(dataset: Path | str, split: str = "val") -> tuple[list[Path], list[Detections], tuple[str, ...]]:
    """Image paths, truths (pixel xyxy, score 1) and class names of one split of a YOLO dataset."""
    s = yolo_split(dataset, split)
    truths = [read_label_file(lab, *image_size(img), len(s.class_names)) for img, lab in zip(s.images, s.labels)]
    return s.images, truths, s.class_names


# ---------------------------------------------------------------- the content hash


def _hash_rows(root: Path, data_yaml: Path | None) -> list[tuple[str, str, Path]]:
    images = root / "images"
    if images.is_dir():
        splits = sorted(p for p in images.iterdir() if p.is_dir())
        return [(d.name, img.relative_to(root).as_posix(), img) for d in splits for img in d.rglob("*")
                if is_image_file(img)]
    dy_path = data_yaml or find_data_yaml(root)
    if dy_path is None:
        return []
    dy = read_data_yaml(dy_path)
    rows = []
    for split in dy.entries:
        for e in dy.entry_paths(split):
            for img, _, _ in split_images(e, root):
                if img.is_file():
                    try:
                        rel = img.relative_to(root).as_posix()
                    except ValueError:
                        rel = img.as_posix()
                    rows.append((split, rel, img))
    return rows


def content_hash(root: Path | str, names: Sequence[str] | None = None, *, data_yaml: Path | None = None) -> str:
    """The content hash (see the module docstring) of the YOLO dataset at ``root``: ``"sha256:<hex>"``.

    ``names`` defaults to those in ``root``'s data.yaml (or ``data_yaml``).
    """
    root = Path(root)
    if names is None:
        dy_path = data_yaml or find_data_yaml(root)
        dy = read_data_yaml(dy_path) if dy_path is not None else None
        if dy is None or dy.names is None:
            raise DatasetError(f"{root}: no class names for the content hash (no data.yaml with 'names')")
        names = dy.names
    h = hashlib.sha256()
    h.update(f"{HASH_VERSION}\nnames\t{json.dumps(list(names))}\n".encode())
    for split, rel, img in sorted(_hash_rows(root, data_yaml), key=lambda r: (r[0], r[1])):
        lab = label_path(img)
        lab_hash = hashlib.sha256(lab.read_bytes() if lab.is_file() else b"").hexdigest()
        h.update(f"{split}\t{rel}\t{file_sha256(img)}\t{lab_hash}\n".encode())
    return "sha256:" + h.hexdigest()


def dataset_hash(dataset: Path | str, split: str = "val") -> tuple[str, str]:
    """(hash, source) of the dataset a split belongs to: the ``content_hash`` its ``manifest.json``
    records when there is one (written by ``inspector-train dataset`` / ``synth``: the same
    definition, without reading every image again), else :func:`content_hash` computed now."""
    s = yolo_split(dataset, split)
    for cand in (s.root / "manifest.json", Path(dataset) / "manifest.json" if Path(dataset).is_dir() else None):
        if cand is not None and cand.is_file():
            try:
                man = json.loads(cand.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                man = {}
            for key in ("content_hash", "hash"):
                if isinstance(man, dict) and isinstance(man.get(key), str) and man[key]:
                    return man[key], f"manifest.json:{key}"
    return (content_hash(s.root, s.class_names, data_yaml=s.data_yaml),
            f"computed ({HASH_VERSION}: class names, images and labels of every split)")


__all__ = [
    "SPLITS", "HASH_VERSION", "IMAGE_SUFFIXES", "DATA_YAML_NAMES", "DatasetError", "DataYaml", "LabelLine", "BadLine",
    "YoloSplit", "label_path", "image_dir_of", "is_image_file", "images_under", "image_size", "file_sha256",
    "names_from", "read_names_file", "find_data_yaml", "read_data_yaml", "split_images", "write_data_yaml",
    "class_index", "parse_label_text", "read_label_text", "read_label_file", "format_label_line", "yolo_split",
    "read_yolo_split", "content_hash", "dataset_hash",
]
