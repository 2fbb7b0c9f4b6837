"""training/from_db.py and `inspector-train dataset --from-db`: a real store (SQLite + content-addressed
PNGs written through StoreWriter, reviews through add_review) turned into a YOLO dataset of what
operators confirmed, with every excluded frame reported by frame and review id."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.store import ImageStore, StoreWriter, open_db
from inspector.store.queries import add_review
from inspector.store.writer import DecisionRecord
from training.cli import main
from training.datasets import dataset_content_hash, split_by_group
from training.from_db import PROVENANCE_FILE, export_from_db, read_db

from helpers.sessions import logged_in

REPO = Path(__file__).resolve().parents[2]
W, H = 64, 48
NAMES = ("particle", "scratch")
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)
P_BOX = [10.0, 8.0, 20.0, 18.0]   # a particle the station kept
S_BOX = [30.0, 20.0, 50.0, 26.0]  # a scratch the station kept

# frame id, verdict, lot, kept boxes [(class id, xyxy)]
FRAMES = [
    ("f-acc", "fail", "L1", [(0, P_BOX)]),
    ("f-rej", "fail", "L1", [(1, S_BOX)]),
    ("f-rej-keep", "fail", "L2", [(0, P_BOX), (1, S_BOX)]),
    ("f-chg", "fail", "L2", [(0, P_BOX)]),
    ("f-rel", "review", "L3", []),
    ("f-latest", "fail", "L3", [(0, P_BOX)]),
    ("f-unreviewed", "fail", "L4", [(0, P_BOX)]),
    ("f-badclass", "fail", "L4", [(0, P_BOX)]),
    ("f-outside", "fail", "L5", [(0, P_BOX)]),
    ("f-missing", "fail", "L5", [(0, P_BOX)]),
    ("f-error", "error", "L6", []),
    ("f-pass", "pass", "L6", []),
]
REL_LABELS = [{"class": "scratch", "xyxy": [1, 2, 31, 12]}, {"class": "particle", "xyxy": [40, 30, 44, 36]}]


def _record(i: int, fid: str, verdict: str, lot: str, kept: list) -> DecisionRecord:
    t = T0 + timedelta(minutes=i)
    img = np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8)
    frame = Frame(fid, "st", "cam0", 0.0, t, img, {"lot": lot, "wafer": f"W{i % 2}", "camera": "cam0"})
    det = Detections([b for _, b in kept] or np.zeros((0, 4)), [0.9] * len(kept), [c for c, _ in kept], -1,
                     [1] * len(kept))
    reasons = () if verdict == "pass" else (Reason("r", Verdict(verdict), "why", tuple(range(len(kept)))),)
    return DecisionRecord(frame, Decision(fid, verdict, reasons, det, "ms", "cfg", t), None, "run-1", NAMES)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A station data folder: inspector.sqlite + images/, nine frames reviewed, one not."""
    data = tmp_path_factory.mktemp("data")
    db = data / "inspector.sqlite"
    with StoreWriter(db, ImageStore(data / "images"), image_workers=1) as w:
        futures = [w.submit(_record(i, *row)) for i, row in enumerate(FRAMES)]
        stored = {f.result(10).frame_id: f.result(10) for f in futures}
    conn = open_db(db, create=False)
    try:
        ann, bob = logged_in(conn, "engineer", "ann"), logged_in(conn, "engineer", "bob")
        add_review(conn, "f-acc", ann, "accept")
        add_review(conn, "f-rej", ann, "reject_false_alarm", verdict="pass")
        add_review(conn, "f-rej-keep", ann, "reject_false_alarm",
                   labels=[{"class": "particle", "xyxy": P_BOX}])
        add_review(conn, "f-chg", bob, "change_class", labels=[{"class": "scratch", "xyxy": P_BOX}])
        add_review(conn, "f-rel", bob, "relabel", labels=REL_LABELS)
        add_review(conn, "f-latest", ann, "accept")
        add_review(conn, "f-latest", bob, "reject_false_alarm", note="second look: dust on the lens")
        add_review(conn, "f-badclass", ann, "relabel", labels=[{"class": "crack", "xyxy": P_BOX}])
        add_review(conn, "f-outside", ann, "relabel", labels=[{"class": "particle", "xyxy": [50, 10, 90, 30]}])
        add_review(conn, "f-missing", ann, "accept")
        add_review(conn, "f-error", ann, "accept")
        add_review(conn, "f-pass", ann, "accept")
    finally:
        conn.close()
    (data / "images" / stored["f-missing"].image_path).unlink()
    return db


