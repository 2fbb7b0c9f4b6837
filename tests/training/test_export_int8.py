"""training/export.py: ONNX export with manifest, INT8 static quantization and its gate, TensorRT guard.

An untrained yolo11n at 64 px keeps this fast; its accuracy means nothing, so the gate's verdict is
tested with injected numbers and only its mechanics on the real models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from inspector.capture.synthetic import CLASS_NAMES
from inspector.runtime.model_artifact import load_manifest, sha256_file
from inspector.runtime.onnx_detector import OnnxDetector
from helpers.progress_recorder import RecordingProgress

IMGSZ = 64


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from training.synth import write_yolo_dataset
    from training.untrained import build_untrained_yolo, save_pt

    root = tmp_path_factory.mktemp("export")
    model = build_untrained_yolo(CLASS_NAMES, root / "build", imgsz=IMGSZ, seed=0)
    pt = save_pt(model, root / "tiny.pt")
    ds = root / "ds"
    write_yolo_dataset(ds, 12, seed=4, die_px=128, val_fraction=0.5, workers=1)
    from training.export import export_onnx

    onnx_path = export_onnx(pt, root / "out", IMGSZ)
    return {"root": root, "pt": pt, "ds": ds, "onnx": onnx_path}


def test_export_onnx_writes_a_verified_manifest(tiny):
    import onnx

    from training.export import ONNX_OPSET

    m = load_manifest(tiny["onnx"])
    assert tiny["onnx"].parent == tiny["root"] / "out" and tiny["onnx"].name == "tiny.onnx"
    assert m.class_names == tuple(CLASS_NAMES) and m.imgsz == (IMGSZ, IMGSZ)
    assert m.sha256 == sha256_file(tiny["onnx"])
    assert m.exported_from == f"{tiny['pt']} sha256:{sha256_file(tiny['pt'])}"
    assert m.extra["opset"] == ONNX_OPSET and m.extra["precision"] == "fp32"
    model = onnx.load(str(tiny["onnx"]))
    assert {o.domain: o.version for o in model.opset_import}[""] == ONNX_OPSET
    assert not (tiny["root"] / "tiny.onnx").exists()  # nothing written beside the checkpoint
    det = OnnxDetector.from_manifest(m.path, conf=0.001)
    out = det.detect([np.full((128, 128, 3), 90, np.uint8)])
    assert len(out) == 1 and det.imgsz == (IMGSZ, IMGSZ)


def test_head_node_policies(tiny):
    import onnx

    from training.export import head_nodes

    model = onnx.load(str(tiny["onnx"]))
    out_producer = next(n.name for n in model.graph.node if model.graph.output[0].name in n.output)
    decode, head = head_nodes(model, "decode"), head_nodes(model, "head")
    assert out_producer in decode and set(decode) < set(head)
    assert not any("/cv2." in n or "/cv3." in n for n in decode)  # head convolutions stay quantizable
    assert any("/cv3." in n for n in head) and head_nodes(model, "none") == []
    with pytest.raises(ValueError):
        head_nodes(model, "everything")


CALIBRATION = RecordingProgress()


@pytest.fixture(scope="module")
def int8_model(tiny) -> Path:
    from training.export import quantize_int8

    return quantize_int8(tiny["onnx"], tiny["ds"], calibration_images=4, progress=CALIBRATION)


def test_quantize_int8_gives_a_loadable_qdq_model(tiny, int8_model):
    import onnx

    m = load_manifest(int8_model)
    assert int8_model.name == "tiny-int8.onnx" and m.class_names == tuple(CLASS_NAMES)
    q = m.extra["quantization"]
    assert m.extra["precision"] == "int8" and q["format"] == "QDQ" and q["calibration_images"] == 4
    assert q["exclude"] == "decode" and q["excluded_nodes"] > 0
    done, total = CALIBRATION.stages["int8 calibration"]
    assert total == 4 and done >= 4  # every calibration image was fed (and counted)
    model = onnx.load(str(int8_model))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the output Concat (boxes in pixels next to scores in 0..1) is float: no DequantizeLinear feeds it
    producers = {o: n for n in model.graph.node for o in n.output}
    final = producers[model.graph.output[0].name]
    assert final.op_type == "Concat"
    assert all(producers[i].op_type != "DequantizeLinear" for i in final.input if i in producers)
    det = OnnxDetector.from_manifest(m.path, conf=0.001)
    assert len(det.detect([np.full((128, 128, 3), 90, np.uint8)])) == 1


def test_int8_gate_runs_both_models_interleaved(tiny, int8_model):
    from training.export import int8_gate

    rec = RecordingProgress()
    r = int8_gate(tiny["onnx"], int8_model, tiny["ds"], progress=rec)
    assert rec.stages["int8 gate"] == (6, 6)
    assert r.n_images == 6 and r.fp32_ms > 0 and r.int8_ms > 0 and r.speedup > 0
    assert r.max_drop_points == 1.0 and isinstance(r.accepted, bool)
    json.dumps(r.to_json())


@pytest.mark.parametrize("fp32, int8, accepted", [
    (0.80, 0.80, True), (0.80, 0.795, True), (0.80, 0.790, True),  # exactly 1 point: still accepted
    (0.80, 0.7899, False), (0.50, 0.40, False), (0.60, 0.65, True),  # INT8 better: accepted
    (float("nan"), 0.5, False),
])
def test_gate_decision(fp32, int8, accepted):
    from training.export import gate_decision

    ok, drop, reason = gate_decision(fp32, int8)
    assert ok is accepted
    assert reason.startswith("accepted" if accepted else "rejected") or "undefined" in reason
    if np.isfinite(fp32):
        assert drop == pytest.approx((fp32 - int8) * 100)


def test_tensorrt_absent_gives_a_clear_message(tiny, monkeypatch):
    from training.commands.evaluate_export import export
    from training.export import TensorRTUnavailable, export_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed on this machine") as e:
        export_tensorrt(tiny["onnx"])
    assert "onnxruntime-gpu" in str(e.value)
    res = CliRunner().invoke(export, [str(tiny["pt"]), "--out", str(tiny["root"] / "cli"), "--imgsz", str(IMGSZ),
                                      "--tensorrt"])
    assert res.exit_code == 1
    assert "TensorRT is not installed" in res.output
    assert (tiny["root"] / "cli" / "tiny.onnx").is_file()  # the ONNX export is kept


def test_export_cli_needs_data_for_int8(tiny):
    from training.commands.evaluate_export import export

    res = CliRunner().invoke(export, [str(tiny["pt"]), "--int8"])
    assert res.exit_code == 2 and "--data" in res.output
