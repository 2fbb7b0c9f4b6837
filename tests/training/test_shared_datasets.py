"""The DeepPCB and Pictor-PPE importers on the real data in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from training.commands.dataset import dataset
from training.datasets import split_by_group, write_yolo
from training.importers import DEEPPCB_CLASSES, near_duplicate_groups, read_deeppcb, read_pictor

pytestmark = pytest.mark.shared_data


def _check_det_dataset(data_yaml: Path) -> dict:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import check_det_dataset

    return check_det_dataset(str(data_yaml), autodownload=False)


def _label_rows(root: Path) -> dict[str, list[list[float]]]:
    return {p.stem: [list(map(float, ln.split())) for ln in p.read_text().splitlines() if ln.strip()]
            for p in sorted((root / "labels").rglob("*.txt"))}


def test_deeppcb_plain_30_images(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "deeppcb"
    out = tmp_path / "plain"
    r = CliRunner().invoke(dataset, [str(out), "--from-deeppcb", str(root), "--group-by", "none", "--limit", "30"])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert sum(man["images"].values()) == 30 and man["issues"] == 0 and man["names"] == list(DEEPPCB_CLASSES)
    rows = _label_rows(out)
    assert len(rows) == 30
    # counts per class equal the raw DeepPCB label files of the same images (type k -> class k - 1)
    raw: Counter[int] = Counter()
    for name in rows:
        lab = root / "PCBData" / f"group{name[:5]}" / f"{name[:5]}_not" / f"{name}.txt"
        raw.update(int(line.split()[4]) - 1 for line in lab.read_text().splitlines() if line.strip())
    got: Counter[int] = Counter()
    for per_class in man["boxes"].values():
        got.update({DEEPPCB_CLASSES.index(c): n for c, n in per_class.items()})
    assert +got == +raw
    for name, boxes in rows.items():
        img = next((out / "images").rglob(f"{name}.jpg"))
        assert cv2.imread(str(img), cv2.IMREAD_GRAYSCALE).shape == (640, 640)
        for c, cx, cy, w, h in boxes:
            x0, y0, x1, y1 = (cx - w / 2) * 640, (cy - h / 2) * 640, (cx + w / 2) * 640, (cy + h / 2) * 640
            assert 0 <= x0 < x1 <= 640 + 1e-3 and 0 <= y0 < y1 <= 640 + 1e-3
    data = _check_det_dataset(out / "data.yaml")
    assert data["nc"] == 6 and data["names"][5] == "pin-hole"


def test_deeppcb_diff_third_channel_is_the_absdiff(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "deeppcb"
    build = read_deeppcb(root, "diff", group_by="none", limit=30)
    assert len(build.samples) == 30 and not build.issues
    splits = split_by_group(build.samples, 0.2, seed=0)
    man = write_yolo(build, tmp_path / "diff", splits)
    assert "R=|test-template|" in man["sources"][0]["channels"]
    pngs = sorted((tmp_path / "diff" / "images").rglob("*.png"))
    assert len(pngs) == 30
    for png in pngs[:3]:
        img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert img.shape == (640, 640, 3) and img.dtype == np.uint8
        test_img = next(root.glob(f"PCBData/*/*/{png.stem}_test.jpg"))
        temp_img = test_img.with_name(f"{png.stem}_temp.jpg")
        assert np.array_equal(img[..., 0], cv2.imread(str(test_img), cv2.IMREAD_GRAYSCALE))
        assert np.array_equal(img[..., 1], cv2.imread(str(temp_img), cv2.IMREAD_GRAYSCALE))
        assert np.array_equal(img[..., 2], cv2.absdiff(img[..., 0], img[..., 1]))
        assert img[..., 2].any()  # the defects show in the difference
    stack = read_deeppcb(root, "stack", group_by="none", limit=1).samples[0].load_image()
    assert stack.shape == (640, 640, 3) and not stack[..., 2].any()


def test_deeppcb_board_groups_never_straddle(shared_data: Path) -> None:
    build = read_deeppcb(shared_data / "deeppcb", limit=2)  # two whole board groups
    groups = {s.group for s in build.samples}
    assert len(groups) == 2 and all(g.startswith("group") and len(g) == 10 for g in groups)
    assert all(s.name[:5] == s.group[5:] for s in build.samples)
    splits = split_by_group(build.samples, 0.2, seed=0)
    assert not {s.group for s in splits["train"]} & {s.group for s in splits["val"]}
    assert splits["train"] and splits["val"]


def test_pictor_approach_01(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "pictor-ppe"
    build = read_pictor(root, "01", limit=6)
    assert build.class_names == ["hat", "vest", "worker"]
    assert len({s.group for s in build.samples}) == 6 and len(build.samples) >= 6
    assert build.group_rule.startswith("auto -> similar")
    for s in build.samples:
        assert (s.xyxy[:, 2] <= s.width).all() and (s.xyxy[:, 3] <= s.height).all()
    man = write_yolo(build, tmp_path / "pictor", split_by_group(build.samples, 0.34, seed=0))
    assert set(man["boxes"]["train"]) == {"hat", "vest", "worker"}
    data = _check_det_dataset(tmp_path / "pictor" / "data.yaml")
    assert [data["names"][i] for i in range(3)] == ["hat", "vest", "worker"]
    assert Path(data["val"]).is_dir()


def test_pictor_near_duplicates_share_a_group(shared_data: Path) -> None:
    img = shared_data / "pictor-ppe" / "images"
    nums = [2694, 4374, 2668, 2670, 1, 10]  # a re-upload (valid vs train!), a burst, two other photos
    groups = near_duplicate_groups([img / f"image_from_china({n}).jpg" for n in nums], [str(n) for n in nums])
    assert groups[0] == groups[1] and groups[2] == groups[3]
    assert len(set(groups)) == 4
