"""A detection dataset from what operators confirmed in the station's store (``--from-db``).

The store records, for every frame, the boxes the station kept (``detections``, model_index -1)
and every later human review (``reviews``, written by :func:`inspector.store.queries.add_review`).
This module turns the reviews into YOLO labels; nothing an operator did not confirm is exported.

Review-to-label convention
--------------------------

- Only the **latest** review of a frame counts (the highest review id, i.e. the last one
  committed; later reviews supersede earlier ones, which are listed in the provenance).
  Frames never reviewed are not exported.
- ``accept``: the station's kept (fused) detections are the labels (an accepted frame with no
  kept box is a confirmed negative). A frame whose verdict is ``error`` / ``not_inspected`` was
  never judged, so accepting it confirms nothing: reported and excluded (relabel it instead).
  ``labels`` on an accept review are ignored (noted).
- ``reject_false_alarm``: the frame is a confirmed negative: an EMPTY label file, except the
  boxes the review's ``labels`` list (the detections the operator kept as real).
- ``change_class``: the review's ``labels`` are the corrected boxes with their classes, the full
  set for the frame (usually the kept boxes with one class changed). Required.
- ``relabel`` (the label editor: moved boxes, missed defects added by hand): the review's
  ``labels`` are the full truth for the frame; ``[]`` makes it a negative. Required.

``labels`` is a JSON list of ``{"class": "<class name>", "xyxy": [x0, y0, x1, y1]}`` in pixels
of the original stored image (``frames.width`` x ``frames.height``, origin top left, x1 > x0,
y1 > y0); other keys are ignored. Class *names* rather than ids, because ids depend on the order
of a config's class list and names do not. Each entry is validated: not an object, unknown class,
coordinates that are not four finite numbers, a zero-area box, or a box outside the image by more
than ``TOLERANCE_PX`` (1 px; within it the box is clipped) is a :class:`LabelIssue` naming the
frame and the review. With ``bad_labels="image"`` (default) such a frame is excluded as a whole
(dropping one box would teach the model that an object is background); with ``"box"`` only the
bad boxes are dropped. Exact duplicate boxes are reported and the copy dropped.

Images come from the content-addressed image store (``frames.image_path`` is relative to its
root; default ``images/`` beside the database, as the station lays out its data folder). A frame
whose image was not stored, was pruned by retention, is missing, unreadable, a different size
than recorded, or whose bytes no longer match the recorded sha256 is reported and excluded.

Class names (the dataset's fixed order): given names, else the station config's model
``class_names``, else the named classes found in ``detections`` sorted by class id.

Groups (the split unit, never straddling train / val): ``lot``, ``wafer`` (lot/wafer),
``camera-day`` (station/camera-or-source/UTC capture date), ``none`` (each frame), ``auto``
(``lot`` when every exported frame has a lot, else ``camera-day``). A frame without the chosen
key is reported and excluded.

Incidents marked false alarms (construction site)
-------------------------------------------------

A false-alarm mark says the *incident* was wrong, not which box was: a "no hard hat" false alarm
usually means the hat was there and the model missed it, but it may be a spurious worker box, a
vest taken for a hat, or a worker outside the zone. So the model's boxes on those frames are
exactly what must not be confirmed, and an empty label file would erase real workers. Such
evidence frames are therefore **not exported as labels**. They are hard examples listed in
``to_label.jsonl`` (:data:`TO_LABEL_FILE`; one line per frame: incident, kind, who marked it, the
note, the image's sha256 and the model's kept boxes as suggestions only) for someone to relabel in
the label editor; once a frame has a review, the review is its truth and it is exported like any
reviewed frame, its provenance naming the false-alarm incidents (``false_alarm_incidents``).

Traceability: each sample's ``origin`` is ``review <id>``; :func:`write_provenance` writes
``provenance.jsonl`` (one line per exported image: image, label, split, frame, review, reviewer,
action, time, superseded reviews, image sha256) and the manifest's source lists the database,
its audit head and every exported review id.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspector.util.progress import NO_PROGRESS, Progress
from training.datasets import DatasetBuild, LabelIssue, Sample, file_sha256, split_by_group, write_yolo
from training.importers import BAD_LABEL_POLICIES, TOLERANCE_PX, probe_image

GROUP_BY_DB = ("auto", "lot", "wafer", "camera-day", "none")
PROVENANCE_FILE = "provenance.jsonl"
TO_LABEL_FILE = "to_label.jsonl"  # false-alarm evidence frames awaiting a human's labels
_UNJUDGED = ("error", "not_inspected")
_UNSAFE = re.compile(r"[^A-Za-z0-9._()+\-]")

CONVENTION = (
    "latest review per frame wins; accept: the station's kept detections; reject_false_alarm: empty label "
    "file except the boxes its labels keep; change_class / relabel: the review's labels are the full set; "
    'labels: [{"class": name, "xyxy": [x0, y0, x1, y1]}] in original image pixels; '
    "false-alarm incident frames without a review: not labels, listed in to_label.jsonl"
)


@dataclass
class DbExport:
    """A build read from a store plus, per sample name, the review it came from."""

    build: DatasetBuild
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    to_label: list[dict[str, Any]] = field(default_factory=list)  # see "Incidents marked false alarms"


# ---------------------------------------------------------------- opening, names


def open_store_readonly(db: Path) -> sqlite3.Connection:
    """Open a store database read-only (no migration, no WAL switch: a station may be writing it)."""
    from inspector.store.db import MIGRATIONS, SchemaTooNewError, schema_version

    db = Path(db)
    if not db.is_file():
        raise FileNotFoundError(f"no Inspector database at {db}")
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    conn.row_factory = sqlite3.Row
    try:
        version = schema_version(conn)
        if version > len(MIGRATIONS):
            raise SchemaTooNewError(f"{db}: database schema version {version} is newer than this Inspector "
                                    f"understands (up to {len(MIGRATIONS)}); upgrade Inspector to read it")
        if version < len(MIGRATIONS):
            # Read-only: migrating here would write to a station's database behind its back.
            raise ValueError(f"{db}: database schema version {version} is older than this Inspector's "
                             f"({len(MIGRATIONS)}); open it once with `inspector db stats --db {db}` to upgrade")
    except BaseException:
        conn.close()
        raise
    return conn


def class_names_from_config(path: Path) -> list[str]:
    """The station config's model class names (all models of an ensemble share them)."""
    from inspector.config import load_config

    return list(load_config(path).models[0].class_names)


