"""Metrics normalisation and the Markdown model card."""

from __future__ import annotations

import pytest

from inspector.runtime.registry import RegistryError
from training.registry.card import ModelCardInfo, normalise_metrics, render_card

EVAL = {"dataset_hash": "ds1", "split": "val", "map50": 0.5, "map50_95": 0.2, "precision": 0.8, "recall": 0.75,
        "f1": 0.77, "ece": 0.05, "per_class": {"scratch": {"ap50": 0.5, "recall": 0.8, "precision": 0.8}}}


def test_metrics_from_an_evaluation_keep_headline_figures_not_settings():
    m = normalise_metrics({**EVAL, "conf": 0.001, "imgsz": [32, 32], "map33": None})
    assert set(m["overall"]) == {"map50", "map50_95", "precision", "recall", "f1", "ece", "map33"}
    assert m["source"] == {"dataset_hash": "ds1", "split": "val"} and m["per_class"]["scratch"]["recall"] == 0.8
    assert normalise_metrics({"overall": {"map50": 0.4}, "per_class": {}})["overall"] == {"map50": 0.4}
    assert normalise_metrics({"custom": 0.3}) == {"overall": {"custom": 0.3}, "per_class": {}}
    assert normalise_metrics(None) == {"overall": {}, "per_class": {}}


def test_card_info_takes_the_known_fields_only():
    info = ModelCardInfo.from_dict({"purpose": "p", "known_failure_modes": "glare", "limits": ""})
    assert info.to_dict()["failure_modes"] == ["glare"] and info.to_dict()["limits"] == []
    with pytest.raises(RegistryError, match="unknown field"):
        ModelCardInfo.from_dict({"colour": "red"})


def test_the_card_has_every_section_and_escapes_table_cells():
    record = {"name": "wafer", "version": "2", "class_names": ["scratch"], "imgsz": [32, 32], "sha256": "ab" * 32,
              "dataset_hash": "ds1", "created": "2026-01-01T00:00:00+00:00", "author": "ann", "parent": "wafer@1",
              "train_config": {"note": "a|b"}, "metrics": normalise_metrics(EVAL),
              "card_info": {"purpose": "find defects", "failure_modes": ["glare"]}}
    card = render_card(record)
    for section in ("## Purpose", "## Data", "## Training", "## Metrics", "## Limits", "## Known failure modes",
                    "## Provenance"):
        assert section in card
    assert "| note | a\\|b |" in card and "| map50 | 0.5000 |" in card and "- glare" in card
    assert "split `val`" in card and "Parent model: wafer@1" in card
