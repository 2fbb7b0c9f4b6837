"""`inspector`: help for every command, version, and one logging set-up for every command
(`--log-level` on the groups and the commands, warnings on stderr by default)."""

from __future__ import annotations

import logging

import click
import pytest
from click.testing import CliRunner

from inspector import __version__
from inspector.cli import main


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_version():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


@pytest.mark.parametrize("path", [p for p, _ in _commands(main)], ids=" ".join)
def test_every_command_explains_itself(path):
    r = CliRunner().invoke(main, [*path, "--help"])
    assert r.exit_code == 0
    cmd = dict(_commands(main))[path]
    assert cmd.help and len(cmd.help.strip()) > 20, f"{' '.join(path)} needs a real help text"
    for p in cmd.params:
        if isinstance(p, click.Option) and p.name != "help":
            assert p.help, f"option {p.opts} of {' '.join(path)} has no help"


_EVERY = {(): main, **dict(_commands(main))}


@pytest.mark.parametrize("path", list(_EVERY), ids=lambda p: " ".join(p) or "inspector")
def test_every_command_and_group_takes_log_level(path):
    cmd = _EVERY[path]
    assert [p for p in cmd.params if p.name == "log_level"], f"{' '.join(path)} has no --log-level"
    r = CliRunner().invoke(main, [*path, "--help"])
    assert r.exit_code == 0 and "--log-level" in r.output


def _stderr_handler() -> logging.Handler:
    (h,) = [h for h in logging.getLogger().handlers if getattr(h, "_inspector_handler", None) == "stderr"]
    return h


@pytest.mark.parametrize("args, level", [
    ([], logging.WARNING),                                        # the default: warnings on stderr
    (["--log-level", "info"], logging.INFO),                      # on the group ...
    (["--log-level", "error", "config", "check"], logging.ERROR),
    (["config", "check", "--log-level", "debug"], logging.DEBUG),  # ... or on the command
])
def test_log_level_sets_the_stderr_handler(args, level, monkeypatch):
    from inspector.config import default_config_path

    monkeypatch.delenv("INSPECTOR_LOG_LEVEL", raising=False)
    if "check" not in args:
        args = [*args, "config", "check"]
    r = CliRunner().invoke(main, [*args, str(default_config_path())])
    assert r.exit_code == 0, r.output
    assert _stderr_handler().level == level


def test_env_sets_the_default_level(monkeypatch):
    from inspector.config import default_config_path

    monkeypatch.setenv("INSPECTOR_LOG_LEVEL", "info")
    assert CliRunner().invoke(main, ["config", "check", str(default_config_path())]).exit_code == 0
    assert _stderr_handler().level == logging.INFO


def test_a_bad_level_is_a_usage_error():
    r = CliRunner().invoke(main, ["--log-level", "loud", "config", "check", "x.yaml"])
    assert r.exit_code == 2 and "loud" in r.output