def _review_ids(db: Path) -> dict[str, int]:
    conn = open_db(db, create=False)
    try:  # the latest review id of each frame
        return {r[0]: r[1] for r in conn.execute("SELECT frame_id, MAX(id) FROM reviews GROUP BY frame_id")}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def exported(store: Path, tmp_path_factory) -> tuple[Path, dict, object]:
    out = tmp_path_factory.mktemp("ds") / "out"
    export, manifest = export_from_db(store, out, names=NAMES, val_fraction=0.34, seed=0)
    return out, manifest, export


def _labels(out: Path) -> dict[str, list[list[float]]]:
    return {p.stem: [[float(v) for v in ln.split()] for ln in p.read_text().splitlines() if ln.strip()]
            for p in (out / "labels").rglob("*.txt")}


def _yolo(cls: int, xyxy: list[float]) -> list[float]:
    x0, y0, x1, y1 = xyxy
    return [cls, round((x0 + x1) / 2 / W, 6), round((y0 + y1) / 2 / H, 6), round((x1 - x0) / W, 6),
            round((y1 - y0) / H, 6)]


def test_each_review_action_gives_its_label_file(exported) -> None:
    out, _, _ = exported
    lab = _labels(out)
    assert set(lab) == {"f-acc", "f-rej", "f-rej-keep", "f-chg", "f-rel", "f-latest", "f-pass"}
    assert lab["f-acc"] == [_yolo(0, P_BOX)]                       # accept: the kept detection
    assert lab["f-rej"] == []                                      # reject: a negative
    assert lab["f-rej-keep"] == [_yolo(0, P_BOX)]                  # reject, but the particle was real
    assert lab["f-chg"] == [_yolo(1, P_BOX)]                       # change_class: particle -> scratch
    assert lab["f-rel"] == [_yolo(1, [1, 2, 31, 12]), _yolo(0, [40, 30, 44, 36])]  # relabel: full truth
    assert lab["f-pass"] == []                                     # accepted pass: a confirmed negative
    # every label file has its image, copied (not linked) out of the evidence store
    for p in (out / "images").rglob("*.png"):
        assert p.stat().st_nlink == 1 and not p.is_symlink()
        assert (out / "labels" / p.parent.name / f"{p.stem}.txt").is_file()


def test_latest_review_wins_and_unreviewed_frames_are_left_out(exported, store: Path) -> None:
    out, manifest, export = exported
    assert _labels(out)["f-latest"] == []  # accepted first (a particle), then rejected as a false alarm
    prov = export.provenance["f-latest"]
    rid = _review_ids(store)["f-latest"]
    assert prov["review_id"] == rid and prov["action"] == "reject_false_alarm" and prov["reviewer"] == "bob"
    assert prov["superseded_reviews"] == [rid - 1] and prov["note"] == "second look: dust on the lens"
    assert "f-unreviewed" not in _labels(out)
    assert not any("f-unreviewed" in str(i) for i in export.build.issues)  # not an error: just not confirmed
    assert manifest["sources"][0]["frames_reviewed"] == 11


def test_bad_labels_missing_image_and_unjudged_accept_are_reported_with_frame_and_review(exported, store) -> None:
    out, manifest, export = exported
    rid = _review_ids(store)
    issues = [str(i) for i in export.build.issues]
    text = (out / "issues.txt").read_text()

    def find(fid: str, words: str) -> str:
        hit = [i for i in issues if i.startswith(f"frame {fid} review {rid[fid]}:") and words in i]
        assert hit, f"no issue for {fid} with {words!r}: {issues}"
        assert hit[0] in text
        return hit[0]

    find("f-badclass", "label 1: unknown class 'crack' (known: particle, scratch)")
    find("f-badclass", "frame excluded: 1 bad label(s)")
    find("f-outside", "lies outside the 64x48 image by 26.0 px")
    find("f-missing", "missing image")
    find("f-error", "never judged (verdict error)")
    for fid in ("f-badclass", "f-outside", "f-missing", "f-error"):
        assert fid not in _labels(out)
    assert len(issues) == 6 and manifest["issues"] == 6  # two per bad-label frame
    src = manifest["sources"][0]
    assert src["images_kept"] == 7 and src["images_excluded"] == 4


