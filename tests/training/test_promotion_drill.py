"""Promotion drill with real models: the shipped wafer-demo model (better) against a blind model
(worse), both evaluated through the station runtime on the same fresh synthetic lot.

blind in production -> the shipped model beats it and is promoted -> a worse candidate is refused
-> rollback restores the blind model -> every step is in the hash-chained event log with who and when.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers.blind_model import blind_model
from inspector.capture.synthetic import CLASS_NAMES
from inspector.runtime.registry import RegistryReader, default_registry_root
from training.cli import main

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def evaluate(onnx: Path, data: Path, out: Path) -> Path:
    report = json.loads(run("evaluate", str(onnx), str(data), "--json", "--out", str(out)))
    path = out / "eval.json"
    path.write_text(json.dumps(report))
    return path


def register(reg: Path, onnx: Path, data: Path, eval_json: Path) -> str:
    run("models", "register", str(onnx), "--name", "wafer", "--data", str(data), "--metrics", str(eval_json),
        "--registry", str(reg), "--user", "qe")
    return max(RegistryReader(reg).versions("wafer"), key=int)


def test_better_model_promoted_worse_refused_then_rolled_back(tmp_path: Path) -> None:
    shipped = RegistryReader(default_registry_root()).resolve("wafer-demo")
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(shipped.onnx_path, good / "model.onnx")
    shutil.copy(shipped.manifest_path, good / "model.manifest.json")
    blind = blind_model(tmp_path / "blind", list(CLASS_NAMES), shipped.imgsz[0])

    ds, reg = tmp_path / "fresh", tmp_path / "registry"
    run("synth", str(ds), "--images", "40", "--seed", "123", "--die-px", str(shipped.imgsz[0]), "--workers", "1")
    data = ds / "data.yaml"
    good_eval, blind_eval = evaluate(good / "model.onnx", data, tmp_path / "e-good"), \
        evaluate(blind, data, tmp_path / "e-blind")
    g, b = json.loads(good_eval.read_text()), json.loads(blind_eval.read_text())
    assert g["dataset_hash"] == b["dataset_hash"] and g["map50"] > 0.8 > b["map50"]

    v1 = register(reg, blind, data, blind_eval)
    run("promote", f"wafer@{v1}", "--registry", str(reg), "--user", "qe")      # first model: nothing to beat
    v2 = register(reg, good / "model.onnx", data, good_eval)
    run("promote", f"wafer@{v2}", "--registry", str(reg), "--user", "qe", "--reason", "beats v1")
    assert RegistryReader(reg).resolve("wafer").version == v2

    v3 = register(reg, blind, data, blind_eval)
    refused = CliRunner().invoke(main, ["promote", f"wafer@{v3}", "--registry", str(reg), "--user", "qe"])
    assert refused.exit_code != 0 and "map50" in refused.output
    assert RegistryReader(reg).resolve("wafer").version == v2

    run("rollback", "wafer", "--registry", str(reg), "--user", "qe")
    assert RegistryReader(reg).resolve("wafer").version == v1
    events = [json.loads(line) for line in (reg / "events.jsonl").read_text().splitlines()]
    assert [e["action"] for e in events if e["action"] in ("promote", "promote_refused", "rollback")] == \
        ["promote", "promote", "promote_refused", "rollback"]
    assert all(e["user"] == "qe" and e["time"] for e in events)
    run("models", "verify", "--registry", str(reg))
