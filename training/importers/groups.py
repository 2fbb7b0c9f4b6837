"""Groups, the split unit: ``group_by`` rules, CSV sidecars, near-duplicate clusters, ``limit``."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from inspector.util.progress import NO_PROGRESS, Progress
from training.datasets import LabelIssue
from training.importers.records import Entry, make_issue

GROUP_HELP = "auto | none | parent | similar | regex:<pattern with (?P<g>...)> | column:<name>"


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


def near_duplicate_groups(paths: Sequence[Path], keys: Sequence[str] | None = None, *,
                          progress: Progress = NO_PROGRESS) -> list[str]:
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

    with progress.stage("compare images", total=n, unit="img") as stage:
        desc = []
        for p in paths:
            desc.append(_descriptors(Path(p)))
            stage.advance()
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


def assign_groups(entries: list[Entry], group_by: str, root: Path, group_csv: Path | None, auto: str,
                  issues: list[LabelIssue], progress: Progress = NO_PROGRESS) -> tuple[list[Entry], str]:
    """Set each entry's group by the ``group_by`` rule; entries without one become issues and are left out.
    Returns (the entries kept, the rule as recorded in the manifest)."""
    kind, arg = parse_group_by(group_by)
    if kind == "auto":
        kind, arg = parse_group_by(auto) if auto != "deeppcb" else ("deeppcb", "")
        label = {"none": "none: each image is its own group", "similar": "similar: near-duplicate image clusters",
                 "deeppcb": "deeppcb board group folder (groupNNNNN)"}.get(kind, kind)
        rule = f"auto -> {label}"
    else:
        rule = group_by
    kept: list[Entry] = []
    if kind == "similar":
        groups = near_duplicate_groups([e.image for e in entries], [e.rel for e in entries], progress=progress)
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
            issues.append(make_issue(e.ref[0], e.ref[1], f"{why or 'empty group'}; image excluded"))
            continue
        e.group = g
        kept.append(e)
    return kept, rule


def apply_limit(entries: list[Entry], limit: int | None) -> list[Entry]:
    if not limit:
        return entries
    groups = sorted({e.group for e in entries if e.group is not None},
                    key=lambda g: (hashlib.sha256(g.encode()).hexdigest(), g))
    keep = set(groups[:limit])
    return [e for e in entries if e.group in keep]

