"""OpenVinoDetector: the shipped models give onnxruntime's detections, verified the same way.

The equivalence tests need the optional ``openvino`` package and skip without it (saying so); the
"not installed" tests simulate its absence and always run.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.runtime.model_artifact import ModelIntegrityError, load_manifest
from inspector.runtime.onnx_detector import OnnxDetector
from inspector.runtime.providers import ProviderUnavailableError
from inspector.runtime.registry import RegistryReader, default_registry_root

try:
    import openvino  # noqa: F401

    HAVE_OPENVINO = True
except ImportError:
    HAVE_OPENVINO = False

needs_openvino = pytest.mark.skipif(
    not HAVE_OPENVINO, reason="the optional openvino package is not installed (pip install 'inspector-station[openvino]')")


def _site_frames() -> list[np.ndarray]:
    from inspector.capture.synthetic_site import SyntheticSiteCamera

    cam = SyntheticSiteCamera("gate", seed=11, duration_s=6.0, workers=5, occluders=2, width=1920, height=1080)
    return [cam.render(i) for i in (5, 20, 40)] + [cam.render(30)[:, :1200].copy()]  # 16:9 and a 10:9 crop


def _wafer_frames() -> list[np.ndarray]:
    from inspector.capture.synthetic import SyntheticWaferLine
    from inspector.config import default_config_path, load_config
    from inspector.station.rules_builder import wafer_layout

    line = SyntheticWaferLine(seed=7, lots=1, wafers_per_lot=2, die_px=320, defect_rate=0.5,
                              layout=wafer_layout(load_config(default_config_path())), station_id="test")
    out = []
    for frame, truth in line.frames_with_truth():
        if len(truth):
            out.append(np.asarray(frame.image))
        if len(out) == 4:
            break
    return out


def _same(a, b) -> None:
    order_a, order_b = np.lexsort((a.xyxy[:, 0], a.class_id)), np.lexsort((b.xyxy[:, 0], b.class_id))
    assert len(a) == len(b), (a.xyxy, a.score, b.xyxy, b.score)
    np.testing.assert_array_equal(a.class_id[order_a], b.class_id[order_b])
    np.testing.assert_allclose(a.xyxy[order_a], b.xyxy[order_b], atol=1.0)
    np.testing.assert_allclose(a.score[order_a], b.score[order_b], atol=1e-3)


@needs_openvino
@pytest.mark.slow
@pytest.mark.parametrize("model, frames, rect", [("site-demo", _site_frames, True), ("site-demo@1", _site_frames, False),
                                                  ("wafer-demo", _wafer_frames, False)])
def test_shipped_models_give_onnxruntime_detections(model: str, frames, rect: bool) -> None:
    """site-demo (production: a dynamic-input export) as the construction demo runs it, with the rect
    letterbox; site-demo@1 and wafer-demo are static exports."""
    from inspector.runtime.openvino_detector import OpenVinoDetector

    resolved = RegistryReader(default_registry_root()).resolve(model)
    ort_det = OnnxDetector.from_manifest(resolved.manifest_path, rect=rect)
    ov_det = OpenVinoDetector.from_manifest(resolved.manifest_path, providers=("openvino",), rect=rect)
    assert ov_det.providers_in_use == ["openvino"] and ov_det.sha256 == resolved.sha256
    assert (ov_det.imgsz, ov_det.class_names, ov_det.static_batch, ov_det.rect) == (
        ort_det.imgsz, ort_det.class_names, None if rect else 1, rect)
    images = frames()
    a, b = ort_det.detect(images), ov_det.detect(images)
    assert sum(len(d) for d in a) >= len(images), "the frames must hold objects for the comparison to mean much"
    for da, db in zip(a, b, strict=True):
        _same(da, db)
    assert repr(ov_det).startswith("OpenVinoDetector(")


@needs_openvino
def test_tampered_model_is_refused_before_openvino_reads_it(tmp_path: Path, monkeypatch) -> None:
    import openvino as ov

    from inspector.runtime.openvino_detector import OpenVinoDetector

    src = RegistryReader(default_registry_root()).resolve("wafer-demo")
    for f in (src.onnx_path, src.manifest_path):
        shutil.copy(f, tmp_path / f.name)
    onnx = tmp_path / src.onnx_path.name
    data = bytearray(onnx.read_bytes())
    data[-100] ^= 0xFF
    onnx.write_bytes(bytes(data))
    read = []
    monkeypatch.setattr(ov.Core, "read_model", lambda *a, **k: read.append(a) or pytest.fail("read"), raising=False)
    with pytest.raises(ModelIntegrityError, match="integrity check"):
        OpenVinoDetector.from_manifest(tmp_path / src.manifest_path.name)
    assert not read


@needs_openvino
def test_runs_the_verified_bytes_not_the_path_again(tmp_path: Path, monkeypatch) -> None:
    import openvino as ov

    from inspector.runtime.openvino_detector import OpenVinoDetector

    src = RegistryReader(default_registry_root()).resolve("wafer-demo")
    seen = []
    real = ov.Core.read_model

    def spy(self, *a, **k):
        seen.append(k.get("model", a[0] if a else None))
        return real(self, *a, **k)

    monkeypatch.setattr(ov.Core, "read_model", spy)
    det = OpenVinoDetector.from_manifest(src.manifest_path, warmup=False)
    assert len(seen) == 1 and isinstance(seen[0], bytes) and len(seen[0]) == src.onnx_path.stat().st_size
    assert det.sha256 == load_manifest(src.manifest_path).sha256


def test_missing_openvino_is_a_clear_error_naming_the_package(monkeypatch) -> None:
    from inspector.runtime import openvino_detector

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    src = RegistryReader(default_registry_root()).resolve("wafer-demo")
    with pytest.raises(ProviderUnavailableError, match=r"pip install openvino.*inspector-station\[openvino\]"):
        openvino_detector.OpenVinoDetector.from_manifest(src.manifest_path)


# Run in a process of its own: the failure this guards against is a SIGSEGV that no Python code sees.
_DROP_ELSEWHERE_THEN_SIGNAL = """
import faulthandler, gc, os, signal, sys, threading, time
faulthandler.enable()   # as pytest and the station have it: an alternate stack of its own on the main thread
from inspector.runtime.openvino_detector import OpenVinoDetector
from inspector.runtime.registry import RegistryReader, default_registry_root
det = [OpenVinoDetector.from_manifest(RegistryReader(default_registry_root()).resolve("wafer-demo").manifest_path)]
worker = threading.Thread(target=lambda: (det.clear(), gc.collect()))   # released on another thread
worker.start(); worker.join()
got = []
signal.signal(signal.SIGTERM, lambda *_: got.append("SIGTERM"))
os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread, as systemd's stop is
time.sleep(0.2)
print(got)
"""


@needs_openvino
def test_a_signal_after_the_detector_is_released_on_another_thread_is_handled(tmp_path: Path) -> None:
    """OpenVINO's CPU plugin swaps the compiling thread's signal stack and unmaps it on release: without
    keeping the stack, the SIGTERM here killed the process with SIGSEGV (exit -11, no output)."""
    import subprocess

    r = subprocess.run([sys.executable, "-c", _DROP_ELSEWHERE_THEN_SIGNAL], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, "['SIGTERM']"), (r.returncode, r.stdout, r.stderr[-2000:])
