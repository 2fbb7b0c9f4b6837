"""The `inspector` command line: help for every command, version, config check, demo."""

import json

import click
import pytest
from click.testing import CliRunner

from inspector import __version__
from inspector.cli import main

BAD = """
version: 1
station: {id: Bad Id, name: x, domain: wafer}
sources: [{type: webcam}]
models: [{name: m, registry: m, imgsz: 650, class_names: [a]}]
"""


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


def test_config_check_ok_and_errors(tmp_path):
    from inspector.config import default_config_path

    ok = CliRunner().invoke(main, ["config", "check", str(default_config_path())])
    assert ok.exit_code == 0 and "ok" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    r = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert r.exit_code == 1
    # every error at once, each naming the file and the field path
    for path in ("station.id", "sources[0]", "models[0].imgsz"):
        assert f"{bad}: {path}" in r.output


def test_demo_json_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATA", str(tmp_path / "data"))
    r = CliRunner().invoke(main, ["demo", "--json", "--max-frames", "12", "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["frames"] == 12 and s["station"] == "wafer-demo" and s["lots"] == 1
    assert set(s["verdicts"]) == {"pass", "fail", "review", "error", "not_inspected"}
    assert {"decisions", "throughput_fps", "db", "inspected"} <= set(s)
    assert s["data_dir"] == str(tmp_path / "data")
    assert (tmp_path / "data" / "configs" / f"{s['config_hash']}.json").exists()


def test_demo_without_a_model_says_it_did_not_inspect(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATA", str(tmp_path / "data"))
    r = CliRunner().invoke(main, ["demo", "--headless", "--max-frames", "3", "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 0 and "NOT INSPECTED" in r.output and "wafer-demo" in r.output
