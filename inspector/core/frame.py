"""One captured unit of work: an image plus where and when it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import numpy as np


def _readonly(a: np.ndarray) -> np.ndarray:
    # A read-only *view* freezes our handle without copying the pixels or touching the caller's array.
    v = a.view()
    v.flags.writeable = False
    return v


@dataclass(frozen=True, slots=True)
class Frame:
    """A captured image with its identity, timestamps and context.

    ``t_monotonic`` (``time.monotonic()``) orders frames and measures latency; ``t_utc`` is the wall
    clock a person or the MES reads. ``context`` carries domain keys such as ``lot``, ``wafer``,
    ``die_x``, ``die_y`` (inspection) or ``camera``, ``zone`` (monitoring).
    """

    frame_id: str
    station_id: str
    source: str
    t_monotonic: float
    t_utc: datetime
    image: np.ndarray
    context: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.image, np.ndarray):
            raise TypeError(f"frame {self.frame_id}: image must be a numpy array, got {type(self.image).__name__}")
        if self.image.ndim not in (2, 3) or (self.image.ndim == 3 and self.image.shape[2] not in (1, 3, 4)):
            raise ValueError(f"frame {self.frame_id}: image shape {self.image.shape} is not HxW or HxWxC (C in 1, 3, 4)")
        if self.t_utc.tzinfo is None:
            raise ValueError(f"frame {self.frame_id}: t_utc must be timezone-aware")
        object.__setattr__(self, "image", _readonly(self.image))
        object.__setattr__(self, "context", MappingProxyType(dict(self.context)))

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def channels(self) -> int:
        return 1 if self.image.ndim == 2 else int(self.image.shape[2])

    @staticmethod
    def utc_now() -> datetime:
        return datetime.now(timezone.utc)
