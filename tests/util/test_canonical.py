import json
from datetime import datetime, timezone

import numpy as np
import pytest

from inspector.util.canonical import canonical_json, iso_utc, sha256_json, sha256_text


def test_sorted_compact_utf8():
    assert canonical_json({"b": 1, "a": ["é", 1.5]}) == '{"a":["é",1.5],"b":1}'


def test_same_value_same_text_whatever_the_key_order():
    assert canonical_json({"x": 1, "y": {"b": 2, "a": 1}}) == canonical_json({"y": {"a": 1, "b": 2}, "x": 1})


def test_numpy_and_datetimes_become_plain_json():
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    text = canonical_json({"i": np.int64(3), "f": np.float32(0.5), "a": np.arange(3), "t": t, "s": {2}})
    assert json.loads(text) == {"i": 3, "f": 0.5, "a": [0, 1, 2], "t": "2026-01-02T03:04:05.000000+00:00", "s": [2]}


def test_strict_refuses_nan_and_odd_types():
    assert canonical_json(float("nan")) == "NaN"  # the audit's historic form, kept
    with pytest.raises(ValueError):
        canonical_json(float("nan"), strict=True)
    with pytest.raises(TypeError):
        canonical_json({"a": object()}, strict=True)


def test_hashes():
    assert sha256_text("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_json({"a": 1}) == sha256_text('{"a":1}')


def test_iso_utc_needs_a_timezone():
    with pytest.raises(ValueError):
        iso_utc(datetime(2026, 1, 1))
    assert iso_utc(datetime(2026, 1, 1, tzinfo=timezone.utc)).endswith("+00:00")
