"""training/synth_site.py and `inspector-train synth --domain site`: a YOLO dataset of site frames,
split by scene, reproducible, with labels that match the camera's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from inspector.capture.synthetic_site import SyntheticSiteCamera
from training import yolo
from training.cli import main
from training.synth_site import scene_params, write_site_dataset, yolo_lines


def test_dataset_is_split_by_scene_and_reproducible(tmp_path: Path) -> None:
    a = write_site_dataset(tmp_path / "a", 14, seed=3, width=320, height=180, frames_per_scene=4, workers=1)
    b = write_site_dataset(tmp_path / "b", 14, seed=3, width=320, height=180, frames_per_scene=4, workers=1)
    assert a["content_hash"] == b["content_hash"]
    assert a["images"] == {"train": 11, "val": 3}
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["split_by"] == "scene" and man["names"] == ["hat", "vest", "worker"]
    assert not set(man["scenes"]["train"]) & set(man["scenes"]["val"])
    scene_of = {sp: {p.stem.split("-")[0] for p in (tmp_path / "a" / "images" / sp).glob("*.jpg")}
                for sp in ("train", "val")}
    assert scene_of["train"] and scene_of["val"] and not scene_of["train"] & scene_of["val"]
    assert man["content_hash"] == yolo.content_hash(tmp_path / "a", ("hat", "vest", "worker"))
    c = write_site_dataset(tmp_path / "c", 14, seed=4, width=320, height=180, frames_per_scene=4, workers=1)
    assert c["content_hash"] != a["content_hash"]


def test_labels_are_the_cameras_truth(tmp_path: Path) -> None:
    write_site_dataset(tmp_path, 3, seed=1, val_fraction=0.0, frames_per_scene=3, stride=15, workers=1)
    cam = SyntheticSiteCamera(**scene_params(1, 0, 960, 540, 3, 15))
    truth = cam.truth(15)
    label = (tmp_path / "labels" / "train" / "scene0000-f00015.txt").read_text().splitlines()
    assert label == yolo_lines(truth, 960, 540)
    classes = [int(line.split()[0]) for line in label]
    n_workers = sum(1 for w in truth.workers if w.visibility >= 0.2)
    assert classes.count(2) == n_workers > 0


def test_cli_synth_domain_site(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["synth", str(tmp_path / "d"), "--domain", "site", "--images", "6", "--seed", "2",
                                  "--width", "320", "--height", "180", "--frames-per-scene", "3", "--workers", "1",
                                  "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["images"]["train"] + summary["images"]["val"] == 6
    data = yolo.read_data_yaml(tmp_path / "d" / "data.yaml")
    assert tuple(data.names) == ("hat", "vest", "worker")
