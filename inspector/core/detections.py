"""The one columnar detection type every stage takes and returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.core.geometry import box_area, box_iou

_MAX_MODELS = 32  # ``support`` is a uint32 bitmask: bit i set means model i backed the box.


def _col(a: Any, dtype: Any, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=dtype)
    if arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    if arr.shape[1:] != shape_tail:
        raise ValueError(f"Detections.{name}: expected shape (N, {', '.join(map(str, shape_tail))}) got {arr.shape}"
                         if shape_tail else f"Detections.{name}: expected shape (N,) got {arr.shape}")
    v = arr.view()
    v.flags.writeable = False
    return v


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Boxes in absolute pixel ``xyxy`` of the frame, with score, class id and provenance.

    ``model_index`` is the ensemble member that produced a raw box (-1 for fused boxes);
    ``support`` is a bitmask of the members that backed each box (fusion ORs them together).
    Arrays are read-only views: build a new ``Detections`` instead of mutating one.
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    model_index: np.ndarray
    support: np.ndarray

    def __init__(
        self,
        xyxy: Any,
        score: Any,
        class_id: Any,
        model_index: Any = None,
        support: Any = None,
    ) -> None:
        xy = _col(xyxy, np.float32, (4,), "xyxy")
        n = len(xy)
        sc = _col(score, np.float32, (), "score")
        cl = _col(class_id, np.int32, (), "class_id")
        mi = _col(np.zeros(n, np.int32) if model_index is None else np.broadcast_to(model_index, (n,)), np.int32, (), "model_index")
        if support is None:
            if np.any(mi >= _MAX_MODELS):
                raise ValueError(f"Detections: at most {_MAX_MODELS} models per ensemble")
            support = np.where(mi >= 0, np.left_shift(np.uint32(1), np.clip(mi, 0, None).astype(np.uint32)), 0)
        su = _col(support, np.uint32, (), "support")
        for name, col in (("score", sc), ("class_id", cl), ("model_index", mi), ("support", su)):
            if len(col) != n:
                raise ValueError(f"Detections.{name}: length {len(col)} does not match {n} boxes")
        object.__setattr__(self, "xyxy", xy)
        object.__setattr__(self, "score", sc)
        object.__setattr__(self, "class_id", cl)
        object.__setattr__(self, "model_index", mi)
        object.__setattr__(self, "support", su)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    @classmethod
    def concat(cls, items: Sequence[Detections]) -> Detections:
        items = [d for d in items if len(d)]
        if not items:
            return cls.empty()
        if len(items) == 1:
            return items[0]
        return cls(
            np.concatenate([d.xyxy for d in items]),
            np.concatenate([d.score for d in items]),
            np.concatenate([d.class_id for d in items]),
            np.concatenate([d.model_index for d in items]),
            np.concatenate([d.support for d in items]),
        )

    # --- selection ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def _trusted(cls, xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, model_index: np.ndarray,
                 support: np.ndarray) -> Detections:
        """Wrap columns already of the right dtypes and shapes (selections of a valid instance).

        Skips ``__init__``'s checks: selection sits on the per-frame path (every filtering rule
        makes one), where re-validating five columns cost more than the selection itself.
        """
        self = object.__new__(cls)
        for name, col in (("xyxy", xyxy), ("score", score), ("class_id", class_id),
                          ("model_index", model_index), ("support", support)):
            col.flags.writeable = False
            object.__setattr__(self, name, col)
        return self

    def __getitem__(self, index: Any) -> Detections:
        """Select by boolean mask, integer array or slice; always returns ``Detections``."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if index != -1 else None)
        if isinstance(index, slice):
            return Detections._trusted(self.xyxy[index], self.score[index], self.class_id[index],
                                       self.model_index[index], self.support[index])
        index = np.asarray(index)
        if index.size == 0 and index.dtype.kind == "f":
            index = index.astype(np.intp)  # an empty list selects nothing
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"Detections: boolean mask of shape {index.shape} for {len(self)} boxes")
            index = index.nonzero()[0]  # one scan of the mask, then five cheap takes
        elif index.dtype.kind not in "iu":
            raise IndexError(f"Detections: index must be a boolean mask, integers or a slice, got {index.dtype}")
        return Detections._trusted(self.xyxy.take(index, 0), self.score.take(index), self.class_id.take(index),
                                   self.model_index.take(index), self.support.take(index))

    def filter(self, mask: np.ndarray) -> Detections:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self),):
            raise ValueError(f"Detections.filter: mask shape {mask.shape} does not match {len(self)} boxes")
        return self[mask]

    def above(self, threshold: float) -> Detections:
        return self[self.score >= threshold]

    def of_class(self, *class_ids: int) -> Detections:
        return self[np.isin(self.class_id, class_ids)]

    def sorted_by_score(self) -> Detections:
        return self[np.argsort(-self.score, kind="stable")]

    def with_model_index(self, index: int) -> Detections:
        """The same boxes attributed to ensemble member ``index``."""
        return Detections(self.xyxy, self.score, self.class_id, np.full(len(self), index, np.int32))

    # --- geometry -----------------------------------------------------------------------------
    @property
    def area(self) -> np.ndarray:
        return box_area(self.xyxy)

    @property
    def width(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def center(self) -> np.ndarray:
        return (self.xyxy[:, :2] + self.xyxy[:, 2:]) * 0.5

    def iou(self, other: Detections) -> np.ndarray:
        """Pairwise IoU matrix (len(self), len(other))."""
        return box_iou(self.xyxy, other.xyxy)

    def support_count(self) -> np.ndarray:
        """How many ensemble members backed each box (popcount of ``support``)."""
        s = self.support.astype(np.uint32)
        count = np.zeros(len(s), dtype=np.int32)
        for _ in range(_MAX_MODELS):
            if not s.any():
                break
            count += (s & 1).astype(np.int32)
            s = s >> 1
        return count

    # --- plain data ---------------------------------------------------------------------------
    def to_records(self, class_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One plain dict per box (for JSON, the store and the MES)."""
        out = []
        for i in range(len(self)):
            rec: dict[str, Any] = {
                "xyxy": [round(float(v), 2) for v in self.xyxy[i]],
                "score": round(float(self.score[i]), 5),
                "class_id": int(self.class_id[i]),
                "model_index": int(self.model_index[i]),
                "support": int(self.support[i]),
            }
            if class_names is not None and 0 <= rec["class_id"] < len(class_names):
                rec["class_name"] = class_names[rec["class_id"]]
            out.append(rec)
        return out

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]]) -> Detections:
        if not records:
            return cls.empty()
        return cls(
            [r["xyxy"] for r in records],
            [r["score"] for r in records],
            [r["class_id"] for r in records],
            [r.get("model_index", 0) for r in records],
            [r.get("support", 1 << max(r.get("model_index", 0), 0)) for r in records],
        )

    def __repr__(self) -> str:
        return f"Detections(n={len(self)}, classes={sorted(set(self.class_id.tolist()))})"
