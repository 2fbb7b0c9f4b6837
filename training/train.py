"""Training: a thin, offline, reproducible wrapper over ultralytics' trainer."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

from inspector.util.progress import NO_PROGRESS, Progress, Stage
from training import ultralytics_env  # noqa: F401  (offline settings before ultralytics loads)


class TrainError(Exception):
    """A training run could not start or finish; the message says what to fix."""


@dataclass
class TrainSpec:
    """Everything that determines a training run (saved as train_spec.json in the run folder)."""

    data: Path
    model: str = "yolo11n.yaml"          # a YAML (from scratch) or a .pt checkpoint (fine-tune)
    imgsz: int = 640
    epochs: int = 50
    batch: int = 16
    seed: int = 0
    device: str = "cpu"                  # "cpu", "0", "0,1", ...
    patience: int = 15                   # early stopping: epochs without val improvement
    workers: int = 2
    project: Path = Path("runs")
    name: str = "train"
    cache: bool = True                   # keep decoded images in RAM: epochs are I/O-bound otherwise
    threads: int | None = None           # CPU threads for torch; None = every core
    extra: dict[str, Any] = field(default_factory=dict)  # any other ultralytics train argument

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"], d["project"] = str(self.data), str(self.project)
        return d


@dataclass
class TrainResult:
    run_dir: Path
    best: Path
    last: Path
    seconds: float
    metrics: dict[str, float]


# Arguments TrainSpec sets itself, or that would break the offline / reproducible contract.
_RESERVED = {"data", "imgsz", "epochs", "batch", "seed", "device", "patience", "workers", "project", "name",
             "cache", "model", "resume", "exist_ok", "amp", "pretrained"}


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["flipud=0.5", "cos_lr=true"]`` -> ``{"flipud": 0.5, "cos_lr": True}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TrainError(f"{item!r}: expected KEY=VALUE, e.g. flipud=0.5")
        if key in _RESERVED:
            raise TrainError(f"{key!r} has its own option or is fixed by Inspector; it cannot be set with KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def _check(spec: TrainSpec) -> None:
    if not spec.data.is_file():
        raise TrainError(f"dataset file {spec.data} does not exist (expected a YOLO data.yaml)")
    if not (spec.model.endswith((".yaml", ".yml", ".pt"))):
        raise TrainError(f"model {spec.model!r}: give a model YAML such as yolo11n.yaml (from scratch) or a .pt "
                         "checkpoint to fine-tune; names of hub weights are refused (nothing is downloaded)")
    if spec.model.endswith(".pt") and not Path(spec.model).is_file():
        raise TrainError(f"checkpoint {spec.model} does not exist (a .pt name is never fetched from a hub)")
    if spec.imgsz % 32:
        raise TrainError(f"imgsz {spec.imgsz} must be a multiple of 32")


def train(spec: TrainSpec, resume: bool = False, *, progress: Progress = NO_PROGRESS,
          check_cancel: Callable[[], None] | None = None) -> TrainResult:
    """Train (or resume) a detector; returns the run folder and its best / last checkpoints.

    ``progress`` gets a ``train`` stage counted in epochs, with each epoch's validation metrics
    (map50, map50_95, precision, recall) and training box loss. ``check_cancel`` is called after
    every batch; it raises to stop the run (a cancel then lands within one batch, not one epoch).
    """
    from ultralytics import YOLO

    run_dir = (spec.project / spec.name).resolve()
    last = run_dir / "weights" / "last.pt"
    t0 = time.monotonic()
    with progress.stage("train", total=spec.epochs, unit="epoch") as stage:
        if resume:
            if not last.is_file():
                raise TrainError(f"cannot resume: {last} does not exist")
            model = YOLO(str(last))
            _add_callbacks(model, spec.threads, stage, check_cancel)
            model.train(resume=True)
        else:
            _check(spec)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "train_spec.json").write_text(json.dumps(spec.to_json(), indent=2) + "\n")
            model = YOLO(spec.model)
            _add_callbacks(model, spec.threads, stage, check_cancel)
            gpu = spec.device != "cpu"
            model.train(
                data=str(spec.data.resolve()), imgsz=spec.imgsz, epochs=spec.epochs, batch=spec.batch,
                seed=spec.seed, deterministic=True, device=spec.device, patience=spec.patience,
                workers=spec.workers, project=str(spec.project.resolve()), name=spec.name, exist_ok=True,
                cache="ram" if spec.cache else False,
                amp=False if gpu else True,  # AMP's self-check would fetch weights; CPU ignores it anyway
                plots=True, verbose=True, **spec.extra,
            )
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise TrainError(f"training finished without {best}; see the log in {run_dir}")
    return TrainResult(run_dir, best, last, time.monotonic() - t0, _final_metrics(run_dir))


# ultralytics' names of the validation figures reported after each epoch -> ours.
_EPOCH_METRICS = {"metrics/mAP50(B)": "map50", "metrics/mAP50-95(B)": "map50_95",
                  "metrics/precision(B)": "precision", "metrics/recall(B)": "recall"}


def epoch_report(trainer: Any) -> dict[str, Any]:
    """``done`` / ``total`` epochs and the metrics of the epoch a trainer just finished."""
    metrics = trainer.metrics or {}
    out: dict[str, Any] = {ours: float(metrics[k]) for k, ours in _EPOCH_METRICS.items() if k in metrics}
    try:
        losses = trainer.label_loss_items(trainer.tloss, prefix="train")
        out["box_loss"] = float(losses["train/box_loss"])
    except (AttributeError, KeyError, TypeError, ValueError):
        pass  # no loss yet, or a trainer that names its losses otherwise
    return {"done": int(trainer.epoch) + 1, "total": int(trainer.epochs), **out}


class _EpochReporter:
    """Reports each epoch to a progress stage. ultralytics fires ``on_fit_epoch_end`` after every epoch
    and once more for best.pt's final validation (its epoch counter one past the last trained epoch):
    that call reports ``best_map50`` / ``best_map50_95``, not another epoch."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.trained = -1   # the epoch whose training pass ended last

    def epoch_trained(self, trainer: Any) -> None:
        self.trained = int(trainer.epoch)

    def validated(self, trainer: Any) -> None:
        report = epoch_report(trainer)
        if int(trainer.epoch) == self.trained:
            self.stage.update(**report)
        else:
            self.stage.update(**{f"best_{k}": report[k] for k in ("map50", "map50_95") if k in report})


