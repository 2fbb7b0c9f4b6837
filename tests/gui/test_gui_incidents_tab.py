"""The main window's Incidents tab: built for the engineer and the safety manager on a site
station, for nobody else, and not on a wafer line; its steps follow the role (gui/permissions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.config import config_hash, load_config
from inspector.gui.permissions import can

REPO = Path(__file__).resolve().parents[2]


def _tabs(ctx, qtbot, session):
    from inspector.gui.main_window import MainWindow

    ctx.session = session
    win = MainWindow(ctx, station_factory=lambda: None)
    qtbot.addWidget(win)
    return win, [win.tabs.tabText(i) for i in range(win.tabs.count())]


def test_roles_that_see_the_incidents_tab(ctx, sessions, qtbot):
    _, t = _tabs(ctx, qtbot, sessions["safety_manager"])
    assert "Incidents" not in t  # the wafer demo: no site, no tab
    ctx.extra["incidents_tab"] = True
    expected = {"operator": False, "engineer": True, "safety_manager": True, "admin": False}
    for role, shown in expected.items():
        win, t = _tabs(ctx, qtbot, sessions[role])
        assert ("Incidents" in t) is shown, role
        if shown:
            view = win.pages["incidents"]
            assert view.may_act is (role == "safety_manager") and view.may_act is can(ctx.session, "incidents")
            view.shutdown()


def test_a_construction_station_has_the_tab(tmp_path, sessions, qtbot):
    path = REPO / "station_configs" / "construction-demo.yaml"
    if not path.exists():
        pytest.skip("construction-demo.yaml not there yet")
    from inspector.gui.context import AppContext

    cfg = load_config(path)
    ctx = AppContext(cfg, config_hash(cfg), tmp_path / "site-data")
    conn = ctx.connect()  # the users of the fixture live in another data folder: add the safety manager here
    from inspector.station import actions
    from inspector.store import users

    users.add_user(conn, "safety", "safety_manager", "password-123", actor="test")
    session = actions.login(conn, "safety", "password-123")
    conn.close()
    win, t = _tabs(ctx, qtbot, session)
    assert "Incidents" in t
    win.pages["incidents"].shutdown()


def test_a_capability_may_need_any_of_several_permissions():
    from types import SimpleNamespace as S

    assert can(S(role="engineer"), "incidents_view") and can(S(role="safety_manager"), "incidents_view")
    assert not can(S(role="operator"), "incidents_view") and not can(None, "incidents_view")
    assert can(S(role="safety_manager"), "incidents") and not can(S(role="engineer"), "incidents")
