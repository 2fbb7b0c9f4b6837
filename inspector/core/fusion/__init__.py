"""Ensemble fusion: weighted boxes fusion (WBF), NMS across models and k-of-n consensus voting.

Pure numpy. Results match the reference implementation ``ensemble-boxes`` 1.0.9
(``weighted_boxes_fusion`` and ``nms``) on valid boxes, down to its floating-point details: the
float32 rounding of merged boxes, the order in which tied scores are visited, and the order of the
output. The algorithms are reorganised to be fast:

* WBF is greedy and sequential *within* a class: boxes are visited by descending weighted score and
  each joins the existing cluster whose current fused box overlaps it most (IoU > ``iou_thr``), or
  opens a new cluster. A fused box is a weighted mean of its members, so it lies inside their
  bounding hull. Each class is therefore split into *independent groups* (connected components of
  overlapping boxes, merged until their hulls do not overlap, see ``independent_groups``): no box
  can reach a cluster of another group. All groups are clustered at once, in lock-step (step ``s``
  visits the ``s``-th box of every group still active), with running sums per cluster instead of
  recomputing a fused box from its member list. The number of numpy steps is the size of the
  largest group (a handful in a realistic scene), not the number of boxes; the last few boxes of
  a few long groups are visited in Python with the same arithmetic.
* NMS is class-aware greedy NMS on the sparse graph of same-class pairs with IoU > ``iou_thr``,
  resolved by a vectorised fixed-point iteration (a box is kept when every better-scored neighbour
  is suppressed, suppressed as soon as one of them is kept).
* Voting is WBF, keeping the fused boxes that at least ``k`` distinct models contributed to.

Ensemble member ``t`` is the position of its ``Detections`` in ``per_model``; bit ``t`` of
``support`` says that member backed a fused box (the input ``model_index`` / ``support`` columns are
not read). Differences from ``ensemble-boxes``, which expects boxes normalised to [0, 1]:

* boxes are absolute pixels and are not clipped to [0, 1]; reversed corners are swapped (as there),
  boxes of zero area are dropped (as there), and so are boxes with a non-finite coordinate or score;
* invalid parameters raise ``ValueError`` (the reference prints a warning and falls back, or exits);
  weights must be > 0, ``iou_thr`` in [0, 1], ``skip_box_thr`` >= 0;
* a WBF cluster whose members all score 0 keeps its first box (the reference divides by zero);
* NMS ties between equal scores are broken by input order (model, then box), where the
  reference's numba quicksort breaks them arbitrarily; NMS output is sorted by score (the
  reference lists it class by class) and kept boxes keep their ``model_index``.

The package: ``checks`` (parameter checks), ``pool`` (the pooled boxes and their independent
groups), ``wbf`` and ``nms`` (the two algorithms); the public functions are here.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from inspector.core.detections import Detections
from inspector.core.fusion.checks import (
    CONF_TYPES,
    MAX_MODELS,
    check_bool,
    check_conf_type,
    check_fraction,
    check_models,
    check_skip,
    check_weights,
)
from inspector.core.fusion.nms import nms_core
from inspector.core.fusion.pool import Pool
from inspector.core.fusion.wbf import wbf_core

__all__ = [
    "CONF_TYPES",
    "MAX_MODELS",
    "METHODS",
    "consensus_vote",
    "fuse",
    "nms_fusion",
    "weighted_boxes_fusion",
]

METHODS = ("wbf", "nms", "vote")


def weighted_boxes_fusion(
    per_model: Sequence[Detections],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_box_thr: float = 0.0,
    conf_type: str = "avg",
    allows_overflow: bool = False,
) -> Detections:
    """Weighted boxes fusion of one ``Detections`` per model (same results as ``ensemble_boxes``).

    Boxes scoring below ``skip_box_thr`` are ignored; each remaining box (visited per class by
    descending ``score * weight``) joins the fused box it overlaps most with IoU > ``iou_thr``, or
    starts a new one. A fused box is the score-weighted mean of its members; its score follows
    ``conf_type`` and is rescaled by the number of boxes and models as the reference does.
    Output: sorted by score, ``model_index`` -1, ``support`` = OR of the members' model bits.
    """
    fn = "weighted_boxes_fusion"
    models = check_models(per_model, fn)
    w = check_weights(weights, len(models), fn)
    iou_thr = check_fraction(iou_thr, "iou_thr", fn)
    skip_box_thr = check_skip(skip_box_thr, fn)
    conf_type = check_conf_type(conf_type, fn)
    allows_overflow = check_bool(allows_overflow, "allows_overflow", fn)
    pool = Pool(models, skip_box_thr)
    if len(pool.score) == 0:
        return Detections.empty()
    if w is None:
        w = np.ones(len(models))
    return wbf_core(pool, w, iou_thr, conf_type, allows_overflow)


def nms_fusion(
    per_model: Sequence[Detections],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.5,
    skip_box_thr: float = 0.0,
) -> Detections:
    """Class-aware greedy NMS over all models' boxes (same results as ``ensemble_boxes.nms``).

    With ``weights``, scores become ``score * weight / sum(weights)`` (as the reference does; note
    that weights of all ones therefore divide scores by the number of models, while ``None`` keeps
    them). Kept boxes keep their ``model_index``; ``support`` ORs the model bits of the boxes each
    kept box suppressed (same class, IoU > ``iou_thr``) with its own. Sorted by score.
    """
    fn = "nms_fusion"
    models = check_models(per_model, fn)
    w = check_weights(weights, len(models), fn)
    iou_thr = check_fraction(iou_thr, "iou_thr", fn)
    skip_box_thr = check_skip(skip_box_thr, fn)
    pool = Pool(models, skip_box_thr)
    if len(pool.score) == 0:
        return Detections.empty()
    return nms_core(pool, w, iou_thr)


def consensus_vote(
    per_model: Sequence[Detections],
    k: int,
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_box_thr: float = 0.0,
    conf_type: str = "avg",
    allows_overflow: bool = False,
) -> Detections:
    """k-of-n voting: the WBF boxes that at least ``k`` distinct models contributed to."""
    fn = "consensus_vote"
    models = check_models(per_model, fn)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= max(len(models), 1):
        raise ValueError(f"consensus_vote: k must be an integer in [1, number of models = {len(models)}], got {k!r}")
    fused = weighted_boxes_fusion(models, weights, iou_thr, skip_box_thr, conf_type, allows_overflow)
    return fused[np.bitwise_count(fused.support) >= int(k)]


_PARAMS = {
    "wbf": ("weights", "iou_thr", "skip_box_thr", "conf_type", "allows_overflow"),
    "nms": ("weights", "iou_thr", "skip_box_thr"),
    "vote": ("k", "weights", "iou_thr", "skip_box_thr", "conf_type", "allows_overflow"),
}


def fuse(per_model: Sequence[Detections], method: str, **params: object) -> Detections:
    """Fuse with ``method`` "wbf" (weighted_boxes_fusion), "nms" (nms_fusion) or "vote" (consensus_vote).

    ``params`` are that function's keyword arguments; an unknown method or parameter raises
    ``ValueError`` naming it.
    """
    if not isinstance(method, str) or method not in _PARAMS:
        raise ValueError(f"fuse: unknown method {method!r}; expected one of {', '.join(map(repr, METHODS))}")
    allowed = _PARAMS[method]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"fuse: unknown parameter(s) {', '.join(map(repr, unknown))} for method {method!r}; "
                         f"allowed: {', '.join(allowed)}")
    if method == "wbf":
        return weighted_boxes_fusion(per_model, **params)  # type: ignore[arg-type]
    if method == "nms":
        return nms_fusion(per_model, **params)  # type: ignore[arg-type]
    if "k" not in params:
        raise ValueError("fuse: method 'vote' needs parameter 'k' (minimum number of agreeing models)")
    return consensus_vote(per_model, **params)  # type: ignore[arg-type]
