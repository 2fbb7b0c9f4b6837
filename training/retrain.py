"""Retraining from confirmed labels, as one call: the quality engineer's loop without hand-offs.

``retrain`` builds a dataset from the reviews operators confirmed in a station's store, fine-tunes
the production model (its own ``weights.pt`` when the registry keeps it, else the architecture its
record names), exports the result to ONNX, evaluates the candidate and production on the SAME
held-out split, and registers the candidate: parent = production, author, dataset hash, a model card
that keeps production's purpose and limits, and both evaluations stored so the promotion gate can
compare them.

Nothing touches the registry before that last step, so a cancel (a :class:`CancelToken`, set from a
signal handler or another thread) leaves the registry as it was. Once registering has begun the
token no longer interrupts: the version is written completely, and the cancel is reported.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.util.progress import NO_PROGRESS, Progress

# What a retrained model inherits from production's card; the rest describes this run.
CARD_KEEP = ("purpose", "limits", "failure_modes")
# The figures of an evaluation that travel in the result (the full reports stay in their folders).
SUMMARY_KEYS = ("dataset_hash", "split", "onnx_sha256", "map50", "map50_95", "precision", "recall", "f1", "ece",
                "per_class")
ARCHITECTURE_SUFFIXES = (".yaml", ".yml")


class RetrainError(Exception):
    """Retraining cannot start or finish; the message says what to fix."""


class RetrainCancelled(BaseException):
    """The run was cancelled before registering; nothing was written to the registry.

    A BaseException (like KeyboardInterrupt), so the ``except Exception`` blocks of the libraries
    it passes through (ultralytics, onnx) cannot swallow it.
    """


class CancelToken:
    """A cancel request, honoured until the run reaches its point of no return (registering)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.committed = False   # registering has begun: a cancel is noted, never acted on

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str = "cancelled") -> None:
        if self.reason is None:
            self.reason = reason

    def check(self) -> None:
        """Raise :class:`RetrainCancelled` if a cancel was requested and the run may still stop."""
        if self.reason is not None and not self.committed:
            raise RetrainCancelled(self.reason)

    def interrupt(self, reason: str) -> None:
        """For a signal handler: request a cancel and stop right here unless registering has begun.
        A second signal only notes itself (the first one's stop is already under way)."""
        first = self.reason is None
        self.request(reason)
        if first:
            self.check()

    @contextmanager
    def point_of_no_return(self) -> Iterator[None]:
        """From here on the run completes: checks pass (a last check first, so a pending cancel still wins)."""
        self.check()
        self.committed = True
        yield


@dataclass(frozen=True)
class StartingPoint:
    """What the candidate is trained from: production's own weights, else the architecture it records."""

    name: str
    version: str
    model: str                 # a .pt to fine-tune or an architecture YAML
    how: str                   # "weights" or "architecture"
    class_names: tuple[str, ...]
    imgsz: int
    card_info: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def describe(self) -> str:
        if self.how == "weights":
            return f"fine-tuned from {self.spec}'s own weights"
        return f"trained from the architecture {self.model} that {self.spec} records (its weights are not kept)"


def _architecture(record: Mapping[str, Any], manifest_extra: Mapping[str, Any]) -> str | None:
    """The model YAML production names: an explicit ``architecture`` (record, card, manifest), else the
    YAML its training started from (``train_config.model``)."""
    card = record.get("card_info") or {}
    train_cfg = record.get("train_config") or {}
    for value in (record.get("architecture"), card.get("architecture"), manifest_extra.get("architecture"),
                  train_cfg.get("model")):
        if isinstance(value, str) and value.strip().lower().endswith(ARCHITECTURE_SUFFIXES):
            return value.strip()
    return None


