"""Canonical JSON and sha256 of text: the one form every hash in Inspector is computed over.

Sorted keys, no spaces, UTF-8 kept (``ensure_ascii=False``): the same value always gives the same
text. numpy scalars and arrays, datetimes, sets and tuples are turned into plain JSON values, so a
record never fails over an odd context value. This is byte-for-byte the form the audit chain has
always used: changing it would break every stored hash.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any


def iso_utc(t: datetime | None = None) -> str:
    """ISO-8601 UTC with microseconds: one fixed width, so text comparison orders times."""
    t = datetime.now(timezone.utc) if t is None else t
    if t.tzinfo is None:
        raise ValueError(f"time {t!r} must be timezone-aware")
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds")


def json_default(obj: Any) -> Any:
    """Plain JSON for numpy scalars / arrays, datetimes and sets; anything else as its text."""
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, datetime):
        return iso_utc(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def canonical_json(obj: Any, *, strict: bool = False) -> str:
    """The canonical text of ``obj``. ``strict=True`` refuses NaN / infinity and values JSON cannot
    hold (ValueError / TypeError) instead of converting them: for files that must round-trip exactly."""
    if strict:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_default)


def sha256_text(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(obj: Any, *, strict: bool = False) -> str:
    """Hex sha256 of the canonical JSON of ``obj``."""
    return sha256_text(canonical_json(obj, strict=strict))
