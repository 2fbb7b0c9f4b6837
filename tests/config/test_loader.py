"""Tests of inspector/config/loader.py: files, merging, error reports, hashing, snapshots."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import yaml

from inspector.config import (
    ConfigError,
    ConfigIssue,
    StationConfig,
    canonical_json,
    config_hash,
    default_config_path,
    export_json_schema,
    load_config,
    load_config_text,
    resolve_data_dir,
    snapshot_config,
    write_json_schema,
)

DEMO = default_config_path()


@pytest.fixture(scope="module")
def demo() -> StationConfig:
    return load_config(DEMO)


@pytest.fixture(scope="module")
def demo_data() -> dict:
    return yaml.safe_load(DEMO.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------
# The shipped demo
# ------------------------------------------------------------------------------------------


def test_shipped_wafer_demo_loads(demo):
    assert DEMO.name == "wafer-demo.yaml" and DEMO.exists()
    assert demo.station.id == "wafer-demo" and demo.station.domain == "wafer"
    src = demo.sources[0]
    assert (src.type, src.seed, src.lots, src.wafers_per_lot, src.die_px) == ("synthetic_wafer", 2, 1, 4, 320)
    model = demo.models[0]
    assert model.registry == "wafer-demo" and model.registry_version is None and model.imgsz == src.die_px
    assert model.class_names == ["particle", "scratch", "residue", "pattern", "edge_chip"]
    assert [r.type for r in demo.rules] == ["class_threshold", "size", "region", "uncertainty", "count", "any_defect"]
    assert [r.type for r in demo.wafer_rules] == ["defect_die_fraction", "spatial_signature"]
    assert demo.flow.mode == "inspection" and demo.storage.image_format == "png"
    assert demo.wafer is not None and demo.wafer.diameter_mm == 300
    # each die image covers one die pitch, so the pixel size follows from pitch and image width
    assert demo.pixel_size_um == demo.wafer.die_pitch_x_mm * 1000 / src.die_px
    assert demo.mes[0].type == "filedrop" and demo.mes[0].folder == "mes-out"


def test_shipped_json_schema_is_current():
    shipped = json.loads((DEMO.parent / "schema.json").read_text(encoding="utf-8"))
    assert shipped == export_json_schema(), "regenerate with inspector.config.write_json_schema"


def test_write_json_schema(tmp_path):
    out = write_json_schema(tmp_path / "schema.json")
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert {"station", "sources", "models", "rules", "extends", "source_defaults"} <= set(schema["properties"])


# ------------------------------------------------------------------------------------------
# Hashing and snapshots
# ------------------------------------------------------------------------------------------


def _reverse_keys(node):
    if isinstance(node, dict):
        return {k: _reverse_keys(node[k]) for k in reversed(list(node))}
    if isinstance(node, list):
        return [_reverse_keys(v) for v in node]
    return node


def test_hash_ignores_key_order_formatting_and_comments(demo, demo_data):
    reordered = yaml.safe_dump(_reverse_keys(demo_data), sort_keys=False, default_flow_style=True, width=1000)
    commented = "# a comment\n" + yaml.safe_dump(demo_data, indent=4).replace("\n", "  # note\n", 3)
    h = config_hash(demo)
    assert len(h) == 64
    assert config_hash(load_config_text(reordered)) == h
    assert config_hash(load_config_text(commented)) == h


@pytest.mark.parametrize(
    "section, index, key, value",
    [
        ("sources", 0, "seed", 8),
        ("models", 0, "conf", 0.26),
        ("rules", 0, "default", 0.31),
        ("flow", None, "queue_size", 9),
        ("station", None, "name", "Wafer demo B"),
    ],
)
def test_hash_changes_with_any_value(demo, demo_data, section, index, key, value):
    data = yaml.safe_load(yaml.safe_dump(demo_data))
    node = data[section] if index is None else data[section][index]
    node[key] = value
    assert config_hash(load_config_text(yaml.safe_dump(data))) != config_hash(demo)


def test_hash_form_is_the_ascii_escaped_json_configs_were_always_hashed_over(demo_data):
    # Stored decisions point at configs by hash: the bytes hashed must never change, non-ASCII
    # text (escaped as \\uXXXX, astral characters as surrogate pairs) included.
    data = dict(demo_data, station={**demo_data["station"], "name": "Wäfer 日本 \U0001F600 \u2028 tab\t \"q\""})
    cfg = load_config_text(yaml.safe_dump(data, allow_unicode=True))
    frozen = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert canonical_json(cfg) == frozen and canonical_json(cfg).isascii()
    assert config_hash(cfg) == hashlib.sha256(frozen.encode("utf-8")).hexdigest()


def test_snapshot_is_written_once_by_hash(demo, tmp_path):
    first = snapshot_config(demo, tmp_path)
    assert first == tmp_path / "configs" / f"{config_hash(demo)}.json"
    assert StationConfig.model_validate(json.loads(first.read_text(encoding="utf-8"))) == demo
    os.utime(first, (1, 1))
    assert snapshot_config(demo, tmp_path) == first
    assert first.stat().st_mtime == 1  # not rewritten
    assert [p.name for p in (tmp_path / "configs").iterdir()] == [first.name]  # no temp files left


# ------------------------------------------------------------------------------------------
# Data folder
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, data_dir, expected",
    [
        ({"INSPECTOR_DATA": "/srv/env-data"}, "/srv/cfg-data", "/srv/env-data"),
        ({"INSPECTOR_DATA": ""}, "/srv/cfg-data", "/srv/cfg-data"),
        ({}, "rel-data", "{cwd}/rel-data"),
        ({}, None, "{cwd}/inspector-data"),
    ],
)
def test_resolve_data_dir(demo, tmp_path, monkeypatch, env, data_dir, expected):
    monkeypatch.chdir(tmp_path)
    cfg = demo.model_copy(update={"storage": demo.storage.model_copy(update={"data_dir": data_dir})})
    assert resolve_data_dir(cfg, env) == Path(expected.format(cwd=Path.cwd()))


def test_resolve_data_dir_reads_process_environment(demo, tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATA", str(tmp_path / "d"))
    assert resolve_data_dir(demo) == tmp_path / "d"


# ------------------------------------------------------------------------------------------
# extends and source_defaults
# ------------------------------------------------------------------------------------------


def test_extends_deep_merges_dicts_and_replaces_lists(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "common.yaml").write_text(
        "extends: root.yaml\nflow: {queue_size: 16, workers: 2}\nstorage: {image_format: png, retention_days: 7}\n"
    )
    (tmp_path / "base" / "root.yaml").write_text(DEMO.read_text(encoding="utf-8"))
    (tmp_path / "line2.yaml").write_text(
        "extends: base/common.yaml\n"
        "station: {id: wafer-line-2}\n"
        "flow: {workers: 4}\n"
        "mes: [{id: drop2, type: filedrop, folder: out2}]\n"
    )
    cfg = load_config(tmp_path / "line2.yaml")
    assert cfg.station.id == "wafer-line-2" and cfg.station.name == "Wafer inspection demo"
    assert (cfg.flow.queue_size, cfg.flow.workers, cfg.flow.mode) == (16, 4, "inspection")
    assert cfg.storage.retention_days == 7
    assert [m.id for m in cfg.mes] == ["drop2"]  # lists are replaced, not appended
    assert len(cfg.rules) == 6


def test_extends_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends cycle"):
        load_config(tmp_path / "a.yaml")


def test_extends_missing_base_names_that_file(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "a.yaml")
    assert info.value.errors[0].file.endswith("nowhere.yaml") and "file not found" in info.value.errors[0].message


SITE = """
station: {id: site, name: Site, domain: construction}
source_defaults:
  type: video
  fps_limit: 5
  reconnect: {stall_timeout_s: 4.0, backoff_max_s: 10}
