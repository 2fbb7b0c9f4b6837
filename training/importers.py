"""Readers of labelled folders: YOLO, COCO JSON, Pascal VOC XML, DeepPCB and Pictor-PPE.

Every reader returns a :class:`training.datasets.DatasetBuild` and validates the same way:

- images: missing, empty (0 bytes), unreadable (``cv2.imread`` returns None or an empty array),
  not an image format ultralytics trains on, or a size that differs from the one the label file
  states -> a :class:`LabelIssue` naming the file; the image is excluded.
- labels: malformed lines (wrong number of fields, not a number), unknown class ids or names,
  zero or negative width / height, coordinates outside the image by more than ``TOLERANCE_PX``
  (1 px; within it the box is clipped to the image) -> a LabelIssue with the file and the 1-based
  line. With ``bad_labels="image"`` (default) an image with any bad label is excluded as a whole:
  dropping only the bad box would leave an unlabelled object in the image, which trains the
  model that it is background. With ``bad_labels="box"`` only the bad boxes are dropped.
- exact duplicate boxes (same class, same coordinates) -> a LabelIssue; the copy is dropped and
  the image kept.

Nothing is dropped silently: each exclusion is a LabelIssue, each deliberate skip (COCO crowd
annotations, images listed twice) a note.

Groups (the split unit, see ``split_by_group``) come from ``group_by``:

- ``auto``: the reader's natural unit: DeepPCB the board group folder (``groupNNNNN``), Pictor
  ``similar``, YOLO / COCO / VOC ``none``.
- ``none``: each image is its own group.
- ``parent``: the name of the folder holding the image.
- ``regex:<pattern>``: ``re.search`` on the image path relative to the source root, '/' separated;
  the pattern needs a named group ``g`` (e.g. ``regex:(?P<g>LOT\\d+)``).
- ``column:<name>``: column ``<name>`` of a CSV sidecar (``group_csv``, default ``groups.csv`` in
  the source folder) with a ``file`` column (also ``image``, ``path`` or ``file_name``) holding the
  relative path or the file name. For COCO without a CSV, the image record's field ``<name>``.
- ``similar``: clusters of near-duplicate images (see :func:`near_duplicate_groups`).

An image without a group (no regex match, no CSV row) is a LabelIssue and is excluded.

``limit`` keeps the first N groups in ``sha256(group)`` order (independent of the split seed), so a
tiny build for CI has whole groups and is the same every time.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import json.decoder
import json.scanner
import math
import re
import xml.parsers.expat
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from training.datasets import IMAGE_SUFFIXES, DatasetBuild, LabelIssue, Sample, image_size

TOLERANCE_PX = 1.0
BAD_LABEL_POLICIES = ("image", "box")
DEEPPCB_CLASSES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")  # DeepPCB types 1..6
DEEPPCB_MODES = ("plain", "diff", "stack")
PICTOR_CLASSES = {"01": ("hat", "vest", "worker"), "02": ("W", "WH", "WV", "WHV")}
GROUP_HELP = "auto | none | parent | similar | regex:<pattern with (?P<g>...)> | column:<name>"

Line = int | None | Callable[[], int | None]


# ---------------------------------------------------------------- intermediate records


@dataclass
class _Box:
    values: tuple[float, float, float, float]  # xyxy px, or cx cy w h normalised when norm
    cls: int
    file: str
    line: Line
    norm: bool = False
    what: str = ""  # extra context, e.g. "box 3" or "annotation id 17"


@dataclass
class _Entry:
    image: Path
    rel: str  # relative to the source root, '/' separated: group rules and output names use it
    origin: str  # Sample.origin
    ref: tuple[str, Line]  # where the image is referenced (file, line), for image issues
    boxes: list[_Box] = field(default_factory=list)
    bad: list[LabelIssue] = field(default_factory=list)  # bad label lines found while parsing
    fatal: list[LabelIssue] = field(default_factory=list)  # image-level problems: always excluded
    expected_size: tuple[int, int] | None = None  # (w, h) stated by the label file
    template: Path | None = None  # DeepPCB reference image
    record: dict[str, Any] | None = None  # COCO image record (for column:<name>)
    group: str | None = None
    stem: str | None = None  # output name wanted (default: the file stem of rel)
    name: str = ""


def _line(line: Line) -> int | None:
    return line() if callable(line) else line


def _issue(file: str | Path, line: Line, message: str) -> LabelIssue:
    return LabelIssue(str(file), _line(line), message)


def _box_issue(b: _Box, message: str) -> LabelIssue:
    return _issue(b.file, b.line, f"{b.what + ': ' if b.what else ''}{message}")


# ---------------------------------------------------------------- images


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


@dataclass(frozen=True)
class DeepPCBPair:
    """A DeepPCB test image composed with its defect-free template (an ImageSource).

    ``load()`` returns a (H, W, 3) uint8 array in OpenCV (BGR) channel order, written as PNG:

    - ``diff``:  channel 0 (B) = test, 1 (G) = template, 2 (R) = |test - template|
    - ``stack``: channel 0 (B) = test, 1 (G) = template, 2 (R) = 0

    ultralytics (and the station's preprocessing) reverse BGR to RGB, so the network's input
    channels are (absdiff | 0, template, test). A station running such a model must build the
    frame the same way from the live image and its aligned reference.
    """

    test: Path
    template: Path
    mode: str

    def load(self) -> np.ndarray:
        t = cv2.imread(str(self.test), cv2.IMREAD_GRAYSCALE)
        r = cv2.imread(str(self.template), cv2.IMREAD_GRAYSCALE)
        if t is None or r is None:
            raise OSError(f"cannot read {self.test if t is None else self.template}")
        if t.shape != r.shape:
            raise ValueError(f"{self.test} is {t.shape}, its template {r.shape}")
        third = cv2.absdiff(t, r) if self.mode == "diff" else np.zeros_like(t)
        return np.dstack([t, r, third])

    def describe(self) -> str:
        return f"deeppcb {self.mode}: {self.test} + {self.template}"


# ---------------------------------------------------------------- near-duplicate grouping


def _descriptors(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    g = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if g is None or g.size == 0:
        return None
    t = cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    g96 = cv2.resize(g, (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32)
    gx, gy = cv2.Sobel(g96, cv2.CV_32F, 1, 0), cv2.Sobel(g96, cv2.CV_32F, 0, 1)
    e = cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), 1.5).ravel()
    out = []
    for v in (t, e):
        v = v - v.mean()
        out.append(v / (np.linalg.norm(v) + 1e-6))
    return out[0], out[1]


def near_duplicate_groups(paths: Sequence[Path], keys: Sequence[str] | None = None) -> list[str]:
    """Cluster near-duplicate images; returns each image's group (the smallest key in its cluster).

    Two images are linked when the correlation of their gradient-magnitude maps (96x96, from a
    1/4-scale grey decode) is >= 0.69, or >= 0.60 while their 32x32 grey thumbnails correlate
    >= 0.93; clusters are the connected components. Calibrated by eye on Pictor-PPE phone
    photos: it joins exact re-uploads and burst shots of one scene, and keeps apart different
    scenes of the same flat, sky-over-ground construction site (which the thumbnail alone
    confuses). Pairs are compared only when the thumbnails correlate >= 0.80. Cost: one scaled
    decode per image plus an O(n^2) thumbnail product (blockwise); fine up to tens of thousands.
    An unreadable image is its own group (the reader reports it).
    """
    keys = list(keys) if keys is not None else [str(p) for p in paths]
    n = len(paths)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    desc = [_descriptors(Path(p)) for p in paths]
    ok = [i for i, d in enumerate(desc) if d is not None]
    if len(ok) > 1:
        thumbs = np.stack([desc[i][0] for i in ok])
        edges = np.stack([desc[i][1] for i in ok])
        block = 1024
        for a in range(0, len(ok), block):
            s = thumbs[a:a + block] @ thumbs.T
            ii, jj = np.nonzero(s >= 0.80)
            for i, j in zip(ii.tolist(), jj.tolist()):
                i += a
                if j <= i:
                    continue
                e = float(edges[i] @ edges[j])
                if e >= 0.69 or (e >= 0.60 and s[i - a, j] >= 0.93):
                    ri, rj = find(ok[i]), find(ok[j])
                    if ri != rj:
                        parent[max(ri, rj)] = min(ri, rj)
    best: dict[int, str] = {}
    for i in range(n):
        r = find(i)
        best[r] = min(best.get(r, keys[i]), keys[i])
    return [best[find(i)] for i in range(n)]


# ---------------------------------------------------------------- groups, names, finishing


def parse_group_by(spec: str) -> tuple[str, str]:
    """``(kind, argument)`` of a ``group_by`` string; raises ValueError with the accepted forms."""
    spec = (spec or "auto").strip()
    if spec in ("auto", "none", "parent", "similar"):
        return spec, ""
    kind, sep, arg = spec.partition(":")
    if sep and kind == "regex":
        try:
            pat = re.compile(arg)
        except re.error as e:
            raise ValueError(f"group_by {spec!r}: invalid regular expression: {e}") from None
        if "g" not in pat.groupindex:
            raise ValueError(f"group_by {spec!r}: the pattern needs a named group 'g', e.g. regex:(?P<g>LOT\\d+)")
        return kind, arg
    if sep and kind == "column" and arg:
        return kind, arg
    raise ValueError(f"group_by must be one of {GROUP_HELP}; got {spec!r}")


def _read_group_csv(path: Path, column: str) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        file_col = next((c for c in ("file", "image", "path", "file_name") if c in header), None)
        if file_col is None or column not in header:
            raise ValueError(f"{path}: needs a 'file' (or image / path / file_name) column and a {column!r} column; "
                             f"has {header}")
        out: dict[str, str] = {}
        for row in reader:
            f_, g = (row.get(file_col) or "").strip().replace("\\", "/"), (row.get(column) or "").strip()
            if f_ and g:
                out[f_] = g
    return out


def _assign_groups(entries: list[_Entry], group_by: str, root: Path, group_csv: Path | None, auto: str,
                   issues: list[LabelIssue]) -> tuple[list[_Entry], str]:
    kind, arg = parse_group_by(group_by)
    if kind == "auto":
        kind, arg = parse_group_by(auto) if auto != "deeppcb" else ("deeppcb", "")
        label = {"none": "none: each image is its own group", "similar": "similar: near-duplicate image clusters",
                 "deeppcb": "deeppcb board group folder (groupNNNNN)"}.get(kind, kind)
        rule = f"auto -> {label}"
    else:
        rule = group_by
    kept: list[_Entry] = []
    if kind == "similar":
        groups = near_duplicate_groups([e.image for e in entries], [e.rel for e in entries])
        for e, g in zip(entries, groups):
            e.group = g
        return list(entries), rule
    table: dict[str, str] | None = None
    csv_path: Path | None = None
    if kind == "column":
        csv_path = Path(group_csv) if group_csv else root / "groups.csv"
        if csv_path.is_file():
            table = _read_group_csv(csv_path, arg)
            rule = f"column:{arg} ({csv_path})"
        elif not any(e.record is not None for e in entries):
            raise ValueError(f"group_by column:{arg}: no CSV sidecar at {csv_path} (pass --group-csv)")
        else:
            rule = f"column:{arg} (COCO image records)"
        base_counts = Counter(PurePosixPath(k).name for k in (table or {}))
    for e in entries:
        g: str | None
        why = ""
        if kind == "none":
            g = e.rel
        elif kind == "parent":
            g = PurePosixPath(e.rel).parent.name or "(root)"
        elif kind == "deeppcb":
            g = e.rel.split("/")[0]
        elif kind == "regex":
            m = re.search(arg, e.rel)
            g = m.group("g") if m else None
            why = f"group regex {arg!r} does not match {e.rel!r}"
        else:  # column
            if table is not None:
                g = table.get(e.rel)
                name = PurePosixPath(e.rel).name
                if g is None and base_counts.get(name) == 1:
                    g = next(v for k, v in table.items() if PurePosixPath(k).name == name)
                why = f"no {arg!r} group for {e.rel!r} in {csv_path}"
            else:
                v = (e.record or {}).get(arg)
                g = None if v is None or v == "" else str(v)
                why = f"image record has no {arg!r} field"
        if not g:
            issues.append(_issue(e.ref[0], e.ref[1], f"{why or 'empty group'}; image excluded"))
            continue
        e.group = g
        kept.append(e)
    return kept, rule


def _apply_limit(entries: list[_Entry], limit: int | None) -> list[_Entry]:
    if not limit:
        return entries
    groups = sorted({e.group for e in entries if e.group is not None},
                    key=lambda g: (hashlib.sha256(g.encode()).hexdigest(), g))
    keep = set(groups[:limit])
    return [e for e in entries if e.group in keep]


_UNSAFE = re.compile(r"[^A-Za-z0-9._()+\-]")


def _assign_names(entries: list[_Entry]) -> None:
    def stem_of(e: _Entry) -> str:
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


def _validate_box(b: _Box, w: int, h: int) -> tuple[tuple[float, float, float, float] | None, str | None]:
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


def _finish(entries: list[_Entry], *, fmt: str, names: Sequence[str], root: Path, group_by: str,
            group_csv: Path | None, auto_group: str, limit: int | None, bad_labels: str,
            issues: list[LabelIssue], notes: list[str], source: dict[str, Any],
            make_image: Callable[[_Entry], Any] | None = None) -> DatasetBuild:
    if bad_labels not in BAD_LABEL_POLICIES:
        raise ValueError(f"bad_labels must be one of {BAD_LABEL_POLICIES}, got {bad_labels!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (or None for all), got {limit}")
    listed = len(entries)
    entries, rule = _assign_groups(entries, group_by, root, group_csv, auto_group, issues)
    entries = _apply_limit(entries, limit)
    _assign_names(entries)
    samples: list[Sample] = []
    for e in entries:
        problems = list(e.fatal)
        size = probe_image(e.image)
        if isinstance(size, str):
            problems.append(_issue(e.ref[0], e.ref[1], size if e.ref[0] == str(e.image) else f"{size}: {e.image}"))
        elif e.expected_size and tuple(e.expected_size) != size:
            problems.append(_issue(e.ref[0], e.ref[1], f"the label file says {e.expected_size[0]}x{e.expected_size[1]} "
                                   f"but {e.image} is {size[0]}x{size[1]}"))
        if e.template is not None and not isinstance(size, str):
            tsize = probe_image(e.template)
            if isinstance(tsize, str):
                problems.append(_issue(e.ref[0], e.ref[1], f"template: {tsize}: {e.template}"))
            elif tsize != size:
                problems.append(_issue(e.ref[0], e.ref[1], f"template {e.template} is {tsize[0]}x{tsize[1]}, "
                                       f"the test image {size[0]}x{size[1]}"))
        bad = list(e.bad)
        xyxy: list[tuple[float, float, float, float]] = []
        cls: list[int] = []
        dups: list[LabelIssue] = []
        if not isinstance(size, str):
            seen: dict[tuple, Line] = {}
            for b in e.boxes:
                box, why = _validate_box(b, *size)
                if why:
                    bad.append(_box_issue(b, why))
                    continue
                key = (b.cls, *(round(v, 4) for v in box))
                if key in seen:
                    first = _line(seen[key])
                    dups.append(_box_issue(b, f"duplicate of the box{f' on line {first}' if first else ''} "
                                              "(same class and coordinates); copy dropped"))
                    continue
                seen[key] = b.line
                xyxy.append(box)
                cls.append(b.cls)
        issues.extend(problems)
        issues.extend(bad)
        issues.extend(dups)
        if problems:
            continue
        if bad and bad_labels == "image":
            issues.append(_issue(bad[0].file, None, f"image {e.rel} excluded: {len(bad)} bad label(s) above "
                                 "(policy --bad-labels image)"))
            continue
        samples.append(Sample(
            image=make_image(e) if make_image else e.image, xyxy=np.array(xyxy, dtype=np.float64).reshape(-1, 4),
            class_id=np.array(cls, dtype=np.int64), width=size[0], height=size[1], group=str(e.group),
            source=fmt, origin=e.origin, name=e.name))
    if rule.endswith("none: each image is its own group") or rule == "none":
        notes.append("split unit is the single image (no group rule): near-duplicate frames can straddle "
                     "train and val; pass --group-by when the data has lots, wafers, cameras or bursts")
    source = dict(source)
    source.update({"format": fmt, "images_listed": listed, "images_selected": len(entries),
                   "images_kept": len(samples), "images_excluded": len(entries) - len(samples),
                   "limit_groups": limit, "bad_labels": bad_labels})
    return DatasetBuild(samples=samples, class_names=list(names), issues=issues, sources=[source],
                        group_rule=rule, notes=notes)


def _class_index(tok: str, nc: int) -> tuple[int | None, str | None]:
    try:
        c = float(tok)
    except ValueError:
        return None, f"class id is not a number: {tok!r}"
    if not c.is_integer():
        return None, f"class id must be an integer, got {tok!r}"
    if not 0 <= c < nc:
        return None, f"unknown class id {int(c)} (known: 0..{nc - 1})"
    return int(c), None


def _names_file(folder: Path) -> list[str] | None:
    for n in ("classes.txt", "obj.names"):
        p = folder / n
        if p.is_file():
            return [s.strip() for s in p.read_text().splitlines() if s.strip()]
    return None


# ---------------------------------------------------------------- YOLO


def _label_path(img: Path) -> Path:
    s = str(img)
    sa, sb = "/images/", "/labels/"
    s = sb.join(s.rsplit(sa, 1)) if sa in s else s
    return Path(s).with_suffix(".txt")


def _parse_yolo_label(e: _Entry, lab: Path, nc: int, polygons: Counter) -> None:
    try:
        text = lab.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as ex:
        e.fatal.append(_issue(lab, None, f"unreadable label file: {ex}"))
        return
    for i, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5 and not (len(parts) >= 7 and len(parts) % 2 == 1):
            e.bad.append(_issue(lab, i, f"expected 5 fields 'class cx cy w h' (or a polygon), got {len(parts)}"))
            continue
        c, why = _class_index(parts[0], nc)
        try:
            vals = [float(t) for t in parts[1:]]
        except ValueError:
            bad_tok = next(t for t in parts[1:] if not _is_number(t))
            e.bad.append(_issue(lab, i, f"not a number: {bad_tok!r}"))
            continue
        if why:
            e.bad.append(_issue(lab, i, why))
            continue
        if len(vals) > 4:  # polygon (segment) line: its bounding box
            xs, ys = vals[0::2], vals[1::2]
            vals = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)]
            polygons["n"] += 1
        e.boxes.append(_Box(tuple(vals), c, str(lab), i, norm=True))


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and "labels" not in p.relative_to(folder).parts[:-1])


def read_yolo(path: Path, *, names: Sequence[str] | None = None, group_by: str = "auto",
              group_csv: Path | None = None, limit: int | None = None, bad_labels: str = "image") -> DatasetBuild:
    """Read a YOLO dataset: a ``data.yaml`` (train / val / test: folders or .txt lists), or a folder
    (holding a data.yaml, or images with labels in a parallel ``labels/`` tree or beside them).

    Class names: ``names``, else the data.yaml's, else ``classes.txt`` / ``obj.names`` in the folder.
    A missing label file means a background image (a note counts them). Polygon (segment) lines
    are read as their bounding box. Label files without an image are reported.
    """
    import yaml

    path = Path(path)
    issues: list[LabelIssue] = []
    notes: list[str] = []
    yaml_file = path if path.is_file() else next((path / n for n in ("data.yaml", "dataset.yaml")
                                                   if (path / n).is_file()), None)
    images: list[tuple[Path, tuple[str, Line]]] = []
    if yaml_file is not None:
        data = yaml.safe_load(yaml_file.read_text()) or {}
        root = Path(data.get("path") or yaml_file.parent)
        if not root.is_absolute():
            root = yaml_file.parent / root
        ynames = data.get("names")
        if isinstance(ynames, dict):
            ynames = [ynames[k] for k in sorted(ynames, key=int)]
        names = list(names) if names is not None else ([str(n) for n in ynames] if ynames else None)
        for key in ("train", "val", "test"):
            v = data.get(key)
            for item in ([] if v is None else v if isinstance(v, list) else [v]):
                p = Path(item) if Path(item).is_absolute() else root / item
                if p.is_dir():
                    images += [(q, (str(q), None)) for q in _images_under(p)]
                elif p.is_file() and p.suffix == ".txt":
                    for i, line in enumerate(p.read_text().splitlines(), start=1):
                        s = line.strip()
                        if s:
                            q = p.parent / s[2:] if s.startswith("./") else (Path(s) if Path(s).is_absolute()
                                                                              else root / s)
                            images.append((q, (str(p), i)))
                else:
                    raise ValueError(f"{yaml_file}: {key}: {item!r} is neither a folder nor a .txt list ({p})")
    else:
        if not path.is_dir():
            raise ValueError(f"{path}: not a folder or a data.yaml")
        root = path
        names = list(names) if names is not None else _names_file(path)
        images = [(q, (str(q), None)) for q in _images_under(path)]
    if not names:
        raise ValueError(f"{path}: no class names (give names=... / --names, a data.yaml, or classes.txt)")
    nc = len(names)
    entries: list[_Entry] = []
    seen: set[Path] = set()
    twice = 0
    no_label = 0
    polygons: Counter = Counter()
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
        lab = _label_path(img)
        e = _Entry(image=img, rel=rel, origin=str(lab), ref=ref)
        if lab.is_file():
            label_dirs.add(lab.parent)
            _parse_yolo_label(e, lab, nc, polygons)
        else:
            no_label += 1
            e.origin = str(img)
        entries.append(e)
    # label files that no image uses
    for d in sorted(label_dirs):
        ds = str(d) + "/"
        img_dir = Path("/images/".join(ds.rsplit("/labels/", 1))) if "/labels/" in ds else d
        stems = {p.stem for p in img_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES} if img_dir.is_dir() else set()
        for lab in sorted(d.glob("*.txt")):
            if lab.name not in ("classes.txt",) and lab.stem not in stems:
                issues.append(_issue(lab, None, "label file without a matching image; ignored"))
    if twice:
        notes.append(f"{twice} image(s) listed more than once; each kept once")
    if no_label:
        notes.append(f"{no_label} image(s) without a label file kept as background images")
    if polygons["n"]:
        notes.append(f"{polygons['n']} polygon (segment) label line(s) read as their bounding box")
    return _finish(entries, fmt="yolo", names=names, root=root, group_by=group_by, group_csv=group_csv,
                   auto_group="none", limit=limit, bad_labels=bad_labels, issues=issues, notes=notes,
                   source={"path": str(path.resolve())})


# ---------------------------------------------------------------- COCO


def _json_with_lines(text: str) -> Any:
    """``json.loads`` that also stores each object's 1-based start line under ``"__line__"``."""
    newlines = [m.start() for m in re.finditer("\n", text)]
    dec = json.JSONDecoder()

    def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None):  # noqa: ANN001
        _, end = s_and_end
        obj, new_end = json.decoder.JSONObject(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo)
        if isinstance(obj, dict):
            obj["__line__"] = bisect.bisect_left(newlines, end - 1) + 1
        return obj, new_end

    dec.parse_object = parse_object  # type: ignore[attr-defined]
    dec.scan_once = json.scanner.py_make_scanner(dec)  # type: ignore[attr-defined]
    return dec.decode(text)


