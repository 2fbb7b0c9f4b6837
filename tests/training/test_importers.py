"""training/importers.py and `inspector-train dataset`: tiny hand-made YOLO / COCO / VOC folders with
deliberately bad labels; each bad one is reported with file and line and excluded, the good ones kept."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from helpers.progress_recorder import RecordingProgress
from training.commands.dataset import dataset
from training.datasets import DatasetBuild, Sample, export_coco, write_yolo
from training.importers import (near_duplicate_groups, parse_group_by, probe_image, read_coco, read_voc,
                                read_yolo)

W, H = 64, 48


def _png(path: Path, w: int = W, h: int = H, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def _issues(build) -> dict[tuple[str, int | None], str]:
    return {(Path(i.file).name, i.line): i.message for i in build.issues}


@pytest.fixture()
def yolo_dir(tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    (root / "classes.txt").parent.mkdir(parents=True)
    (root / "classes.txt").write_text("particle\nscratch\n")
    labels = {
        "good": "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n",
        "clipped": "0 0.995 0.5 0.02 0.1\n",  # right edge at 64.3 px: within 1 px, clipped
        "outside": "0 0.5 0.5 0.2 0.2\n0 1.2 0.5 0.2 0.2\n",  # line 2: 19 px beyond the right edge
        "unknown": "7 0.5 0.5 0.1 0.1\n",
        "malformed": "0 0.5 0.5 0.1\n0 0.5 abc 0.1 0.1\n",
        "zero": "\n0 0.5 0.5 0 0.1\n",  # blank line 1 is fine, line 2 has zero width
        "dup": "1 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n",
        "empty": "0 0.5 0.5 0.1 0.1\n",
        "broken": "0 0.5 0.5 0.1 0.1\n",
        "orphan": "0 0.5 0.5 0.1 0.1\n",
    }
    for i, (name, text) in enumerate(labels.items()):
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{name}.txt").write_text(text)
        if name not in ("empty", "broken", "orphan"):
            _png(root / "images" / "train" / f"{name}.png", seed=i)
    (root / "images" / "train" / "empty.png").write_bytes(b"")
    (root / "images" / "train" / "broken.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    _png(root / "images" / "train" / "background.png", seed=99)  # no label file: a background image
    return root


def test_yolo_bad_labels_are_reported_with_file_and_line_and_excluded(yolo_dir: Path) -> None:
    b = read_yolo(yolo_dir)
    assert b.class_names == ["particle", "scratch"]
    kept = {s.name: s for s in b.samples}
    assert set(kept) == {"good", "clipped", "dup", "background"}
    iss = _issues(b)
    assert "outside the 64x48 image by 19.2 px" in iss[("outside.txt", 2)]
    assert "unknown class id 7" in iss[("unknown.txt", 1)]
    assert "expected 5 fields" in iss[("malformed.txt", 1)]
    assert "not a number: 'abc'" in iss[("malformed.txt", 2)]
    assert "zero or negative width" in iss[("zero.txt", 2)]
    assert "duplicate" in iss[("dup.txt", 2)]
    assert "empty image file (0 bytes)" in iss[("empty.png", None)]
    assert "unreadable image" in iss[("broken.jpg", None)]
    assert "label file without a matching image" in iss[("orphan.txt", None)]
    for name in ("outside", "unknown", "malformed", "zero"):
        assert f"image images/train/{name}.png excluded" in iss[(f"{name}.txt", None)]
    # the good ones, in pixels; the clipped box ends at the image border
    np.testing.assert_allclose(kept["good"].xyxy, [[25.6, 19.2, 38.4, 28.8], [12.8, 9.6, 19.2, 14.4]], atol=1e-9)
    assert kept["good"].class_id.tolist() == [0, 1]
    assert kept["clipped"].xyxy[0, 2] == W and kept["clipped"].xyxy[0, 0] == pytest.approx(63.04)
    assert len(kept["dup"].xyxy) == 1 and len(kept["background"].xyxy) == 0
    assert any("without a label file" in n for n in b.notes)
    assert any("single image" in n for n in b.notes)  # group rule none: the leak risk is said


def test_yolo_box_policy_keeps_the_good_boxes_of_a_bad_image(yolo_dir: Path) -> None:
    b = read_yolo(yolo_dir, bad_labels="box")
    kept = {s.name: s for s in b.samples}
    assert {"good", "clipped", "dup", "background", "outside", "unknown", "malformed", "zero"} <= set(kept)
    assert "empty" not in kept and "broken" not in kept  # unusable images are always excluded
    np.testing.assert_allclose(kept["outside"].xyxy, [[25.6, 19.2, 38.4, 28.8]], atol=1e-9)
    assert ("outside.txt", 2) in _issues(b)


def test_yolo_data_yaml_with_a_list_that_names_a_missing_image(yolo_dir: Path) -> None:
    (yolo_dir / "val.txt").write_text("./images/train/good.png\n./images/train/missing.png\n")
    (yolo_dir / "data.yaml").write_text("path: .\ntrain: images/train\nval: val.txt\nnames:\n  0: particle\n"
                                        "  1: scratch\n")
    b = read_yolo(yolo_dir / "data.yaml")
    assert "missing image" in _issues(b)[("val.txt", 2)]
    assert sum(s.name == "good" for s in b.samples) == 1  # listed twice, kept once
    assert any("more than once" in n for n in b.notes)


def test_yolo_without_names_is_an_error(tmp_path: Path) -> None:
    _png(tmp_path / "d" / "a.png")
    with pytest.raises(ValueError, match="no class names"):
        read_yolo(tmp_path / "d")
    assert read_yolo(tmp_path / "d", names=["x"]).class_names == ["x"]


def _coco_fixture(tmp_path: Path) -> tuple[Path, Path, dict]:
    imgs = tmp_path / "coco_images"
    for i in range(4):
        _png(imgs / f"f{i}.png", seed=i)
    coco = {
        "images": [
            {"id": 1, "file_name": "f0.png", "width": W, "height": H},
            {"id": 2, "file_name": "f1.png", "width": W, "height": H},
            {"id": 3, "file_name": "f2.png", "width": 100, "height": H},  # wrong width
            {"id": 4, "file_name": "missing.png", "width": W, "height": H},
            {"id": 5, "file_name": "f3.png", "width": W, "height": H},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10], "area": 200, "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 5, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 1},
            {"id": 12, "image_id": 2, "category_id": 3, "bbox": [50, 5, 30, 10], "area": 300, "iscrowd": 0},
            {"id": 13, "image_id": 5, "category_id": 9, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 14, "image_id": 42, "category_id": 3, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 15, "image_id": 3, "category_id": 5, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 16, "image_id": 5, "category_id": 5, "bbox": [1, 1, -5, 5], "area": 25, "iscrowd": 0},
        ],
        "categories": [{"id": 5, "name": "scratch"}, {"id": 3, "name": "particle"}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco, indent=2))
    return path, imgs, coco


def test_coco_bad_annotations_name_the_json_line(tmp_path: Path) -> None:
    path, imgs, _ = _coco_fixture(tmp_path)
    b = read_coco(path, imgs)
    assert b.class_names == ["particle", "scratch"]  # categories sorted by id: 3, 5
    assert [s.name for s in b.samples] == ["f0"]
    np.testing.assert_allclose(b.samples[0].xyxy, [[10, 5, 30, 15]])
    assert b.samples[0].class_id.tolist() == [0]
    lines = path.read_text().splitlines()
    by_msg = {i.message: i for i in b.issues}

    def line_of(fragment: str) -> int:
        issue = next(i for m, i in by_msg.items() if fragment in m)
        assert issue.file == str(path) and issue.line is not None
        return issue.line

    for frag, ann_id in (("outside the 64x48", 12), ("unknown category id 9", 13), ("unknown image id 42", 14),
                         ("zero or negative width", 16)):
        ln = line_of(frag)
        assert lines[ln - 1].strip() == "{" and f'"id": {ann_id},' in lines[ln], frag
    ln = line_of("says 100x48")
    assert '"id": 3,' in lines[ln]
    ln = line_of("missing image")
    assert '"id": 4,' in lines[ln]
    assert any("1 crowd annotation" in n for n in b.notes)


def test_coco_export_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    samples = []
    for i in range(5):
        w, h = 97 + i, 61
        p = _png(tmp_path / "src" / f"r{i}.png", w, h, seed=i)
        x0, y0 = rng.uniform(0, w / 2, 3), rng.uniform(0, h / 2, 3)
        boxes = np.stack([x0, y0, x0 + rng.uniform(1, w / 2, 3), y0 + rng.uniform(1, h / 2, 3)], 1)
        samples.append(Sample(image=p, xyxy=boxes, class_id=rng.integers(0, 3, 3), width=w, height=h,
                              group=f"g{i}", source="t", origin=str(p), name=f"r{i}"))
    build = DatasetBuild(samples=samples, class_names=["a", "b", "c"])
    out = tmp_path / "ds"
    write_yolo(build, out, {"train": samples, "val": []})
    coco = export_coco(out, tmp_path / "train.json", "train")
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3]
    a0 = coco["annotations"][0]
    assert a0["iscrowd"] == 0 and a0["area"] == pytest.approx(a0["bbox"][2] * a0["bbox"][3], rel=1e-3)
    back = {s.name: s for s in read_coco(tmp_path / "train.json", out / "images" / "train").samples}
    assert set(back) == {s.name for s in samples}
    for s in samples:
        np.testing.assert_allclose(back[s.name].xyxy, s.xyxy, atol=0.01)
        assert back[s.name].class_id.tolist() == s.class_id.tolist()
        assert (back[s.name].width, back[s.name].height) == (s.width, s.height)


VOC_GOOD = """<annotation>
  <filename>{fn}</filename>
  <size><width>64</width><height>48</height><depth>3</depth></size>
  <object>
    <name>{name}</name>
    <difficult>0</difficult>
    <bndbox><xmin>{x1}</xmin><ymin>5</ymin><xmax>{x2}</xmax><ymax>20</ymax></bndbox>
  </object>
