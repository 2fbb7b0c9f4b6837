"""OnnxDetector on a random-weight yolo11n: integrity, providers, labels, batching, agreement with ultralytics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from inspector.core.detections import Detections
from inspector.core.ports import Detector
from inspector.runtime import onnx_detector as od
from inspector.runtime.model_artifact import (
    ManifestError,
    ModelIntegrityError,
    ModelMetadataError,
    load_manifest,
    manifest_path_for,
    parse_metadata,
    verify_sha256,
    write_manifest,
)
from inspector.runtime.onnx_detector import OnnxDetector
from inspector.runtime.providers import ProviderUnavailableError, resolve_providers

GPU_MISSING = "CUDAExecutionProvider" not in ort.get_available_providers()


@pytest.fixture(scope="module")
def det(yolo_files) -> OnnxDetector:
    return OnnxDetector.from_manifest(yolo_files.static_manifest, conf=0.25, threads=2)


@pytest.fixture(scope="module")
def det_dyn(yolo_files) -> OnnxDetector:
    return OnnxDetector.from_manifest(yolo_files.dynamic_manifest, conf=0.25, threads=2)


def assert_same(a: Detections, b: Detections, atol: float = 1e-3) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=atol)
    np.testing.assert_allclose(a.score, b.score, atol=1e-5)
    np.testing.assert_array_equal(a.class_id, b.class_id)


def assert_matched(a: Detections, b: Detections) -> None:
    """Every box of ``a`` has its own box in ``b``: same class, within 1 px, same score to 1e-4.

    Matched within a class by IoU, then by score: random weights put several boxes of one class on
    spots that become identical once clipped to the image (NMS runs before clipping).
    """
    same = (a.iou(b) > 0.9) & (a.class_id[:, None] == b.class_id[None, :])
    cost = np.where(same, np.abs(a.score[:, None] - b.score[None, :]), np.inf)
    j = cost.argmin(1)
    assert np.isfinite(cost[np.arange(len(a)), j]).all()
    assert len(set(j.tolist())) == len(a)  # one-to-one
    np.testing.assert_allclose(a.xyxy, b.xyxy[j], atol=1.0)
    np.testing.assert_allclose(a.score, b.score[j], atol=1e-4)


# --- loading ----------------------------------------------------------------------------------
def test_loads_from_manifest_with_warmup_and_metadata(det: OnnxDetector, yolo_files) -> None:
    assert isinstance(det, Detector)
    m = load_manifest(yolo_files.static_manifest)
    assert det.class_names == m.class_names == yolo_files.class_names
    assert det.imgsz == (320, 320) and det.static_batch == 1
    assert det.sha256 == m.sha256 and det.version == "1" and det.name == "synthetic-defects"
    assert det.providers_in_use == ["cpu"]
    assert det.warmup_ms is not None and det.warmup_ms > 0
    assert det.notes == []  # verified hash, matching metadata


def test_manifest_format(yolo_files) -> None:
    p = yolo_files.static_manifest
    assert p == manifest_path_for(yolo_files.static_onnx) and p.name == "det_static.manifest.json"
    d = json.loads(p.read_text())
    assert {"name", "version", "sha256", "onnx", "class_names", "imgsz", "input", "task", "exported_from",
            "created"} <= set(d)
    assert d["onnx"] == "det_static.onnx" and d["task"] == "detect" and d["imgsz"] == [320, 320]
    assert d["input"]["layout"] == "NCHW"
    assert load_manifest(yolo_files.static_onnx).sha256 == d["sha256"]  # the ONNX path finds its sidecar


def test_tampered_model_is_refused_before_onnxruntime_sees_it(yolo_files, tmp_path: Path, monkeypatch) -> None:
    onnx = tmp_path / yolo_files.static_onnx.name
    shutil.copy(yolo_files.static_onnx, onnx)
    shutil.copy(yolo_files.static_manifest, tmp_path / yolo_files.static_manifest.name)
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    onnx.write_bytes(bytes(data))
    expected = load_manifest(yolo_files.static_manifest).sha256

    def no_session(*a, **k):  # proves the check runs before any session is created
        raise AssertionError("InferenceSession created for a tampered model")

    monkeypatch.setattr(od.ort, "InferenceSession", no_session)
    with pytest.raises(ModelIntegrityError) as e:
        OnnxDetector.from_manifest(tmp_path / yolo_files.static_manifest.name)
    msg = str(e.value)
    assert str(onnx) in msg and expected in msg and e.value.actual in msg and e.value.actual != expected
    with pytest.raises(ModelIntegrityError, match=expected):  # the streaming check says the same
        verify_sha256(onnx, expected)
    assert verify_sha256(yolo_files.static_onnx, "sha256:" + expected.upper()) == expected


def test_wrong_class_names_are_refused(yolo_files, tmp_path: Path) -> None:
    wrong = ["a", "b", "c", "d", "e"]
    with pytest.raises(ModelMetadataError, match="exported with class names"):
        OnnxDetector(yolo_files.static_onnx, wrong, 320, warmup=False)
    with pytest.raises(ModelMetadataError, match="differ from manifest"):
        OnnxDetector.from_manifest(yolo_files.static_manifest, class_names=wrong, warmup=False)
    # A manifest that lies about the labels: the model's own metadata refuses it.
    onnx = tmp_path / "m.onnx"
    shutil.copy(yolo_files.static_onnx, onnx)
    with pytest.raises(ModelMetadataError):
        write_manifest(onnx, "x", 1, wrong, 320)
    lying = write_manifest(onnx, "x", 1, wrong, 320, check_metadata=False)
    with pytest.raises(ModelMetadataError, match=r"\['scratch', 'particle'"):
        OnnxDetector.from_manifest(lying, warmup=False)


def test_input_size_and_manifest_errors(yolo_files, tmp_path: Path) -> None:
    with pytest.raises(ModelMetadataError, match="takes input 320x320 but imgsz 640x640"):
        OnnxDetector(yolo_files.static_onnx, yolo_files.class_names, 640, warmup=False)
    with pytest.raises(FileNotFoundError):
        OnnxDetector(tmp_path / "missing.onnx", yolo_files.class_names, 320)
    d = json.loads(yolo_files.static_manifest.read_text())
    for field, value, match in (("onnx", "../det_static.onnx", "file name beside"), ("sha256", "abc", "64 hex"),
                                ("class_names", [], "non-empty"), ("task", "segment", "not supported")):
        bad = tmp_path / f"bad_{field}.manifest.json"
        bad.write_text(json.dumps({**d, field: value}))
        with pytest.raises(ManifestError, match=match):
            load_manifest(bad)


def test_metadata_parsing() -> None:
    meta = parse_metadata({"names": "{0: 'a', 1: 'b'}", "imgsz": "[320, 256]", "task": "detect", "stride": "32",
                           "end2end": "False"})
    assert meta.class_names == ("a", "b") and meta.imgsz == (320, 256) and meta.stride == 32 and not meta.end2end
    assert parse_metadata({"end2end": "True"}).end2end
    assert parse_metadata({"args": "{'nms': True}"}).end2end
    with pytest.raises(ModelMetadataError):
        parse_metadata({"names": "{0: 'a', 2: 'b'}"})
    with pytest.raises(ModelMetadataError):
        parse_metadata({"names": "__import__('os')"})  # literals only, never code


# --- providers --------------------------------------------------------------------------------
def test_missing_provider_messages_on_a_cpu_build() -> None:
    cpu_only = ["AzureExecutionProvider", "CPUExecutionProvider"]
    r = resolve_providers(["tensorrt", "cuda"], available=cpu_only)
    assert r.names == ["CPUExecutionProvider"]
    text = "\n".join(r.notes)
    assert "tensorrt requested but unavailable" in text and "cuda requested but unavailable" in text
    assert "falling back to cpu" in text and "this build has: cpu" in text
    with pytest.raises(ProviderUnavailableError, match="cuda requested but unavailable.*strict"):
        resolve_providers(["cuda"], strict=True, available=cpu_only)
    with pytest.raises(ValueError, match="unknown execution provider 'gpu'"):
        resolve_providers(["gpu"], available=cpu_only)


def test_provider_order_options_and_fallback_to_the_next_gpu(tmp_path: Path) -> None:
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    r = resolve_providers(["tensorrt", "cuda"], available=gpu, trt_cache_dir=tmp_path / "trt")
    assert r.names == gpu  # cpu always closes the list
    trt = dict(r.providers)["TensorrtExecutionProvider"]
    assert trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is True
    assert trt["trt_engine_cache_path"] == str(tmp_path / "trt") and (tmp_path / "trt").is_dir()
    r = resolve_providers(["tensorrt", "cuda"], available=gpu[1:])
    assert r.names == gpu[1:] and any("tensorrt requested but unavailable" in n and "falling back to cuda" in n
                                      for n in r.notes)


@pytest.mark.skipif(not GPU_MISSING, reason="this machine has a CUDA onnxruntime build")
def test_detector_on_this_cpu_machine_says_why_it_runs_on_cpu(yolo_files) -> None:
    d = OnnxDetector.from_manifest(yolo_files.static_manifest, providers=("tensorrt", "cuda", "cpu"), warmup=False)
    assert d.providers_in_use == ["cpu"]
    text = "\n".join(d.provider_notes)
    assert "tensorrt requested but unavailable" in text and "cuda requested but unavailable" in text
    assert "onnxruntime-gpu is not installed" in text
    with pytest.raises(ProviderUnavailableError, match="cuda requested but unavailable"):
        OnnxDetector.from_manifest(yolo_files.static_manifest, providers=("cuda",), strict_providers=True)


# --- running ----------------------------------------------------------------------------------
def test_batch_equals_single_calls_static_and_dynamic(det: OnnxDetector, det_dyn: OnnxDetector, scene) -> None:
    rng = np.random.default_rng(1)
    images = [scene(rng, 480, 640), scene(rng, 320, 320), scene(rng, 200, 700)]
    singles = [det.detect([im])[0] for im in images]
    assert any(len(s) for s in singles)
    for got in (det.detect(images), det_dyn.detect(images)):
        assert len(got) == 3
        for a, b in zip(got, singles):
            assert_same(a, b)
    assert det.static_batch == 1 and det_dyn.static_batch is None and det_dyn.batch_size == 16


def test_grey_and_colour_input_any_size(det: OnnxDetector, scene) -> None:
    rng = np.random.default_rng(2)
    for h, w in ((480, 640), (1000, 300), (17, 23), (320, 320)):
        grey = scene(rng, h, w, grey=True)
        colour = np.repeat(grey[:, :, None], 3, axis=2)
        a, b = det.detect([grey])[0], det.detect([colour])[0]
        assert_same(a, b)
        assert np.all(a.xyxy >= 0) and np.all(a.xyxy[:, 2] <= w) and np.all(a.xyxy[:, 3] <= h)


def test_timings_and_model_index(det: OnnxDetector, scene) -> None:
    run = det.detect_timed([scene(np.random.default_rng(3), 480, 640)])
    assert len(run.detections) == 1 and not hasattr(det, "last_timings")  # timings travel with the result
    t = run.timings_ms
    assert set(t) >= {"preprocess_ms", "inference_ms", "postprocess_ms"}
    assert t["inference_ms"] > 0 and t["preprocess_ms"] > 0 and t["postprocess_ms"] > 0
    det.model_index = 3
    try:
        d = det.detect([scene(np.random.default_rng(3), 480, 640)])[0]
        assert len(d) and np.all(d.model_index == 3) and np.all(d.support == 8)
    finally:
        det.model_index = 0
    assert det.detect([]) == []


def test_dynamic_model_runs_at_another_size(yolo_files, scene) -> None:
    d = OnnxDetector(yolo_files.dynamic_onnx, yolo_files.class_names, 256, threads=2)
    assert d.imgsz == (256, 256) and any("exported at" in n for n in d.notes)
    assert any("sha256 not verified" in n for n in d.notes)
    out = d.detect([scene(np.random.default_rng(4), 300, 400)])
    assert len(out) == 1


@pytest.mark.slow
def test_agrees_with_ultralytics_predict_on_the_same_onnx(yolo_files, scene) -> None:
    from training.pt_detector import UltralyticsDetector

    conf, iou = 0.2, 0.45
    ours = OnnxDetector.from_manifest(yolo_files.static_manifest, conf=conf, iou=iou, threads=2)
    ref = UltralyticsDetector(yolo_files.static_onnx, imgsz=320, conf=conf, iou=iou)
    assert tuple(ref.class_names) == ours.class_names
    rng = np.random.default_rng(5)
    images = [scene(rng, 480, 640), scene(rng, 777, 1001), scene(rng, 300, 200, grey=True), scene(rng, 320, 320)]
    total = 0
    for im in images:
        a, b = ours.detect([im])[0], ref.detect([im])[0]
        assert len(a) == len(b), (len(a), len(b))
        total += len(a)
        if not len(a):
            continue
        assert_matched(a, b)
    assert total >= 10  # the comparison compared something


@pytest.mark.slow
def test_rect_mode_on_a_dynamic_model_agrees_with_ultralytics(yolo_files, scene) -> None:
    """ultralytics letterboxes dynamic ONNX models to the minimum rectangle; rect=True does the same."""
    from training.pt_detector import UltralyticsDetector

    ours = OnnxDetector.from_manifest(yolo_files.dynamic_manifest, conf=0.2, rect=True, threads=2)
    ref = UltralyticsDetector(yolo_files.dynamic_onnx, imgsz=320, conf=0.2)
    img = scene(np.random.default_rng(6), 480, 640)
    assert ours.rect and ours._pre.input_shape([img]) == (256, 320)  # 240 rows rounded up to the stride
    a, b = ours.detect([img])[0], ref.detect([img])[0]
    assert len(a) == len(b) and len(a) > 0
    assert_matched(a, b)
    static = OnnxDetector.from_manifest(yolo_files.static_manifest, rect=True, warmup=False)
    assert not static.rect and any("rect ignored" in n for n in static.notes)
