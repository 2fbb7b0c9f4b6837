"""inspector/station/rules_builder.py: config -> RuleSet / WaferRuleSet, unit and name
translation, mask files, the die-image -> wafer-mm transform, and a construction-style config."""

from __future__ import annotations

import typing
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.config import load_config, load_config_text
from inspector.config.schema import Rule as RuleConfig
from inspector.config.schema import WaferRule as WaferRuleConfig
from inspector.core.decision import Verdict
from inspector.core.detections import Detections
from inspector.core.rules import AnyDefect, ClassThreshold, Count, Persistence, Region, Size, Uncertainty
from inspector.core.wafer_rules import DefectDieFraction, SpatialSignature
from inspector.station.rules_builder import (
    RULE_TYPES,
    WAFER_RULE_TYPES,
    RuleBuildError,
    build_rule_set,
    build_wafer_rule_set,
    die_to_wafer_mm,
    make_rule_input,
    wafer_layout,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "station_configs" / "wafer-demo.yaml"

WAFER_HEAD = """
station: {id: w1, name: Wafer line 1, domain: wafer}
wafer: {diameter_mm: 300, die_pitch_x_mm: 10, die_pitch_y_mm: 10, edge_exclusion_mm: 0.5}
pixel_size_um: 2.5
sources: [{type: synthetic_wafer, seed: 1}]
models:
  - {name: a, registry: wafer-demo, class_names: [particle, scratch, residue]}
  - {name: b, registry: wafer-demo-b, class_names: [particle, scratch, residue]}
"""

CONSTRUCTION = """
station: {id: site-a, name: Site A gate, domain: construction}
sources:
  - type: video
    uri: rtsp://10.0.0.5:554/stream1
    camera: gate-cam
models:
  - {name: ppe, registry: ppe-detector, class_names: [person, helmet, no_helmet, vest, no_vest]}
rules:
  - {id: min-score, type: class_threshold, default: 0.4}
  - id: ignore-road
    type: region
    mode: exclude
    polygons: [[[0, 0], [100, 0], [100, 100], [0, 100]], [[500, 500], [600, 500], [550, 600]]]
  - {id: steady, type: persistence, min_frames: 2, classes: [no_helmet, no_vest]}
  - {id: no-ppe, type: any_defect, classes: [no_helmet, no_vest], verdict: review}
flow: {mode: monitoring}
"""


def dets(*rows: tuple) -> Detections:
    return Detections([r[:4] for r in rows], [r[4] for r in rows], [r[5] for r in rows])


def _type_values(union: typing.Any) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in members}


def test_every_configurable_rule_type_has_an_implementation() -> None:
    assert set(RULE_TYPES) == _type_values(RuleConfig)
    assert set(WAFER_RULE_TYPES) == _type_values(WaferRuleConfig)


def test_the_shipped_wafer_demo_builds() -> None:
    cfg = load_config(DEMO)
    rules = build_rule_set(cfg)
    assert [type(r) for r in rules.rules] == [ClassThreshold, Size, Region, Uncertainty, Count, AnyDefect]
    assert [r.id for r in rules.rules] == [r.id for r in cfg.rules]
    thr, size, region, _, count, _ = rules.rules
    names = cfg.models[0].class_names
    assert thr.thresholds == {names.index(n): v for n, v in cfg.rules[0].thresholds.items()}  # names -> ids
    assert size.min_px == pytest.approx(cfg.rules[1].min / cfg.pixel_size_um) and size.unit == "um"
    assert region.edge_ring_mm == cfg.rules[2].edge_exclusion_mm and region.wafer_radius_mm == cfg.wafer.diameter_mm / 2
    assert count.classes == (names.index("particle"),)
    wafer = build_wafer_rule_set(cfg)
    assert [type(r) for r in wafer.rules] == [DefectDieFraction, SpatialSignature]
    assert wafer.rules[1].scratch_class_ids == (names.index("scratch"),)
    assert len(wafer_layout(cfg)) > 0

    # One die image end to end: a confident particle fails it, a faint one is dropped first.
    fused = dets((100, 100, 120, 120, 0.9, 0), (300, 300, 310, 310, 0.2, 0))
    inp = make_rule_input(cfg, fused, [fused], (640, 640), {"die_x": 0, "die_y": 0}, 0.0)
    res = rules.evaluate(inp)
    assert res.verdict is Verdict.FAIL and res.dropped == {"min-score": 1}


@pytest.mark.parametrize("unit, value, px", [("um", 10, 4.0), ("px", 10, 10.0)])
def test_size_units_convert_to_pixels(unit: str, value: float, px: float) -> None:
    cfg = load_config_text(WAFER_HEAD + f"rules: [{{id: s, type: size, max: {value}, unit: {unit}, action: review}}]")
    (size,) = build_rule_set(cfg).rules
    assert size.max_px == pytest.approx(px) and size.action is Verdict.REVIEW
    inp = make_rule_input(cfg, dets((0, 0, px + 1, 2, 0.9, 0)), [], (640, 640), {}, 0.0)
    res = build_rule_set(cfg).evaluate(inp)
    assert res.verdict is Verdict.REVIEW and f"longer than {value:g} {unit}" in res.reasons[0].message


