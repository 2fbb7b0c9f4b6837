"""``--from-pictor``: Pictor-PPE construction-site photos (tab-separated pixel boxes per image)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from inspector.util.progress import NO_PROGRESS, Progress
from training.datasets import DatasetBuild, LabelIssue
from training.importers.records import Box, Entry, make_issue
from training.importers.validate import finish_build
from training.yolo import class_index

PICTOR_CLASSES = {"01": ("hat", "vest", "worker"), "02": ("W", "WH", "WV", "WHV")}


def read_pictor(root: Path, approach: str = "01", splits: Iterable[str] = ("train", "valid"), *,
                group_by: str = "auto", group_csv: Path | None = None, limit: int | None = None,
                bad_labels: str = "image", progress: Progress = NO_PROGRESS) -> DatasetBuild:
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
    entries: list[Entry] = []
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
                    issues.append(make_issue(lf, i, "line does not start with an image name"))
                continue
            if name in first:
                issues.append(make_issue(lf, i, f"{name} listed again (first at {first[name]}); the repeat is ignored"))
                continue
            first[name] = f"{lf}:{i}"
            e = Entry(image=root / "images" / name, rel=f"images/{name}", origin=f"{lf}:{i}", ref=(str(lf), i))
            for k, p in enumerate((p for p in parts[1:] if p.strip()), start=1):
                toks = p.strip().split(",")
                what = f"box {k} {p.strip()!r}"
                if len(toks) != 5:
                    e.bad.append(make_issue(lf, i, f"{what}: expected x1,y1,x2,y2,class"))
                    continue
                try:
                    x1, y1, x2, y2 = map(float, toks[:4])
                except ValueError:
                    e.bad.append(make_issue(lf, i, f"{what}: not a number"))
                    continue
                c, why = class_index(toks[4], len(names))
                if why:
                    e.bad.append(make_issue(lf, i, f"{what}: {why}"))
                    continue
                e.boxes.append(Box((x1, y1, x2, y2), c, str(lf), i, what=what))
            entries.append(e)
    return finish_build(entries, fmt="pictor", names=names, root=root, group_by=group_by, group_csv=group_csv,
                        auto_group="similar", limit=limit, bad_labels=bad_labels, issues=issues, notes=[],
                        source={"path": str(root.resolve()), "approach": approach, "splits": list(splits)},
                        progress=progress)