def class_names_from_db(conn: sqlite3.Connection) -> tuple[list[str], list[str]]:
    """Named classes found in the stored detections, sorted by class id; returns (names, notes)."""
    by_id: dict[int, set[str]] = {}
    for cid, name in conn.execute("SELECT DISTINCT class_id, class_name FROM detections WHERE class_name IS NOT NULL"):
        by_id.setdefault(int(cid), set()).add(str(name))
    clash = {c: sorted(n) for c, n in by_id.items() if len(n) > 1}
    if clash:
        c, n = next(iter(sorted(clash.items())))
        raise ValueError(f"the database's detections give class id {c} the names {n} (models with different "
                         "class lists were used); pass --config FILE or --names to fix the class order")
    names = [next(iter(by_id[c])) for c in sorted(by_id)]
    dup = [n for n, k in Counter(names).items() if k > 1]
    if dup:
        raise ValueError(f"the database's detections give class {dup[0]!r} several class ids; pass --config FILE "
                         "or --names to fix the class order")
    notes = []
    if by_id and sorted(by_id) != list(range(len(by_id))):
        missing = sorted(set(range(max(by_id) + 1)) - set(by_id))
        notes.append(f"class ids {missing} never appear in the database: the dataset's class ids are renumbered "
                     f"({', '.join(names)}); pass --config to keep the station's ids")
    return names, notes


