"""`inspector-train`: the group's --log-level, `synth --json / --progress`, `train --progress`, `retrain`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from click.testing import CliRunner

from training.cli import main


def test_group_takes_log_level_and_defaults_to_warnings(monkeypatch):
    monkeypatch.delenv("INSPECTOR_LOG_LEVEL", raising=False)
    for args, level in (([], logging.WARNING), (["--log-level", "debug"], logging.DEBUG)):
        assert CliRunner().invoke(main, [*args, "synth", "--help"]).exit_code == 0
        # --help exits while parsing the sub-command: the group's own set-up has already run
        (h,) = [h for h in logging.getLogger().handlers if getattr(h, "_inspector_handler", None) == "stderr"]
        assert h.level == level


def test_retrain_is_a_command():
    assert "retrain" in main.commands
    assert CliRunner().invoke(main, ["retrain", "--help"]).exit_code == 0


def test_train_and_synth_take_progress():
    for cmd in ("train", "synth"):
        assert "--progress" in CliRunner().invoke(main, [cmd, "--help"]).output


def test_synth_json_is_the_summary_alone_with_progress_on_stderr(tmp_path: Path):
    r = CliRunner().invoke(main, ["synth", str(tmp_path / "ds"), "--images", "3", "--seed", "1", "--die-px", "64",
                                  "--workers", "1", "--json", "--progress", "json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["images"]["train"] + s["images"]["val"] == 3 and Path(s["data_yaml"]).is_file()
    lines = [json.loads(x) for x in r.stderr.splitlines()]
    assert lines[-1]["progress"] == "synth" and lines[-1]["event"] == "end" and lines[-1]["done"] == 3