def test_degenerate_and_malformed_labels_are_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with StoreWriter(data / "s.sqlite", ImageStore(data / "images"), image_workers=1) as w:
        for i, fid in enumerate(("a", "b", "c", "d")):
            w.submit(_record(i, fid, "fail", "L1", [(0, P_BOX)])).result(10)
    conn = open_db(data / "s.sqlite", create=False)
    ann = logged_in(conn, "engineer", "ann")
    add_review(conn, "a", ann, "relabel", labels=[{"class": "particle", "xyxy": [5, 5, 5, 9]}])
    add_review(conn, "b", ann, "relabel", labels=[{"class": 0, "xyxy": P_BOX}, "box"])
    add_review(conn, "c", ann, "change_class")  # no labels: the corrected class is unknown
    add_review(conn, "d", ann, "relabel",
               labels=[{"class": "particle", "xyxy": P_BOX}, {"class": "particle", "xyxy": P_BOX},
                       {"class": "scratch", "xyxy": [60, 40, 64.5, 48]}])  # a duplicate; 0.5 px over: clipped
    conn.close()
    ex = read_db(data / "s.sqlite", names=NAMES, group_by="none")
    msgs = {str(i) for i in ex.build.issues}
    assert any("frame a review 1: label 1: degenerate box" in m for m in msgs)
    assert any("frame b review 2: label 1: 'class' must be a class name" in m for m in msgs)
    assert any("frame b review 2: label 2: expected an object" in m for m in msgs)
    assert any("frame c review 3: change_class review without labels" in m for m in msgs)
    assert any("frame d review 4: label 2: duplicate of label 1" in m for m in msgs)
    assert [s.name for s in ex.build.samples] == ["d"]  # a duplicate copy is dropped, the frame kept
    np.testing.assert_allclose(ex.build.samples[0].xyxy, [P_BOX, [60, 40, 64, 48]])
    # --bad-labels box keeps the frame and drops only the bad box
    box = read_db(data / "s.sqlite", names=NAMES, group_by="none", bad_labels="box")
    assert sorted(s.name for s in box.build.samples) == ["a", "b", "d"]
    assert {s.name: len(s.xyxy) for s in box.build.samples} == {"a": 0, "b": 0, "d": 2}


def test_split_by_lot_never_puts_one_lot_in_train_and_val(store: Path) -> None:
    ex = read_db(store, names=NAMES)  # auto: every frame has a lot
    assert ex.build.group_rule == "auto -> lot"
    assert {s.name: s.group for s in ex.build.samples}["f-rel"] == "L3"
    for seed in range(8):
        splits = split_by_group(ex.build.samples, 0.34, seed)
        assert splits["train"] and splits["val"]
        assert not {s.group for s in splits["train"]} & {s.group for s in splits["val"]}
    cam = read_db(store, names=NAMES, group_by="camera-day")
    assert {s.group for s in cam.build.samples} == {"st/cam0/2026-05-04"}
    wafer = read_db(store, names=NAMES, group_by="wafer")
    assert {s.group for s in wafer.build.samples} >= {"L1/W0", "L1/W1"}
    with pytest.raises(ValueError, match="lot, wafer, camera-day, none"):
        read_db(store, names=NAMES, group_by="parent")


def test_provenance_maps_each_label_to_its_review(exported, store: Path) -> None:
    out, manifest, export = exported
    rid = _review_ids(store)
    rows = [json.loads(ln) for ln in (out / PROVENANCE_FILE).read_text().splitlines()]
    assert len(rows) == 7
    for r in rows:
        assert (out / r["image"]).is_file() and (out / r["label"]).is_file()
        assert r["image"].startswith(f"images/{r['split']}/")
        assert r["review_id"] == rid[r["frame_id"]]
        assert r["action"] and r["reviewer"] and r["review_t"]
    by_frame = {r["frame_id"]: r for r in rows}
    assert by_frame["f-chg"]["action"] == "change_class" and by_frame["f-chg"]["reviewer"] == "bob"
    assert by_frame["f-acc"]["label_source"] == "kept detections"
    src = manifest["sources"][0]
    assert src["review_ids"] == sorted(r["review_id"] for r in rows)
    assert src["format"] == "inspector-db" and src["audit_head"]["seq"] > 0
    assert manifest["provenance"]["records"] == 7
    assert manifest["content_hash"] == dataset_content_hash(out)
    assert manifest["boxes"]["train"].keys() == {"particle", "scratch"}
    assert {s.origin for s in export.build.samples} == {f"review {r['review_id']}" for r in rows}