# ---------------------------------------------------------------- reading the store


def _reviewed_frames(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[LabelIssue]]:
    # queries.reviews() parses every labels text at once, so one bad row would stop the export;
    # this reads the raw rows and reports a bad one against its frame and review instead.
    latest: dict[str, sqlite3.Row] = {}
    superseded: dict[str, list[int]] = {}
    for r in conn.execute("SELECT id, frame_id, user, t, action, verdict, labels, note FROM reviews ORDER BY id"):
        prev = latest.get(r["frame_id"])
        if prev is not None:
            superseded.setdefault(r["frame_id"], []).append(int(prev["id"]))
        latest[r["frame_id"]] = r
    if not latest:
        return [], []
    frames = {}
    ids = list(latest)
    for i in range(0, len(ids), 500):  # stay below SQLite's bound-parameter limit
        chunk = ids[i:i + 500]
        sql = ("SELECT f.id, f.station_id, f.source, f.t_utc, f.image_sha256, f.image_path, f.image_pruned, f.width,"
               " f.height, f.lot, f.wafer, f.camera, d.verdict FROM frames f LEFT JOIN decisions d ON d.frame_id = f.id"
               f" WHERE f.id IN ({', '.join('?' * len(chunk))})")
        for row in conn.execute(sql, chunk):
            frames[row["id"]] = dict(row)
    out, orphans = [], []
    for fid, r in latest.items():
        if fid not in frames:  # foreign keys make this impossible unless the file was edited
            orphans.append(LabelIssue(f"frame {fid} review {r['id']}", None, "the reviewed frame is not in the "
                                      "frames table (database edited outside the store?); excluded"))
            continue
        f = frames[fid]
        f["review"] = dict(r)
        f["superseded"] = superseded.get(fid, [])
        out.append(f)
    out.sort(key=lambda f: (f["t_utc"], f["id"]))
    return out, orphans


def _false_alarms(conn: sqlite3.Connection, reviewed: set[str], names: Sequence[str]
                  ) -> tuple[dict[str, list[int]], list[dict[str, Any]]]:
    """(frame id -> its false-alarm incident ids, the to-label list of frames nobody reviewed yet)."""
    from inspector.store.incidents import false_alarm_frames

    by_frame: dict[str, list[int]] = {}
    todo: dict[str, dict[str, Any]] = {}
    for fa in false_alarm_frames(conn):
        fid = fa["frame_id"]
        by_frame.setdefault(fid, []).append(int(fa["incident_id"]))
        if fid in reviewed:
            continue
        if fid in todo:  # one frame can be evidence of several incidents: listed once, naming them all
            todo[fid]["incidents"].append({k: fa[k] for k in ("incident_id", "kind", "user", "t", "note")})
            continue
        f = conn.execute("SELECT image_path, image_sha256, image_pruned, width, height FROM frames WHERE id = ?",
                         (fid,)).fetchone()
        boxes = conn.execute("SELECT x0, y0, x1, y1, score, class_id, class_name FROM detections"
                             " WHERE frame_id = ? AND model_index = -1 ORDER BY idx", (fid,)).fetchall()
        todo[fid] = {
            "frame_id": fid, "image_path": f["image_path"], "image_sha256": f["image_sha256"],
            "image_pruned": bool(f["image_pruned"]), "width": f["width"], "height": f["height"],
            "incidents": [{k: fa[k] for k in ("incident_id", "kind", "user", "t", "note")}],
            # What the station saw, to start the relabelling from: NOT labels (see the module doc).
            "model_boxes": [{"class": b["class_name"] or (names[b["class_id"]] if 0 <= b["class_id"] < len(names)
                                                           else str(b["class_id"])),
                             "xyxy": [b["x0"], b["y0"], b["x1"], b["y1"]], "score": b["score"]} for b in boxes],
        }
    return by_frame, list(todo.values())


