"""training/yolo.py: the one reader and writer of the YOLO format, and the one dataset content hash."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.yolo import (BadLine, DatasetError, LabelLine, content_hash, dataset_hash, format_label_line,
                           image_dir_of, label_path, parse_label_text, read_data_yaml, read_label_file,
                           read_yolo_split, split_images, write_data_yaml)


def _img(path: Path, w: int = 40, h: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 7, np.uint8))
    return path


@pytest.mark.parametrize(("image", "label"), [
    ("/d/images/train/a.png", "/d/labels/train/a.txt"),
    ("/data/images/ds/images/val/b.jpg", "/data/images/ds/labels/val/b.txt"),  # the last images folder
    ("images/train/c.png", "labels/train/c.txt"),  # relative paths too
    ("/d/flat/d.png", "/d/flat/d.txt"),  # no images folder: beside the image
])
def test_label_path_replaces_the_last_images_folder(image, label):
    assert label_path(image) == Path(label)
    assert image_dir_of(Path(label).parent) == Path(image).parent


@pytest.mark.parametrize(("text", "expected"), [
    ("0 0.5 0.5 0.2 0.4", LabelLine(1, 0, (0.5, 0.5, 0.2, 0.4))),
    ("1 0.1 0.1 0.3 0.1 0.3 0.3", LabelLine(1, 1, (0.2, 0.2, 0.2, 0.2), polygon=True)),
    ("0 0.5 0.5 0.1", BadLine(1, "expected 5 fields 'class cx cy w h' (or a polygon), got 4")),
    ("0 0.5 abc 0.1 0.1", BadLine(1, "not a number: 'abc'")),
    ("1.5 0.5 0.5 0.1 0.1", BadLine(1, "class id must be an integer, got '1.5'")),
    ("7 0.5 0.5 0.1 0.1", BadLine(1, "unknown class id 7 (known: 0..1)")),
    ("x 0.5 0.5 0.1 0.1", BadLine(1, "class id is not a number: 'x'")),
])
def test_label_lines_are_read_or_refused_with_the_reason(text, expected):
    (got,) = parse_label_text(text + "\n", nc=2)
    if isinstance(expected, LabelLine):
        assert isinstance(got, LabelLine) and got.class_id == expected.class_id
        assert got.polygon == expected.polygon and np.allclose(got.box, expected.box)
    else:
        assert got == expected


def test_blank_lines_keep_the_line_numbers():
    items = parse_label_text("\n0 0.5 0.5 0.1 0.1\n\n0 1\n", nc=1)
    assert [i.line for i in items] == [2, 4] and isinstance(items[1], BadLine)


def test_read_label_file_gives_pixels_and_names_file_and_line_of_a_bad_line(tmp_path):
    lab = tmp_path / "a.txt"
    lab.write_text("1 0.5 0.5 0.2 0.4\n")
    d = read_label_file(lab, 200, 100, nc=2)
    np.testing.assert_allclose(d.xyxy, [[80, 30, 120, 70]], atol=1e-4)
    assert len(read_label_file(tmp_path / "missing.txt", 10, 10, nc=2)) == 0  # a background image
    lab.write_text("0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"a\.txt:2: unknown class id 3"):
        read_label_file(lab, 200, 100, nc=2)


def test_format_label_line_is_the_inverse_of_reading():
    line = format_label_line(1, (80.0, 30.0, 120.0, 70.0), 200, 100)
    assert line == "1 0.500000 0.500000 0.200000 0.400000"
    (item,) = parse_label_text(line, nc=2)
    assert item.box == (0.5, 0.5, 0.2, 0.4)


def test_data_yaml_round_trip_and_root(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    write_data_yaml(ds, ["a", "b c"], ["val", "train"])
    dy = read_data_yaml(ds / "data.yaml")
    assert dy.names == ("a", "b c") and dy.root == ds.resolve() and list(dy.entries) == ["train", "val"]
    # no `path:`: the root is the file's folder, also when the file is given by a relative path
    (ds / "data.yaml").write_text("train: images/train\nnames: [x]\n")
    rel = Path(ds.relative_to(tmp_path)) / "data.yaml"
    cwd = Path.cwd()
    try:
        import os

        os.chdir(tmp_path)
        assert read_data_yaml(rel).root == rel.parent
    finally:
        os.chdir(cwd)
    (ds / "data.yaml").write_text("names: {0: x, 2: y}\n")
    with pytest.raises(DatasetError, match="class ids must be 0..n-1"):
        read_data_yaml(ds / "data.yaml")


def test_split_images_reads_folders_and_lists(tmp_path):
    a = _img(tmp_path / "images" / "a.png")
    _img(tmp_path / "images" / "labels" / "not-an-image.png")  # inside a labels folder: skipped
    lst = tmp_path / "lists" / "val.txt"
    lst.parent.mkdir()
    lst.write_text("./x.png\n\nimages/a.png\n")
    assert [p for p, _, _ in split_images(tmp_path / "images", tmp_path)] == [a]
    assert split_images(lst, tmp_path) == [(lst.parent / "x.png", lst, 1), (tmp_path / "images/a.png", lst, 3)]
    with pytest.raises(DatasetError, match="neither a folder"):
        split_images(tmp_path / "nothing", tmp_path)


def test_content_hash_covers_pixels_labels_split_and_names(tmp_path):
    ds = tmp_path / "ds"
    _img(ds / "images" / "train" / "a.png")
    _img(ds / "images" / "val" / "b.png")
    (ds / "labels" / "train").mkdir(parents=True)
    (ds / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    write_data_yaml(ds, ["x"], ["train", "val"])
    h = content_hash(ds)
    assert h.startswith("sha256:") and h == content_hash(ds, ["x"]) != content_hash(ds, ["y"])
    (ds / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.3\n")
    h2 = content_hash(ds)
    assert h2 != h
    (ds / "images" / "val" / "b.png").rename(ds / "images" / "train" / "b.png")  # split membership counts
    assert content_hash(ds) != h2
    # without a manifest, evaluation names the dataset by this same hash
    assert dataset_hash(ds, "train") == (content_hash(ds), dataset_hash(ds, "train")[1])
    (ds / "manifest.json").write_text(json.dumps({"content_hash": "sha256:recorded"}))
    assert dataset_hash(ds, "train") == ("sha256:recorded", "manifest.json:content_hash")


def test_content_hash_of_a_dataset_listed_by_text_files(tmp_path):
    """No images/ folder: the images each data.yaml split lists are hashed, in the same row form."""
    ds = tmp_path / "ds"
    _img(ds / "pics" / "a.png")
    (ds / "pics" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (ds / "train.txt").write_text("pics/a.png\n")
    (ds / "data.yaml").write_text("train: train.txt\nval: train.txt\nnames: [x]\n")
    h = content_hash(ds)
    (ds / "pics" / "a.txt").write_text("0 0.5 0.5 0.2 0.3\n")
    assert content_hash(ds) != h
    images, truths, names = read_yolo_split(ds / "data.yaml", "val")
    assert names == ("x",) and images == [ds / "pics" / "a.png"] and len(truths[0]) == 1