def _add_callbacks(model: Any, threads: int | None, stage: Stage, check_cancel: Callable[[], None] | None) -> None:
    _use_all_cores(model, threads)
    reporter = _EpochReporter(stage)
    model.add_callback("on_train_epoch_end", reporter.epoch_trained)
    model.add_callback("on_fit_epoch_end", reporter.validated)
    if check_cancel is not None:
        model.add_callback("on_train_batch_end", lambda trainer: check_cancel())


def _use_all_cores(model: Any, threads: int | None) -> None:
    """ultralytics caps torch at (cores - 1) threads for CPU training: half the machine on 2 cores.
    Reset it once the trainer has picked its device (measured: about 1.8x faster epochs on 2 cores)."""
    import os

    import torch

    n = threads or os.cpu_count() or 1
    model.add_callback("on_pretrain_routine_start", lambda trainer: torch.set_num_threads(n))


def _final_metrics(run_dir: Path) -> dict[str, float]:
    """Best-epoch validation metrics from ultralytics' results.csv (by mAP50-95, as it picks best.pt)."""
    import csv

    path = run_dir / "results.csv"
    if not path.is_file():
        return {}
    with path.open() as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    if not rows:
        return {}
    key = "metrics/mAP50-95(B)"
    best = max(rows, key=lambda r: float(r.get(key, 0) or 0))
    return {
        "epoch": float(best.get("epoch", 0)),
        "map50": float(best.get("metrics/mAP50(B)", 0)),
        "map50_95": float(best.get(key, 0)),
        "precision": float(best.get("metrics/precision(B)", 0)),
        "recall": float(best.get("metrics/recall(B)", 0)),
    }