def _group_of(f: Mapping[str, Any], kind: str) -> str | None:
    if kind == "none":
        return str(f["id"])
    if kind == "lot":
        return None if f["lot"] in (None, "") else str(f["lot"])
    if kind == "wafer":
        # wafer ids repeat across lots (W01..W25), so the lot is part of the key
        return None if f["wafer"] in (None, "") else f"{f['lot'] or ''}/{f['wafer']}"
    cam = f["camera"] or f["source"]
    return f"{f['station_id']}/{cam}/{str(f['t_utc'])[:10]}"


def _validate_label(entry: Any, names: Sequence[str], w: int, h: int) -> tuple[tuple[float, ...], int] | str:
    """(clipped pixel xyxy, class index) of one label entry, or why it is bad."""
    if not isinstance(entry, Mapping):
        return f"expected an object {{\"class\": name, \"xyxy\": [x0, y0, x1, y1]}}, got {entry!r}"
    name = entry.get("class")
    if not isinstance(name, str):
        return f"'class' must be a class name (text), got {name!r}"
    if name not in names:
        return f"unknown class {name!r} (known: {', '.join(names)})"
    xyxy = entry.get("xyxy")
    if (not isinstance(xyxy, (list, tuple)) or len(xyxy) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in xyxy)):
        return f"'xyxy' must be four finite numbers [x0, y0, x1, y1], got {xyxy!r}"
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    if x1 <= x0 or y1 <= y0:
        return f"degenerate box {[x0, y0, x1, y1]}: needs x1 > x0 and y1 > y0"
    over = max(-x0, -y0, x1 - w, y1 - h)
    if over > TOLERANCE_PX:
        return (f"box ({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}) px lies outside the {w}x{h} image by {over:.1f} px "
                f"(tolerance {TOLERANCE_PX:g} px)")
    c = (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))
    if c[2] - c[0] <= 0 or c[3] - c[1] <= 0:
        return "box has no area inside the image"
    return c, names.index(name)


def labels_for_review(conn: sqlite3.Connection, frame: Mapping[str, Any], names: Sequence[str]
                      ) -> tuple[list[Any], list[str], list[str], list[str]]:
    """Apply the convention to a frame's latest review.

    Returns (label entries to validate, what each entry is called in messages, frame-level problems
    that exclude the frame, notes). Entries are ``{"class", "xyxy"}`` objects.
    """
    from inspector.store.queries import frame_detections

    rv = frame["review"]
    action = rv["action"]
    problems: list[str] = []
    notes: list[str] = []
    labels: Any = None
    if rv["labels"] is not None:
        try:
            labels = json.loads(rv["labels"])
        except ValueError as e:
            return [], [], [f"labels are not valid JSON ({e})"], notes
    if action == "accept":
        if frame["verdict"] in _UNJUDGED or frame["verdict"] is None:
            problems.append(f"accept of a frame the station never judged (verdict {frame['verdict']}); its kept "
                            "boxes confirm nothing: relabel it to export it")
        if labels is not None:
            notes.append("accept review carries labels; they are ignored (accept exports the kept detections)")
        entries: list[Any] = []
        for d in frame_detections(conn, frame["id"], -1):
            # a box whose class id had no name when it was recorded is reported as an unknown class
            cls = d["class_name"] if d["class_name"] is not None else f"<class id {d['class_id']} without a name>"
            entries.append({"class": cls, "xyxy": d["xyxy"]})
        return entries, [f"kept detection {i}" for i in range(len(entries))], problems, notes
    if action == "reject_false_alarm":
        labels = [] if labels is None else labels
    elif action in ("change_class", "relabel"):
        if labels is None:
            return [], [], [f"{action} review without labels: its corrected boxes are unknown"], notes
    else:
        return [], [], [f"unknown review action {action!r}"], notes
    if not isinstance(labels, list):
        return [], [], [f"labels must be a JSON list of {{\"class\", \"xyxy\"}} objects, got "
                        f"{type(labels).__name__}"], notes
    return labels, [f"label {i + 1}" for i in range(len(labels))], problems, notes