</annotation>
"""


def test_voc_bad_labels(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "classes.txt").write_text("particle\nscratch\n")
    for i, (stem, name, x1, x2) in enumerate([("good", "scratch", 11, 30), ("wide", "particle", 11, 90),
                                              ("alien", "dust", 11, 30), ("lost", "particle", 11, 30)]):
        (root / "Annotations" / f"{stem}.xml").write_text(VOC_GOOD.format(fn=f"{stem}.png", name=name, x1=x1, x2=x2))
        if stem != "lost":
            _png(root / "JPEGImages" / f"{stem}.png", seed=i)
    (root / "Annotations" / "torn.xml").write_text("<annotation>\n  <filename>x.png</filename>\n  <object>\n")
    b = read_voc(root)
    assert [s.name for s in b.samples] == ["good"]
    np.testing.assert_allclose(b.samples[0].xyxy, [[10, 4, 30, 20]])  # 1-based inclusive -> pixel edges
    assert b.samples[0].class_id.tolist() == [1]
    iss = _issues(b)
    assert "outside the 64x48 image" in iss[("wide.xml", 7)]
    assert "unknown class name 'dust'" in iss[("alien.xml", 4)]
    assert "missing image" in iss[("lost.xml", 2)]
    assert "malformed XML" in next(m for (f, _), m in iss.items() if f == "torn.xml")


def test_group_rules(tmp_path: Path) -> None:
    root = tmp_path / "g"
    (root / "classes.txt").parent.mkdir(parents=True)
    (root / "classes.txt").write_text("a\n")
    names = ["LOT1/w01.png", "LOT1/w02.png", "LOT2/w01.png", "misc/x.png"]
    for i, n in enumerate(names):
        _png(root / n, seed=i)
    b = read_yolo(root, group_by=r"regex:(?P<g>LOT\d+)")
    assert sorted(s.group for s in b.samples) == ["LOT1", "LOT1", "LOT2"]
    assert "does not match 'misc/x.png'" in b.issues[0].message
    assert sorted(s.group for s in read_yolo(root, group_by="parent").samples) == ["LOT1", "LOT1", "LOT2", "misc"]
    assert len({s.group for s in read_yolo(root, group_by="none").samples}) == 4
    assert len({s.name for s in read_yolo(root).samples}) == 4  # same stems in two folders: unique names
    (root / "groups.csv").write_text("file,day\nLOT1/w01.png,mon\nw02.png,tue\nLOT2/w01.png,mon\n")
    b = read_yolo(root, group_by="column:day")
    assert sorted(s.group for s in b.samples) == ["mon", "mon", "tue"]
    assert "no 'day' group for 'misc/x.png'" in b.issues[0].message
    assert len({s.group for s in read_yolo(root, group_by="none", limit=2).samples}) == 2
    for bad in ("regex:nogroup", "column:", "lots"):
        with pytest.raises(ValueError):
            parse_group_by(bad)


def test_near_duplicate_groups_join_bursts_and_keep_scenes_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)

    def scene(seed: int) -> np.ndarray:
        r = np.random.default_rng(seed)
        img = cv2.GaussianBlur(r.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 6)
        return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)

    a = scene(1)
    paths = []
    for name, img in (("a.jpg", a), ("a_burst.jpg", np.clip(a * 0.9 + rng.normal(0, 4, a.shape), 0, 255)),
                      ("b.jpg", scene(2)), ("c.jpg", scene(3))):
        cv2.imwrite(str(tmp_path / name), img.astype(np.uint8))
        paths.append(tmp_path / name)
    paths.append(tmp_path / "missing.jpg")
    groups = near_duplicate_groups(paths, ["a", "a_burst", "b", "c", "missing"])
    assert groups == ["a", "a", "b", "c", "missing"]


def test_probe_image(tmp_path: Path) -> None:
    assert probe_image(_png(tmp_path / "ok.png")) == (W, H)
    assert "missing" in probe_image(tmp_path / "nope.png")
    (tmp_path / "e.png").write_bytes(b"")
    assert "0 bytes" in probe_image(tmp_path / "e.png")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    assert "not an image format" in probe_image(tmp_path / "x.gif")


# ---------------------------------------------------------------- the command


def test_dataset_command_summary_and_coco(yolo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = CliRunner().invoke(dataset, [str(out), "--from-yolo", str(yolo_dir), "--val-fraction", "0.25", "--coco"])
    assert r.exit_code == 0, r.output
    assert "wrote 4 images" in r.output and "issues: 13" in r.output and str(out / "issues.txt") in r.output
    assert "content hash: sha256:" in r.output and "particle" in r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["content_hash"] in r.output and man["issues"] == 13
    assert (out / "coco" / "train.json").is_file() and (out / "coco" / "val.json").is_file()
    assert len((out / "issues.txt").read_text().splitlines()) == 14  # header + 13
    # not empty any more: refuses unless --overwrite
    r = CliRunner().invoke(dataset, [str(out), "--from-yolo", str(yolo_dir)])
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = CliRunner().invoke(dataset, [str(out), "--from-yolo", str(yolo_dir), "--overwrite"])
    assert r.exit_code == 0 and not (out / "coco").exists()


def test_dataset_command_usage_errors_and_help(yolo_dir: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(dataset, [str(tmp_path / "o")])
    assert r.exit_code == 2 and "exactly one of" in r.output
    r = CliRunner().invoke(dataset, [str(tmp_path / "o"), "--from-yolo", str(yolo_dir), "--from-voc", str(yolo_dir)])
    assert r.exit_code == 2
    r = CliRunner().invoke(dataset, [str(tmp_path / "o"), "--from-coco", str(yolo_dir / "classes.txt")])
    assert r.exit_code == 2 and "--images" in r.output
    r = CliRunner().invoke(dataset, [str(tmp_path / "o"), "--from-yolo", str(yolo_dir), "--group-by", "lots"])
    assert r.exit_code == 1 and "group_by must be one of" in r.output
    assert dataset.help and "--from-db" in CliRunner().invoke(dataset, ["--help"]).output
    for p in dataset.params:
        if p.param_type_name == "option":
            assert p.help, f"option {p.name} has no help text"


def test_readers_report_progress_per_image(yolo_dir: Path) -> None:
    rec = RecordingProgress()
    read_yolo(yolo_dir, progress=rec)
    listed = len(list((yolo_dir / "images" / "train").iterdir()))  # every image is checked, kept or not
    assert rec.stages["check images"] == (listed, listed)


def test_dataset_command_json_keeps_stdout_for_the_summary(yolo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = CliRunner().invoke(dataset, [str(out), "--from-yolo", str(yolo_dir), "--val-fraction", "0.25", "--coco",
                                     "--json", "--progress", "json", "--log-level", "warning"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)  # stdout is the JSON alone
    man = json.loads((out / "manifest.json").read_text())
    assert data["content_hash"] == man["content_hash"] and data["issues"] == 13
    assert data["images"] == man["images"] and sum(data["images"].values()) == 4
    assert data["boxes"] == man["boxes"] and set(data["boxes"]["train"]) == {"particle", "scratch"}
    assert data["data_yaml"] == str((out / "data.yaml").resolve()) and Path(data["coco"]["val"]).is_file()
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    ends = {e["progress"]: e for e in events if e["event"] == "end"}
    assert ends["check images"]["done"] == ends["check images"]["total"] > 0
    assert ends["write dataset"]["done"] == 4
    assert "wrote 4 images" in r.stderr  # the readable report moved to stderr
    failed = CliRunner().invoke(dataset, [str(out), "--from-yolo", str(yolo_dir), "--json"])
    assert failed.exit_code != 0 and failed.stdout == ""
