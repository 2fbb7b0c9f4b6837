"""The layer rules of DESIGN.md, enforced by import-linter contracts in pyproject.toml."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _lint(root: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is part of the dev extra"
    env = {**os.environ, "PYTHONPATH": str(root)}  # analyse this tree, not the installed one
    return subprocess.run([exe, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, env=env)


def test_import_contracts_hold():
    r = _lint(REPO)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout + r.stderr


def test_contracts_catch_qt_in_core(tmp_path):
    for name in ("inspector", "training"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "inspector" / "core" / "leak.py").write_text("import PySide6\nimport torch\n")
    r = _lint(tmp_path)
    assert r.returncode != 0
    assert "Core is pure" in r.stdout and "BROKEN" in r.stdout