def read_db(db: Path, *, images_root: Path | None = None, names: Sequence[str] | None = None,
            names_from: str | None = None, group_by: str = "auto", limit: int | None = None,
            bad_labels: str = "image", progress: Progress = NO_PROGRESS) -> DbExport:
    """Read the confirmed labels of a store into a :class:`DbExport` (see the module docstring).

    ``names``: the class names in dataset order (``names_from`` says where they came from, for the
    manifest); None reads them from the database. ``images_root`` defaults to ``images/`` beside ``db``.
    """
    if group_by not in GROUP_BY_DB:
        raise ValueError(f"--group-by for --from-db must be one of {', '.join(GROUP_BY_DB)}; got {group_by!r}")
    if bad_labels not in BAD_LABEL_POLICIES:
        raise ValueError(f"bad_labels must be one of {BAD_LABEL_POLICIES}, got {bad_labels!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (or None for all), got {limit}")
    db = Path(db)
    root = Path(images_root) if images_root is not None else db.parent / "images"
    from inspector.store.audit import audit_head

    conn = open_store_readonly(db)
    try:
        notes: list[str] = []
        if names is None:
            names, name_notes = class_names_from_db(conn)
            notes += name_notes
            names_from = "database detections (sorted by class id)"
        names = list(names)
        if not names:
            raise ValueError(f"{db}: no class names: the database holds no named detections; pass --config FILE "
                             "(the station config) or --names")
        frames, orphans = _reviewed_frames(conn)
        false_alarm_of, to_label = _false_alarms(conn, {str(f["id"]) for f in frames}, names)
        head = audit_head(conn)
        if frames and not root.is_dir() and any(f["image_path"] for f in frames):
            raise ValueError(f"image store folder {root} not found (the frames' images are stored relative to it); "
                             "pass --images DIR")
        issues: list[LabelIssue] = list(orphans)

        # groups first (cheap), so --limit never reads the images of groups it leaves out
        kind = group_by
        if kind == "auto":
            kind = "lot" if frames and all(f["lot"] not in (None, "") for f in frames) else "camera-day"
            rule = f"auto -> {kind}"
        else:
            rule = kind
        grouped = []
        for f in frames:
            g = _group_of(f, kind)
            if g is None:
                issues.append(_frame_issue(f, f"frame has no {kind}; excluded (group by {kind})"))
                continue
            f["group"] = g
            grouped.append(f)
        if limit:
            order = sorted({f["group"] for f in grouped}, key=lambda g: (hashlib.sha256(g.encode()).hexdigest(), g))
            keep = set(order[:limit])
            grouped = [f for f in grouped if f["group"] in keep]

        samples: list[Sample] = []
        provenance: dict[str, dict[str, Any]] = {}
        used_names: set[str] = set()
        ignored_labels: list[str] = []
        with progress.stage("read reviews", total=len(grouped), unit="frame") as stage:
            for f in grouped:
                stage.advance()  # counted when taken up: a frame can be excluded at several points below
                rv = f["review"]
                entries, what, problems, fnotes = labels_for_review(conn, f, names)
                if fnotes:
                    ignored_labels.append(f"frame {f['id']} review {rv['id']}")
                image, why = _image_of(f, root)
                if why:
                    problems.insert(0, why)
                w, h = int(f["width"]), int(f["height"])
                bad: list[str] = []
                xyxy: list[tuple[float, ...]] = []
                cls: list[int] = []
                seen: dict[tuple, str] = {}
                for entry, label in zip(entries, what):
                    got = _validate_label(entry, names, w, h)
                    if isinstance(got, str):
                        bad.append(f"{label}: {got}")
                        continue
                    key = (got[1], *(round(v, 4) for v in got[0]))
                    if key in seen:
                        issues.append(_frame_issue(f, f"{label}: duplicate of {seen[key]} (same class and "
                                                      "coordinates); copy dropped"))
                        continue
                    seen[key] = label
                    xyxy.append(got[0])
                    cls.append(got[1])
                issues += [_frame_issue(f, p) for p in problems]
                issues += [_frame_issue(f, b) for b in bad]
                if problems:
                    continue
                if bad and bad_labels == "image":
                    issues.append(_frame_issue(f, f"frame excluded: {len(bad)} bad label(s) above "
                                                  "(policy --bad-labels image)"))
                    continue
                name = _sample_name(str(f["id"]), used_names)
                samples.append(Sample(image=image, xyxy=np.array(xyxy, dtype=np.float64).reshape(-1, 4),
                                      class_id=np.array(cls, dtype=np.int64), width=w, height=h, group=f["group"],
                                      source="inspector-db", origin=f"review {rv['id']}", name=name))
                provenance[name] = {
                    "frame_id": f["id"], "review_id": int(rv["id"]), "reviewer": rv["user"], "action": rv["action"],
                    "review_t": rv["t"], "review_verdict": rv["verdict"], "note": rv["note"],
                    "superseded_reviews": list(f["superseded"]), "station_verdict": f["verdict"],
                    "image_sha256": f["image_sha256"], "group": f["group"], "boxes": len(cls),
                    "label_source": "kept detections" if rv["action"] == "accept" else "review labels",
                }
                if f["id"] in false_alarm_of:  # a hard example: the station raised a false alarm on it
                    provenance[name]["false_alarm_incidents"] = false_alarm_of[f["id"]]
        if ignored_labels:
            notes.append(f"{len(ignored_labels)} accept review(s) carry labels, ignored (accept exports the kept "
                         f"detections): {', '.join(ignored_labels[:5])}{' ...' if len(ignored_labels) > 5 else ''}")
        if to_label:
            notes.append(f"{len(to_label)} evidence frame(s) of false-alarm incidents have no review: not labels "
                         f"(the mark does not say which box was wrong); listed in {TO_LABEL_FILE} to relabel")
        if kind == "none":
            notes.append("split unit is the single frame (--group-by none): near-duplicate frames can straddle "
                         "train and val; group by lot, wafer or camera-day when you can")
        n_reviews = conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0]
        source = {
            "format": "inspector-db",
            "db": str(db.resolve()),
            "images_root": str(root.resolve()),
            "audit_head": None if head is None else {"seq": head[0], "hash": head[1]},
            "convention": CONVENTION,
            "class_names_from": names_from or "given",
            "group_by": group_by,
            "reviews_in_db": int(n_reviews),
            "frames_reviewed": len(frames),
            "frames_selected": len(grouped),
            "images_kept": len(samples),
            "images_excluded": len(grouped) - len(samples),
            "review_ids": sorted(p["review_id"] for p in provenance.values()),
            "limit_groups": limit,
            "bad_labels": bad_labels,
            "provenance_file": PROVENANCE_FILE,
            "false_alarm_frames_to_label": len(to_label),
        }
        build = DatasetBuild(samples=samples, class_names=names, issues=issues, sources=[source],
                             group_rule=rule, notes=notes)
        return DbExport(build, provenance, to_label)
    finally:
        conn.close()