def test_missing_mask_file_names_rule_and_file(tmp_path: Path) -> None:
    cfg = load_config_text(WAFER_HEAD + "rules: [{id: keep-out, type: region, mask_file: masks/nope.png}]")
    with pytest.raises(RuleBuildError, match=r"rule 'keep-out': mask_file 'masks/nope.png' .*does not exist") as e:
        build_rule_set(cfg, base_dir=tmp_path)
    assert e.value.rule_id == "keep-out"


def test_unreadable_mask_file_names_rule_and_file(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_text("not an image")
    cfg = load_config_text(WAFER_HEAD + "rules: [{id: keep-out, type: region, mask_file: bad.png}]")
    with pytest.raises(RuleBuildError, match=r"rule 'keep-out': mask_file 'bad.png' .*not readable"):
        build_rule_set(cfg, base_dir=tmp_path)


def test_mask_file_region(tmp_path: Path) -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    assert cv2.imwrite(str(tmp_path / "keep.png"), mask)
    cfg = load_config_text(WAFER_HEAD + "rules: [{id: only-right, type: region, mode: include, mask_file: keep.png}]")
    rules = build_rule_set(cfg, base_dir=tmp_path)
    fused = dets((2, 2, 6, 6, 0.9, 0), (40, 2, 44, 6, 0.9, 0))
    res = rules.evaluate(make_rule_input(cfg, fused, [], (64, 64), {}, 0.0))
    assert res.kept_index.tolist() == [1] and res.dropped == {"only-right": 1}
    wrong = rules.evaluate(make_rule_input(cfg, fused, [], (128, 128), {}, 0.0))
    assert wrong.verdict is Verdict.ERROR and "only-right" in wrong.reasons[0].message


def test_die_image_pixels_map_to_wafer_mm() -> None:
    cfg = load_config_text(WAFER_HEAD)
    to_mm = die_to_wafer_mm(cfg, {"die_x": 3, "die_y": "-2"}, (500, 1000))
    corners = to_mm(np.array([[0, 0], [1000, 500], [500, 250]]))
    assert np.allclose(corners, [[25, -15], [35, -25], [30, -20]])  # top-left, bottom-right, centre of die (3, -2)
    assert die_to_wafer_mm(cfg, {}, (500, 1000)) is None
    assert die_to_wafer_mm(cfg, {"die_x": "a", "die_y": 0}, (500, 1000)) is None


def test_edge_exclusion_ring_on_an_edge_die() -> None:
    cfg = load_config_text(WAFER_HEAD + "rules: [{id: edge, type: region, edge_exclusion_mm: 3}, "
                                        "{id: any, type: any_defect}]")
    rules = build_rule_set(cfg)
    lay = wafer_layout(cfg)
    die = max(lay.dies, key=lambda d: np.hypot(*lay.die_center_mm(d)))  # the die reaching farthest out
    cx, cy = lay.die_center_mm(die)
    # Image corner (in px) of the die farthest from the wafer centre: image y points down.
    far = ((640 if cx > 0 else 0), (0 if cy > 0 else 640))
    near_edge = (far[0] - 8 if far[0] else 0, far[1] if far[1] == 0 else far[1] - 8)
    fused = dets((*near_edge, near_edge[0] + 8, near_edge[1] + 8, 0.9, 0), (316, 316, 324, 324, 0.9, 0))
    res = rules.evaluate(make_rule_input(cfg, fused, [fused], (640, 640), {"die_x": die[0], "die_y": die[1]}, 0.0))
    assert res.dropped == {"edge": 1} and res.kept_index.tolist() == [1]
    # No die position in the context: the edge ring cannot be judged -> ERROR, naming the rule.
    res = rules.evaluate(make_rule_input(cfg, fused, [fused], (640, 640), {}, 0.0))
    assert res.verdict is Verdict.ERROR and res.reasons[0].rule_id == "edge"


def test_construction_config_with_polygons_and_persistence() -> None:
    cfg = load_config_text(CONSTRUCTION)
    rules = build_rule_set(cfg)
    thr, region, steady, any_ = rules.rules
    assert len(region.polygons) == 2 and region.polygons[1].shape == (3, 2)
    assert isinstance(steady, Persistence) and steady.classes == (2, 4)
    assert any_.classes == (2, 4) and any_.verdict is Verdict.REVIEW
    no_helmet_on_road = (40, 40, 60, 60, 0.9, 2)
    no_helmet_at_gate = (300, 300, 340, 380, 0.9, 2)
    person = (200, 200, 260, 400, 0.9, 0)

    def frame(t: float, *rows: tuple, camera: str = "gate-cam"):
        return rules.evaluate(make_rule_input(cfg, dets(*rows), [], (720, 1280), {"camera": camera}, t,
                                              source=camera))

    first = frame(0.0, no_helmet_on_road, no_helmet_at_gate, person)
    assert first.verdict is Verdict.PASS and first.dropped == {"ignore-road": 1, "steady": 1}
    second = frame(0.1, no_helmet_at_gate, person)
    assert second.verdict is Verdict.REVIEW and "no_helmet" in second.reasons[-1].message
    assert frame(0.2, no_helmet_at_gate, camera="yard-cam").verdict is Verdict.PASS  # another stream
