"""The model registry, write side: register versions, gate promotions, roll back, keep a tamper-evident log.

Layout and index format: see ``inspector.runtime.registry`` (the station's read side). Each version
folder ``<root>/<name>/<version>/`` holds ``model.onnx``, its runtime manifest ``model.manifest.json``,
the full record ``registry.json``, the model card ``card.md``, optionally ``weights.pt`` (training
only: the station never reads it) and ``evals/`` (evaluations stored with ``add_eval``).

Stages: ``candidate`` -> (``shadow``) -> ``production`` -> ``archived``. Exactly one version of a
model is in production at a time, and only ``promote`` puts a version there, through the gate:

* both evaluations must be on the same held-out set (same ``dataset_hash`` and ``split``);
* every gated metric must reach production + margin (defaults: ``map50`` and ``map50_95`` with
  margin 0.0, i.e. not worse); lower-is-better metrics (``ece``) must reach production - margin;
* at least one gated metric must be strictly better than production (equal is not "beats");
* no class's recall may drop more than ``recall_tolerance`` (default 0.02) below production's.

An evaluation that names the ONNX file it measured (``onnx_sha256``, written by
``training.evaluate``) must name the version's own file, so a mixed-up evaluation file is refused.

The first promotion of a model (nothing in production) passes the gate trivially, and is recorded.
A promotion archives the previous production version; ``rollback`` walks the production history
back one step (current -> archived, previous -> production), and again on the next call.

Every change (register, eval, stage, promote, promote_refused, rollback) is appended to
``events.jsonl`` with who, when, from / to stage, reason and the gate result, fsync'd, and
hash-chained: each line carries ``prev`` (sha256 of the previous line) and ``hash`` (sha256 of its
own canonical content, ``prev`` included). ``verify_events`` names the first line that was edited,
removed or inserted; the index keeps the last line's hash, so cutting lines off the end shows too.

Writers serialise through an exclusive lock on ``<root>/.lock`` (read-modify-write of the index);
index and records are replaced atomically (temp file + ``os.replace``), so readers never lock.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.runtime.model_artifact import (
    ModelArtifactError,
    ModelIntegrityError,
    load_manifest,
    sha256_file,
    verify_sha256,
    write_manifest,
)
from inspector.runtime.registry import (
    ARCHIVED,
    CANDIDATE,
    CARD_FILE,
    EVENTS_FILE,
    INDEX_FILE,
    INDEX_SCHEMA,
    MANIFEST_FILE,
    NAME_RE,
    ONNX_FILE,
    PRODUCTION,
    RECORD_FILE,
    SHADOW,
    STAGES,
    WEIGHTS_FILE,
    NoProductionModelError,
    RegistryError,
    RegistryIntegrityError,
    RegistryReader,
    UnknownModelError,
    default_registry_root,
    describe_versions,
    parse_spec,
    read_index,
    version_sort_key,
)

__all__ = [
    "DEFAULT_MARGINS", "GENESIS", "LOWER_IS_BETTER", "EventsCheck", "GateCheck", "GateConfig", "GateRefused",
    "GateResult", "ModelCardInfo", "NoProductionModelError", "Registry", "RegistryError",
    "RegistryIntegrityError", "RollbackResult", "UnknownModelError", "VerifyReport", "default_registry_root",
    "default_user", "evaluate_gate", "normalise_metrics", "render_card", "split_versioned_spec",
    "verify_events",
]

RECORD_SCHEMA = 1
LOCK_FILE = ".lock"
EVALS_DIR = "evals"
GENESIS = "0" * 64
DEFAULT_MARGINS: dict[str, float] = {"map50": 0.0, "map50_95": 0.0}
DEFAULT_RECALL_TOLERANCE = 0.02
LOWER_IS_BETTER = frozenset({"ece"})
OVERALL_METRICS = ("map50", "map50_95", "map33", "precision", "recall", "f1", "ece", "precision_macro",
                   "recall_macro", "f1_macro")
CARD_CLASS_COLUMNS = ("ap50", "ap50_95", "precision", "recall", "f1", "support")
EPS = 1e-9  # float noise: 0.1 + 0.2 still "equals" 0.3


# --- who and when -----------------------------------------------------------------------------
def default_user() -> str:
    """``$INSPECTOR_USER``, else the OS login name."""
    env = os.environ.get("INSPECTOR_USER", "").strip()
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): still record something honest
        return "unknown"


def _now(timespec: str = "seconds") -> str:
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


def _check_user(user: str | None) -> str:
    u = (user if user is not None else default_user()).strip()
    if not u:
        raise RegistryError("a user name is required for the record (--user or $INSPECTOR_USER)")
    return u


# --- files --------------------------------------------------------------------------------------
def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: Any) -> None:
    _write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryIntegrityError(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RegistryIntegrityError(f"{what} {path} is not readable JSON: {e}") from e
    if not isinstance(data, dict):
        raise RegistryIntegrityError(f"{what} {path}: expected a JSON object")
    return data


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the block (blocks until other writers are done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl

        def lock(fd: int) -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)

        def unlock(fd: int) -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except ImportError:  # pragma: no cover - Windows: lock the first byte instead
        import msvcrt

        def lock(fd: int) -> None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

        def unlock(fd: int) -> None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

    with open(path, "a+b") as f:
        lock(f.fileno())
        try:
            yield
        finally:
            unlock(f.fileno())


# --- the event log ------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventsCheck:
    """Result of checking ``events.jsonl``: ``bad_line`` is 1-based, None when the chain holds."""

    ok: bool
    lines: int
    bad_line: int | None = None
    problem: str | None = None
    head: str = GENESIS  # sha256 of the last good line


def _event_lines(path: Path) -> tuple[list[str], bool]:
    """The log's lines and whether the last one is complete (ends with a newline)."""
    if not path.exists():
        return [], True
    text = path.read_bytes().decode("utf-8", errors="replace")
    if not text:
        return [], True
    complete = text.endswith("\n")
    lines = text.split("\n")
    if complete:
        lines = lines[:-1]
    return lines, complete