def _frame_issue(f: Mapping[str, Any], message: str) -> LabelIssue:
    return LabelIssue(f"frame {f['id']} review {f['review']['id']}", None, message)


def _image_of(f: Mapping[str, Any], root: Path) -> tuple[Path | None, str | None]:
    """The stored image file of a frame, or why it cannot be used."""
    rel = f["image_path"]
    if not rel:
        return None, "no image was stored for this frame (storage.store_images policy)"
    if f["image_pruned"]:
        return None, f"image pruned by retention ({rel})"
    path = root / rel
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return None, f"image path {rel!r} points outside the image store {root}"
    size = probe_image(path)
    if isinstance(size, str):
        return None, f"{size}: {path}"
    if size != (int(f["width"]), int(f["height"])):
        return None, f"{path} is {size[0]}x{size[1]}, the frame was recorded as {f['width']}x{f['height']}"
    if f["image_sha256"] and file_sha256(path) != f["image_sha256"]:
        return None, f"{path} no longer matches the sha256 recorded for the frame (changed or corrupted)"
    return path, None


def _sample_name(frame_id: str, used: set[str]) -> str:
    name = _UNSAFE.sub("_", frame_id).strip("._") or "frame"
    if name in used:  # two ids that differ only in unsafe characters
        name = f"{name}-{hashlib.sha1(frame_id.encode()).hexdigest()[:8]}"
    used.add(name)
    return name


