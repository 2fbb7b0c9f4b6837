"""Evaluation of a detector on a YOLO dataset split: mAP, operating-point P/R/F1, confusion, calibration.

``evaluate_model`` (``run.py``) runs a model given as a checkpoint, an ONNX file or a registry name
(``models.py``) on a split read through :mod:`training.yolo`, at operating thresholds from
``--thresholds`` or a station config (``thresholds.py``), and scores it with :mod:`training.metrics`
(the metric definitions live there). ``plots.py`` draws the figures, ``table.py`` prints the summary.
"""

from training.evaluate.models import ModelSource, resolve_model
from training.evaluate.plots import save_plots
from training.evaluate.run import MAX_ONNX_DELTA_POINTS, default_out_dir, evaluate_model
from training.evaluate.table import format_table
from training.evaluate.thresholds import EvalError, parse_threshold_args, thresholds_from_config
from training.metrics import (COCO_IOU_THRESHOLDS, ECE_BINS, RECALL_POINTS, EvalReport, evaluate_detections,
                              resolve_thresholds)
from training.yolo import DatasetError, YoloSplit, dataset_hash, read_yolo_split, yolo_split

__all__ = [
    "evaluate_model", "default_out_dir", "MAX_ONNX_DELTA_POINTS", "ModelSource", "resolve_model", "EvalError",
    "parse_threshold_args", "thresholds_from_config", "save_plots", "format_table",
    # the metrics and the dataset reader, importable from here as before
    "COCO_IOU_THRESHOLDS", "RECALL_POINTS", "ECE_BINS", "EvalReport", "evaluate_detections", "resolve_thresholds",
    "DatasetError", "YoloSplit", "yolo_split", "read_yolo_split", "dataset_hash",
]