def verify_events(path: Path | str) -> EventsCheck:
    """Check the hash chain of an ``events.jsonl``; the result names the first bad line (1-based)."""
    path = Path(path)
    lines, complete = _event_lines(path)
    prev = GENESIS
    for i, line in enumerate(lines, start=1):
        def bad(problem: str, i: int = i, prev: str = prev) -> EventsCheck:
            return EventsCheck(False, len(lines), i, f"{path} line {i}: {problem}", prev)

        if i == len(lines) and not complete:
            return bad("incomplete last line (an interrupted write, or the file was cut)")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            return bad(f"not valid JSON ({e.msg}); the line was edited or corrupted")
        if not isinstance(obj, dict) or not isinstance(obj.get("hash"), str) or not isinstance(obj.get("prev"), str):
            return bad("not an event (needs 'prev' and 'hash'); the line was edited")
        body = {k: v for k, v in obj.items() if k != "hash"}
        try:
            canonical_line = _canonical(obj)
            own = _sha(_canonical(body))
        except ValueError as e:
            return bad(f"not canonical JSON ({e}); the line was edited")
        if own != obj["hash"]:
            return bad("its content does not match its hash: the line was edited")
        if canonical_line != line:
            return bad("not in canonical form: the line was re-written by hand")
        if obj["prev"] != prev:
            return bad("'prev' does not match the line before it: a line was removed, inserted or reordered")
        if obj.get("seq") != i:
            return bad(f"sequence number {obj.get('seq')!r} where {i} was expected: lines were removed or inserted")
        prev = _sha(line)
    return EventsCheck(True, len(lines), None, None, prev)


def _append_event(root: Path, event: dict[str, Any]) -> tuple[str, int]:
    """Append one chained, fsync'd event; returns (sha256 of the new line, line count). Caller holds the lock."""
    path = root / EVENTS_FILE
    lines, complete = _event_lines(path)
    if not complete:
        raise RegistryIntegrityError(f"{path} ends with an incomplete line; check it with "
                                     "`inspector-train models verify` before recording anything else")
    prev = _sha(lines[-1]) if lines else GENESIS
    body = {**event, "seq": len(lines) + 1, "prev": prev}
    line = _canonical({**body, "hash": _sha(_canonical(body))})
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    return _sha(line), len(lines) + 1


