"""From config to a verified, fused ensemble: registry specs, path + sha256, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.tiny_models import tiny_onnx

from inspector.config import load_config_text
from inspector.runtime.model_artifact import sha256_file, write_manifest
from inspector.station.ensemble_builder import ModelLoadError, build_ensemble

CLASSES = ("scratch", "particle")


def config(models: str) -> str:
    return f"""
version: 1
station: {{id: t, name: t, domain: generic}}
sources: [{{type: folder, path: imgs}}]
models:
{models}
fusion: {{method: wbf, iou_thr: 0.5}}
rules: []
flow: {{mode: inspection}}
"""


def registry_with(root: Path, name: str, stage: str = "production") -> str:
    folder = root / name / "1"
    folder.mkdir(parents=True)
    tiny_onnx(folder / "model.onnx", CLASSES, 32)
    sha = json.loads(write_manifest(folder / "model.onnx", name, "1", CLASSES, 32).read_text())["sha256"]
    (root / "index.json").write_text(json.dumps({"schema": 1, "models": {name: {
        "versions": {"1": {"stage": stage, "sha256": sha, "path": f"{name}/1"}}, "production_history": ["1"]}}}))
    return sha


def test_registry_and_file_models_build_one_ensemble(tmp_path):
    sha = registry_with(tmp_path / "reg", "m")
    f = tiny_onnx(tmp_path / "other.onnx", CLASSES, 32)
    cfg = load_config_text(config(f"""
  - {{name: a, registry: m, imgsz: 32, class_names: [scratch, particle]}}
  - {{name: b, path: {f}, sha256: {sha256_file(f)}, imgsz: 32, class_names: [scratch, particle], weight: 2}}
"""))
    ens = build_ensemble(cfg, tmp_path / "reg")
    assert [m.name for m in ens.members] == ["m", "b"] and ens.members[0].sha256 == sha
    assert ens.weights == [1.0, 2.0] and ens.version.startswith("ms-")
    (res,) = ens.detect([np.zeros((40, 50, 3), np.uint8)]).results
    assert len(res.per_model) == 2


@pytest.mark.parametrize(
    "models, message",
    [
        ("  - {name: a, registry: nope, imgsz: 32, class_names: [scratch, particle]}", "models\\[0\\] \\(a\\)"),
        ("  - {name: a, registry: m, imgsz: 64, class_names: [scratch, particle]}", "imgsz 64"),
        ("  - {name: a, registry: m, imgsz: 32, class_names: [particle, scratch]}", "wrong labels"),
    ],
)
def test_bad_models_name_the_config_entry(tmp_path, models, message):
    registry_with(tmp_path / "reg", "m")
    with pytest.raises(ModelLoadError, match=message):
        build_ensemble(load_config_text(config(models)), tmp_path / "reg")


def test_tampered_file_is_refused(tmp_path):
    f = tiny_onnx(tmp_path / "m.onnx", CLASSES, 32)
    sha = sha256_file(f)
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    cfg = load_config_text(config(f"  - {{name: a, path: {f}, sha256: {sha}, imgsz: 32, class_names: [scratch, particle]}}"))
    with pytest.raises(ModelLoadError, match="sha256"):
        build_ensemble(cfg)


def test_rect_runs_a_dynamic_input_model_at_the_frame_s_rectangle_and_refuses_a_static_one():
    """The construction demo's site-demo@2 (a dynamic export) takes 960x540 frames as 480x288; site-demo@1
    (static 480x480) cannot, and rect: true on it is a load error naming the fix."""
    from inspector.runtime.registry import default_registry_root

    def site(spec: str) -> str:
        return config(f"  - {{name: s, registry: {spec}, imgsz: 480, rect: true, class_names: [hat, vest, worker]}}")

    det = build_ensemble(load_config_text(site("site-demo@2")), default_registry_root()).members[0].detector
    assert det.rect and det._pre.input_shape([np.zeros((540, 960, 3), np.uint8)]) == (288, 480)
    with pytest.raises(ModelLoadError, match=r"rect: true needs a model with a dynamic input size.*480x480.*--dynamic"):
        build_ensemble(load_config_text(site("site-demo@1")), default_registry_root())
