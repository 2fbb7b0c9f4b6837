"""The DeepPCB real-data check, tiny: the same commands as the full run in training/RESULTS.md
(import with the template difference -> train -> evaluate through the station runtime), on a few
real images for one epoch. Uses ../shared/data/deeppcb (research use only; skipped where absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from training.cli import main

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_deeppcb_diff_one_epoch_train_and_evaluate(shared_data: Path, tmp_path: Path) -> None:
    ds = tmp_path / "deeppcb-diff"
    # --limit counts split groups: with --group-by none a group is one image pair.
    run("dataset", str(ds), "--from-deeppcb", str(shared_data / "deeppcb"), "--deeppcb-mode", "diff",
        "--group-by", "none", "--limit", "16")
    run("train", "--data", str(ds / "data.yaml"), "--imgsz", "160", "--epochs", "1", "--batch", "8",
        "--workers", "0", "--project", str(tmp_path / "runs"), "--name", "pcb")
    best = tmp_path / "runs" / "pcb" / "weights" / "best.pt"
    report = json.loads(run("evaluate", str(best), str(ds), "--json", "--imgsz", "160",
                            "--out", str(tmp_path / "eval")))
    # One epoch on 16 images learns next to nothing; what is checked is that the real data went the
    # whole way: six DeepPCB classes, real truths counted, both the PyTorch and the ONNX figures.
    assert list(report["per_class"]) == ["open", "short", "mousebite", "spur", "copper", "pin-hole"]
    assert report["n_truths"] == sum(c["support"] for c in report["per_class"].values()) > 0
    for key in ("map50", "map50_95", "map33", "onnx_map50"):
        assert 0.0 <= report[key] <= 1.0
