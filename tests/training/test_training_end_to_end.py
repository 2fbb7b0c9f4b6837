"""The quality engineer's path, one command per step, on a tiny synthetic set:
synth -> train -> export -> evaluate -> register -> promote (gate) -> refuse a worse model -> rollback.

Two real models are compared on the same held-out split: a briefly trained one (production) and a
"blind" model whose class scores are forced to ~0 (it finds nothing: the deliberately worse model).
Two epochs on 24 images cannot make a model that strictly beats another, so the promote-a-better-
model-then-roll-back drill needs the shipped wafer model (still to come; the registry tests cover
rollback with stored evaluations).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers.blind_model import blind_model
from inspector.runtime.registry import RegistryReader
from training.cli import main

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def evaluate(onnx: Path, data: Path, out: Path) -> Path:
    text = CliRunner().invoke(main, ["evaluate", str(onnx), str(data), "--json",
                                                     "--out", str(out)], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    report = json.loads(text.stdout)
    path = out / "eval.json"
    path.write_text(json.dumps(report))
    return path


def register(reg: Path, onnx: Path, data: Path, eval_json: Path) -> str:
    run("models", "register", str(onnx), "--name", "tiny", "--data", str(data), "--metrics", str(eval_json),
        "--registry", str(reg), "--user", "qe")
    versions = RegistryReader(reg).versions("tiny")
    return sorted(versions, key=int)[-1]


def test_dataset_train_export_evaluate_register_promote_rollback(tmp_path):
    ds, reg = tmp_path / "ds", tmp_path / "registry"
    run("synth", str(ds), "--images", "24", "--seed", "3", "--die-px", "96", "--workers", "1")
    data = ds / "data.yaml"
    names = ["particle", "scratch", "residue", "pattern", "edge_chip"]

    run("train", "--data", str(data), "--imgsz", "96", "--epochs", "2", "--batch", "8", "--workers", "0",
        "--project", str(tmp_path / "runs"), "--name", "t")
    best = tmp_path / "runs" / "t" / "weights" / "best.pt"
    run("export", str(best), "--out", str(tmp_path / "trained"))
    trained = next((tmp_path / "trained").glob("*.onnx"))
    blind = blind_model(tmp_path / "blind", names, 96)

    blind_eval = evaluate(blind, data, tmp_path / "eval-blind")
    trained_eval = evaluate(trained, data, tmp_path / "eval-trained")
    b, t = json.loads(blind_eval.read_text()), json.loads(trained_eval.read_text())
    assert b["dataset_hash"] == t["dataset_hash"] and b["map50"] == 0.0 and b["recall"] == 0.0
    assert t["map50"] >= b["map50"]

    v1 = register(reg, trained, data, trained_eval)
    run("promote", f"tiny@{v1}", "--registry", str(reg), "--user", "qe")       # first model: nothing to beat
    assert RegistryReader(reg).resolve("tiny").version == v1

    v2 = register(reg, blind, data, blind_eval)                                 # the worse model
    refused = CliRunner().invoke(main, ["promote", f"tiny@{v2}", "--registry", str(reg), "--user", "qe"])
    assert refused.exit_code != 0 and "map50" in refused.output
    assert RegistryReader(reg).resolve("tiny").version == v1                    # production untouched

    nothing = CliRunner().invoke(main, ["rollback", "tiny", "--registry", str(reg), "--user", "qe"])
    assert nothing.exit_code != 0 and "nothing to roll back" in nothing.output
    events = [json.loads(line) for line in (reg / "events.jsonl").read_text().splitlines()]
    assert [e["action"] for e in events if e["action"] in ("promote", "promote_refused", "rollback")] == \
        ["promote", "promote_refused"]
    assert all(e["user"] == "qe" and e["time"] for e in events)
    run("models", "verify", "--registry", str(reg))