class _JsonLines:
    """Line numbers of JSON list items, computed (one slower parse) only when an issue needs one."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._doc: Any = None

    def at(self, section: str, index: int) -> Callable[[], int | None]:
        def line() -> int | None:
            if self._doc is None:
                self._doc = _json_with_lines(self._text)
            try:
                return int(self._doc[section][index]["__line__"])
            except (KeyError, IndexError, TypeError):
                return None
        return line


def read_coco(json_path: Path, images_dir: Path, *, group_by: str = "auto", group_csv: Path | None = None,
              limit: int | None = None, bad_labels: str = "image") -> DatasetBuild:
    """Read COCO detection JSON; ``file_name`` is relative to ``images_dir``.

    Classes are the categories sorted by id (class index = position). ``bbox`` is [x, y, w, h] in
    pixels. Crowd annotations (``iscrowd`` 1) are skipped and counted in a note. An image's
    ``width`` / ``height`` must match the file. Issues name the JSON file and the line where the
    image or annotation object starts.
    """
    json_path, images_dir = Path(json_path), Path(images_dir)
    text = json_path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_path}:{e.lineno}: not valid JSON: {e.msg}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{json_path}: COCO detection JSON needs a list {key!r}")
    lines = _JsonLines(text)
    issues: list[LabelIssue] = []
    notes: list[str] = []
    cats = sorted(data["categories"], key=lambda c: c.get("id", 0))
    ids = [c.get("id") for c in cats]
    names = [str(c.get("name", "")) for c in cats]
    if len(set(ids)) != len(ids) or len(set(names)) != len(names) or not all(names):
        raise ValueError(f"{json_path}: category ids and names must be unique and names non-empty")
    cat_index = {cid: i for i, cid in enumerate(ids)}
    by_id: dict[Any, _Entry] = {}
    entries: list[_Entry] = []
    files: dict[str, int] = {}
    for i, im in enumerate(data["images"]):
        ref = (str(json_path), lines.at("images", i))
        if not isinstance(im, dict) or "id" not in im or not im.get("file_name"):
            issues.append(_issue(*ref, "image record needs 'id' and 'file_name'"))
            continue
        fname = str(im["file_name"]).replace("\\", "/")
        if im["id"] in by_id or fname in files:
            issues.append(_issue(*ref, f"image id {im['id']} / file {fname!r} appears twice; the repeat is ignored"))
            continue
        files[fname] = i
        e = _Entry(image=images_dir / fname, rel=fname, origin=f"{json_path}#images[{i}]", ref=ref, record=im)
        w, h = im.get("width"), im.get("height")
        if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
            e.expected_size = (int(w), int(h))
        by_id[im["id"]] = e
        entries.append(e)
    crowd = 0
    for j, a in enumerate(data["annotations"]):
        loc = lines.at("annotations", j)
        what = f"annotation id {a.get('id')}" if isinstance(a, dict) else f"annotations[{j}]"
        if not isinstance(a, dict):
            issues.append(_issue(json_path, loc, f"{what}: not an object"))
            continue
        e = by_id.get(a.get("image_id"))
        if e is None:
            issues.append(_issue(json_path, loc, f"{what}: unknown image id {a.get('image_id')!r}; ignored"))
            continue
        if a.get("iscrowd"):
            crowd += 1
            continue
        if a.get("category_id") not in cat_index:
            e.bad.append(_issue(json_path, loc, f"{what}: unknown category id {a.get('category_id')!r} "
                                                f"(known: {', '.join(map(str, ids))})"))
            continue
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            e.bad.append(_issue(json_path, loc, f"{what}: bbox must be [x, y, w, h] numbers, got {bbox!r}"))
            continue
        x, y, w, h = map(float, bbox)
        e.boxes.append(_Box((x, y, x + w, y + h), cat_index[a["category_id"]], str(json_path), loc, what=what))
    if crowd:
        notes.append(f"{crowd} crowd annotation(s) (iscrowd 1) skipped: they mark regions, not single objects")
    return _finish(entries, fmt="coco", names=names, root=images_dir, group_by=group_by, group_csv=group_csv,
                   auto_group="none", limit=limit, bad_labels=bad_labels, issues=issues, notes=notes,
                   source={"path": str(json_path.resolve()), "images_dir": str(images_dir.resolve()),
                           "category_ids": ids})


# ---------------------------------------------------------------- Pascal VOC


class _Node:
    __slots__ = ("tag", "line", "children", "text")

    def __init__(self, tag: str, line: int) -> None:
        self.tag, self.line, self.children, self.text = tag, line, [], ""

    def find(self, tag: str) -> _Node | None:
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[_Node]:
        return [c for c in self.children if c.tag == tag]

    def findtext(self, tag: str) -> str | None:
        n = self.find(tag)
        return n.text.strip() if n is not None else None


def _parse_xml(data: bytes) -> _Node:
    """A minimal element tree that keeps each element's start line (ElementTree drops it)."""
    p = xml.parsers.expat.ParserCreate()
    stack: list[_Node] = []
    root: list[_Node] = []

    def start(tag: str, _attrs: dict) -> None:
        n = _Node(tag, p.CurrentLineNumber)
        (stack[-1].children if stack else root).append(n)
        stack.append(n)

    def end(_tag: str) -> None:
        stack.pop()

    def chars(s: str) -> None:
        if stack:
            stack[-1].text += s

    p.StartElementHandler, p.EndElementHandler, p.CharacterDataHandler = start, end, chars
    p.Parse(data, True)
    return root[0]


