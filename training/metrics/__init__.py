"""Detection metrics: mAP, operating-point P/R/F1, confusion, calibration (numpy only; nothing is
delegated to ultralytics). Shared by evaluation (``training.evaluate``) and the INT8 gate
(``training.export``). Matching and AP in ``matching.py``, the report in ``report.py``.

Definitions:

* Matching (mAP, P/R/F1, ECE): per image, predictions in descending score order; each takes the
  not-yet-claimed truth *of its own class* with the highest IoU, and is a true positive at IoU
  threshold t when that IoU >= t. Claims are tracked per threshold, as COCO and ultralytics do.
* AP: per class and IoU threshold, precision = cumTP / (cumTP + cumFP) and recall = cumTP / n_truths
  over the predictions sorted by score (all images pooled). The precision *envelope* (running max from
  the high-recall end, with sentinels (0, 1) and (r_max, 0), (1, 0)) is sampled at the 101 recall points
  0, 0.01, ..., 1 by **linear interpolation** and integrated with the **trapezoidal rule**
  (``interpolation="interp101"``, the default). This is what ultralytics' ``compute_ap`` does, so on
  the same predictions our AP equals its own (pinned by a test against ``ap_per_class``: identical).
  One consequence is kept for comparability with training logs: at recall 1 ``np.interp`` reads the
  (1, 0) sentinel, so a perfect class scores 0.995, not 1. ``interpolation="coco101"`` gives
  pycocotools' rule instead (perfect = 1): the envelope read at the first point whose recall reaches
  each of the 101 recall points (0 beyond the last recall), averaged. The two differ by a fraction of
  a point on real curves.
  ``yolo val`` scores somewhat different *predictions* than ``predict`` and the station do: its NMS is
  multi-label (one box may count for several classes) and its rect batches pad a 320 px image to 352.
  With both turned off it agrees with ``training.evaluate.evaluate_model`` within 0.05 mAP50 / 0.5 mAP50-95 points.
* mAP: mean over the classes that have at least one truth in the split (classes that never occur
  are left out, as in COCO and ultralytics); ``map50_95`` averages the IoU thresholds 0.50:0.05:0.95;
  ``map33`` is mAP at IoU 0.33 (DeepPCB's official protocol).
* Operating point: a prediction counts when its score >= the class's operating threshold (the station's
  ``class_threshold`` rule, or ``--thresholds``); TP/FP/FN at IoU 0.5 with the same-class matching above.
  Because matching is greedy by score within a class, the matches of the kept predictions are exactly
  those of the full run. Overall precision / recall / F1 are *micro* averages (pooled counts: what the
  line sees); ``precision_macro`` etc. are the class means. Undefined ratios (no predictions and no
  truths) are NaN, written as ``null`` in JSON; a class with truths and no predictions has precision 0.
* Confusion matrix: predictions above the operating thresholds, IoU 0.5, *class-agnostic* greedy
  matching by score (so a box of the wrong class shows up as a confusion rather than FP + FN).
  Rows are the true class, columns the predicted class; the last row / column is "background"
  (row background = false positives, column background = missed truths).
* ECE: all predictions with score >= ``ece_min_score``, 15 equal-width confidence bins on [0, 1];
  a prediction is correct when it matched a same-class truth at IoU 0.5;
  ECE = sum_b n_b / N * |accuracy_b - mean confidence_b|.
"""

from training.metrics.matching import COCO_IOU_THRESHOLDS, RECALL_POINTS, agnostic_match, ap_from_tp, greedy_match
from training.metrics.report import ECE_BINS, EvalReport, evaluate_detections, resolve_thresholds

__all__ = ["COCO_IOU_THRESHOLDS", "RECALL_POINTS", "ECE_BINS", "EvalReport", "evaluate_detections",
           "resolve_thresholds", "greedy_match", "agnostic_match", "ap_from_tp"]