# --- metrics, cards -----------------------------------------------------------------------------
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def normalise_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"overall": {...}, "per_class": {...}}`` from either that shape or an evaluation dict.

    From an evaluation (``{"map50": .., "per_class": {..}, "dataset_hash": .., "split": ..}``) the
    numeric top-level values become ``overall``; ``dataset_hash`` / ``split`` are kept as ``source``.
    """
    if not metrics:
        return {"overall": {}, "per_class": {}}
    if not isinstance(metrics, Mapping):
        raise RegistryError(f"metrics must be a mapping, got {type(metrics).__name__}")
    if "overall" in metrics:
        overall = dict(metrics.get("overall") or {})
    else:  # an evaluation: its headline metrics (not settings such as conf or imgsz)
        overall = {k: metrics[k] for k in OVERALL_METRICS
                   if k in metrics and (metrics[k] is None or _is_number(metrics[k]))}
        if not overall:
            overall = {k: v for k, v in metrics.items() if _is_number(v)}
    per_class = {str(c): dict(v) for c, v in (metrics.get("per_class") or {}).items() if isinstance(v, Mapping)}
    out: dict[str, Any] = {"overall": overall, "per_class": per_class}
    source = {k: metrics[k] for k in ("dataset_hash", "split") if isinstance(metrics.get(k), str)}
    if source:
        out["source"] = source
    return out


@dataclass
class ModelCardInfo:
    """What a person writes about a model; the registry adds metrics and provenance to the card."""

    purpose: str = ""
    data: str = ""
    training: str = ""
    limits: Sequence[str] | str = ()
    failure_modes: Sequence[str] | str = ()
    notes: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ModelCardInfo:
        d = dict(d or {})
        if "known_failure_modes" in d and "failure_modes" not in d:
            d["failure_modes"] = d.pop("known_failure_modes")
        unknown = sorted(set(d) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise RegistryError(f"model card: unknown field(s) {unknown}; expected purpose, data, training, "
                                "limits, failure_modes, notes")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("limits", "failure_modes"):
            v = d[k]
            if isinstance(v, str):
                d[k] = [v] if v.strip() else []
            else:
                d[k] = [str(x) for x in v]
        return d


def _md(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else _md(v)


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {x}" for x in items) if items else "_Not documented._"


def render_card(record: Mapping[str, Any]) -> str:
    """The Markdown model card of a registry record (sections: purpose to provenance)."""
    info = ModelCardInfo.from_dict(record.get("card_info")).to_dict()
    metrics = record.get("metrics") or {}
    overall, per_class = metrics.get("overall") or {}, metrics.get("per_class") or {}
    name, version = record["name"], record["version"]
    out = [f"# Model card: {name} version {version}", ""]
    out += ["## Purpose", "", info["purpose"] or "_Not documented._", ""]
    out += ["## Data", "", info["data"] or "_Not documented._", "",
            f"- Dataset hash: `{record.get('dataset_hash')}`",
            f"- Classes ({len(record['class_names'])}): {', '.join(record['class_names'])}",
            f"- Input size (height x width): {record['imgsz'][0]} x {record['imgsz'][1]}", ""]
    out += ["## Training", "", info["training"] or "_Not documented._", ""]
    cfg = record.get("train_config") or {}
    if cfg:
        out += ["| setting | value |", "| --- | --- |"]
        out += [f"| {_md(k)} | {_md(json.dumps(v) if isinstance(v, (dict, list)) else v)} |"
                for k, v in sorted(cfg.items())]
        out.append("")
    out += ["## Metrics", ""]
    source = metrics.get("source") or {}
    if source:
        out += [f"Evaluated on dataset `{source.get('dataset_hash')}`, split `{source.get('split')}`.", ""]
    if overall:
        out += ["| metric | value |", "| --- | --- |"] + [f"| {_md(k)} | {_fmt(v)} |" for k, v in overall.items()]
        out.append("")
    if per_class:
        present = {k for v in per_class.values() for k in v}
        cols = [c for c in CARD_CLASS_COLUMNS if c in present] or sorted(present)
        out += ["| class | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
        out += [f"| {_md(c)} | " + " | ".join(_fmt(v.get(k, "")) for k in cols) + " |" for c, v in per_class.items()]
        out.append("")
    if not overall and not per_class:
        out += ["_No metrics recorded._", ""]
    out += ["## Limits", "", _bullets(info["limits"]), ""]
    out += ["## Known failure modes", "", _bullets(info["failure_modes"]), ""]
    if info["notes"]:
        out += ["## Notes", "", info["notes"], ""]
    weights = record.get("weights") or {}
    out += ["## Provenance", "",
            f"- ONNX sha256: `{record['sha256']}`",
            f"- Parent model: {record.get('parent') or 'none (trained from scratch or an external base)'}",
            f"- Dataset hash: `{record.get('dataset_hash')}`",
            f"- Created: {record['created']}",
            f"- Author: {record['author']}"]
    if weights:
        out.append(f"- Training checkpoint: `{weights.get('file')}` sha256 `{weights.get('sha256')}` "
                   "(for fine-tuning only; the station never loads it)")
    return "\n".join(out) + "\n"


# --- the promotion gate -------------------------------------------------------------------------
@dataclass(frozen=True)
class GateConfig:
    """Margins per gated metric (candidate must reach production + margin) and the per-class recall tolerance.

    A negative margin tolerates a drop of that size; lower-is-better metrics (``ece``) must reach
    production - margin. ``require_improvement``: at least one gated metric strictly better.
    """

    margins: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    recall_tolerance: float = DEFAULT_RECALL_TOLERANCE
    require_improvement: bool = True

    def __post_init__(self) -> None:
        if not self.margins:
            raise ValueError("the gate needs at least one gated metric")
        for k, v in self.margins.items():
            if not _is_number(v):
                raise ValueError(f"gate margin for {k!r} must be a finite number, got {v!r}")
        if not _is_number(self.recall_tolerance) or self.recall_tolerance < 0:
            raise ValueError(f"recall tolerance must be a number >= 0, got {self.recall_tolerance!r}")

    @classmethod
    def with_overrides(cls, margins: Mapping[str, float | None] | None = None,
                       recall_tolerance: float | None = None) -> GateConfig:
        """Defaults with some margins changed; a margin of None drops that metric from the gate."""
        merged: dict[str, float] = dict(DEFAULT_MARGINS)
        for k, v in (margins or {}).items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = float(v)
        return cls(merged, DEFAULT_RECALL_TOLERANCE if recall_tolerance is None else float(recall_tolerance))

    def to_dict(self) -> dict[str, Any]:
        return {"margins": dict(self.margins), "recall_tolerance": self.recall_tolerance,
                "require_improvement": self.require_improvement}


@dataclass(frozen=True)
class GateCheck:
    """One row of the gate: ``ok`` when ``candidate`` reaches ``required``."""

    metric: str  # "map50", or "recall[scratch]" for a per-class recall
    candidate: float | None
    production: float | None
    margin: float  # + must be better by this much, - may be worse by this much
    required: float | None
    ok: bool
    lower_is_better: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    candidate: str  # name@version
    production: str | None  # name@version, None for the first promotion
    checks: tuple[GateCheck, ...] = ()
    reasons: tuple[str, ...] = ()  # why it was refused (empty when passed)
    notes: tuple[str, ...] = ()
    dataset_hash: str | None = None
    split: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def first_model(self) -> bool:
        return self.production is None

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "candidate": self.candidate, "production": self.production,
                "dataset_hash": self.dataset_hash, "split": self.split,
                "checks": [c.to_dict() for c in self.checks], "reasons": list(self.reasons),
                "notes": list(self.notes), "config": dict(self.config)}

    def table(self) -> str:
        """A readable table of the checks, with the verdict and reasons."""
        verdict = "PASSED" if self.passed else "REFUSED"
        if self.production is None:
            head = f"gate {verdict} for {self.candidate}: no model in production, first promotion"
        else:
            head = f"gate {verdict} for {self.candidate} against production {self.production}"
            if self.dataset_hash:
                head += f" on dataset {self.dataset_hash} ({self.split})"
        lines = [head]
        if self.checks:
            w = max(len("check"), *(len(c.metric) for c in self.checks))

            def num(v: float | None) -> str:
                return "-" if v is None else f"{v:.4f}"

            lines.append(f"  {'check':<{w}}  {'candidate':>9}  {'production':>10}  {'required':>11}  ok")
            for c in self.checks:
                req = "-" if c.required is None else f"{'<=' if c.lower_is_better else '>='} {c.required:.4f}"
                lines.append(f"  {c.metric:<{w}}  {num(c.candidate):>9}  {num(c.production):>10}  {req:>11}  "
                             f"{'yes' if c.ok else 'NO'}")
        lines += [f"  refused: {r}" for r in self.reasons]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class GateRefused(RegistryError):
    """The candidate does not beat production (or the evaluations cannot be compared)."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        super().__init__(f"refused to promote {result.candidate}: " + "; ".join(result.reasons) + "\n" + result.table())