def _find_voc_image(xml_path: Path, filename: str | None, folder: Path, images_dir: Path | None) -> Path:
    dirs = [d for d in (images_dir, xml_path.parent, folder / "JPEGImages", xml_path.parent.parent / "JPEGImages",
                        folder / "images") if d is not None]
    names = [filename] if filename else []
    for d in dirs:
        for n in names:
            if (d / n).is_file():
                return d / n
    for d in dirs:  # by the xml's stem
        for suf in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"):
            if (d / (xml_path.stem + suf)).is_file():
                return d / (xml_path.stem + suf)
    return (dirs[0] / filename) if filename else (xml_path.with_suffix(".jpg"))


def read_voc(folder: Path, *, images_dir: Path | None = None, names: Sequence[str] | None = None,
             group_by: str = "auto", group_csv: Path | None = None, limit: int | None = None,
             bad_labels: str = "image") -> DatasetBuild:
    """Read Pascal VOC XML files (any depth under ``folder``).

    The image is ``<filename>`` looked up in ``images_dir``, beside the XML, in ``JPEGImages/`` or
    ``images/``, else a file named like the XML. Class names: ``names``, else ``classes.txt`` in
    the folder (then other names are unknown classes), else every ``<name>`` found, sorted.
    Coordinates follow the VOC convention (1-based, inclusive): the box is
    (xmin - 1, ymin - 1, xmax, ymax) in pixels; 0-based files stay inside the 1 px tolerance.
    ``difficult`` objects are kept.
    """
    folder = Path(folder)
    issues: list[LabelIssue] = []
    notes: list[str] = []
    parsed: list[tuple[Path, _Node]] = []
    for xp in sorted(folder.rglob("*.xml")):
        try:
            root_node = _parse_xml(xp.read_bytes())
        except xml.parsers.expat.ExpatError as ex:
            issues.append(_issue(xp, ex.lineno, f"malformed XML ({xml.parsers.expat.ErrorString(ex.code)}); "
                                                "its image is excluded"))
            continue
        if root_node.tag != "annotation":
            issues.append(_issue(xp, root_node.line, f"not a Pascal VOC annotation (root <{root_node.tag}>); ignored"))
            continue
        parsed.append((xp, root_node))
    if names is None:
        names = _names_file(folder)
    if names is None:
        names = sorted({(o.findtext("name") or "") for _, r in parsed for o in r.findall("object")} - {""})
        notes.append(f"class names taken from the XML files, sorted: {', '.join(names)}")
    names = list(names)
    if not names:
        raise ValueError(f"{folder}: no class names and no objects in the XML files")
    index = {n: i for i, n in enumerate(names)}
    entries: list[_Entry] = []
    difficult = 0
    for xp, r in parsed:
        fn_node = r.find("filename")
        filename = fn_node.text.strip() if fn_node is not None else None
        img = _find_voc_image(xp, filename, folder, images_dir)
        try:
            rel = img.relative_to(images_dir or folder).as_posix()
        except ValueError:
            rel = xp.relative_to(folder).with_suffix(img.suffix).as_posix()
        e = _Entry(image=img, rel=rel, origin=str(xp), ref=(str(xp), fn_node.line if fn_node is not None else None))
        size = r.find("size")
        if size is not None:
            try:
                w, h = int(float(size.findtext("width") or 0)), int(float(size.findtext("height") or 0))
                if w > 0 and h > 0:
                    e.expected_size = (w, h)
            except ValueError:
                e.bad.append(_issue(xp, size.line, "size: width / height are not numbers"))
        for k, o in enumerate(r.findall("object"), start=1):
            nm = o.findtext("name") or ""
            what = f"object {k} ({nm or 'no name'})"
            if nm not in index:
                e.bad.append(_issue(xp, o.line, f"{what}: unknown class name {nm!r} (known: {', '.join(names)})"))
                continue
            bb = o.find("bndbox")
            try:
                if bb is None:
                    raise ValueError("no <bndbox>")
                vals = [float(bb.findtext(t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax")]
                if any(math.isnan(v) for v in vals):
                    raise ValueError("<bndbox> needs xmin, ymin, xmax, ymax")
            except ValueError as ex:
                e.bad.append(_issue(xp, (bb or o).line, f"{what}: {ex}"))
                continue
            difficult += (o.findtext("difficult") or "0").strip() == "1"
            e.boxes.append(_Box((vals[0] - 1, vals[1] - 1, vals[2], vals[3]), index[nm], str(xp), bb.line, what=what))
        entries.append(e)
    if difficult:
        notes.append(f"{difficult} 'difficult' object(s) kept as ordinary boxes")
    return _finish(entries, fmt="voc", names=names, root=images_dir or folder, group_by=group_by,
                   group_csv=group_csv if group_csv else (folder / "groups.csv"), auto_group="none", limit=limit,
                   bad_labels=bad_labels, issues=issues, notes=notes,
                   source={"path": str(folder.resolve()),
                           "images_dir": str(Path(images_dir).resolve()) if images_dir else None})


# ---------------------------------------------------------------- DeepPCB


def read_deeppcb(root: Path, mode: str = "plain", *, list_file: str = "trainval.txt", group_by: str = "auto",
                 group_csv: Path | None = None, limit: int | None = None, bad_labels: str = "image") -> DatasetBuild:
    """Read DeepPCB (``root`` holds ``trainval.txt`` and ``PCBData/``; see datasets/deeppcb.md).

    Each list line ``groupX/X/<id>.jpg groupX/X_not/<id>.txt`` names ``<id>_test.jpg``, its
    template ``<id>_temp.jpg`` and a label file of ``x1 y1 x2 y2 type`` lines (pixels; spaces or
    commas), type 1..6 -> class 0..5 (:data:`DEEPPCB_CLASSES`).

    mode: ``plain`` the test image as is; ``diff`` / ``stack`` a 3-channel PNG composed with the
    template (see :class:`DeepPCBPair` for the channel layout). Default group: the board group
    folder ``groupNNNNN``: tiles of one group come from the same boards and include near-identical
    templates, so a group never straddles splits.
    """
    if mode not in DEEPPCB_MODES:
        raise ValueError(f"mode must be one of {DEEPPCB_MODES}, got {mode!r}")
    root = Path(root)
    lst = root / list_file if (root / list_file).is_file() else root / "PCBData" / list_file
    if not lst.is_file():
        raise ValueError(f"{root}: no {list_file} (expected {root / list_file})")
    base = root / "PCBData" if (root / "PCBData").is_dir() else lst.parent
    issues: list[LabelIssue] = []
    entries: list[_Entry] = []
    for i, line in enumerate(lst.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].endswith(".jpg") or not parts[1].endswith(".txt"):
            issues.append(_issue(lst, i, f"expected 'groupX/X/<id>.jpg groupX/X_not/<id>.txt', got {line.strip()!r}"))
            continue
        stem = parts[0][:-4]
        test, temp, lab = base / f"{stem}_test.jpg", base / f"{stem}_temp.jpg", base / parts[1]
        e = _Entry(image=test, rel=f"{stem}_test.jpg", origin=str(lab), ref=(str(lst), i),
                   template=temp if mode != "plain" else None, stem=PurePosixPath(stem).name)
        if not lab.is_file():
            e.fatal.append(_issue(lst, i, f"missing label file {lab}"))
        else:
            for k, row in enumerate(lab.read_text().splitlines(), start=1):
                toks = [t for t in re.split(r"[,\s]+", row.strip()) if t]
                if not toks:
                    continue
                if len(toks) != 5:
                    e.bad.append(_issue(lab, k, f"expected 5 fields 'x1 y1 x2 y2 type', got {len(toks)}"))
                    continue
                try:
                    x1, y1, x2, y2, t = map(float, toks)
                except ValueError:
                    e.bad.append(_issue(lab, k, f"not a number in {row.strip()!r}"))
                    continue
                if not t.is_integer() or not 1 <= t <= len(DEEPPCB_CLASSES):
                    e.bad.append(_issue(lab, k, f"unknown defect type {toks[4]!r} (known: 1..6)"))
                    continue
                e.boxes.append(_Box((x1, y1, x2, y2), int(t) - 1, str(lab), k))
        entries.append(e)

    def make_image(e: _Entry) -> Any:
        return e.image if mode == "plain" else DeepPCBPair(e.image, e.image.with_name(
            e.image.name.replace("_test.jpg", "_temp.jpg")), mode)

    layout = {"plain": "the test image (grey JPEG, read as 3 equal channels)",
              "diff": "PNG, BGR file order: B=test, G=template, R=|test-template| "
                      "(network RGB: absdiff, template, test)",
              "stack": "PNG, BGR file order: B=test, G=template, R=0 (network RGB: 0, template, test)"}[mode]
    return _finish(entries, fmt="deeppcb", names=DEEPPCB_CLASSES, root=base, group_by=group_by,
                   group_csv=group_csv, auto_group="deeppcb", limit=limit, bad_labels=bad_labels, issues=issues,
                   notes=[], source={"path": str(root.resolve()), "list": list_file, "mode": mode, "channels": layout},
                   make_image=make_image)


# ---------------------------------------------------------------- Pictor-PPE


def read_pictor(root: Path, approach: str = "01", splits: Iterable[str] = ("train", "valid"), *,
                group_by: str = "auto", group_csv: Path | None = None, limit: int | None = None,
                bad_labels: str = "image") -> DatasetBuild:
    """Read Pictor-PPE (``root`` holds ``images/`` and ``labels/approach-<approach>_<split>.txt``).

    Each label line: ``name.jpg<TAB>x1,y1,x2,y2,cls<TAB>...`` in pixels. Classes: approach 01
    hat, vest, worker; approach 02 W, WH, WV, WHV. The listed splits are pooled and re-split by
    group. Default group: ``similar`` (near-duplicate clusters): the photos include exact
    re-uploads under other numbers and burst shots (see datasets/pictor-ppe.md).
    """
    if approach not in PICTOR_CLASSES:
        raise ValueError(f"approach must be one of {sorted(PICTOR_CLASSES)}, got {approach!r}")
    root = Path(root)
    splits = tuple(splits)
    names = PICTOR_CLASSES[approach]
    issues: list[LabelIssue] = []
    entries: list[_Entry] = []
    first: dict[str, str] = {}
    for split in splits:
        lf = root / "labels" / f"approach-{approach}_{split}.txt"
        if not lf.is_file():
            raise ValueError(f"{root}: no label file {lf}")
        for i, line in enumerate(lf.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split("\t")
            name = parts[0].strip()
            if not name:
                if line.strip():
                    issues.append(_issue(lf, i, "line does not start with an image name"))
                continue
            if name in first:
                issues.append(_issue(lf, i, f"{name} listed again (first at {first[name]}); the repeat is ignored"))
                continue
            first[name] = f"{lf}:{i}"
            e = _Entry(image=root / "images" / name, rel=f"images/{name}", origin=f"{lf}:{i}", ref=(str(lf), i))
            for k, p in enumerate((p for p in parts[1:] if p.strip()), start=1):
                toks = p.strip().split(",")
                what = f"box {k} {p.strip()!r}"
                if len(toks) != 5:
                    e.bad.append(_issue(lf, i, f"{what}: expected x1,y1,x2,y2,class"))
                    continue
                try:
                    x1, y1, x2, y2 = map(float, toks[:4])
                except ValueError:
                    e.bad.append(_issue(lf, i, f"{what}: not a number"))
                    continue
                c, why = _class_index(toks[4], len(names))
                if why:
                    e.bad.append(_issue(lf, i, f"{what}: {why}"))
                    continue
                e.boxes.append(_Box((x1, y1, x2, y2), c, str(lf), i, what=what))
            entries.append(e)
    return _finish(entries, fmt="pictor", names=names, root=root, group_by=group_by, group_csv=group_csv,
                   auto_group="similar", limit=limit, bad_labels=bad_labels, issues=issues, notes=[],
                   source={"path": str(root.resolve()), "approach": approach, "splits": list(splits)})


__all__ = [
    "TOLERANCE_PX", "BAD_LABEL_POLICIES", "DEEPPCB_CLASSES", "DEEPPCB_MODES", "PICTOR_CLASSES", "GROUP_HELP",
    "DeepPCBPair", "probe_image", "near_duplicate_groups", "parse_group_by", "read_yolo", "read_coco", "read_voc",
    "read_deeppcb", "read_pictor",
]
