"""The model registry, write side: register versions, gate promotions, roll back, keep a tamper-evident log.

Layout and index format: see ``inspector.runtime.registry`` (the station's read side). The parts:

* ``store``: the ``Registry`` class (register, evaluations, promote, rollback, stages, list / show);
* ``gate``: the promotion gate, pure (``GateConfig``, ``evaluate_gate``, ``GateResult``);
* ``card``: metrics normalisation and the Markdown model card;
* ``events``: the hash-chained event log ``events.jsonl`` and its check;
* ``verify``: checking a whole registry folder (files, stages, event chain);
* ``files``: who and when, JSON records, the writers' lock.

Stages: ``candidate`` -> (``shadow``) -> ``production`` -> ``archived``. Exactly one version of a
model is in production at a time, and only ``promote`` puts a version there, through the gate
(same held-out set; every gated metric at least production + margin; at least one strictly
better; no class's recall dropping more than the tolerance). An evaluation that names the ONNX
file it measured (``onnx_sha256``, written by ``training.evaluate``) must name the version's own
file, so a mixed-up evaluation file is refused.

The first promotion of a model (nothing in production) passes the gate trivially, and is recorded.
A promotion archives the previous production version; ``rollback`` walks the production history
back one step (current -> archived, previous -> production), and again on the next call.

Every change (register, eval, stage, promote, promote_refused, rollback) is appended to
``events.jsonl`` with who, when, from / to stage, reason and the gate result, fsync'd and
hash-chained; ``verify_events`` names the first line that was edited, removed or inserted, and the
index keeps the last line's hash, so cutting lines off the end shows too.
"""

from __future__ import annotations

from inspector.runtime.registry import (
    NoProductionModelError,
    RegistryError,
    RegistryIntegrityError,
    UnknownModelError,
    default_registry_root,
)
from inspector.util.hashchain import GENESIS
from training.registry.card import ModelCardInfo, normalise_metrics, render_card
from training.registry.events import EventsCheck, verify_events
from training.registry.files import default_user
from training.registry.gate import (
    DEFAULT_MARGINS,
    LOWER_IS_BETTER,
    GateCheck,
    GateConfig,
    GateRefused,
    GateResult,
    evaluate_gate,
)
from training.registry.store import Registry, RollbackResult, split_versioned_spec
from training.registry.verify import VerifyReport

__all__ = [
    "DEFAULT_MARGINS", "GENESIS", "LOWER_IS_BETTER", "EventsCheck", "GateCheck", "GateConfig", "GateRefused",
    "GateResult", "ModelCardInfo", "NoProductionModelError", "Registry", "RegistryError",
    "RegistryIntegrityError", "RollbackResult", "UnknownModelError", "VerifyReport", "default_registry_root",
    "default_user", "evaluate_gate", "normalise_metrics", "render_card", "split_versioned_spec",
    "verify_events",
]