def starting_point(registry_root: Path | str | None, name: str) -> StartingPoint:
    """Production's version of ``name`` and what to train from; a clear error when it records neither
    its weights nor its architecture (a literal default would silently train another model)."""
    from training.registry import Registry, RegistryError

    reg = Registry(registry_root)
    try:
        info = reg.show(name)   # production: NoProductionModelError (a RegistryError) says what to do
        record = reg.record(name, info["version"])
    except RegistryError as e:
        raise RetrainError(f"cannot retrain {name!r}: {e}") from None
    folder = Path(info["path"]).parent
    weights = folder / ((info.get("weights") or {}).get("file") or "weights.pt")
    try:
        extra = json.loads(Path(info["manifest_path"]).read_text(encoding="utf-8")).get("extra") or {}
    except (OSError, ValueError):
        extra = {}
    size = info.get("imgsz") or [640]
    common = {"name": name, "version": info["version"], "class_names": tuple(info.get("classes") or ()),
              "imgsz": int(max(size) if isinstance(size, list) else size),
              "card_info": dict(record.get("card_info") or {})}
    if weights.is_file():
        return StartingPoint(model=str(weights), how="weights", **common)
    arch = _architecture(record, extra)
    if arch is not None:
        return StartingPoint(model=arch, how="architecture", **common)
    raise RetrainError(f"{name}@{info['version']} (production) records neither its weights ({weights} is missing) "
                       "nor its architecture (no 'architecture' and no model YAML in its train_config): register "
                       "it again with --weights, or record the architecture it was built from")


@dataclass
class RetrainSpec:
    """One retraining run. ``workdir`` holds the dataset, the training run, the ONNX file and both
    evaluations (kept after success or failure; removed on cancel when this run created it)."""

    db: Path
    config: Path
    workdir: Path
    name: str | None = None            # the model to retrain (default: the station config's first model)
    registry: Path | None = None
    images: Path | None = None         # the store's image folder (default: images/ beside db)
    epochs: int = 30
    imgsz: int | None = None           # default: production's input size
    batch: int = 16
    workers: int = 2
    device: str = "cpu"
    seed: int = 0
    val_fraction: float = 0.2
    user: str | None = None            # the author (default: $INSPECTOR_USER, else the login name)
    reason: str = "retrained from confirmed labels"


@dataclass
class RetrainResult:
    name: str
    version: str
    parent: str
    author: str
    sha256: str
    started_from: StartingPoint
    candidate: dict[str, Any]            # evaluation summaries on the same held-out set
    production: dict[str, Any]
    paths: dict[str, str]
    cancel_ignored: str | None = None    # a cancel that came while registering (it completed)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"candidate_spec": self.spec, "name": self.name, "version": self.version, "stage": "candidate",
                "parent": self.parent, "author": self.author, "sha256": self.sha256,
                "started_from": {"model": self.started_from.model, "how": self.started_from.how},
                "dataset_hash": self.candidate.get("dataset_hash"), "split": self.candidate.get("split"),
                "candidate": self.candidate, "production": self.production, "paths": self.paths,
                "cancel_ignored": self.cancel_ignored}


def model_name_from_config(config: Path | str) -> str:
    """The registry name of the station config's first model."""
    from inspector.config import load_config
    from inspector.runtime.registry import parse_spec

    cfg = load_config(config)
    if not cfg.models:
        raise RetrainError(f"station config {config} lists no model: name the one to retrain")
    m = cfg.models[0]
    return parse_spec(m.registry or m.name)[0]


