"""The station's read side of the registry: ``name`` / ``name@version`` to a verified model.

The registry here is laid out by hand (index.json + write_manifest), so these tests pin the
on-disk contract independently of ``training.registry``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.tiny_models import tiny_onnx as _tiny_onnx

from inspector.runtime.model_artifact import ModelIntegrityError, write_manifest
from inspector.runtime.registry import (
    ENV_VAR,
    NoProductionModelError,
    RegistryIntegrityError,
    RegistryReader,
    UnknownModelError,
    default_registry_root,
    parse_spec,
)

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("scratch", "particle")
IMGSZ = 32


def tiny_onnx(path: Path, class_names=CLASSES, imgsz: int = IMGSZ, bias: float = 0.0) -> Path:
    return _tiny_onnx(path, class_names, imgsz, bias)


def add_version(root: Path, name: str, version: str, stage: str, bias: float = 0.0) -> str:
    """One version folder + its index entry, the way the write side lays them out; returns the sha256."""
    folder = root / name / version
    folder.mkdir(parents=True)
    tiny_onnx(folder / "model.onnx", bias=bias)
    manifest = write_manifest(folder / "model.onnx", name, version, CLASSES, IMGSZ)
    sha = json.loads(manifest.read_text())["sha256"]
    index_path = root / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schema": 1, "models": {}}
    model = index["models"].setdefault(name, {"versions": {}, "production_history": []})
    model["versions"][version] = {"stage": stage, "sha256": sha, "path": f"{name}/{version}"}
    index_path.write_text(json.dumps(index))
    return sha


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    add_version(root, "wafer", "1", "archived", bias=1.0)
    add_version(root, "wafer", "2", "production", bias=2.0)
    add_version(root, "wafer", "3", "candidate", bias=3.0)
    add_version(root, "ppe", "1", "candidate")
    return root


def test_name_resolves_to_the_production_version_only(registry):
    m = RegistryReader(registry).resolve("wafer")
    assert (m.name, m.version, m.stage) == ("wafer", "2", "production")
    assert m.onnx_path == registry / "wafer" / "2" / "model.onnx" and m.onnx_path.is_file()
    assert m.manifest_path == registry / "wafer" / "2" / "model.manifest.json"
    assert m.class_names == CLASSES and m.imgsz == (IMGSZ, IMGSZ)
    assert m.sha256 == json.loads(m.manifest_path.read_text())["sha256"]
    assert m.spec == "wafer@2"


@pytest.mark.parametrize("spec, stage", [("wafer@1", "archived"), ("wafer@3", "candidate"), ("ppe@1", "candidate")])
def test_a_pinned_version_resolves_whatever_its_stage(registry, spec, stage):
    m = RegistryReader(registry).resolve(spec)
    assert m.spec == spec and m.stage == stage


def test_no_production_version_is_a_clear_error_listing_versions(registry):
    with pytest.raises(NoProductionModelError) as e:
        RegistryReader(registry).resolve("ppe")
    msg = str(e.value)
    assert "ppe" in msg and "no version in production" in msg and "1 (candidate)" in msg
    assert "ppe@VERSION" in msg


def test_unknown_names_and_versions_list_what_exists(registry):
    reader = RegistryReader(registry)
    with pytest.raises(UnknownModelError, match=r"'nope' is not in the registry.*known models: ppe, wafer"):
        reader.resolve("nope")
    with pytest.raises(UnknownModelError, match=r"no version '9'.*1 \(archived\), 2 \(production\), 3 \(candidate\)"):
        reader.resolve("wafer@9")
    with pytest.raises(UnknownModelError, match="lowercase"):
        reader.resolve("Bad Name")


def test_a_folder_without_index_is_an_empty_registry(tmp_path):
    reader = RegistryReader(tmp_path)
    assert reader.names() == []
    with pytest.raises(UnknownModelError, match="no index.json there"):
        reader.resolve("wafer")


def test_tampered_manifest_sha_is_refused_naming_both(registry):
    manifest = registry / "wafer" / "2" / "model.manifest.json"
    data = json.loads(manifest.read_text())
    data["sha256"] = "f" * 64
    manifest.write_text(json.dumps(data))
    with pytest.raises(RegistryIntegrityError) as e:
        RegistryReader(registry).resolve("wafer")
    msg = str(e.value)
    assert "index.json" in msg and str(manifest) in msg and "f" * 64 in msg and "wafer@2" in msg


def test_tampered_index_sha_is_refused(registry):
    index = json.loads((registry / "index.json").read_text())
    index["models"]["wafer"]["versions"]["3"]["sha256"] = "0" * 64
    (registry / "index.json").write_text(json.dumps(index))
    with pytest.raises(RegistryIntegrityError, match="0{64}"):
        RegistryReader(registry).resolve("wafer@3")


def test_a_manifest_for_another_version_is_refused(registry):
    # Copy version 1's files over version 3 and make the index agree on the hash: the folder lies.
    for f in ("model.onnx", "model.manifest.json"):
        (registry / "wafer" / "3" / f).write_bytes((registry / "wafer" / "1" / f).read_bytes())
    index = json.loads((registry / "index.json").read_text())
    index["models"]["wafer"]["versions"]["3"]["sha256"] = index["models"]["wafer"]["versions"]["1"]["sha256"]
    (registry / "index.json").write_text(json.dumps(index))
    with pytest.raises(RegistryIntegrityError, match="describes wafer@1"):
        RegistryReader(registry).resolve("wafer@3")


def test_two_production_versions_are_an_integrity_error(registry):
    index = json.loads((registry / "index.json").read_text())
    index["models"]["wafer"]["versions"]["3"]["stage"] = "production"
    (registry / "index.json").write_text(json.dumps(index))
    with pytest.raises(RegistryIntegrityError, match="2 versions in production"):
        RegistryReader(registry).resolve("wafer")


def test_unreadable_index_is_an_integrity_error(registry):
    (registry / "index.json").write_text("{not json")
    with pytest.raises(RegistryIntegrityError, match="not readable JSON"):
        RegistryReader(registry).resolve("wafer")


def test_load_builds_the_detector_and_the_onnx_hash_is_checked_there(registry):
    m = RegistryReader(registry).resolve("wafer")
    det = m.load(warmup=False)
    assert det.class_names == CLASSES and det.version == "2" and det.sha256 == m.sha256
    m.onnx_path.write_bytes(m.onnx_path.read_bytes() + b"\0")  # tampered bytes, manifest untouched
    m2 = RegistryReader(registry).resolve("wafer")  # the reader does not hash the file...
    with pytest.raises(ModelIntegrityError):
        m2.load(warmup=False)  # ...the detector does, before onnxruntime parses it


def test_default_root_is_the_env_var_else_the_repo_models_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert default_registry_root() == tmp_path
    assert RegistryReader().root == tmp_path
    monkeypatch.delenv(ENV_VAR)
    assert default_registry_root() == REPO / "models"


@pytest.mark.parametrize(
    "spec, expected, raises",
    [
        ("wafer", ("wafer", None), False),
        ("wafer-demo@12", ("wafer-demo", "12"), False),
        ("a.b_c@v1.2", ("a.b_c", "v1.2"), False),
        ("Wafer", None, True),
        ("wafer@", None, True),
        ("../x", None, True),
        ("wafer@1/2", None, True),
        ("", None, True),
    ],
)
def test_parse_spec(spec, expected, raises):
    if raises:
        with pytest.raises(ValueError):
            parse_spec(spec)
    else:
        assert parse_spec(spec) == expected