def evaluate_gate(candidate_eval: Mapping[str, Any], production_eval: Mapping[str, Any], gate: GateConfig,
                  *, candidate: str = "candidate", production: str = "production") -> GateResult:
    """Compare two evaluations on the same held-out set; pure (no registry access)."""
    cfg = gate.to_dict()
    where = (candidate_eval.get("dataset_hash"), candidate_eval.get("split"))
    other = (production_eval.get("dataset_hash"), production_eval.get("split"))
    if None in where or None in other or where != other:
        reason = (f"the evaluations are not on the same held-out set: {candidate} on dataset {where[0]} "
                  f"split {where[1]}, {production} on dataset {other[0]} split {other[1]}; evaluate both "
                  "models on the same dataset and split")
        return GateResult(False, candidate, production, reasons=(reason,), config=cfg)
    checks: list[GateCheck] = []
    reasons: list[str] = []
    improved: list[str] = []
    for metric, margin in gate.margins.items():
        c, p = candidate_eval.get(metric), production_eval.get(metric)
        lower = metric in LOWER_IS_BETTER
        if not (_is_number(c) and _is_number(p)):
            checks.append(GateCheck(metric, c if _is_number(c) else None, p if _is_number(p) else None,
                                    margin, None, False, lower))
            missing = [who for who, v in ((candidate, c), (production, p)) if not _is_number(v)]
            reasons.append(f"{metric} is missing from the evaluation of {' and '.join(missing)}")
            continue
        required = p - margin if lower else p + margin
        ok = c <= required + EPS if lower else c >= required - EPS
        checks.append(GateCheck(metric, float(c), float(p), margin, required, ok, lower))
        if not ok:
            reasons.append(f"{metric} {c:.4f} does not reach {'<=' if lower else '>='} {required:.4f}")
        if (c < p - EPS) if lower else (c > p + EPS):
            improved.append(metric)
    if gate.require_improvement and not improved and not reasons:
        reasons.append(f"no gated metric ({', '.join(gate.margins)}) is better than production; "
                       "not being worse is not enough, the candidate must beat it on at least one")
    cand_pc = candidate_eval.get("per_class") or {}
    for cls, stats in (production_eval.get("per_class") or {}).items():
        p = (stats or {}).get("recall")
        if not _is_number(p):
            continue
        c = (cand_pc.get(cls) or {}).get("recall")
        required = p - gate.recall_tolerance
        ok = _is_number(c) and c >= required - EPS
        checks.append(GateCheck(f"recall[{cls}]", float(c) if _is_number(c) else None, float(p),
                                -gate.recall_tolerance, required, ok))
        if not ok:
            reasons.append(f"recall of class {cls!r} is missing from the candidate's evaluation" if not _is_number(c)
                           else f"recall of class {cls!r} drops {p - c:.4f} (tolerance {gate.recall_tolerance:.4f})")
    notes = (f"better than production on: {', '.join(improved)}",) if improved else ()
    return GateResult(not reasons, candidate, production, tuple(checks), tuple(reasons), notes,
                      str(where[0]), str(where[1]), cfg)


# --- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RollbackResult:
    name: str
    restored: str  # the version now in production
    replaced: str  # the version that was in production (now archived)
    user: str
    time: str


@dataclass
class VerifyReport:
    versions: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    events: EventsCheck | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


