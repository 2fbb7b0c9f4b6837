"""Checking a registry folder: every version's files against their sha256, stages, and the event chain.

Read-only: ``verify_registry`` reports problems (the registry cannot be trusted as it is) and
warnings (leftovers of an interrupted write, harmless); it changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.runtime.model_artifact import (
    ModelArtifactError,
    ModelIntegrityError,
    load_manifest,
    sha256_file,
    verify_sha256,
)
from inspector.runtime.registry import (
    EVENTS_FILE,
    MANIFEST_FILE,
    PRODUCTION,
    RECORD_FILE,
    STAGES,
    WEIGHTS_FILE,
    RegistryIntegrityError,
    read_index,
    version_sort_key,
)
from inspector.util.canonical import sha256_text
from inspector.util.hashchain import GENESIS
from training.registry.events import EventsCheck, event_lines, line_head, verify_events
from training.registry.files import read_json


@dataclass
class VerifyReport:
    versions: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    events: EventsCheck | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``: the verdict, counts, problems, warnings and the event chain's check."""
        ev = self.events
        return {"ok": self.ok, "versions": self.versions, "events": ev.lines if ev else 0,
                "problems": list(self.problems), "warnings": list(self.warnings),
                "chain": None if ev is None else {"ok": ev.ok, "lines": ev.lines, "bad_line": ev.bad_line,
                                                  "problem": ev.problem, "head": ev.head}}


def verify_registry(root: Path) -> VerifyReport:
    """Hash every version's files against index, manifest and record; check stages and the event chain."""
    report = VerifyReport()
    index = read_index(root)
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
            report.problems += _verify_version(root, name, v, versions[v])
        model_dir = root / name
        leftovers = sorted(p.name for p in model_dir.iterdir() if p.is_dir() and p.name not in versions
                           and (p.name.isdigit() or p.name.startswith(".incoming-"))) if model_dir.is_dir() else []
        if leftovers:
            report.warnings.append(f"{name}: folder(s) {', '.join(leftovers)} are not in the index (an "
                                   "interrupted register); they are ignored and may be deleted")
    events = verify_events(root / EVENTS_FILE)
    report.events = events
    if not events.ok:
        report.problems.append(f"event log: {events.problem}")
    else:
        count, head = index.get("events_count"), index.get("events_head")
        if count is not None:
            lines, _ = event_lines(root / EVENTS_FILE)
            recorded = line_head(lines, count)
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


def _verify_version(root: Path, name: str, version: str, entry: Mapping[str, Any]) -> list[str]:
    where = f"{name}@{version}"
    folder = root / name / version
    problems: list[str] = []
    try:
        rec = read_json(folder / RECORD_FILE, "registry record")
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
        if not p.is_file() or sha256_text(p.read_text(encoding="utf-8")) != info.get("sha256"):
            problems.append(f"{where}: stored evaluation {key} is missing or was changed")
    return problems
