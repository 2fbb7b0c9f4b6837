"""Tests of inspector/config/schema/: conventions, expressiveness, and every validation rule.

Configs are written as dicts, dumped to YAML and loaded through the loader, so each bad case also
checks the field path and message an operator would see.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pkgutil
from typing import Any, Callable

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from inspector.config import ConfigError, load_config_text, schema
from inspector.config.schema import ModelSpec, StationConfig, source_id

CLASSES = ["particle", "scratch", "residue", "pattern", "edge_chip"]

WAFER: dict[str, Any] = {
    "station": {"id": "w1", "name": "Wafer line 1", "domain": "wafer"},
    "wafer": {"die_pitch_x_mm": 10, "die_pitch_y_mm": 10},
    "pixel_size_um": 2.0,
    "sources": [{"type": "synthetic_wafer", "seed": 1}],
    "models": [{"name": "a", "registry": "wafer-demo", "class_names": CLASSES}],
    "rules": [{"id": "r1", "type": "any_defect"}],
}

CONSTRUCTION_YAML = """
station: {id: site-a, name: Site A gate, domain: construction}
sources:
  - type: video
    uri: rtsp://10.0.0.5:554/stream1
    camera: gate-cam
    fps_limit: 10
    reconnect: {stall_timeout_s: 3.0, backoff_initial_s: 1, backoff_max_s: 60}
    zones:
      - {id: crane-swing, kind: restricted, polygon: [[0, 0], [400, 0], [400, 300], [0, 300]]}
      - {id: scaffold, kind: ppe_required, polygon: [[500, 100], [900, 100], [700, 600]]}
  - type: video
    uri: usb:0
    camera: yard-cam
models:
  - name: ppe
    registry: ppe-detector@3
    imgsz: 960
    class_names: [person, helmet, no_helmet, vest, no_vest]
    providers: [tensorrt, cuda, cpu]
    tiling: {tile: 640, overlap: 0.25, batch: 4}
rules:
  - {id: min-score, type: class_threshold, default: 0.4}
  - {id: steady, type: persistence, min_frames: 5, min_seconds: 1.5, classes: [no_helmet, no_vest, person]}
  - {id: no-ppe, type: any_defect, classes: [no_helmet, no_vest], verdict: review}
flow: {mode: monitoring, queue_size: 2}
storage: {image_format: jpeg, jpeg_quality: 80, store_images: flagged, retention_days: 30}
mes:
  - {id: site-broker, type: mqtt, host: broker.local, port: 8883, tls: true, qos: 1,
     topic_template: "inspector/{station}/{camera}/{zone}", username_env: MQTT_USER, password_env: MQTT_PASS}
