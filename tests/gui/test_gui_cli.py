"""`inspector gui` is there; `inspector demo` stays headless offscreen (tests) and with --headless."""

from __future__ import annotations

import json

from click.testing import CliRunner

from inspector.cli import _gui_possible, main


def test_gui_command_and_demo_headless(tmp_path, monkeypatch):
    r = CliRunner().invoke(main, ["gui", "--help"])
    assert r.exit_code == 0 and "--config" in r.output and "--registry" in r.output
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setenv("DISPLAY", ":0")
    assert not _gui_possible()
    r = CliRunner().invoke(main, ["demo", "--headless", "--max-frames", "2", "--json", "--data-dir",
                                  str(tmp_path / "d"), "--registry", str(tmp_path / "none")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["frames"] == 2
