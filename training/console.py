"""Keeping stdout for the result (``--json``): ultralytics' console output goes to stderr, and
results become plain JSON values (NaN and infinity as null)."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Route ultralytics' console logger and stray prints to stderr (``--json`` owns stdout)."""
    import contextlib

    handlers: list[tuple[logging.StreamHandler, Any]] = []
    if "ultralytics" in sys.modules:
        for h in logging.getLogger("ultralytics").handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.__stdout__):
                handlers.append((h, h.stream))
                h.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for h, stream in handlers:
            h.setStream(stream)



def json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj

