"""Fixtures of the MES tests; the helpers themselves live in tests/helpers/mes_testkit.py."""

from __future__ import annotations

import pytest

from helpers.mes_testkit import HttpReceiver


@pytest.fixture
def http_receiver():
    rec = HttpReceiver().start()
    yield rec
    rec.stop()