# ---------------------------------------------------------------- writing


def write_provenance(out: Path, splits: Mapping[str, Sequence[Sample]],
                     provenance: Mapping[str, Mapping[str, Any]]) -> tuple[Path, str, int]:
    """``out/provenance.jsonl``: one line per exported image, in split then sample order.

    Returns (path, sha256 of the file, lines written).
    """
    lines = []
    for sp, samples in splits.items():
        for s in samples:
            rec = {"image": f"images/{sp}/{s.name}{s.suffix}", "label": f"labels/{sp}/{s.name}.txt", "split": sp}
            rec.update(provenance[s.name])
            lines.append(json.dumps(rec, sort_keys=True, ensure_ascii=False))
    path = Path(out) / PROVENANCE_FILE
    data = ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest(), len(lines)


def write_db_dataset(export: DbExport, out: Path, splits: Mapping[str, Sequence[Sample]], *,
                     copy_mode: str = "copy", overwrite: bool = False,
                     progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """Write a :class:`DbExport` as a YOLO dataset with ``provenance.jsonl``; returns the manifest.

    copy_mode defaults to ``copy``: a hard link into the image store would let an edit of the
    dataset change the stored evidence.
    """
    out = Path(out)
    if overwrite:
        (out / PROVENANCE_FILE).unlink(missing_ok=True)  # write_yolo only clears the files it writes
    manifest = write_yolo(export.build, out, splits, copy_mode=copy_mode, overwrite=overwrite, progress=progress)
    _, sha, n = write_provenance(out, splits, export.provenance)
    manifest["provenance"] = {"file": PROVENANCE_FILE, "sha256": sha, "records": n}
    todo = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in export.to_label)
    (out / TO_LABEL_FILE).write_text(todo, encoding="utf-8")  # written even when empty: a rerun leaves no stale list
    manifest["to_label"] = {"file": TO_LABEL_FILE, "records": len(export.to_label)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def export_from_db(db: Path, out: Path, *, images_root: Path | None = None, names: Sequence[str] | None = None,
                   names_from: str | None = None, group_by: str = "auto", val_fraction: float = 0.2,
                   test_fraction: float = 0.0, seed: int = 0, limit: int | None = None, bad_labels: str = "image",
                   copy_mode: str = "copy", overwrite: bool = False, progress: Progress = NO_PROGRESS
                   ) -> tuple[DbExport, dict[str, Any]]:
    """Read, split by group and write in one call; returns (the export, the manifest)."""
    export = read_db(db, images_root=images_root, names=names, names_from=names_from, group_by=group_by,
                     limit=limit, bad_labels=bad_labels, progress=progress)
    if not export.build.samples:
        raise ValueError(f"{db}: no confirmed frame could be exported ({len(export.build.issues)} issue(s))")
    splits = split_by_group(export.build.samples, val_fraction, seed, test_fraction)
    return export, write_db_dataset(export, out, splits, copy_mode=copy_mode, overwrite=overwrite, progress=progress)


__all__ = [
    "CONVENTION", "GROUP_BY_DB", "PROVENANCE_FILE", "TO_LABEL_FILE", "DbExport", "class_names_from_config", "class_names_from_db",
    "export_from_db", "labels_for_review", "open_store_readonly", "read_db", "write_db_dataset",
    "write_provenance",
]
