"""``--from-coco``: COCO detection JSON; issues name the line where an image or annotation starts."""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspector.util.progress import NO_PROGRESS, Progress
from training.datasets import DatasetBuild, LabelIssue
from training.importers.records import Box, Entry, make_issue
from training.importers.validate import finish_build


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
              limit: int | None = None, bad_labels: str = "image", progress: Progress = NO_PROGRESS) -> DatasetBuild:
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
    by_id: dict[Any, Entry] = {}
    entries: list[Entry] = []
    files: dict[str, int] = {}
    for i, im in enumerate(data["images"]):
        ref = (str(json_path), lines.at("images", i))
        if not isinstance(im, dict) or "id" not in im or not im.get("file_name"):
            issues.append(make_issue(*ref, "image record needs 'id' and 'file_name'"))
            continue
        fname = str(im["file_name"]).replace("\\", "/")
        if im["id"] in by_id or fname in files:
            issues.append(make_issue(*ref, f"image id {im['id']} / file {fname!r} appears twice; "
                                           "the repeat is ignored"))
            continue
        files[fname] = i
        e = Entry(image=images_dir / fname, rel=fname, origin=f"{json_path}#images[{i}]", ref=ref, record=im)
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
            issues.append(make_issue(json_path, loc, f"{what}: not an object"))
            continue
        e = by_id.get(a.get("image_id"))
        if e is None:
            issues.append(make_issue(json_path, loc, f"{what}: unknown image id {a.get('image_id')!r}; ignored"))
            continue
        if a.get("iscrowd"):
            crowd += 1
            continue
        if a.get("category_id") not in cat_index:
            e.bad.append(make_issue(json_path, loc, f"{what}: unknown category id {a.get('category_id')!r} "
                                                    f"(known: {', '.join(map(str, ids))})"))
            continue
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            e.bad.append(make_issue(json_path, loc, f"{what}: bbox must be [x, y, w, h] numbers, got {bbox!r}"))
            continue
        x, y, w, h = map(float, bbox)
        e.boxes.append(Box((x, y, x + w, y + h), cat_index[a["category_id"]], str(json_path), loc, what=what))
    if crowd:
        notes.append(f"{crowd} crowd annotation(s) (iscrowd 1) skipped: they mark regions, not single objects")
    return finish_build(entries, fmt="coco", names=names, root=images_dir, group_by=group_by, group_csv=group_csv,
                        auto_group="none", limit=limit, bad_labels=bad_labels, issues=issues, notes=notes,
                        source={"path": str(json_path.resolve()), "images_dir": str(images_dir.resolve()),
                                "category_ids": ids}, progress=progress)