# --- the registry -------------------------------------------------------------------------------
class Registry:
    """Write access to a registry folder (training side). Safe for several processes at once."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_registry_root()
        self.reader = RegistryReader(self.root)

    # --- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Hold the writers' lock; yields the current index (write it with ``_commit``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(self.root / LOCK_FILE):
            yield read_index(self.root)

    def _commit(self, index: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        """Append the event, then write the index with the new log head (write-ahead: the log first)."""
        head, count = _append_event(self.root, event)
        index["schema"] = INDEX_SCHEMA
        index["events_head"], index["events_count"] = head, count
        _write_json(self.root / INDEX_FILE, index)
        return event

    def _versions(self, index: Mapping[str, Any], name: str) -> dict[str, Any]:
        return self.reader._model(index, name)["versions"]

    def _entry(self, index: Mapping[str, Any], name: str, version: str) -> dict[str, Any]:
        versions = self._versions(index, name)
        if version not in versions:
            raise UnknownModelError(f"model '{name}' has no version '{version}' in the registry at {self.root} "
                                    f"(versions: {describe_versions(versions)})")
        return versions[version]

    def _record_path(self, name: str, version: str) -> Path:
        return self.root / name / version / RECORD_FILE

    def record(self, name: str, version: str) -> dict[str, Any]:
        """The full ``registry.json`` record of one version."""
        self._entry(read_index(self.root), name, version)
        return _read_json(self._record_path(name, version), "registry record")

    def _set_record_stage(self, name: str, version: str, stage: str, time: str, user: str, action: str) -> None:
        path = self._record_path(name, version)
        rec = _read_json(path, "registry record")
        rec.setdefault("history", []).append({"time": time, "user": user, "action": action,
                                              "from_stage": rec.get("stage"), "to_stage": stage})
        rec["stage"] = stage
        _write_json(path, rec)

    def _check_files(self, name: str, version: str, entry: Mapping[str, Any]) -> None:
        """Before a version goes to production: its manifest and ONNX bytes must match the index."""
        folder = self.root / name / version
        try:
            manifest = load_manifest(folder / MANIFEST_FILE)
            verify_sha256(manifest.onnx_path, entry.get("sha256", ""))
            if manifest.sha256 != entry.get("sha256"):
                raise RegistryIntegrityError(f"{name}@{version}: index sha256 {entry.get('sha256')} differs from "
                                             f"manifest sha256 {manifest.sha256}")
        except (ModelArtifactError, FileNotFoundError) as e:
            raise RegistryIntegrityError(f"{name}@{version} cannot go to production: {e}") from e

    @staticmethod
    def _event(action: str, user: str, name: str, version: str | None, from_stage: str | None,
               to_stage: str | None, reason: str = "", **extra: Any) -> dict[str, Any]:
        return {"time": _now("milliseconds"), "user": user, "action": action, "name": name, "version": version,
                "from_stage": from_stage, "to_stage": to_stage, "reason": reason or "", "gate": None, **extra}

    # --- register -------------------------------------------------------------------------------
    def register(
        self,
        onnx_path: Path | str,
        name: str,
        class_names: Sequence[str],
        imgsz: int | Sequence[int],
        *,
        dataset_hash: str,
        train_config: Mapping[str, Any] | None,
        parent: str | None,
        metrics: Mapping[str, Any] | None,
        author: str | None,
        card: ModelCardInfo | Mapping[str, Any] | None,
        weights_pt: Path | str | None = None,
        stage: str = CANDIDATE,
        exported_from: str = "",
        check_metadata: bool = True,
        reason: str = "",
    ) -> dict[str, Any]:
        """Copy a model into a new version folder (versions "1", "2", ...); returns its record.

        ``check_metadata``: the ONNX file's own class names (ultralytics metadata) must equal
        ``class_names``. ``parent`` is ``name@version`` of a model in this registry, or None.
        """
        onnx_path = Path(onnx_path)
        if not NAME_RE.match(name or ""):
            raise RegistryError(f"model name {name!r}: use lowercase letters, digits, '_', '.' or '-' "
                                "(starting with a letter or digit, at most 64 characters)")
        if not onnx_path.is_file():
            raise RegistryError(f"model file {onnx_path} does not exist")
        if onnx_path.suffix.lower() != ".onnx":
            raise RegistryError(f"{onnx_path}: the registry holds ONNX models (export the checkpoint first); "
                                "a .pt goes in with weights_pt, for fine-tuning only")
        if stage not in (CANDIDATE, SHADOW):
            raise RegistryError(f"a new version starts as candidate or shadow, not {stage!r} "
                                "(production only through `promote`, which applies the gate)")
        class_names = [str(c) for c in class_names]
        if not class_names or len(set(class_names)) != len(class_names) or not all(class_names):
            raise RegistryError(f"class names must be a non-empty list of unique names, got {class_names}")
        hw = [int(imgsz), int(imgsz)] if isinstance(imgsz, int) else [int(x) for x in imgsz]
        if len(hw) != 2 or min(hw) <= 0:
            raise RegistryError(f"imgsz must be an int or [height, width], got {imgsz!r}")
        if not isinstance(dataset_hash, str) or not dataset_hash.strip():
            raise RegistryError("dataset_hash is required: the hash of the dataset the model was trained on")
        author = _check_user(author)
        weights = Path(weights_pt) if weights_pt is not None else None
        if weights is not None and not weights.is_file():
            raise RegistryError(f"weights file {weights} does not exist")
        card_info = card if isinstance(card, ModelCardInfo) else ModelCardInfo.from_dict(card)
        norm_metrics = normalise_metrics(metrics)
        train_cfg = json.loads(json.dumps(dict(train_config or {}), default=str))  # JSON-safe copy
        try:
            _canonical(norm_metrics)
        except ValueError as e:
            raise RegistryError(f"metrics must be finite numbers: {e}") from e

        with self._locked() as index:
            if parent is not None:
                try:
                    pname, pversion = parse_spec(parent)
                except ValueError as e:
                    raise RegistryError(f"parent: {e}") from None
                if pversion is None:
                    raise RegistryError(f"parent {parent!r} must name a version: 'name@version'")
                if pversion not in index["models"].get(pname, {}).get("versions", {}):
                    raise UnknownModelError(f"parent {parent} is not in the registry at {self.root}")
            model_dir = self.root / name
            model_dir.mkdir(parents=True, exist_ok=True)
            known = set(index["models"].get(name, {}).get("versions", {}))
            known |= {p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()}  # leftovers too
            version = str(max((int(v) for v in known if v.isdigit()), default=0) + 1)
            created = _now()
            tmp = Path(tempfile.mkdtemp(prefix=f".incoming-{version}-", dir=model_dir))
            try:
                shutil.copyfile(onnx_path, tmp / ONNX_FILE)
                weights_info = None
                if weights is not None:
                    shutil.copyfile(weights, tmp / WEIGHTS_FILE)
                    weights_info = {"file": WEIGHTS_FILE, "sha256": sha256_file(tmp / WEIGHTS_FILE)}
                extra = {"dataset_hash": dataset_hash, "parent": parent, "author": author,
                         "metrics": norm_metrics["overall"]}
                try:
                    mpath = write_manifest(tmp / ONNX_FILE, name, version, class_names, hw,
                                           exported_from=exported_from or str(onnx_path), created=created,
                                           extra=extra, check_metadata=check_metadata)
                except ModelArtifactError as e:
                    raise RegistryError(f"cannot register {onnx_path}: {e}") from e
                sha = load_manifest(mpath).sha256
                record: dict[str, Any] = {
                    "schema": RECORD_SCHEMA, "name": name, "version": version, "stage": stage,
                    "onnx": ONNX_FILE, "manifest": MANIFEST_FILE, "sha256": sha, "class_names": class_names,
                    "imgsz": hw, "dataset_hash": dataset_hash, "train_config": train_cfg, "parent": parent,
                    "metrics": norm_metrics, "created": created, "author": author, "card": CARD_FILE,
                    "card_info": card_info.to_dict(), "weights": weights_info, "evals": {},
                    "history": [{"time": created, "user": author, "action": "register",
                                 "from_stage": None, "to_stage": stage}],
                }
                (tmp / CARD_FILE).write_text(render_card(record), encoding="utf-8")
                _write_json(tmp / RECORD_FILE, record)
                os.rename(tmp, model_dir / version)  # the version appears complete or not at all
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            model = index["models"].setdefault(name, {"versions": {}, "production_history": []})
            model["versions"][version] = _index_entry(record)
            self._commit(index, self._event("register", author, name, version, None, stage, reason, sha256=sha,
                                            parent=parent, dataset_hash=dataset_hash))
        return record

    # --- evaluations ----------------------------------------------------------------------------
    def add_eval(self, name: str, version: str, eval_dict: Mapping[str, Any], user: str | None = None) -> Path:
        """Store an evaluation with a version (``evals/<dataset_hash>-<split>.json``); replaces one on the same set."""
        ds, split = eval_dict.get("dataset_hash"), eval_dict.get("split")
        if not (isinstance(ds, str) and ds and isinstance(split, str) and split):
            raise RegistryError("an evaluation needs 'dataset_hash' and 'split' (the held-out set it was made on)")
        user = _check_user(user)
        try:
            text = json.dumps(dict(eval_dict), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise RegistryError(f"evaluation of {name}@{version} is not JSON with finite numbers: {e}") from e
        key = f"{ds}-{split}"
        fname = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:150] + ".json"
        with self._locked() as index:
            entry = self._entry(index, name, version)
            measured = eval_dict.get("onnx_sha256")
            if isinstance(measured, str) and measured != entry.get("sha256"):
                raise RegistryError(f"this evaluation measured the model with sha256 {measured}, not {name}@{version} "
                                    f"(sha256 {entry.get('sha256')}); store it with the version it belongs to")
            folder = self.root / name / version
            (folder / EVALS_DIR).mkdir(exist_ok=True)
            out = folder / EVALS_DIR / fname
            _write_atomic(out, text)
            rec_path = self._record_path(name, version)
            rec = _read_json(rec_path, "registry record")
            summary = {k: eval_dict[k] for k in ("map50", "map50_95", "precision", "recall", "f1", "ece")
                       if _is_number(eval_dict.get(k))}
            rec.setdefault("evals", {})[key] = {"file": f"{EVALS_DIR}/{fname}", "dataset_hash": ds, "split": split,
                                               "added": _now("milliseconds"), "user": user,
                                               "sha256": _sha(text), **summary}
            _write_json(rec_path, rec)
            self._commit(index, self._event("eval", user, name, version, None, None, "", dataset_hash=ds,
                                            split=split, metrics=summary))
        return out

    def evals(self, name: str, version: str) -> dict[str, dict[str, Any]]:
        """Stored evaluation summaries of a version, keyed ``<dataset_hash>-<split>``."""
        return dict(self.record(name, version).get("evals") or {})

    def load_eval(self, name: str, version: str, dataset_hash: str, split: str) -> dict[str, Any] | None:
        info = self.evals(name, version).get(f"{dataset_hash}-{split}")
        if info is None:
            return None
        path = self.root / name / version / info["file"]
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if _sha(text) != info.get("sha256"):
            raise RegistryIntegrityError(f"stored evaluation {path} of {name}@{version} is missing or was changed "
                                         "after it was recorded; evaluate again")
        return json.loads(text)

    def _pick_evals(self, name: str, cand: str, prod: str, cand_eval: Mapping[str, Any] | None,
                    prod_eval: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """Fill in missing evaluations from the registry, on the same held-out set as the given one."""
        if cand_eval is not None and prod_eval is not None:
            return cand_eval, prod_eval
        given = cand_eval if cand_eval is not None else prod_eval
        if given is not None:
            ds, split = given.get("dataset_hash"), given.get("split")
            other_v = prod if cand_eval is not None else cand
            if not (ds and split):
                raise GateRefused(GateResult(False, f"{name}@{cand}", f"{name}@{prod}", reasons=(
                    "the given evaluation names no 'dataset_hash' and 'split': cannot tell which held-out set it is",)))
            found = self.load_eval(name, other_v, str(ds), str(split))
            if found is None:
                raise GateRefused(GateResult(False, f"{name}@{cand}", f"{name}@{prod}", reasons=(
                    f"{name}@{other_v} has no stored evaluation on dataset {ds} split {split}; evaluate it on the "
                    "same held-out set or pass both evaluation files",)))
            return (cand_eval, found) if cand_eval is not None else (found, prod_eval)  # type: ignore[return-value]
        ce, pe = self.evals(name, cand), self.evals(name, prod)
        common = set(ce) & set(pe)
        if not common:
            raise GateRefused(GateResult(False, f"{name}@{cand}", f"{name}@{prod}", reasons=(
                f"no held-out set on which both {name}@{cand} (evaluated on: {', '.join(sorted(ce)) or 'nothing'}) "
                f"and {name}@{prod} (evaluated on: {', '.join(sorted(pe)) or 'nothing'}) were evaluated; "
                "evaluate both on the same dataset and split, or pass --candidate-eval and --production-eval",)))
        key = max(common, key=lambda k: max(ce[k].get("added", ""), pe[k].get("added", "")))  # the latest set
        c = self.load_eval(name, cand, ce[key]["dataset_hash"], ce[key]["split"])
        p = self.load_eval(name, prod, pe[key]["dataset_hash"], pe[key]["split"])
        assert c is not None and p is not None
        return c, p

    # --- the gate, stages, promotion, rollback --------------------------------------------------
    def check_gate(self, spec: str, *, gate: GateConfig | None = None,
                   candidate_eval: Mapping[str, Any] | None = None,
                   production_eval: Mapping[str, Any] | None = None) -> GateResult:
        """The gate's verdict for promoting ``name@version`` now, without changing anything."""
        name, version = split_versioned_spec(spec)
        return self._gate(read_index(self.root), name, version, gate or GateConfig(), candidate_eval, production_eval)

    def _gate(self, index: Mapping[str, Any], name: str, version: str, gate: GateConfig,
              cand_eval: Mapping[str, Any] | None, prod_eval: Mapping[str, Any] | None) -> GateResult:
        entry = self._entry(index, name, version)
        if entry.get("stage") == PRODUCTION:
            raise RegistryError(f"{name}@{version} is already in production")
        prod = _production(index, name)
        spec = f"{name}@{version}"
        if prod is None:
            return GateResult(True, spec, None, notes=("no model in production: the first promotion passes the "
                                                       "gate without comparison",), config=gate.to_dict())
        notes: list[str] = []
        prod_entry = self._entry(index, name, prod)
        if list(prod_entry.get("class_names") or []) != list(entry.get("class_names") or []):
            notes.append(f"class names differ from production ({prod_entry.get('class_names')} -> "
                         f"{entry.get('class_names')}): station configs that run '{name}' must list the new ones")
        try:
            c, p = self._pick_evals(name, version, prod, cand_eval, prod_eval)
        except GateRefused as e:
            r = e.result
            raise GateRefused(GateResult(False, r.candidate, r.production, reasons=r.reasons,
                                         notes=tuple(notes), config=gate.to_dict())) from None
        wrong = [f"the {who} evaluation is of the model with sha256 {ev['onnx_sha256']}, not {name}@{v} "
                 f"(sha256 {e.get('sha256')})"
                 for who, ev, v, e in (("candidate", c, version, entry), ("production", p, prod, prod_entry))
                 if isinstance(ev.get("onnx_sha256"), str) and ev["onnx_sha256"] != e.get("sha256")]
        if wrong:
            raise GateRefused(GateResult(False, spec, f"{name}@{prod}", reasons=tuple(wrong), notes=tuple(notes),
                                         config=gate.to_dict()))
        result = evaluate_gate(c, p, gate, candidate=spec, production=f"{name}@{prod}")
        if notes:
            result = GateResult(result.passed, result.candidate, result.production, result.checks, result.reasons,
                                result.notes + tuple(notes), result.dataset_hash, result.split, result.config)
        return result

    def promote(self, name: str, version: str, user: str | None, *, gate: GateConfig | None = None,
                candidate_eval: Mapping[str, Any] | None = None, production_eval: Mapping[str, Any] | None = None,
                reason: str = "") -> GateResult:
        """Put ``name@version`` in production if it passes the gate; the previous production is archived.

        Evaluations not given are taken from those stored with each version (same dataset and split).
        A refusal raises ``GateRefused`` (nothing changes except a ``promote_refused`` event).
        """
        user = _check_user(user)
        gate = gate or GateConfig()
        with self._locked() as index:
            entry = self._entry(index, name, version)
            from_stage = entry.get("stage")
            try:
                result = self._gate(index, name, version, gate, candidate_eval, production_eval)
            except GateRefused as e:
                result = e.result
            if not result.passed:
                self._commit(index, self._event("promote_refused", user, name, version, from_stage, from_stage,
                                                reason, gate=result.to_dict()))
                raise GateRefused(result)
            self._check_files(name, version, entry)
            now = _now()
            prod = _production(index, name)
            model = index["models"][name]
            history = model.setdefault("production_history", [])
            if prod is not None:
                if not history or history[-1] != prod:  # a hand-edited index: keep the history honest
                    history.append(prod)
                self._set_record_stage(name, prod, ARCHIVED, now, user, f"replaced by {version}")
                model["versions"][prod]["stage"] = ARCHIVED
            self._set_record_stage(name, version, PRODUCTION, now, user, "promote")
            entry["stage"] = PRODUCTION
            history.append(version)
            self._commit(index, self._event("promote", user, name, version, from_stage, PRODUCTION, reason,
                                            gate=result.to_dict(), replaced=prod))
        return result

    def rollback(self, name: str, user: str | None, reason: str = "") -> RollbackResult:
        """Production goes back to the version it replaced (current -> archived); again walks further back."""
        user = _check_user(user)
        with self._locked() as index:
            versions = self._versions(index, name)
            current = _production(index, name)
            history = list(index["models"][name].get("production_history") or [])
            if current is None:
                raise RegistryError(f"model '{name}' has no version in production, nothing to roll back "
                                    f"(versions: {describe_versions(versions)})")
            if not history or history[-1] != current:
                raise RegistryIntegrityError(f"model '{name}': production history {history} does not end with the "
                                             f"production version {current}; run `inspector-train models verify`")
            if len(history) < 2:
                raise RegistryError(f"nothing to roll back to: {name}@{current} is the first version of '{name}' "
                                    "ever promoted")
            target = history[-2]
            if target not in versions:
                raise RegistryIntegrityError(f"model '{name}': rollback target version {target} is not in the index")
            self._check_files(name, target, versions[target])
            now = _now()
            target_from = versions[target].get("stage")
            self._set_record_stage(name, current, ARCHIVED, now, user, "rolled back")
            self._set_record_stage(name, target, PRODUCTION, now, user, "rollback")
            versions[current]["stage"], versions[target]["stage"] = ARCHIVED, PRODUCTION
            index["models"][name]["production_history"] = history[:-1]
            event = self._event("rollback", user, name, target, target_from, PRODUCTION, reason, replaced=current)
            self._commit(index, event)
        return RollbackResult(name, target, current, user, event["time"])

    def set_stage(self, name: str, version: str, stage: str, user: str | None, reason: str = "") -> dict[str, Any]:
        """Move a version among candidate / shadow / archived (production only through promote / rollback)."""
        user = _check_user(user)
        if stage not in STAGES:
            raise RegistryError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        if stage == PRODUCTION:
            raise RegistryError(f"use `promote {name}@{version}` to put a version in production (it applies the gate)")
        with self._locked() as index:
            entry = self._entry(index, name, version)
            old = entry.get("stage")
            if old == PRODUCTION:
                raise RegistryError(f"{name}@{version} is in production; promote another version or roll back "
                                    "instead of changing its stage")
            if old == stage:
                return self.record(name, version)
            self._set_record_stage(name, version, stage, _now(), user, "stage")
            entry["stage"] = stage
            self._commit(index, self._event("stage", user, name, version, old, stage, reason))
        return self.record(name, version)

    # --- reading --------------------------------------------------------------------------------
    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        """One row per version (index data): name, version, stage, created, author, map50, map50_95, sha256."""
        index = read_index(self.root)
        names = [name] if name is not None else sorted(index["models"])
        rows = []
        for n in names:
            versions = self._versions(index, n)
            for v in sorted(versions, key=version_sort_key):
                e = versions[v]
                rows.append({"name": n, "version": v, "stage": e.get("stage"), "created": e.get("created"),
                             "author": e.get("author"), "map50": e.get("map50"), "map50_95": e.get("map50_95"),
                             "sha256": e.get("sha256")})
        return rows

    def show(self, spec: str) -> dict[str, Any]:
        """The manifest of ``name`` (production) or ``name@version``: record, stage and absolute paths."""
        try:
            name, version = parse_spec(spec)
        except ValueError as e:
            raise UnknownModelError(str(e)) from None
        index = read_index(self.root)
        versions = self._versions(index, name)
        if version is None:
            version = _production(index, name)
            if version is None:
                raise NoProductionModelError(f"model '{name}' has no version in production (versions: "
                                             f"{describe_versions(versions)}); ask for one with '{name}@VERSION'")
        entry = self._entry(index, name, version)
        rec = _read_json(self._record_path(name, version), "registry record")
        folder = (self.root / name / version).resolve()
        out = {"name": name, "version": version, "stage": entry.get("stage"), "sha256": entry.get("sha256"),
               "path": str(folder / rec.get("onnx", ONNX_FILE)), "manifest_path": str(folder / MANIFEST_FILE),
               "card_path": str(folder / CARD_FILE), "classes": rec.get("class_names"), "imgsz": rec.get("imgsz"),
               "metrics": rec.get("metrics"), "dataset_hash": rec.get("dataset_hash"), "parent": rec.get("parent"),
               "created": rec.get("created"), "author": rec.get("author"), "train_config": rec.get("train_config"),
               "weights": rec.get("weights"), "evals": rec.get("evals") or {}, "history": rec.get("history") or [],
               "production_history": list(index["models"][name].get("production_history") or [])}
        return out

    def events(self) -> list[dict[str, Any]]:
        """All events, oldest first (not verified; see ``verify_events``)."""
        lines, _ = _event_lines(self.root / EVENTS_FILE)
        return [json.loads(line) for line in lines if line.strip()]

    def verify_events(self) -> EventsCheck:
        return verify_events(self.root / EVENTS_FILE)

    def verify(self) -> VerifyReport:
        """Hash every version's files against index, manifest and record; check stages and the event chain."""
        report = VerifyReport()
        index = read_index(self.root)
        for name in sorted(index["models"]):
            model = index["models"][name]
            versions = model.get("versions") or {}
            prods = [v for v, e in versions.items() if e.get("stage") == PRODUCTION]
            if len(prods) > 1:
                report.problems.append(f"{name}: {len(prods)} versions in production ({', '.join(prods)})")
            history = model.get("production_history") or []
            if prods and (not history or history[-1] != prods[0]):
                report.problems.append(f"{name}: production history {history} does not end with production {prods[0]}")
            for v in sorted(versions, key=version_sort_key):
                report.versions += 1
                report.problems += self._verify_version(name, v, versions[v])
            model_dir = self.root / name
            leftovers = sorted(p.name for p in model_dir.iterdir() if p.is_dir() and p.name not in versions
                               and (p.name.isdigit() or p.name.startswith(".incoming-"))) if model_dir.is_dir() else []
            if leftovers:
                report.warnings.append(f"{name}: folder(s) {', '.join(leftovers)} are not in the index (an "
                                       "interrupted register); they are ignored and may be deleted")
        events = self.verify_events()
        report.events = events
        if not events.ok:
            report.problems.append(f"event log: {events.problem}")
        else:
            count, head = index.get("events_count"), index.get("events_head")
            if count is not None:
                lines, _ = _event_lines(self.root / EVENTS_FILE)
                recorded = _sha(lines[count - 1]) if 0 < count <= len(lines) else GENESIS
                if events.lines < count:
                    report.problems.append(f"event log: {events.lines} events but the index records {count}: "
                                           "events were cut from the end of events.jsonl")
                elif recorded != (head or GENESIS):
                    report.problems.append(f"event log: line {count} is not the one the index recorded as the last "
                                           "(the log was rewritten)")
                elif events.lines > count:
                    report.warnings.append(f"event log: {events.lines - count} event(s) after the one the index "
                                           "recorded (an interrupted write; the index may miss that change)")
        return report

    def _verify_version(self, name: str, version: str, entry: Mapping[str, Any]) -> list[str]:
        where = f"{name}@{version}"
        folder = self.root / name / version
        problems: list[str] = []
        try:
            rec = _read_json(folder / RECORD_FILE, "registry record")
        except RegistryIntegrityError as e:
            return [f"{where}: {e}"]
        try:
            manifest = load_manifest(folder / MANIFEST_FILE)
        except ModelArtifactError as e:
            return [f"{where}: {e}"]
        shas = {"index": entry.get("sha256"), "manifest": manifest.sha256, "registry.json": rec.get("sha256")}
        if len(set(shas.values())) != 1:
            problems.append(f"{where}: sha256 differs between " + ", ".join(f"{k} {v}" for k, v in shas.items()))
        try:
            verify_sha256(manifest.onnx_path, manifest.sha256)
        except (ModelIntegrityError, FileNotFoundError) as e:
            problems.append(f"{where}: {e}")
        if rec.get("stage") != entry.get("stage"):
            problems.append(f"{where}: stage {entry.get('stage')!r} in the index but {rec.get('stage')!r} in "
                            f"{folder / RECORD_FILE}")
        if entry.get("stage") not in STAGES:
            problems.append(f"{where}: unknown stage {entry.get('stage')!r}")
        weights = rec.get("weights") or None
        if weights:
            w = folder / weights.get("file", WEIGHTS_FILE)
            if not w.is_file():
                problems.append(f"{where}: training checkpoint {w} is missing")
            elif sha256_file(w) != weights.get("sha256"):
                problems.append(f"{where}: training checkpoint {w} does not match its recorded sha256")
        for key, info in (rec.get("evals") or {}).items():
            p = folder / info.get("file", "")
            if not p.is_file() or _sha(p.read_text(encoding="utf-8")) != info.get("sha256"):
                problems.append(f"{where}: stored evaluation {key} is missing or was changed")
        return problems


