"""The training contracts of pyproject.toml catch what they exist for: evaluate <-> export cycles and
a YOLO format module that reaches back into the readers."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _lint_with(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess:
    for name in ("inspector", "training"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / module, "a", encoding="utf-8") as f:
        f.write(f"\n{line}\n")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is part of the dev extra"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run([exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("training/export.py", "from training.evaluate import evaluate_model", "evaluation runs the exporter"),
    ("training/metrics/report.py", "import training.export", "evaluation runs the exporter"),
    ("training/yolo.py", "from training.datasets import Sample", "readers build on the writer"),
])
def test_training_contracts_catch_a_back_import(tmp_path, module, line, contract):
    r = _lint_with(tmp_path, module, line)
    assert r.returncode != 0, r.stdout
    broken = [ln for ln in r.stdout.splitlines() if "BROKEN" in ln or contract in ln]
    assert any("BROKEN" in ln for ln in broken), r.stdout
