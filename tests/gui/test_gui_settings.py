"""The settings tab: tunable thresholds within limits, applied through actions.change_settings."""

from __future__ import annotations

import pytest
from gui.gui_helpers import save_shot

from inspector.config import config_hash
from inspector.store import users

SCRATCH = "rules.min-score.thresholds.scratch"


def _view(ctx, qtbot, controller=None):
    from inspector.gui.views.settings_view import SettingsView

    view = SettingsView(ctx, controller)
    qtbot.addWidget(view)
    view.resize(1000, 560)
    view.show()
    return view


def test_engineer_change_inside_limits_stores_config_and_audit(ctx, sessions, qtbot, screenshots, actions_mod):
    ctx.session = sessions["engineer"]
    old_hash = ctx.cfg_hash
    view = _view(ctx, qtbot)
    limits = actions_mod.tunable_limits(ctx.cfg)
    assert view.paths == list(limits) and view.table.rowCount() == len(limits)
    spin = view.spins[SCRATCH]
    assert (spin.minimum(), spin.maximum(), spin.value()) == (pytest.approx(0.2), pytest.approx(0.6), 0.4)
    spin.setValue(0.9)                      # the spin box holds the value to the allowed range
    assert spin.value() == pytest.approx(0.6)
    spin.setValue(0.55)
    assert view.changes() == {SCRATCH: 0.55}
    assert view.apply()
    new_hash = view.last_hash
    assert new_hash and new_hash != old_hash
    assert ctx.cfg_hash == new_hash == config_hash(ctx.cfg)          # the next station start uses it
    assert ctx.cfg.rules[[r.id for r in ctx.cfg.rules].index("min-score")].thresholds["scratch"] == 0.55
    text = view.message.text()
    assert new_hash in text and "next station start" in text
    row = view.paths.index(SCRATCH)
    assert view.table.item(row, 2).text() == "0.55" and view.table.item(row, 1).text() == "0.4"
    conn = ctx.connect()
    try:
        stored = conn.execute("SELECT hash FROM configs WHERE hash = ?", (new_hash,)).fetchall()
        audit_rows = conn.execute("SELECT actor, entity_id FROM audit WHERE action = 'settings.change'").fetchall()
    finally:
        conn.close()
    assert len(stored) == 1
    assert [tuple(r) for r in audit_rows] == [("eng", new_hash)]
    # Limits stay those of the baseline file: a second step cannot walk past them.
    assert view.limits[SCRATCH].hi == pytest.approx(0.6) and view.spins[SCRATCH].maximum() == pytest.approx(0.6)
    view.spins["models.wafer-demo.conf"].setValue(0.3)   # pending, shown in bold
    qtbot.wait(50)                          # let the layout take the message's height
    save_shot(view, screenshots, "settings_view")
    view.load_current()
    assert not view.apply()                 # nothing changed since
    assert "Nothing to apply" in view.message.text()


def test_refusals_name_the_field_and_write_nothing(ctx, sessions, qtbot, actions_mod):
    ctx.session = sessions["engineer"]
    view = _view(ctx, qtbot)
    old_hash = ctx.cfg_hash
    view.spins["rules.uncertain.low"].setValue(0.45)   # each within its limit, but low >= high
    view.spins["rules.uncertain.high"].setValue(0.4)
    assert not view.apply()
    assert "Refused" in view.message.text() and "low" in view.message.text()
    # A value outside the limit (not reachable with the spin box; the function refuses it too).
    assert not view.apply({SCRATCH: 0.95})
    assert f"{SCRATCH}: 0.95 is outside its limit [0.2, 0.6]" in view.message.text()
    # The session goes stale: the account is deactivated after log-in.
    conn = ctx.connect()
    try:
        users.deactivate(conn, "eng", actor="adm")
    finally:
        conn.close()
    view.load_current()
    view.spins[SCRATCH].setValue(0.5)
    assert not view.apply()
    assert "Refused" in view.message.text() and "deactivated" in view.message.text()
    assert ctx.cfg_hash == old_hash
    conn = ctx.connect()
    try:
        assert conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'settings.change'").fetchone()[0] == 0
    finally:
        conn.close()


def test_operator_gets_no_settings_tab_and_the_function_refuses(ctx, sessions, qtbot, actions_mod):
    from inspector.gui.main_window import MainWindow

    ctx.session = sessions["operator"]
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    titles = [win.tabs.tabText(i) for i in range(win.tabs.count())]
    assert "Settings" not in titles and "Models" not in titles and "settings" not in win.pages
    limits = actions_mod.tunable_limits(ctx.cfg)
    conn = ctx.connect()
    try:
        with pytest.raises(actions_mod.PermissionDenied):
            actions_mod.change_settings(conn, sessions["operator"], ctx.cfg, {SCRATCH: 0.5}, limits)
        assert conn.execute("SELECT COUNT(*) FROM configs").fetchone()[0] == 0
    finally:
        conn.close()
    win.close()

    ctx.session = sessions["engineer"]
    eng = MainWindow(ctx)
    qtbot.addWidget(eng)
    assert {"settings", "models"} <= set(eng.pages)
    eng.close()


class FakeStation:
    def __init__(self, cfg_hash: str) -> None:
        self.cfg_hash = cfg_hash
        self.state = "created"

    def start(self) -> None:
        self.state = "running"

    def request_stop(self) -> None:
        pass

    def stop(self) -> None:
        self.state = "stopped"


def test_restart_station_now_uses_the_new_settings(ctx, sessions, qtbot):
    from inspector.gui.station_controller import StationController

    built: list[str] = []

    def factory():
        built.append(ctx.cfg_hash)
        return FakeStation(ctx.cfg_hash)

    ctx.session = sessions["engineer"]
    controller = StationController(factory)
    view = _view(ctx, qtbot, controller)
    assert not view.restart_btn.isEnabled()
    assert controller.start()
    qtbot.waitUntil(lambda: controller.state == "running", timeout=30_000)  # generous: a loaded CI machine
    first = ctx.cfg_hash
    view.spins[SCRATCH].setValue(0.5)
    assert view.apply()
    assert "running station keeps config" in view.message.text()
    qtbot.waitUntil(view.restart_btn.isEnabled, timeout=10_000)
    view.restart_btn.click()
    qtbot.waitUntil(lambda: len(built) == 2 and controller.state == "running" and not view._restarting,
                    timeout=10_000)
    assert built == [first, view.last_hash] and controller.station.cfg_hash == view.last_hash
    assert "restarted" in view.message.text() and not view.restart_btn.isEnabled()
    controller.stop()
    qtbot.waitUntil(lambda: controller.state == "stopped", timeout=30_000)
    controller.wait(5)
