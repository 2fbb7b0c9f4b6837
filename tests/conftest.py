"""Shared test settings: offline ultralytics, offscreen Qt, and the shared data location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

import training.ultralytics_env  # noqa: E402,F401  (offline ultralytics settings, one definition)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip that says why (a user's clone has no shared data)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared datasets at {SHARED_DATA} (present in CI, absent in a user's clone)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _cheap_password_hashing(request, monkeypatch):
    """scrypt at the real cost (n = 2**17, about a second here) for every user a test creates would
    slow the suite by minutes: tests hash at n = 2**4 unless marked ``real_scrypt`` (the tests of the
    cost itself). Child processes a test starts hash at the real cost."""
    if request.node.get_closest_marker("real_scrypt"):
        return
    from inspector.store import users

    monkeypatch.setattr(users, "SCRYPT_N", 2 ** 4)
    monkeypatch.setattr(users, "_dummy_hash", None)
