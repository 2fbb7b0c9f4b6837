"""Choosing the runtime from a model's configured providers: onnxruntime or OpenVINO, and why."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inspector.config import load_config
from inspector.config.schema import ModelSpec
from inspector.runtime import providers as P
from inspector.runtime.onnx_detector import OnnxDetector
from inspector.runtime.providers import (
    ONNXRUNTIME,
    OPENVINO,
    ProviderUnavailableError,
    choose_runtime,
    resolve_providers,
)
from inspector.station.ensemble_builder import ModelLoadError, build_ensemble

REPO = Path(__file__).resolve().parents[2]
CPU_BUILD = ["CPUExecutionProvider"]
GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

# requested, onnxruntime build, openvino installed -> runtime, providers it gets, a note mentions
CASES = [
    (["cpu"], CPU_BUILD, True, ONNXRUNTIME, ("cpu",), None),
    (["cuda", "cpu"], CPU_BUILD, True, ONNXRUNTIME, ("cuda", "cpu"), None),  # resolve_providers explains cuda
    (["openvino"], CPU_BUILD, True, OPENVINO, ("openvino",), None),
    (["openvino", "cpu"], CPU_BUILD, True, OPENVINO, ("openvino",), None),
    (["openvino", "cpu"], CPU_BUILD, False, ONNXRUNTIME, ("cpu",), "pip install openvino"),
    (["cpu", "openvino"], CPU_BUILD, True, ONNXRUNTIME, ("cpu",), None),  # cpu first: onnxruntime wins
    (["cuda", "openvino", "cpu"], CPU_BUILD, True, OPENVINO, ("openvino",), "onnxruntime-gpu is not installed"),
    (["cuda", "openvino", "cpu"], GPU_BUILD, True, ONNXRUNTIME, ("cuda", "cpu"), None),
    ([" OpenVINO "], CPU_BUILD, True, OPENVINO, ("openvino",), None),
]


@pytest.mark.parametrize("requested, build, installed, runtime, providers, note", CASES)
def test_choose_runtime(requested, build, installed, runtime, providers, note) -> None:
    c = choose_runtime(requested, available=build, has_openvino=installed)
    assert (c.runtime, c.providers) == (runtime, providers)
    if note is None:
        assert c.notes == []
    else:
        assert any(note in n for n in c.notes), c.notes


@pytest.mark.parametrize("requested, strict", [(["openvino"], False), (["cuda", "openvino"], False),
                                               (["openvino", "cpu"], True)])
def test_openvino_required_but_missing_is_an_error_naming_the_package(requested, strict) -> None:
    with pytest.raises(ProviderUnavailableError, match=r"pip install openvino.*inspector-station\[openvino\]"):
        choose_runtime(requested, strict, available=CPU_BUILD, has_openvino=False)


def test_unknown_names_and_openvino_given_to_onnxruntime_are_refused() -> None:
    with pytest.raises(ValueError, match="openvino"):  # the message lists openvino among the choices
        choose_runtime(["directml"], available=CPU_BUILD, has_openvino=True)
    with pytest.raises(ValueError, match="not an onnxruntime execution provider"):
        resolve_providers(["openvino", "cpu"], available=CPU_BUILD)


def test_openvino_installed_is_a_lookup_that_follows_the_environment(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an uninstalled package looks like to importlib
    assert P.openvino_installed() is False


def test_config_accepts_openvino_and_keeps_cpu_the_default() -> None:
    spec = ModelSpec(name="m", registry="site-demo", class_names=["a"], providers=["openvino", "cpu"])
    assert spec.providers == ["openvino", "cpu"]
    assert ModelSpec(name="m", registry="site-demo", class_names=["a"]).providers == ["cpu"]


def _site_config(providers: list[str]):
    cfg = load_config(REPO / "station_configs" / "construction-demo.yaml")
    models = [m.model_copy(update={"providers": providers}) for m in cfg.models]
    return cfg.model_copy(update={"models": models})


def test_builder_falls_back_to_onnxruntime_with_a_note_when_openvino_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(P, "openvino_installed", lambda: False)
    ens = build_ensemble(_site_config(["openvino", "cpu"]), REPO / "models")
    det = ens.members[0].detector
    assert type(det) is OnnxDetector and det.providers_in_use == ["cpu"]
    assert any("pip install openvino" in n for n in det.provider_notes)


def test_builder_refuses_openvino_alone_when_it_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(P, "openvino_installed", lambda: False)
    with pytest.raises(ModelLoadError, match=r"models\[0\] \(site-demo\).*pip install openvino"):
        build_ensemble(_site_config(["openvino"]), REPO / "models")


def test_builder_runs_the_registry_model_in_openvino_verified_against_its_manifest() -> None:
    pytest.importorskip("openvino", reason="the optional openvino package is not installed")
    from inspector.runtime.openvino_detector import OpenVinoDetector
    from inspector.runtime.registry import RegistryReader

    ens = build_ensemble(_site_config(["openvino", "cpu"]), REPO / "models")
    m = ens.members[0]
    assert isinstance(m.detector, OpenVinoDetector) and m.detector.providers_in_use == ["openvino"]
    resolved = RegistryReader(REPO / "models").resolve("site-demo")
    assert m.sha256 == m.detector.sha256 == resolved.sha256 and m.version == resolved.version