def split_versioned_spec(spec: str) -> tuple[str, str]:
    """``"name@3"`` -> ``("name", "3")``; a spec without a version raises ``RegistryError``."""
    try:
        name, version = parse_spec(spec)
    except ValueError as e:
        raise UnknownModelError(str(e)) from None
    if version is None:
        raise RegistryError(f"{spec!r}: name the version, e.g. '{name}@3'")
    return name, version


def _production(index: Mapping[str, Any], name: str) -> str | None:
    versions = index["models"].get(name, {}).get("versions", {})
    prod = [v for v, e in versions.items() if e.get("stage") == PRODUCTION]
    if len(prod) > 1:
        raise RegistryIntegrityError(f"model '{name}' has {len(prod)} versions in production ({', '.join(prod)}); "
                                     "run `inspector-train models verify`")
    return prod[0] if prod else None


def _index_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    overall = (record.get("metrics") or {}).get("overall") or {}
    return {"stage": record["stage"], "sha256": record["sha256"], "path": f"{record['name']}/{record['version']}",
            "created": record["created"], "author": record["author"], "class_names": list(record["class_names"]),
            "imgsz": list(record["imgsz"]), "map50": overall.get("map50"), "map50_95": overall.get("map50_95"),
            "parent": record.get("parent"), "dataset_hash": record.get("dataset_hash")}
