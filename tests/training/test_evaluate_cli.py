"""`inspector-train evaluate`: JSON on stdout, plots on disk, both runtimes, registry models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inspector.capture.synthetic import CLASS_NAMES
from training.commands.evaluate_export import evaluate

IMGSZ = 64
REQUIRED = {"map50", "map50_95", "map33", "precision", "recall", "f1", "ece", "per_class", "confusion",
            "n_images", "n_truths", "onnx_map50", "onnx_map50_95", "onnx_delta_map50", "agree", "dataset_hash",
            "split", "timing"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from training.synth import write_yolo_dataset
    from training.untrained import build_untrained_yolo, save_pt

    root = tmp_path_factory.mktemp("evalcli")
    model = build_untrained_yolo(CLASS_NAMES, root / "build", imgsz=IMGSZ, seed=1)
    model.ckpt = {**(model.ckpt or {}), "train_args": {"imgsz": IMGSZ}}  # what a trained checkpoint records
    pt = save_pt(model, root / "tiny.pt")
    ds = root / "ds"
    write_yolo_dataset(ds, 12, seed=4, die_px=128, val_fraction=0.5, workers=1)
    return {"root": root, "pt": pt, "ds": ds}


def test_evaluate_json_pt_with_onnx_side(tiny):
    out = tiny["root"] / "eval-json"
    res = CliRunner().invoke(evaluate, [str(tiny["pt"]), str(tiny["ds"]), "--json", "--out", str(out),
                                        "--progress", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)  # the whole of stdout is one JSON object
    events = [json.loads(line) for line in res.stderr.splitlines() if line.startswith('{"progress"')]
    ends = {e["progress"]: e for e in events if e["event"] == "end"}
    assert ends["evaluate"]["done"] == ends["evaluate"]["total"] == 6 and "export onnx" in ends  # on stderr
    assert isinstance(data, dict) and REQUIRED <= set(data)
    assert data["runtime"] == "pytorch" and data["imgsz"] == IMGSZ and data["split"] == "val"
    assert data["n_images"] == 6 and set(data["per_class"]) == set(CLASS_NAMES)
    assert data["onnx_map50"] is not None and data["pytorch_map50"] == data["map50"]
    assert data["onnx_delta_map50"] <= 0.5 and data["agree"] is True  # same weights, two runtimes
    assert data["timing"]["pytorch"]["ms_per_image_median"] > 0 and data["timing"]["onnx"]["ms_per_image_median"] > 0
    # the dataset is named by its manifest's content hash (what the registry's gate compares)
    manifest = json.loads((tiny["ds"] / "manifest.json").read_text())
    assert data["dataset_hash"] == manifest["content_hash"] and data["onnx_path"] is None  # temp export gone
    assert data["confusion"]["labels"][-1] == "background"
    for name in ("pr_curves.png", "confusion.png", "calibration.png"):
        png = out / name
        assert png.is_file() and png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "report.json").read_text())["map50"] == data["map50"]


def test_evaluate_table_without_onnx(tiny):
    out = tiny["root"] / "eval-table"
    res = CliRunner().invoke(evaluate, [str(tiny["pt"]), str(tiny["ds"]), "--no-onnx", "--out", str(out),
                                        "--thresholds", "scratch=0.4", "--thresholds", "default=0.3"])
    assert res.exit_code == 0, res.output
    text = res.stdout
    for name in (*CLASS_NAMES, "all", "AP50-95", "ECE", "mAP33"):
        assert name in text
    assert "--thresholds" in text and "station ONNX runtime" not in text
    report = json.loads((out / "report.json").read_text())
    assert report["operating_thresholds"]["scratch"] == 0.4 and report["operating_thresholds"]["particle"] == 0.3
    assert report["onnx_map50"] is None and report["agree"] is None


def test_evaluate_registry_model_and_store(tiny):
    from training.export import export_onnx
    from training.registry import Registry

    onnx_path = export_onnx(tiny["pt"], tiny["root"] / "export", IMGSZ)
    reg_root = tiny["root"] / "registry"
    reg = Registry(reg_root)
    reg.register(onnx_path, "tiny", list(CLASS_NAMES), IMGSZ, dataset_hash="test", train_config=None, parent=None,
                 metrics=None, author="tester", card=None, weights_pt=tiny["pt"])
    res = CliRunner(env={"INSPECTOR_USER": "tester"}).invoke(
        evaluate, ["tiny@1", str(tiny["ds"]), "--registry", str(reg_root), "--json", "--store-in-registry",
                   "--out", str(tiny["root"] / "eval-reg")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["runtime"] == "onnx" and data["registry"]["name"] == "tiny" and data["registry"]["version"] == "1"
    assert data["pytorch_map50"] is not None  # weights.pt in the version folder gives the PyTorch side
    assert data["onnx_map50"] == data["map50"] and data["agree"] is True
    stored = Path(data["stored_in_registry"])
    assert stored.is_file() and json.loads(stored.read_text())["dataset_hash"] == data["dataset_hash"]
    assert reg.load_eval("tiny", "1", data["dataset_hash"], "val")["map50"] == data["map50"]


def test_evaluate_errors_are_clear(tiny):
    r = CliRunner()
    res = r.invoke(evaluate, [str(tiny["root"] / "missing.pt"), str(tiny["ds"])])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = r.invoke(evaluate, [str(tiny["pt"]), str(tiny["ds"]), "--split", "test"])
    assert res.exit_code == 1 and "no 'test' split" in res.output
    res = r.invoke(evaluate, [str(tiny["pt"]), str(tiny["ds"]), "--store-in-registry"])
    assert res.exit_code == 2 and "registry" in res.output


def test_rect_needs_a_dynamic_input_model(tiny, tmp_path):
    """--rect with a static export (the checkpoint's temporary one) is refused, naming the flag that makes one."""
    r = CliRunner().invoke(evaluate, [str(tiny["pt"]), str(tiny["ds"]), "--rect", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "--rect needs a model with a dynamic input size" in r.output, r.output
    assert "export it with --dynamic" in r.output