"""


def _all_models() -> list[type[BaseModel]]:
    # Every model defined in the schema package's modules, base classes with fields included.
    modules = [importlib.import_module(f"{schema.__name__}.{m.name}") for m in pkgutil.iter_modules(schema.__path__)]
    return [
        obj
        for module in modules
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseModel) and obj.__module__ == module.__name__ and obj.model_fields
    ]


def _load(data: dict) -> StationConfig:
    return load_config_text(yaml.safe_dump(data, sort_keys=False), "t.yaml")


# ------------------------------------------------------------------------------------------
# Conventions
# ------------------------------------------------------------------------------------------


def test_every_model_forbids_extra_and_describes_every_field():
    models = _all_models()
    assert len(models) >= 25
    for model in models:
        assert model.model_config.get("extra") == "forbid", model.__name__
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_models_are_frozen():
    cfg = _load(WAFER)
    with pytest.raises(ValidationError):
        cfg.flow.mode = "monitoring"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------
# Expressiveness: configs that must load
# ------------------------------------------------------------------------------------------


def test_construction_site_config_loads():
    cfg = load_config_text(CONSTRUCTION_YAML, "site.yaml")
    assert cfg.station.domain == "construction"
    assert cfg.flow.mode == "monitoring"
    cam = cfg.sources[0]
    assert cam.type == "video" and cam.camera == "gate-cam"
    assert [z.kind for z in cam.zones] == ["restricted", "ppe_required"]
    assert cam.zones[1].polygon[2] == (700.0, 600.0)
    assert cfg.sources[1].reconnect.stall_timeout_s == 2.0  # default watchdog
    assert cfg.rules[1].type == "persistence" and cfg.rules[1].min_frames == 5
    assert cfg.mes[0].type == "mqtt" and cfg.mes[0].port == 8883
    assert cfg.models[0].tiling is not None and cfg.models[0].tiling.tile == 640
    assert cfg.wafer is None
    assert [source_id(s, i) for i, s in enumerate(cfg.sources)] == ["gate-cam", "yard-cam"]


def test_every_plugin_type_loads():
    data = copy.deepcopy(WAFER)
    data["sources"] = [
        {"type": "synthetic_wafer", "lots": 2, "wafers_per_lot": 3, "rate_hz": 5},
        {"type": "folder", "id": "scans", "path": "scans", "pattern": "*.tif", "recursive": True,
         "context_regex": r"(?P<lot>[^/]+)/(?P<wafer>\d+)", "sidecar_csv": "scans/context.csv", "loop": True},
        {"type": "video", "uri": "clip.mp4", "camera": "cam-1"},
        {"type": "genicam", "cti_file": "/opt/vendor/producer.cti", "camera": "line-cam", "serial": "S123",
         "exposure_us": 800, "zones": [{"id": "roi", "kind": "inspection", "polygon": [[0, 0], [10, 0], [0, 10]]}]},
    ]
    data["models"] = [
        {"name": "a", "registry": "wafer-demo@2", "class_names": CLASSES},
        {"name": "b", "path": "models/b.onnx", "sha256": "ab" * 32, "class_names": CLASSES, "weight": 2},
    ]
    data["fusion"] = {"method": "vote", "k": 2, "conf_type": "max"}
    data["rules"] = [
        {"id": "thr", "type": "class_threshold", "thresholds": {"scratch": 0.5}},
        {"id": "size", "type": "size", "min": 2, "max": 500, "unit": "px", "action": "review"},
        {"id": "roi", "type": "region", "mode": "include", "polygons": [[[0, 0], [640, 0], [640, 640]]],
         "mask_file": "m.png"},
        {"id": "agree", "type": "agreement", "k": 2},
        {"id": "count", "type": "count", "classes": ["particle", "residue"], "max_count": 0},
        {"id": "unsure", "type": "uncertainty", "low": 0.2, "high": 0.4},
        {"id": "disagree", "type": "disagreement", "max_spread": 0.3},
        {"id": "last", "type": "any_defect", "classes": ["scratch"]},
    ]
    data["wafer_rules"] = [
        {"id": "frac", "type": "defect_die_fraction", "max_fraction": 0.1},
        {"id": "sig", "type": "spatial_signature", "signatures": ["cluster"], "verdict": "review"},
    ]
    data["mes"] = [
        {"id": "h", "type": "http", "url": "https://mes.local/api/results", "token_env": "MES_TOKEN",
         "ca_file": "ca.pem"},
        {"id": "m", "type": "mqtt", "host": "broker"},
        {"id": "f", "type": "filedrop", "folder": "out"},
        {"id": "k", "type": "klarf", "folder": "klarf"},
        {"id": "o", "type": "opcua"},
    ]
    cfg = _load(data)
    assert [s.type for s in cfg.sources] == ["synthetic_wafer", "folder", "video", "genicam"]
    assert [r.type for r in cfg.rules][-1] == "any_defect"
    assert [o.type for o in cfg.mes] == ["http", "mqtt", "filedrop", "klarf", "opcua"]
    assert cfg.mes[4].endpoint == "opc.tcp://127.0.0.1:4840/inspector"
    assert cfg.mes[1].topic_template == "inspector/{station}/{lot}"


@pytest.mark.parametrize(
    "registry, name, version",
    [("wafer-demo", "wafer-demo", None), ("wafer-demo@3", "wafer-demo", "3"), ("det.v2@rc-1.0", "det.v2", "rc-1.0")],
)
def test_registry_reference_parts(registry, name, version):
    spec = ModelSpec(name="m", registry=registry, class_names=["a"])
    assert (spec.registry_name, spec.registry_version) == (name, version)


# ------------------------------------------------------------------------------------------
# Bad configs: (id, change to a valid config, expected path, message fragment)
# ------------------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Change that sets a dotted path ("models.0.imgsz") in the config dict."""

    def change(data: dict) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _construction(data: dict) -> None:
    data.update(yaml.safe_load(CONSTRUCTION_YAML))
    data.pop("wafer")


