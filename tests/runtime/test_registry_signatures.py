"""Signed models, station side: a registry reader (and a station config) that requires signatures.

Signatures are made here with `cryptography` directly, in the on-disk format the reader expects
(``model.manifest.json.sig``), so these tests pin the contract independently of training/.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers.tiny_models import tiny_onnx

from inspector.config.schema import StationConfig
from inspector.runtime.model_artifact import (
    SIGNATURE_DOMAIN,
    SignatureError,
    TrustPolicy,
    load_public_key,
    public_key_id,
    write_manifest,
)
from inspector.runtime.registry import RegistryReader, UntrustedModelError
from inspector.station.ensemble_builder import ModelLoadError, build_ensemble

CLASSES = ("scratch", "particle")


def keypair(folder: Path, name: str = "key") -> tuple[Ed25519PrivateKey, Path]:
    key = Ed25519PrivateKey.generate()
    pub = folder / f"{name}.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, pub


def sign(manifest: Path, key: Ed25519PrivateKey) -> Path:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = {"schema": 1, "algorithm": "ed25519", "key_id": public_key_id(raw),
           "signature": base64.b64encode(key.sign(SIGNATURE_DOMAIN + manifest.read_bytes())).decode()}
    out = manifest.with_name(manifest.name + ".sig")
    out.write_text(json.dumps(sig))
    return out


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """wafer@1 (production), one version laid out the way the registry writes it; unsigned."""
    root = tmp_path / "models"
    folder = root / "wafer" / "1"
    folder.mkdir(parents=True)
    tiny_onnx(folder / "model.onnx", CLASSES, 32)
    sha = json.loads(write_manifest(folder / "model.onnx", "wafer", "1", CLASSES, 32).read_text())["sha256"]
    (root / "index.json").write_text(json.dumps({"schema": 1, "models": {"wafer": {
        "versions": {"1": {"stage": "production", "sha256": sha, "path": "wafer/1"}},
        "production_history": ["1"]}}}))
    return root


def manifest_of(root: Path) -> Path:
    return root / "wafer" / "1" / "model.manifest.json"


def test_not_required_loads_an_unsigned_model(registry):
    resolved = RegistryReader(registry).resolve("wafer")
    assert resolved.signed_by is None
    assert resolved.load().sha256 == resolved.sha256
    assert RegistryReader(registry, trust=TrustPolicy(require=False)).resolve("wafer@1").signed_by is None


def test_unsigned_model_is_refused_when_signatures_are_required(registry, tmp_path):
    _, pub = keypair(tmp_path)
    reader = RegistryReader(registry, trust=TrustPolicy.from_paths(True, [pub]))
    with pytest.raises(UntrustedModelError, match="is not signed") as e:
        reader.resolve("wafer")
    assert "inspector-train sign" in str(e.value)


def test_signed_model_loads_and_names_its_key(registry, tmp_path):
    key, pub = keypair(tmp_path)
    sign(manifest_of(registry), key)
    reader = RegistryReader(registry, trust=TrustPolicy.from_paths(True, [pub]))
    resolved = reader.resolve("wafer")
    assert resolved.signed_by == load_public_key(pub).key_id
    assert resolved.load().sha256 == resolved.sha256


def test_manifest_changed_after_signing_is_refused(registry, tmp_path):
    key, pub = keypair(tmp_path)
    mpath = manifest_of(registry)
    sign(mpath, key)
    data = json.loads(mpath.read_text())
    data["class_names"] = ["particle", "scratch"]  # a swap of labels: every defect mislabelled
    mpath.write_text(json.dumps(data))
    reader = RegistryReader(registry, trust=TrustPolicy.from_paths(True, [pub]))
    with pytest.raises(UntrustedModelError, match="does not match its signature"):
        reader.resolve("wafer")
    # even one byte of whitespace counts
    sign(mpath, key)
    mpath.write_bytes(mpath.read_bytes() + b" ")
    with pytest.raises(UntrustedModelError, match="does not match its signature"):
        reader.resolve("wafer")


def test_signature_by_a_key_the_station_does_not_trust_is_refused(registry, tmp_path):
    other, _ = keypair(tmp_path, "other")
    _, trusted = keypair(tmp_path, "trusted")
    sign(manifest_of(registry), other)
    reader = RegistryReader(registry, trust=TrustPolicy.from_paths(True, [trusted]))
    with pytest.raises(UntrustedModelError, match="does not trust"):
        reader.resolve("wafer")


def test_a_private_key_given_as_trusted_key_is_refused_with_a_clear_message(tmp_path):
    key = Ed25519PrivateKey.generate()
    p = tmp_path / "signing.pem"
    p.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    with pytest.raises(SignatureError, match="PRIVATE key"):
        load_public_key(p)
    with pytest.raises(SignatureError, match="no trusted key"):
        TrustPolicy.from_paths(True, [])


def _config(tmp_path: Path, trust: str) -> StationConfig:
    import yaml

    imgs = tmp_path / "imgs"
    imgs.mkdir(exist_ok=True)
    return StationConfig.model_validate(yaml.safe_load(f"""
version: 1
station: {{id: parts-line, name: Parts line, domain: generic}}
sources: [{{type: folder, id: cam, path: '{imgs}'}}]
models: [{{name: wafer, registry: wafer, imgsz: 32, class_names: [scratch, particle]}}]
{trust}
"""))


def test_station_config_model_trust_is_applied_when_the_ensemble_is_built(registry, tmp_path):
    key, pub = keypair(tmp_path)
    assert build_ensemble(_config(tmp_path, ""), registry_root=registry).members  # default: not required
    required = _config(tmp_path, f"model_trust: {{require_signature: true, trusted_keys: ['{pub}']}}")
    with pytest.raises(ModelLoadError, match="not signed"):
        build_ensemble(required, registry_root=registry)
    sign(manifest_of(registry), key)
    assert build_ensemble(required, registry_root=registry).members


def test_config_requires_a_key_when_signatures_are_required(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="trusted_keys"):
        _config(tmp_path, "model_trust: {require_signature: true}")


def test_shipped_demo_configs_do_not_require_signatures():
    from inspector.config import load_config

    repo = Path(__file__).resolve().parents[2]
    for name in ("wafer-demo.yaml", "construction-demo.yaml"):
        assert load_config(repo / "station_configs" / name).model_trust.require_signature is False
