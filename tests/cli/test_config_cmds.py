"""`inspector config check [--json]`: every error of every file, or the verdicts as JSON alone on stdout."""

from __future__ import annotations

import json

from click.testing import CliRunner

from inspector.cli import main
from inspector.config import config_hash, default_config_path, load_config

BAD = """
version: 1
station: {id: Bad Id, name: x, domain: wafer}
sources: [{type: webcam}]
models: [{name: m, registry: m, imgsz: 650, class_names: [a]}]
"""


def test_check_json_ok():
    path = str(default_config_path())
    r = CliRunner().invoke(main, ["config", "check", "--json", path])
    assert r.exit_code == 0 and r.stderr == ""
    out = json.loads(r.stdout)
    (f,) = out["files"]
    cfg = load_config(path)
    assert out["ok"] and f["ok"] and f["file"] == path
    assert f["station"] == cfg.station.id and f["config_hash"] == config_hash(cfg)
    assert f["models"] == len(cfg.models) and f["rules"] == len(cfg.rules)


def test_check_json_failure_exits_1_with_every_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    good = str(default_config_path())
    r = CliRunner().invoke(main, ["config", "check", "--json", good, str(bad)])
    assert r.exit_code == 1
    out = json.loads(r.stdout)  # stdout is the JSON document alone, even on failure
    assert not out["ok"] and [f["ok"] for f in out["files"]] == [True, False]
    errors = out["files"][1]["errors"]
    for field in ("station.id", "sources[0]", "models[0].imgsz"):  # every error at once, with its field path
        assert any(e["path"].startswith(field) for e in errors), field
    assert all(e["file"] == str(bad) and e["message"] for e in errors)


def test_check_text_failure_still_exits_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    r = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert r.exit_code == 1 and r.stdout == ""
    assert f"{bad}: station.id" in r.stderr


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


def _with_mes(tmp_path, mes_yaml: str):
    from inspector.config import default_config_path

    path = tmp_path / "with-mes.yaml"
    path.write_text(f"extends: {default_config_path()}\nmes:\n{mes_yaml}")
    return str(path)


def test_check_warns_about_credentials_in_clear_and_in_urls(tmp_path):
    path = _with_mes(tmp_path, "  - {type: mqtt, id: mq, host: broker, username_env: MQ_USER, password_env: MQ_PW}\n"
                               "  - {type: mqtt, id: mqs, host: broker, port: 8883, tls: true, username_env: MQ_USER}\n"
                               "  - {type: http, id: web, url: 'http://ann:hunter2@mes.plant/r'}\n")
    r = CliRunner().invoke(main, ["config", "check", "--json", path])
    assert r.exit_code == 0, r.output  # warnings, not errors
    (f,) = json.loads(r.stdout)["files"]
    warnings = f["warnings"]
    assert any("mq:" in w and "plain MQTT" in w for w in warnings)
    assert not any("mqs:" in w for w in warnings)
    assert any("web:" in w and "token_env" in w for w in warnings) and any("plain http://" in w for w in warnings)
    assert "hunter2" not in r.stdout
    text = CliRunner().invoke(main, ["config", "check", path])
    assert text.exit_code == 0 and "warning: mes output mq:" in text.stderr


def test_check_masks_a_password_quoted_in_an_error(tmp_path):
    path = _with_mes(tmp_path, "  - {type: http, id: web, url: 'ftp://ann:hunter2@mes.plant/r'}\n")
    r = CliRunner().invoke(main, ["config", "check", "--json", path])
    assert r.exit_code == 1
    assert "hunter2" not in r.stdout and "ftp://ann:***@mes.plant/r" in r.stdout