def _both(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for c in changes:
            c(data)

    return change


_PPE = {"name": "b", "registry": "other", "class_names": ["particle", "scratch"]}

R0 = "rules.0"
BAD = [
    # id, change, expected path, message fragment
    ("unknown-field", _set("models.0.imgsze", 640),
     "models[0].imgsze", "unknown field (did you mean 'imgsz'?); allowed: class_names"),
    ("wrong-type", _set("sources.0.lots", "two"),
     "sources[0].lots", "expected a valid integer, got 'two'"),
    ("bad-source-type", _set("sources.0.type", "webcam"),
     "sources[0].type", "unknown type 'webcam'; allowed: synthetic_wafer, synthetic_site, folder, video, genicam"),
    ("missing-source-type", _set("sources.0", {"seed": 1}),
     "sources[0].type", "missing `type`; allowed: synthetic_wafer"),
    ("imgsz-not-32", _set("models.0.imgsz", 650),
     "models[0].imgsz", "expected a multiple of 32, got 650"),
    ("imgsz-too-big", _set("models.0.imgsz", 8192),
     "models[0].imgsz", "at most 4096"),
    ("registry-and-path", _set("models.0.path", "m.onnx"),
     "models[0].registry", "exactly one of `registry` or `path`"),
    ("neither-registry-nor-path", _set("models.0.registry", None),
     "models[0]", "got neither"),
    ("path-without-sha", _set("models.0", {"name": "a", "path": "m.onnx", "class_names": CLASSES}),
     "models[0].sha256", "required with `path`"),
    ("bad-sha", _set("models.0", {"name": "a", "path": "m.onnx", "sha256": "1234", "class_names": CLASSES}),
     "models[0].sha256", "64 hexadecimal characters, got '1234'"),
    ("bad-registry-ref", _set("models.0.registry", "Wafer Demo"),
     "models[0].registry", "'name@version'"),
    ("duplicate-class-name", _set("models.0.class_names", ["a", "b", "a"]),
     "models[0].class_names", "duplicate class name 'a'"),
    ("class-names-differ", lambda d: d["models"].append(_PPE),
     "models[1].class_names", "model 'b' has class_names ['particle', 'scratch'], but model 'a' has"),
    ("duplicate-rule-id", _set("wafer_rules", [{"id": "r1", "type": "defect_die_fraction", "max_fraction": 0.2}]),
     "wafer_rules[0].id", "duplicate rule id 'r1' (already used by rules[0])"),
    ("unknown-class-in-rule", _set("rules.0.classes", ["scratch", "blob"]),
     "rules[0].classes[1]", "unknown class 'blob'"),
    ("unknown-class-in-thresholds", _set(R0, {"id": "t", "type": "class_threshold", "thresholds": {"blob": 0.5}}),
     "rules[0].thresholds.blob", "unknown class 'blob'; the models' classes are: particle, scratch"),
    ("empty-classes", _set("rules.0.classes", []),
     "rules[0].classes", "expected at least 1 item, got 0"),
    ("threshold-out-of-range", _set(R0, {"id": "t", "type": "class_threshold", "thresholds": {"scratch": 1.5}}),
     "rules[0].thresholds.scratch", "expected a number at most 1"),
    ("size-min-over-max", _set(R0, {"id": "s", "type": "size", "min": 9, "max": 3}),
     "rules[0].min", "expected min <= max"),
    ("size-um-without-pixel-size",
     _both(_set(R0, {"id": "s", "type": "size", "min": 3, "unit": "um"}), _set("pixel_size_um", None)),
     "rules[0].unit", "needs the top-level `pixel_size_um`"),
    ("region-empty", _set(R0, {"id": "g", "type": "region"}),
     "rules[0]", "at least one of `polygons`"),
    ("agreement-k-over-models", _set(R0, {"id": "g", "type": "agreement", "k": 3}),
     "rules[0].k", "at most the number of models (1), got 3"),
    ("uncertainty-band-inverted", _set(R0, {"id": "u", "type": "uncertainty", "low": 0.6, "high": 0.4}),
     "rules[0].low", "expected low < high"),
    ("construction-inspection", _both(_construction, _set("flow", {"mode": "inspection"})),
     "flow.mode", "must use 'monitoring': live video"),
    ("wafer-jpeg", _set("storage", {"image_format": "jpeg"}),
     "storage.image_format", "lossless"),
    ("wafer-without-geometry", _set("wafer", None),
     "wafer", "required when station.domain is 'wafer'"),
    ("fusion-k-over-models", _set("fusion", {"method": "vote", "k": 2}),
     "fusion.k", "at most the number of models (1), got 2"),
    ("zone-two-points", _both(_construction, _set("sources.0.zones.0.polygon", [[0, 0], [5, 5]])),
     "sources[0].zones[0].polygon", "at least 3 [x, y] points, got 2"),
    ("zone-bad-kind", _both(_construction, _set("sources.0.zones.0.kind", "forbidden")),
     "sources[0].zones[0].kind", "expected 'restricted', 'ppe_required', 'exclusion' or 'inspection', got 'forbidden'"),
    ("bad-regex", _set("sources.0", {"type": "folder", "path": "x", "context_regex": "(?P<lot>[a-z"}),
     "sources[0].context_regex", "expected a valid regular expression"),
    ("regex-without-groups", _set("sources.0", {"type": "folder", "path": "x", "context_regex": "[a-z]+"}),
     "sources[0].context_regex", "named groups"),
    ("http-without-scheme", _set("mes", [{"id": "h", "type": "http", "url": "mes.local/api"}]),
     "mes[0].url", "starting with http:// or https://"),
    ("token-in-token-env", _set("mes", [{"id": "h", "type": "http", "url": "https://m", "token_env": "abc.def-123"}]),
     "mes[0].token_env", "NAME of an environment variable"),
    ("mqtt-bad-placeholder", _set("mes", [{"id": "m", "type": "mqtt", "host": "b", "topic_template": "x/{lott}"}]),
     "mes[0].topic_template", "unknown placeholder {lott}"),
    ("bad-station-id", _set("station.id", "Line 1"),
     "station.id", "lowercase id"),
    ("missing-station", lambda d: d.pop("station"),
     "station", "required field is missing"),
    ("no-models", _set("models", []),
     "models", "expected at least 1 item, got 0"),
    ("unsupported-version", _set("version", 2),
     "version", "unsupported config version 2"),
    ("section-not-mapping", _set("flow", ["inspection"]),
     "flow", "expected a mapping (key: value), got a list"),
]


@pytest.mark.parametrize("change, path, fragment", [pytest.param(*case[1:], id=case[0]) for case in BAD])
def test_bad_config_is_reported_at_its_path(change, path, fragment):
    data = copy.deepcopy(WAFER)
    change(data)
    with pytest.raises(ConfigError) as info:
        _load(data)
    found = [e for e in info.value.errors if e.path == path]
    assert found, f"no error at {path!r}; got: {info.value}"
    assert any(fragment in e.message for e in found), str(info.value)
    assert f"t.yaml: {path}: " in str(info.value)


def test_valid_base_config_loads():
    # The table above only means something if the unchanged base is valid.
    assert _load(WAFER).station.id == "w1"


def test_cross_field_errors_are_all_reported():
    data = copy.deepcopy(WAFER)
    data["storage"] = {"image_format": "jpeg"}
    data["fusion"] = {"k": 4}
    data["rules"].append({"id": "r1", "type": "count", "classes": ["blob"], "max_count": 1})
    with pytest.raises(ConfigError) as info:
        _load(data)
    paths = {e.path for e in info.value.errors}
    assert paths == {"storage.image_format", "fusion.k", "rules[1].id", "rules[1].classes[0]"}