def summary(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    return {k: evaluation[k] for k in SUMMARY_KEYS if k in evaluation}


def card_for(start: StartingPoint, spec: RetrainSpec, imgsz: int, author: str) -> dict[str, Any]:
    """The candidate's card: production's purpose, limits and failure modes, and how this one was made."""
    card = {k: start.card_info[k] for k in CARD_KEEP if start.card_info.get(k)}
    card["data"] = (f"Labels confirmed by operators' reviews in {spec.db}, exported "
                    f"{time.strftime('%Y-%m-%d %H:%M')}.")
    card["training"] = f"{start.describe()}, {spec.epochs} epoch(s) at imgsz {imgsz}."
    card["notes"] = f"Retrained from confirmed labels (inspector-train retrain) by {author}."
    return card


def _build_dataset(spec: RetrainSpec, start: StartingPoint, out: Path) -> dict[str, Any]:
    from training.from_db import export_from_db

    try:
        _export, manifest = export_from_db(spec.db, out, images_root=spec.images, names=list(start.class_names),
                                           names_from=f"production {start.spec}", val_fraction=spec.val_fraction,
                                           seed=spec.seed, copy_mode="copy", overwrite=True)
    except ValueError as e:
        raise RetrainError(f"dataset from {spec.db}: {e}") from None
    images = manifest.get("images") or {}
    for split in ("train", "val"):
        if not images.get(split):
            raise RetrainError(f"dataset from {spec.db}: the {split} split is empty ({sum(images.values())} "
                               "confirmed image(s)); whole groups (lot, wafer, camera, day) go to one split, so "
                               "confirm frames from more groups")
    return manifest


def retrain(spec: RetrainSpec, *, progress: Progress = NO_PROGRESS, cancel: CancelToken | None = None
            ) -> RetrainResult:
    """Dataset -> train -> export -> evaluate candidate and production -> register (see the module doc).

    Raises :class:`RetrainCancelled` (registry untouched; ``workdir`` removed when this call created
    it) or :class:`RetrainError` and the stage's own errors (files kept in ``workdir``)."""
    cancel = cancel or CancelToken()
    name = spec.name or model_name_from_config(spec.config)
    start = starting_point(spec.registry, name)
    created = not spec.workdir.exists()
    spec.workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _run(spec, start, progress, cancel)
    except RetrainCancelled:
        if created:
            shutil.rmtree(spec.workdir, ignore_errors=True)
        raise


def _run(spec: RetrainSpec, start: StartingPoint, progress: Progress, cancel: CancelToken) -> RetrainResult:
    from training.evaluate import evaluate_model
    from training.export import export_onnx
    from training.registry import Registry, default_user
    from training.train import TrainSpec, train

    work = spec.workdir.resolve()
    dataset = work / "dataset"
    imgsz = spec.imgsz or start.imgsz
    cancel.check()
    with progress.stage("dataset", unit="img") as s:
        manifest = _build_dataset(spec, start, dataset)
        s.update(done=sum(manifest["images"].values()), **{f"{k}_images": v for k, v in manifest["images"].items()})
    cancel.check()
    tspec = TrainSpec(data=dataset / "data.yaml", model=start.model, imgsz=imgsz, epochs=spec.epochs,
                      batch=spec.batch, seed=spec.seed, device=spec.device, workers=spec.workers,
                      project=work / "runs", name="candidate")
    trained = train(tspec, progress=progress, check_cancel=cancel.check)
    cancel.check()
    with progress.stage("export"):
        onnx = export_onnx(trained.best, work / "onnx", imgsz, name=start.name)
    cancel.check()
    # The exported ONNX file is what the registry will hold and the station will run: measure that.
    with progress.stage("evaluate candidate"):
        cand = evaluate_model(onnx, dataset, "val", config=spec.config, out_dir=work / "eval-candidate")
    cancel.check()
    with progress.stage("evaluate production"):
        prod = evaluate_model(start.spec, dataset, "val", config=spec.config, registry_root=spec.registry,
                              out_dir=work / "eval-production")

    reg = Registry(spec.registry)
    author = spec.user or default_user()
    with cancel.point_of_no_return(), progress.stage("register"):
        record = reg.register(onnx, start.name, list(start.class_names), imgsz,
                              dataset_hash=manifest.get("content_hash") or cand["dataset_hash"],
                              train_config=tspec.to_json(), parent=start.spec, metrics=cand, author=author,
                              card=card_for(start, spec, imgsz, author), weights_pt=trained.best,
                              reason=spec.reason)
        reg.add_eval(start.name, record["version"], cand, user=author)
        reg.add_eval(start.name, start.version, prod, user=author)   # production, on the same held-out set
    paths = {"workdir": str(work), "dataset": str(dataset), "run": str(trained.run_dir), "best": str(trained.best),
             "onnx": str(onnx), "candidate_eval": str(work / "eval-candidate" / "report.json"),
             "production_eval": str(work / "eval-production" / "report.json"),
             "registry_version": str(reg.root / start.name / record["version"])}
    return RetrainResult(start.name, record["version"], start.spec, record["author"], record["sha256"], start,
                         summary(cand), summary(prod), paths, cancel_ignored=cancel.reason)


__all__ = ["CancelToken", "RetrainCancelled", "RetrainError", "RetrainResult", "RetrainSpec", "StartingPoint",
           "card_for", "model_name_from_config", "retrain", "starting_point", "summary"]
