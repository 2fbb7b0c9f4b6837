"""Signing model manifests on the training side: keygen, sign at registration / promotion / later, CLI.

The station side (refusing unsigned or tampered models): tests/runtime/test_registry_signatures.py.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.tiny_models import tiny_onnx

from inspector.runtime.model_artifact import TrustPolicy
from inspector.runtime.registry import RegistryReader, UntrustedModelError
from training.cli import main
from training.registry import Registry
from training.registry.signing import SigningKeyError, generate_keypair

CLASSES = ["scratch", "particle"]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub, _ = generate_keypair(tmp_path / "keys" / "signing.pem")
    return priv, pub


@pytest.fixture
def reg(tmp_path: Path, monkeypatch) -> Registry:
    monkeypatch.setenv("INSPECTOR_USER", "tester")
    return Registry(tmp_path / "models")


def register(reg: Registry, tmp_path: Path, bias: float = 0.0, **kw) -> dict:
    onnx = tiny_onnx(tmp_path / f"m{bias}.onnx", tuple(CLASSES), 32, bias)
    return reg.register(onnx, "wafer", CLASSES, 32, dataset_hash="ds", train_config=None, parent=None,
                        metrics=None, author="ann", card=None, **kw)


def strict(reg: Registry, pub: Path) -> RegistryReader:
    return RegistryReader(reg.root, trust=TrustPolicy.from_paths(True, [pub]))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key(tmp_path):
    priv, pub, key_id = generate_keypair(tmp_path / "k" / "sign.pem")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in priv.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    assert pub == tmp_path / "k" / "sign.pem.pub" and len(key_id) == 16
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_keypair(priv)


def test_a_private_key_is_refused_inside_the_repository_registry_or_data_folder(tmp_path, monkeypatch, keys):
    repo = Path(__file__).resolve().parents[3]
    with pytest.raises(SigningKeyError, match="repository"):
        generate_keypair(repo / "tmp-signing-key-never-written.pem")
    assert not (repo / "tmp-signing-key-never-written.pem").exists()
    monkeypatch.setenv("INSPECTOR_DATA", str(tmp_path / "data"))
    with pytest.raises(SigningKeyError, match="data folder"):
        generate_keypair(tmp_path / "data" / "k.pem")
    reg = Registry(tmp_path / "models")
    inside = tmp_path / "models" / "k.pem"
    inside.parent.mkdir()
    inside.write_bytes(keys[0].read_bytes())
    inside.chmod(0o600)
    with pytest.raises(SigningKeyError, match="registry"):
        reg.sign("wafer@1", inside)


def test_a_private_key_readable_by_others_is_refused(reg, tmp_path, keys):
    register(reg, tmp_path)
    keys[0].chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        reg.sign("wafer@1", keys[0])


def test_register_with_a_key_signs_before_the_version_appears(reg, tmp_path, keys):
    priv, pub = keys
    rec = register(reg, tmp_path, signing_key=priv)
    assert (reg.root / "wafer" / "1" / "model.manifest.json.sig").is_file()
    key_id = rec["signatures"][0]["key_id"]
    assert strict(reg, pub).resolve("wafer@1").signed_by == key_id
    assert reg.record("wafer", "1")["signatures"][0]["key_id"] == key_id
    assert reg.events()[-1]["signed_by"] == key_id
    assert reg.verify().ok


def test_sign_later_and_promote_with_a_key(reg, tmp_path, keys):
    priv, pub = keys
    register(reg, tmp_path)
    register(reg, tmp_path, bias=1.0)
    with pytest.raises(UntrustedModelError, match="not signed"):
        strict(reg, pub).resolve("wafer@1")
    signed = reg.sign("wafer@1", priv, user="qe")
    assert signed["signer"] == "qe"
    assert strict(reg, pub).resolve("wafer@1").signed_by == signed["key_id"]
    assert reg.events()[-1]["action"] == "sign"
    reg.promote("wafer", "2", "qe", signing_key=priv)  # first promotion: passes the gate
    assert strict(reg, pub).resolve("wafer").version == "2"
    assert reg.verify().ok


def test_sign_refuses_a_version_whose_files_disagree_with_the_index(reg, tmp_path, keys):
    register(reg, tmp_path)
    onnx = reg.root / "wafer" / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(Exception, match="cannot be signed"):
        reg.sign("wafer@1", keys[0])
    assert not (reg.root / "wafer" / "1" / "model.manifest.json.sig").exists()


def test_cli_keygen_then_sign(reg, tmp_path, monkeypatch):
    register(reg, tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["keygen", "--out", str(tmp_path / "keys" / "k.pem"), "--json"])
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    r = runner.invoke(main, ["sign", "--model", "wafer@1", "--key", made["private_key"], "--registry",
                             str(reg.root), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["key_id"] == made["key_id"]
    assert strict(reg, Path(made["public_key"])).resolve("wafer@1").signed_by == made["key_id"]
    r = runner.invoke(main, ["sign", "--model", "wafer", "--key", made["private_key"], "--registry", str(reg.root)])
    assert r.exit_code != 0 and "name the version" in r.output