def test_cli_end_to_end(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    cfg = REPO / "station_configs" / "wafer-demo.yaml"
    r = CliRunner().invoke(main, ["dataset", str(out), "--from-db", str(store), "--config", str(cfg),
                                  "--val-fraction", "0.34", "--coco"])
    assert r.exit_code == 0, r.output
    assert "wrote 7 images" in r.output and "split by group (auto -> lot)" in r.output
    assert "reviews: 7 exported of 11 reviewed frame(s)" in r.output and "issues: 6" in r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["names"] == ["particle", "scratch", "residue", "pattern", "edge_chip"]
    assert man["sources"][0]["class_names_from"] == f"config {cfg}"
    assert (out / PROVENANCE_FILE).is_file() and (out / "coco" / "train.json").is_file()
    # the same data, class names from the database, replacing the dataset
    r2 = CliRunner().invoke(main, ["dataset", str(out), "--from-db", str(store), "--overwrite",
                                   "--val-fraction", "0.34"])
    assert r2.exit_code == 0, r2.output
    assert json.loads((out / "manifest.json").read_text())["names"] == list(NAMES)
    # errors name what is wrong
    bad = CliRunner().invoke(main, ["dataset", str(tmp_path / "x"), "--from-db", str(store), "--group-by", "parent"])
    assert bad.exit_code != 0 and "--group-by for --from-db must be one of" in bad.output
    wrong = CliRunner().invoke(main, ["dataset", str(tmp_path / "y"), "--from-db", str(store),
                                      "--images", str(tmp_path)])
    assert wrong.exit_code != 0 and "missing image" in wrong.output
    help_text = CliRunner().invoke(main, ["dataset", "--help"]).output
    assert "--from-db" in help_text and "reject_false_alarm" in help_text


def test_exported_dataset_loads_in_the_ultralytics_checker(exported) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import check_det_dataset

    out, _, _ = exported
    data = check_det_dataset(str(out / "data.yaml"), autodownload=False)
    assert data["nc"] == 2 and data["names"] == {0: "particle", 1: "scratch"}
    assert Path(data["train"]).is_dir() and Path(data["val"]).is_dir()


def test_reads_read_only_while_the_station_is_writing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with StoreWriter(data / "s.sqlite", ImageStore(data / "images"), image_workers=1) as w:
        w.submit(_record(0, "a", "fail", "L1", [(0, P_BOX)])).result(10)
        conn = open_db(data / "s.sqlite", create=False)
        add_review(conn, "a", logged_in(conn, "engineer", "ann"), "accept")
        ex = read_db(data / "s.sqlite")  # names from the database's detections: only particles were seen
        assert ex.build.class_names == ["particle"] and len(ex.build.samples) == 1
        w.submit(_record(1, "b", "pass", "L1", [])).result(10)  # the writer is not blocked by the reader
        conn.close()
    ro_after = read_db(data / "s.sqlite", names=["particle", "scratch", "residue"])
    assert ro_after.build.class_names == ["particle", "scratch", "residue"]


def test_false_alarm_incident_frames_are_listed_to_relabel_not_exported_as_labels(tmp_path: Path) -> None:
    from inspector.store.incidents import mark_false_alarm
    from inspector.store.queries import add_incident

    data = tmp_path / "data"
    db = data / "inspector.sqlite"
    rows = [("fa-1", "fail", "L1", [(0, P_BOX)]), ("fa-2", "fail", "L1", [(1, S_BOX)]),
            ("ok-1", "fail", "L2", [(0, P_BOX)])]
    with StoreWriter(db, ImageStore(data / "images"), image_workers=1) as w:
        for f in [w.submit(_record(i, *row)) for i, row in enumerate(rows)]:
            f.result(10)
    conn = open_db(db, create=False)
    try:
        sam, ann = logged_in(conn, "safety_manager", "sam"), logged_in(conn, "engineer", "ann")
        for fid in ("fa-1", "fa-2"):
            iid = add_incident(conn, fid, "no_hard_hat", session=sam)
            mark_false_alarm(conn, iid, session=sam, note="hat was there")
        add_review(conn, "fa-2", ann, "relabel", labels=[{"class": "scratch", "xyxy": S_BOX}])  # relabelled since
        add_review(conn, "ok-1", ann, "accept")
    finally:
        conn.close()
    out = tmp_path / "out"
    export, manifest = export_from_db(db, out, names=NAMES, group_by="none", val_fraction=0.0)
    labels = _labels(out)
    assert set(labels) == {"fa-2", "ok-1"}  # the unreviewed false alarm is no label file at all
    (todo,) = [json.loads(ln) for ln in (out / "to_label.jsonl").read_text().splitlines()]
    assert todo["frame_id"] == "fa-1" and todo["incidents"][0]["kind"] == "no_hard_hat"
    assert todo["incidents"][0]["user"] == "sam" and todo["incidents"][0]["note"] == "hat was there"
    assert todo["model_boxes"] == [{"class": "particle", "xyxy": P_BOX, "score": pytest.approx(0.9)}]
    assert manifest["to_label"] == {"file": "to_label.jsonl", "records": 1}
    prov = {json.loads(ln)["frame_id"]: json.loads(ln) for ln in (out / PROVENANCE_FILE).read_text().splitlines()}
    assert prov["fa-2"]["false_alarm_incidents"] and "false_alarm_incidents" not in prov["ok-1"]
    assert any("to_label.jsonl" in n for n in export.build.notes)
