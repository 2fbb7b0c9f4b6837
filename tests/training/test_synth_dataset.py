"""training/synth.py and `inspector-train synth`: the YOLO dataset of the synthetic wafer line."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from inspector.capture.synthetic import CLASS_NAMES, GENERATOR_VERSION, SyntheticWaferLine
from training.cli import main
from training.synth import dataset_params, write_yolo_dataset


def _labels(root: Path, split: str) -> dict[str, list[list[float]]]:
    out = {}
    for p in sorted((root / "labels" / split).glob("*.txt")):
        out[p.stem] = [list(map(float, line.split())) for line in p.read_text().splitlines() if line.strip()]
    return out


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ds")
    return out, write_yolo_dataset(out, images=40, seed=5, die_px=256, val_fraction=0.25, workers=1)


def test_layout_counts_and_labels(small_ds) -> None:
    out, summary = small_ds
    assert summary["images"] == {"train": 30, "val": 10}
    for split, n in (("train", 30), ("val", 10)):
        imgs = sorted(p.stem for p in (out / "images" / split).glob("*.png"))
        labs = _labels(out, split)
        assert len(imgs) == n and sorted(labs) == imgs  # one label file per image, empty for clean dies
        for rows in labs.values():
            for row in rows:
                assert len(row) == 5
                c, cx, cy, w, h = row
                assert c == int(c) and 0 <= c < len(CLASS_NAMES)
                assert 0 < w <= 1 and 0 < h <= 1
                assert 0 <= cx - w / 2 + 1e-6 and cx + w / 2 - 1e-6 <= 1
                assert 0 <= cy - h / 2 + 1e-6 and cy + h / 2 - 1e-6 <= 1
        assert sum(not r for r in labs.values()) == summary["clean_images"][split]
        counts = Counter(CLASS_NAMES[int(r[0])] for rows in labs.values() for r in rows)
        assert {c: counts.get(c, 0) for c in CLASS_NAMES} == summary["boxes"][split]
    line = (out / "labels" / "train").glob("*.txt")
    text = next(p.read_text() for p in line if p.read_text())
    assert all(len(v.split(".")[1]) == 6 for v in text.split()[1:5])  # 6 decimals


def test_split_is_by_wafer_and_lot(small_ds) -> None:
    out, _ = small_ds

    def wafers(split: str) -> set[str]:
        return {SyntheticWaferLine.wafer_id(*SyntheticWaferLine.parse_frame_id(p.stem)[:2])
                for p in (out / "images" / split).glob("*.png")}

    def lots(split: str) -> set[str]:
        return {w.split("-")[0] for w in wafers(split)}

    assert wafers("train") and wafers("val")
    assert not wafers("train") & wafers("val")
    assert not lots("train") & lots("val")


def test_data_yaml_and_manifest(small_ds) -> None:
    out, summary = small_ds
    text = (out / "data.yaml").read_text()
    assert "train: images/train" in text and "val: images/val" in text and "nc: 5" in text
    data = yaml.safe_load(text)
    assert data["names"] == dict(enumerate(CLASS_NAMES)) and data["path"] == str(out.resolve())
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 5 and man["generator_version"] == GENERATOR_VERSION
    assert man["boxes"] == summary["boxes"] and man["images"] == summary["images"]
    assert man["names"] == list(CLASS_NAMES)
    val_wafers = {w["wafer"] for w in man["wafers"]["val"]}
    assert val_wafers and not val_wafers & {w["wafer"] for w in man["wafers"]["train"]}


def test_ultralytics_reads_the_dataset(small_ds) -> None:
    out, _ = small_ds
    # conftest sets these before anything imports ultralytics; keep them if run alone
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(out.parent / "yolo-config"))
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import check_det_dataset, verify_image_label

    data = check_det_dataset(str(out / "data.yaml"), autodownload=False)
    assert data["nc"] == 5 and [data["names"][i] for i in range(5)] == list(CLASS_NAMES)
    assert Path(data["train"]).is_dir() and Path(data["val"]).is_dir()
    for split in ("train", "val"):
        for img in sorted((out / "images" / split).glob("*.png")):
            lab = out / "labels" / split / f"{img.stem}.txt"
            res = verify_image_label((str(img), str(lab), "", False, 5, 0, 0, False))
            assert res[0] is not None, res[-1]
            assert res[8] == 0, res[-1]  # no corrupt pairs


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = write_yolo_dataset(tmp_path / "a", images=6, seed=9, die_px=128, workers=1)
    b = write_yolo_dataset(tmp_path / "b", images=6, seed=9, die_px=128, workers=1)
    c = write_yolo_dataset(tmp_path / "c", images=6, seed=10, die_px=128, workers=1)
    assert a["images"] == b["images"]

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.suffix in (".png", ".txt")}

    fa, fb, fc = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert fa == fb and len(fa) == 12
    assert fa != fc
    ma = json.loads((tmp_path / "a" / "manifest.json").read_text())
    mb = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert ma == mb


def test_parallel_writer_matches_serial(tmp_path: Path) -> None:
    write_yolo_dataset(tmp_path / "s", images=40, seed=2, die_px=96, workers=1)
    write_yolo_dataset(tmp_path / "p", images=40, seed=2, die_px=96, workers=2)
    for p in sorted((tmp_path / "s").rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "p" / p.relative_to(tmp_path / "s")).read_bytes()


def test_class_balance_in_dataset_mode() -> None:
    # the first 200 dies a dataset would hold (7 wafers), rendered at the training size
    line = SyntheticWaferLine(**dataset_params(seed=13, lots=2))
    counts: Counter[int] = Counter()
    clean = 0
    for i, (_, truth) in enumerate(line.frames_with_truth()):
        if i == 200:
            break
        counts.update(truth.class_id.tolist())
        clean += len(truth) == 0
    total = sum(counts.values())
    shares = {CLASS_NAMES[c]: counts[c] / total for c in range(5)}
    assert all(v >= 0.08 for v in shares.values()), shares
    assert 0.25 <= clean / 200 <= 0.75  # clean dies stay common


def test_cli_synth_writes_n_images(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["synth", str(tmp_path / "ds"), "--images", "7", "--seed", "3", "--die-px", "128",
                             "--val-fraction", "0.3", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "ds" / "images").rglob("*.png"))) == 7
    assert len(list((tmp_path / "ds" / "labels").rglob("*.txt"))) == 7
    assert "wrote 7 images" in r.output
    assert (tmp_path / "ds" / "data.yaml").is_file()


def test_cli_help_documents_every_option() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["--help"])
    assert r.exit_code == 0 and "synth" in r.output
    r = runner.invoke(main, ["synth", "--help"])
    assert r.exit_code == 0
    for opt, words in (("--images", "Exact number"), ("--seed", "Generator seed"), ("--die-px", "Side of each"),
                       ("--val-fraction", "Share of images"), ("--workers", "Worker processes")):
        assert opt in r.output and words in r.output
    r = runner.invoke(main, ["synth", "x"])
    assert r.exit_code != 0 and "--images" in r.output


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_yolo_dataset(tmp_path, images=0, seed=1)
    with pytest.raises(ValueError):
        write_yolo_dataset(tmp_path, images=5, seed=1, val_fraction=1.0)


def test_manifest_carries_the_content_hash_of_what_was_written(tmp_path):
    from training.datasets import dataset_content_hash
    from training.synth import write_yolo_dataset

    s = write_yolo_dataset(tmp_path / "d", 6, seed=5, die_px=96, workers=1)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["content_hash"] == s["content_hash"] == dataset_content_hash(tmp_path / "d")
    assert manifest["content_hash"].startswith("sha256:")
