"""``--from-deeppcb``: DeepPCB test images (plain, or composed with their defect-free template)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from inspector.util.progress import NO_PROGRESS, Progress
from training.datasets import DatasetBuild, LabelIssue
from training.importers.records import Box, Entry, make_issue
from training.importers.validate import finish_build

DEEPPCB_CLASSES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")  # DeepPCB types 1..6
DEEPPCB_MODES = ("plain", "diff", "stack")


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



def read_deeppcb(root: Path, mode: str = "plain", *, list_file: str = "trainval.txt", group_by: str = "auto",
                 group_csv: Path | None = None, limit: int | None = None, bad_labels: str = "image",
                 progress: Progress = NO_PROGRESS) -> DatasetBuild:
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
    entries: list[Entry] = []
    for i, line in enumerate(lst.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].endswith(".jpg") or not parts[1].endswith(".txt"):
            issues.append(make_issue(lst, i, "expected 'groupX/X/<id>.jpg groupX/X_not/<id>.txt', "
                                             f"got {line.strip()!r}"))
            continue
        stem = parts[0][:-4]
        test, temp, lab = base / f"{stem}_test.jpg", base / f"{stem}_temp.jpg", base / parts[1]
        e = Entry(image=test, rel=f"{stem}_test.jpg", origin=str(lab), ref=(str(lst), i),
                   template=temp if mode != "plain" else None, stem=PurePosixPath(stem).name)
        if not lab.is_file():
            e.fatal.append(make_issue(lst, i, f"missing label file {lab}"))
        else:
            for k, row in enumerate(lab.read_text().splitlines(), start=1):
                toks = [t for t in re.split(r"[,\s]+", row.strip()) if t]
                if not toks:
                    continue
                if len(toks) != 5:
                    e.bad.append(make_issue(lab, k, f"expected 5 fields 'x1 y1 x2 y2 type', got {len(toks)}"))
                    continue
                try:
                    x1, y1, x2, y2, t = map(float, toks)
                except ValueError:
                    e.bad.append(make_issue(lab, k, f"not a number in {row.strip()!r}"))
                    continue
                if not t.is_integer() or not 1 <= t <= len(DEEPPCB_CLASSES):
                    e.bad.append(make_issue(lab, k, f"unknown defect type {toks[4]!r} (known: 1..6)"))
                    continue
                e.boxes.append(Box((x1, y1, x2, y2), int(t) - 1, str(lab), k))
        entries.append(e)

    def make_image(e: Entry) -> Any:
        return e.image if mode == "plain" else DeepPCBPair(e.image, e.image.with_name(
            e.image.name.replace("_test.jpg", "_temp.jpg")), mode)

    layout = {"plain": "the test image (grey JPEG, read as 3 equal channels)",
              "diff": "PNG, BGR file order: B=test, G=template, R=|test-template| "
                      "(network RGB: absdiff, template, test)",
              "stack": "PNG, BGR file order: B=test, G=template, R=0 (network RGB: 0, template, test)"}[mode]
    return finish_build(entries, fmt="deeppcb", names=DEEPPCB_CLASSES, root=base, group_by=group_by,
                        group_csv=group_csv, auto_group="deeppcb", limit=limit, bad_labels=bad_labels, issues=issues,
                        notes=[], make_image=make_image, progress=progress,
                        source={"path": str(root.resolve()), "list": list_file, "mode": mode, "channels": layout})

