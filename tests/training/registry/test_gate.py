"""The promotion gate on its own: pure comparisons of two evaluations (no registry)."""

from __future__ import annotations

import pytest

from training.registry.gate import GateConfig, GateRefused, evaluate_gate


@pytest.mark.parametrize(
    "cand, prod, margins, passed",
    [
        ({"map50": 0.6, "map50_95": 0.4}, {"map50": 0.5, "map50_95": 0.4}, None, True),   # one better, one equal
        ({"map50": 0.6, "map50_95": 0.39}, {"map50": 0.5, "map50_95": 0.4}, None, False),  # one worse
        ({"map50": 0.6, "map50_95": 0.39}, {"map50": 0.5, "map50_95": 0.4}, {"map50_95": -0.02}, True),
        ({"map50": 0.6, "map50_95": 0.39}, {"map50": 0.5, "map50_95": 0.4}, {"map50_95": None}, True),
        ({"map50": 0.5, "ece": 0.03}, {"map50": 0.5, "ece": 0.05}, {"map50_95": None, "ece": 0.0}, True),  # lower ece
        ({"map50": 0.5, "ece": 0.06}, {"map50": 0.5, "ece": 0.05}, {"map50_95": None, "ece": 0.0}, False),
        ({"map50": 0.1 + 0.2}, {"map50": 0.3}, {"map50_95": None}, False),  # float noise is not an improvement
        ({"map50": 0.6}, {"map50": 0.5, "map50_95": 0.4}, None, False),  # a gated metric missing
    ],
)
def test_evaluate_gate_table(cand, prod, margins, passed):
    base = {"dataset_hash": "d", "split": "val"}
    result = evaluate_gate({**base, **cand}, {**base, **prod}, GateConfig.with_overrides(margins))
    assert result.passed is passed, result.table()
    assert ("REFUSED" in result.table()) is (not passed)


def test_evaluations_on_other_held_out_sets_are_refused_before_any_metric():
    result = evaluate_gate({"dataset_hash": "a", "split": "val", "map50": 0.9},
                           {"dataset_hash": "b", "split": "val", "map50": 0.1}, GateConfig())
    assert not result.passed and not result.checks and "not on the same held-out set" in result.reasons[0]


def test_the_gate_config_refuses_nonsense_and_a_refusal_carries_its_table():
    with pytest.raises(ValueError, match="at least one gated metric"):
        GateConfig({})
    with pytest.raises(ValueError, match="finite number"):
        GateConfig({"map50": float("nan")})
    with pytest.raises(ValueError, match="recall tolerance"):
        GateConfig(recall_tolerance=-0.1)
    base = {"dataset_hash": "d", "split": "val", "map50_95": 0.4}
    result = evaluate_gate({**base, "map50": 0.4}, {**base, "map50": 0.5}, GateConfig(),
                           candidate="m@2", production="m@1")
    refused = GateRefused(result)
    assert refused.result is result and "refused to promote m@2" in str(refused) and result.table() in str(refused)
    assert result.to_dict()["checks"][0]["metric"] == "map50" and result.to_dict()["passed"] is False
