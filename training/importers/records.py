"""What a reader collects before validation: one entry per image, its boxes, and where each came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.datasets import LabelIssue

Line = int | None | Callable[[], int | None]


@dataclass
class Box:
    values: tuple[float, float, float, float]  # xyxy px, or cx cy w h normalised when norm
    cls: int
    file: str
    line: Line
    norm: bool = False
    what: str = ""  # extra context, e.g. "box 3" or "annotation id 17"


@dataclass
class Entry:
    image: Path
    rel: str  # relative to the source root, '/' separated: group rules and output names use it
    origin: str  # Sample.origin
    ref: tuple[str, Line]  # where the image is referenced (file, line), for image issues
    boxes: list[Box] = field(default_factory=list)
    bad: list[LabelIssue] = field(default_factory=list)  # bad label lines found while parsing
    fatal: list[LabelIssue] = field(default_factory=list)  # image-level problems: always excluded
    expected_size: tuple[int, int] | None = None  # (w, h) stated by the label file
    template: Path | None = None  # DeepPCB reference image
    record: dict[str, Any] | None = None  # COCO image record (for column:<name>)
    group: str | None = None
    stem: str | None = None  # output name wanted (default: the file stem of rel)
    name: str = ""


def line_of(line: Line) -> int | None:
    return line() if callable(line) else line


def make_issue(file: str | Path, line: Line, message: str) -> LabelIssue:
    return LabelIssue(str(file), line_of(line), message)


def box_issue(b: Box, message: str) -> LabelIssue:
    return make_issue(b.file, b.line, f"{b.what + ': ' if b.what else ''}{message}")