sources:
  - {uri: "rtsp://cam1/stream", camera: cam-1}
  - {uri: "rtsp://cam2/stream", camera: cam-2, fps_limit: 15, reconnect: {stall_timeout_s: 1.0}}
models: [{name: m, registry: ppe, class_names: [person]}]
flow: {mode: monitoring}
"""


def test_source_defaults_are_merged_into_every_source():
    cfg = load_config_text(SITE)
    one, two = cfg.sources
    assert (one.type, one.fps_limit) == ("video", 5)
    assert (one.reconnect.stall_timeout_s, one.reconnect.backoff_max_s) == (4.0, 10)
    assert (two.fps_limit, two.reconnect.stall_timeout_s, two.reconnect.backoff_max_s) == (15, 1.0, 10)


def test_unknown_key_from_source_defaults_says_so():
    text = SITE.replace("fps_limit: 5", "fps_limit: 5\n  exposure: 3")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "site.yaml")
    assert {e.path for e in info.value.errors} == {"sources[0].exposure", "sources[1].exposure"}
    assert all("inherited from source_defaults" in e.message for e in info.value.errors)


# ------------------------------------------------------------------------------------------
# File-level errors and the shape of reports
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, path, fragment",
    [
        ("station:\n  id: a\n  name: [unclosed\nmodels: []\n", "line 4:", "invalid YAML"),
        ("station: {id: a}\nflow: {}\nflow: {}\n", "line 3:1", "duplicate key 'flow'"),
        ("- a\n- b\n", "", "expected a mapping of config sections"),
        ("", "", "got an empty file"),
        ("extends: 3\n", "extends", "expected a relative path"),
        ("source_defaults: [1]\nsources: []\n", "source_defaults", "expected a mapping"),
    ],
)
def test_file_level_errors(tmp_path, text, path, fragment):
    f = tmp_path / "station.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    (issue,) = info.value.errors
    assert issue.file == str(f) and issue.path.startswith(path) and fragment in issue.message, str(info.value)
    assert str(info.value).startswith(f"{f}: ")


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(str(missing))
    assert info.value.errors == [ConfigIssue(str(missing), "", "file not found; expected a YAML station config")]
    assert str(missing) in str(info.value)


def test_all_errors_reported_at_once_each_naming_the_file(tmp_path, demo_data):
    data = yaml.safe_load(yaml.safe_dump(demo_data))
    data["models"][0]["imgsz"] = 650
    data["sources"][0]["type"] = "webcam"
    data["storage"]["colour"] = "blue"
    f = tmp_path / "three.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(f)
    errors = info.value.errors
    assert sorted(e.path for e in errors) == ["models[0].imgsz", "sources[0].type", "storage.colour"]
    assert all(e.file == str(f) for e in errors)
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{f}: ") for line in lines)
    assert any("allowed: data_dir, db_name" in line for line in lines)


def test_config_error_survives_pickling():
    err = ConfigError([ConfigIssue("f.yaml", "a", "m1"), ConfigIssue("f.yaml", "b", "m2")])
    back = pickle.loads(pickle.dumps(err))
    assert back.errors == err.errors and str(back) == str(err)


def test_config_issue_is_frozen():
    issue = ConfigIssue("f.yaml", "a.b", "m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        issue.path = "c"  # type: ignore[misc]
    assert str(issue) == "f.yaml: a.b: m"


def test_demo_class_names_match_the_synthetic_line(demo):
    from inspector.capture.synthetic import CLASS_NAMES

    assert tuple(demo.models[0].class_names) == CLASS_NAMES
