"""GUI test fixtures: an AppContext on the wafer demo config, users of each role, screenshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from inspector.config import config_hash, default_config_path, load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def actions_mod():
    from inspector.station import actions

    return actions


@pytest.fixture
def demo_cfg():
    cfg = load_config(default_config_path())
    return cfg, config_hash(cfg)


@pytest.fixture
def ctx(tmp_path, demo_cfg):
    from inspector.gui.context import AppContext

    cfg, h = demo_cfg
    return AppContext(cfg, h, tmp_path / "data", registry_root=tmp_path / "reg")


@pytest.fixture
def screenshots() -> Path:
    """INSPECTOR_SCREENSHOTS or artifacts/screenshots (git-ignored): never inside tests/."""
    folder = Path(os.environ.get("INSPECTOR_SCREENSHOTS") or REPO / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder




PASSWORD = "password-123"
ROLE_USERS = {"op": "operator", "eng": "engineer", "safety": "safety_manager", "adm": "admin"}


@pytest.fixture
def sessions(ctx):
    """One user per role in the context's database; their sessions by role."""
    from inspector.station import actions
    from inspector.store import users

    conn = ctx.connect()
    try:
        for name, role in ROLE_USERS.items():
            users.add_user(conn, name, role, PASSWORD, actor="test")
        return {role: actions.login(conn, name, PASSWORD) for name, role in ROLE_USERS.items()}
    finally:
        conn.close()
