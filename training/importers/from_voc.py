"""``--from-voc``: Pascal VOC XML files, with the line of each element kept for the issues."""

from __future__ import annotations

import math
import xml.parsers.expat
from collections.abc import Sequence
from pathlib import Path

from inspector.util.progress import NO_PROGRESS, Progress
from training.datasets import DatasetBuild, LabelIssue
from training.importers.records import Box, Entry, make_issue
from training.importers.validate import finish_build
from training.yolo import read_names_file


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
             bad_labels: str = "image", progress: Progress = NO_PROGRESS) -> DatasetBuild:
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
            issues.append(make_issue(xp, ex.lineno, f"malformed XML ({xml.parsers.expat.ErrorString(ex.code)}); "
                                                    "its image is excluded"))
            continue
        if root_node.tag != "annotation":
            issues.append(make_issue(xp, root_node.line,
                                     f"not a Pascal VOC annotation (root <{root_node.tag}>); ignored"))
            continue
        parsed.append((xp, root_node))
    if names is None:
        names = read_names_file(folder)
    if names is None:
        names = sorted({(o.findtext("name") or "") for _, r in parsed for o in r.findall("object")} - {""})
        notes.append(f"class names taken from the XML files, sorted: {', '.join(names)}")
    names = list(names)
    if not names:
        raise ValueError(f"{folder}: no class names and no objects in the XML files")
    index = {n: i for i, n in enumerate(names)}
    entries: list[Entry] = []
    difficult = 0
    for xp, r in parsed:
        fn_node = r.find("filename")
        filename = fn_node.text.strip() if fn_node is not None else None
        img = _find_voc_image(xp, filename, folder, images_dir)
        try:
            rel = img.relative_to(images_dir or folder).as_posix()
        except ValueError:
            rel = xp.relative_to(folder).with_suffix(img.suffix).as_posix()
        e = Entry(image=img, rel=rel, origin=str(xp), ref=(str(xp), fn_node.line if fn_node is not None else None))
        size = r.find("size")
        if size is not None:
            try:
                w, h = int(float(size.findtext("width") or 0)), int(float(size.findtext("height") or 0))
                if w > 0 and h > 0:
                    e.expected_size = (w, h)
            except ValueError:
                e.bad.append(make_issue(xp, size.line, "size: width / height are not numbers"))
        for k, o in enumerate(r.findall("object"), start=1):
            nm = o.findtext("name") or ""
            what = f"object {k} ({nm or 'no name'})"
            if nm not in index:
                e.bad.append(make_issue(xp, o.line, f"{what}: unknown class name {nm!r} (known: {', '.join(names)})"))
                continue
            bb = o.find("bndbox")
            try:
                if bb is None:
                    raise ValueError("no <bndbox>")
                vals = [float(bb.findtext(t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax")]
                if any(math.isnan(v) for v in vals):
                    raise ValueError("<bndbox> needs xmin, ymin, xmax, ymax")
            except ValueError as ex:
                e.bad.append(make_issue(xp, (bb or o).line, f"{what}: {ex}"))
                continue
            difficult += (o.findtext("difficult") or "0").strip() == "1"
            e.boxes.append(Box((vals[0] - 1, vals[1] - 1, vals[2], vals[3]), index[nm], str(xp), bb.line, what=what))
        entries.append(e)
    if difficult:
        notes.append(f"{difficult} 'difficult' object(s) kept as ordinary boxes")
    return finish_build(entries, fmt="voc", names=names, root=images_dir or folder, group_by=group_by,
                        group_csv=group_csv if group_csv else (folder / "groups.csv"), auto_group="none", limit=limit,
                        bad_labels=bad_labels, issues=issues, notes=notes,
                        source={"path": str(folder.resolve()),
                                "images_dir": str(Path(images_dir).resolve()) if images_dir else None},
                        progress=progress)

