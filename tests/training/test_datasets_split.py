"""training/datasets.py: the leak-free group split, the YOLO writer and the content hash."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.datasets import (DatasetBuild, LabelIssue, Sample, dataset_content_hash, split_by_group,
                               write_yolo)


def _samples(group_sizes: list[int]) -> list[Sample]:
    out = []
    for g, n in enumerate(group_sizes):
        for k in range(n):
            out.append(Sample(image=Path("unused.png"), xyxy=np.zeros((0, 4)), class_id=np.zeros(0), width=8,
                              height=8, group=f"lot{g:03d}", source="test", origin=f"lot{g}:{k}",
                              name=f"lot{g:03d}-{k:03d}"))
    return out


def _assignment(splits: dict[str, list[Sample]]) -> dict[str, str]:
    return {s.name: sp for sp, ss in splits.items() for s in ss}


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(1, 25), min_size=1, max_size=40),
       val=st.floats(0.0, 0.45), test=st.sampled_from([0.0, 0.1, 0.25]), seed=st.integers(0, 2**31))
def test_split_is_leak_free_deterministic_and_near_target(sizes, val, test, seed) -> None:
    samples = _samples(sizes)
    splits = split_by_group(samples, val, seed, test)
    assert set(splits) == ({"train", "val", "test"} if test > 0 else {"train", "val"})
    # a partition of the samples
    assert sorted(s.name for ss in splits.values() for s in ss) == sorted(s.name for s in samples)
    # no group straddles two splits
    owner: dict[str, str] = {}
    for sp, ss in splits.items():
        for s in ss:
            assert owner.setdefault(s.group, sp) == sp, f"group {s.group} in {owner[s.group]} and {sp}"
    # deterministic for a seed
    assert _assignment(split_by_group(samples, val, seed, test)) == _assignment(splits)
    # never an empty train; a val whenever asked for and possible
    if len(sizes) >= 2:
        assert splits["train"]
        if val > 0:
            assert splits["val"]
    # near the targets: within the largest group (half of it unless a guarantee moved a group)
    n, biggest = len(samples), max(sizes)
    if len(sizes) >= 2:
        for sp, frac in (("val", val), ("test", test)):
            if frac > 0 and sp in splits:
                assert abs(len(splits[sp]) - frac * n) <= biggest, (sp, len(splits[sp]), frac * n)


def test_many_small_groups_hit_the_fraction_and_seeds_differ() -> None:
    samples = _samples([10] * 100)  # 1000 images
    a = split_by_group(samples, 0.2, seed=0, test_fraction=0.1)
    assert {k: len(v) for k, v in a.items()} == {"train": 700, "val": 200, "test": 100}
    b = split_by_group(samples, 0.2, seed=1, test_fraction=0.1)
    assert _assignment(a) != _assignment(b)
    assert _assignment(a) == _assignment(split_by_group(list(reversed(samples)), 0.2, 0, 0.1))  # order-free
    assert a.rule["seed"] == 0 and a.rule["val_fraction"] == 0.2 and a.rule["by"] == "group"


def test_uneven_groups_and_guarantees() -> None:
    # one huge group and a few small ones: val never empty, train never empty
    s = split_by_group(_samples([100, 1, 1]), 0.2, seed=3)
    assert s["train"] and s["val"]
    s = split_by_group(_samples([5, 5]), 0.9 - 1e-9, seed=0)
    assert s["train"] and s["val"]
    with pytest.raises(ValueError):
        split_by_group(_samples([1]), 0.6, 0, test_fraction=0.5)


# ---------------------------------------------------------------- writer and content hash


def _tiny_build(tmp: Path, *, shift: float = 0.0) -> DatasetBuild:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        p = tmp / "src" / f"img{i}.png"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
        boxes = np.array([[5 + shift * (i == 2), 5, 20, 30]]) if i % 3 else np.zeros((0, 4))
        samples.append(Sample(image=p, xyxy=boxes, class_id=np.ones(len(boxes)), width=60, height=40,
                              group=f"wafer{i // 2}", source="test", origin=str(p), name=f"img{i}"))
    return DatasetBuild(samples=samples, class_names=["particle", "scratch"],
                        issues=[LabelIssue("x.txt", 3, "unknown class id 7")], sources=[{"format": "test"}],
                        group_rule="test wafers")


def test_write_yolo_layout_manifest_and_hash(tmp_path: Path) -> None:
    build = _tiny_build(tmp_path)
    splits = split_by_group(build.samples, 0.34, seed=0)
    m1 = write_yolo(build, tmp_path / "a", splits, copy_mode="link")
    m2 = write_yolo(build, tmp_path / "b", split_by_group(build.samples, 0.34, seed=0), copy_mode="copy")
    assert m1["content_hash"] == m2["content_hash"]
    assert m1["content_hash"] == dataset_content_hash(tmp_path / "a")  # recomputed from disk
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["names"] == ["particle", "scratch"] and man["issues"] == 1
    assert sum(man["images"].values()) == 6
    assert man["split"]["seed"] == 0 and man["split"]["group_rule"] == "test wafers"
    assert not set(man["groups"]["train"]) & set(man["groups"]["val"])
    assert man["boxes"]["train"]["scratch"] + man["boxes"]["val"]["scratch"] == 4
    assert "x.txt:3: unknown class id 7" in (tmp_path / "a" / "issues.txt").read_text()
    text = (tmp_path / "a" / "data.yaml").read_text()
    assert f'path: "{(tmp_path / "a").resolve()}"' in text and "val: images/val" in text
    # a background image gets an empty label file; boxed ones "cls cx cy w h" with 6 decimals
    sp = next(k for k, v in splits.items() if any(s.name == "img1" for s in v))
    assert (tmp_path / "a" / "labels" / sp / "img1.txt").read_text() == "1 0.208333 0.437500 0.250000 0.625000\n"
    sp0 = next(k for k, v in splits.items() if any(s.name == "img0" for s in v))
    assert (tmp_path / "a" / "labels" / sp0 / "img0.txt").read_text() == ""

    # one label changes -> another hash; so does moving an image to another split
    shifted = _tiny_build(tmp_path, shift=1.0)
    m3 = write_yolo(shifted, tmp_path / "c", split_by_group(shifted.samples, 0.34, seed=0))
    assert m3["content_hash"] != m1["content_hash"]
    other = next(sd for sd in range(1, 50)
                 if _assignment(split_by_group(build.samples, 0.34, sd)) != _assignment(splits))
    m4 = write_yolo(build, tmp_path / "d", split_by_group(build.samples, 0.34, seed=other))
    assert m4["content_hash"] != m1["content_hash"]
    lab = next((tmp_path / "b" / "labels").rglob("img4.txt"))
    lab.write_text(lab.read_text().replace("1 ", "0 ", 1))
    assert dataset_content_hash(tmp_path / "b") != m1["content_hash"]
    # ultralytics' cache files do not count
    (tmp_path / "a" / "labels" / "train.cache").write_bytes(b"junk")
    assert dataset_content_hash(tmp_path / "a") == m1["content_hash"]


def test_write_yolo_refuses_a_non_empty_folder_and_bad_boxes(tmp_path: Path) -> None:
    build = _tiny_build(tmp_path)
    splits = split_by_group(build.samples, 0.3, seed=0)
    write_yolo(build, tmp_path / "a", splits)
    with pytest.raises(FileExistsError):
        write_yolo(build, tmp_path / "a", splits)
    (tmp_path / "a" / "keep.txt").write_text("mine")
    m = write_yolo(build, tmp_path / "a", splits, overwrite=True)
    assert (tmp_path / "a" / "keep.txt").read_text() == "mine"  # only its own files are replaced
    assert sum(m["images"].values()) == 6
    bad = Sample(image=tmp_path / "src" / "img0.png", xyxy=[[0, 0, 70, 10]], class_id=[0], width=60, height=40,
                 group="g", source="t", origin="o", name="bad")
    b2 = DatasetBuild(samples=[bad], class_names=["a"])
    with pytest.raises(ValueError, match="inside"):
        write_yolo(b2, tmp_path / "bad", {"train": [bad], "val": []})


def test_sample_and_build_validate() -> None:
    with pytest.raises(ValueError):
        Sample(image=Path("a.png"), xyxy=[[0, 0, 1, 1]], class_id=[0, 1], width=4, height=4, group="g", source="s",
               origin="o", name="a")
    s = Sample(image=Path("a.png"), xyxy=[[0, 0, 1, 1]], class_id=[3], width=4, height=4, group="g", source="s",
               origin="o", name="a")
    with pytest.raises(ValueError, match="class id"):
        DatasetBuild(samples=[s], class_names=["x"])
    with pytest.raises(ValueError, match="duplicate"):
        DatasetBuild(samples=[s, s], class_names=["a", "b", "c", "d"])
    assert Counter(DatasetBuild(samples=[s], class_names=list("abcd")).box_counts()) == Counter(
        {"a": 0, "b": 0, "c": 0, "d": 1})
