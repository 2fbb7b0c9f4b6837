"""The station's read side of the model registry: turn ``name`` or ``name@version`` into a verified model.

Layout (written by ``training.registry.Registry``; the station only reads it)::

    <root>/index.json                         the index: every model, version and stage
    <root>/events.jsonl                       hash-chained log of registrations, promotions, rollbacks
    <root>/<name>/<version>/model.onnx        the model
    <root>/<name>/<version>/model.manifest.json   its runtime sidecar (sha256, class names, imgsz)
    <root>/<name>/<version>/registry.json     the full record (metrics, dataset hash, parent, ...)
    <root>/<name>/<version>/card.md           the model card

The root is ``$INSPECTOR_REGISTRY`` or, when unset, the repository's ``models/`` folder (where the
shipped demo model lives).

``index.json`` (schema 1)::

    {"schema": 1,
     "models": {"wafer-demo": {
         "versions": {"1": {"stage": "production", "sha256": "<64 hex>", "path": "wafer-demo/1",
                            "created": "...", "author": "...", "class_names": [...], "imgsz": [640, 640],
                            "map50": 0.91, "map50_95": 0.62, "parent": null, "dataset_hash": "..."}},
         "production_history": ["1"]}},
     "events_head": "<sha256 of the last events.jsonl line>", "events_count": 3}

``"name"`` resolves to the one version whose stage is ``production``; ``"name@version"`` pins a
version whatever its stage. The index's sha256 must equal the manifest's: a mismatch means one of
them was edited by hand, and the model is refused. The ONNX bytes themselves are hashed by
``OnnxDetector`` when it loads them (against the manifest), so they are not hashed twice here.

Signatures: a version's manifest may be signed (``model.manifest.json.sig``, ed25519; see
``inspector.runtime.model_artifact``). A reader made with a ``TrustPolicy`` that requires
signatures refuses (``UntrustedModelError``) a version whose manifest is unsigned, or signed by a
key it does not trust, or changed after signing; the signature is checked on the same bytes that
are parsed. Without such a policy signatures are not looked at (the shipped models are unsigned).

The index is replaced atomically by writers (temp file + ``os.replace``), so readers need no lock.
This module uses the standard library and ``inspector.runtime`` only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.runtime.model_artifact import ModelArtifactError, SignatureError, TrustPolicy, load_trusted_manifest

if TYPE_CHECKING:  # pragma: no cover
    from inspector.runtime.onnx_detector import OnnxDetector

ENV_VAR = "INSPECTOR_REGISTRY"
INDEX_FILE = "index.json"
EVENTS_FILE = "events.jsonl"
ONNX_FILE = "model.onnx"
MANIFEST_FILE = "model.manifest.json"
RECORD_FILE = "registry.json"
CARD_FILE = "card.md"
WEIGHTS_FILE = "weights.pt"
INDEX_SCHEMA = 1

CANDIDATE, SHADOW, PRODUCTION, ARCHIVED = "candidate", "shadow", "production", "archived"
STAGES: tuple[str, ...] = (CANDIDATE, SHADOW, PRODUCTION, ARCHIVED)

# Same rule as the station config's `registry` field: lowercase name, optional @version.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
VERSION_RE = re.compile(r"^[0-9A-Za-z_.-]{1,32}$")


class RegistryError(Exception):
    """A registry problem that a person has to act on (message says what and how)."""


class UnknownModelError(RegistryError):
    """The name or the version is not in the registry."""


class NoProductionModelError(RegistryError):
    """``name`` was asked for without a version, but no version of it is in production."""


class RegistryIntegrityError(RegistryError):
    """The index, a record, a manifest or the event log disagree: something was edited by hand."""


class UntrustedModelError(RegistryIntegrityError):
    """Signatures are required, and the version's manifest is unsigned or its signature does not hold."""


def default_registry_root() -> Path:
    """``$INSPECTOR_REGISTRY`` when set, else the repository's ``models/`` folder."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "models"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"name"`` -> ``("name", None)``; ``"name@3"`` -> ``("name", "3")``; a bad spec raises ``ValueError``."""
    if not isinstance(spec, str):
        raise ValueError(f"a model spec is 'name' or 'name@version', got {spec!r}")
    name, sep, version = spec.strip().partition("@")
    if not NAME_RE.match(name):
        raise ValueError(f"model spec {spec!r}: name must be lowercase letters, digits, '_', '.' or '-' "
                         "(starting with a letter or digit, at most 64 characters)")
    if sep and not VERSION_RE.match(version):
        raise ValueError(f"model spec {spec!r}: version must be letters, digits, '_', '.' or '-' (e.g. 'name@3')")
    return name, (version if sep else None)


@dataclass(frozen=True)
class ResolvedModel:
    """One registry version, checked against its manifest, ready for ``OnnxDetector.from_manifest``."""

    name: str
    version: str
    stage: str
    onnx_path: Path
    manifest_path: Path
    sha256: str
    class_names: tuple[str, ...]
    imgsz: tuple[int, int]
    signed_by: str | None = None  # key id that signed the manifest (None: not checked)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def load(self, detector: type[OnnxDetector] | None = None, **kwargs: Any) -> OnnxDetector:
        """Build the detector (``detector``: OnnxDetector or a subclass such as OpenVinoDetector); the
        ONNX bytes are hashed and checked against the manifest there."""
        if detector is None:
            from inspector.runtime.onnx_detector import OnnxDetector  # lazy: onnxruntime only when loading

            detector = OnnxDetector
        det = detector.from_manifest(self.manifest_path, **kwargs)
        if det.sha256 != self.sha256:  # the manifest was swapped after it was resolved (and verified)
            raise RegistryIntegrityError(f"{self.spec}: the manifest changed while loading (model sha256 "
                                         f"{det.sha256}, resolved {self.sha256}); refusing the model")
        return det


def read_index(root: Path) -> dict[str, Any]:
    """The parsed index, or an empty one when the registry has none yet."""
    path = root / INDEX_FILE
    if not path.exists():
        return {"schema": INDEX_SCHEMA, "models": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RegistryIntegrityError(f"registry index {path} is not readable JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise RegistryIntegrityError(f"registry index {path}: expected an object with a 'models' object")
    if data.get("schema", INDEX_SCHEMA) != INDEX_SCHEMA:
        raise RegistryIntegrityError(f"registry index {path}: schema {data.get('schema')} is not supported "
                                     f"(this version reads {INDEX_SCHEMA})")
    return data


def version_sort_key(version: str) -> tuple[int, int | str]:
    """Numeric versions in numeric order, then any others by name."""
    return (0, int(version)) if version.isdigit() else (1, version)


def describe_versions(versions: Mapping[str, Mapping[str, Any]]) -> str:
    """``"1 (archived), 2 (production)"`` for error messages."""
    if not versions:
        return "none"
    return ", ".join(f"{v} ({versions[v].get('stage', '?')})" for v in sorted(versions, key=version_sort_key))


class RegistryReader:
    """Read-only view of a registry folder (the station's only way to find a model)."""

    def __init__(self, root: Path | str | None = None, trust: TrustPolicy | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_registry_root()
        self.trust = trust  # signatures required and by which keys; None: not checked

    # --- the index ------------------------------------------------------------------------------
    def index(self) -> dict[str, Any]:
        return read_index(self.root)

    def names(self) -> list[str]:
        return sorted(self.index()["models"])

    def versions(self, name: str) -> dict[str, dict[str, Any]]:
        """``{version: index entry}`` of one model; unknown names raise ``UnknownModelError``."""
        return dict(self._model(self.index(), name).get("versions") or {})

    def production_version(self, name: str) -> str | None:
        return _production_of(self.versions(name), name, self.root)

    def version_dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def _model(self, index: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        models = index["models"]
        if name not in models:
            known = ", ".join(sorted(models)) or "none"
            where = self.root if (self.root / INDEX_FILE).exists() else f"{self.root} (no {INDEX_FILE} there)"
            raise UnknownModelError(f"model '{name}' is not in the registry at {where}; known models: {known} "
                                    f"(set {ENV_VAR} or --registry to use another registry)")
        return models[name]

    # --- resolving ------------------------------------------------------------------------------
    def resolve(self, spec: str) -> ResolvedModel:
        """``"name"`` -> its production version; ``"name@version"`` -> that version, any stage.

        Raises ``UnknownModelError``, ``NoProductionModelError`` or ``RegistryIntegrityError``
        (index and manifest disagree), each with a message that says what to do.
        """
        try:
            name, version = parse_spec(spec)
        except ValueError as e:
            raise UnknownModelError(str(e)) from None
        versions = self.versions(name)
        if version is None:
            version = _production_of(versions, name, self.root)
            if version is None:
                raise NoProductionModelError(
                    f"model '{name}' has no version in production (versions: {describe_versions(versions)}); "
                    f"pin one with '{name}@VERSION' or promote one with `inspector-train promote {name}@VERSION`")
        elif version not in versions:
            raise UnknownModelError(f"model '{name}' has no version '{version}' in the registry at {self.root} "
                                    f"(versions: {describe_versions(versions)})")
        entry = versions[version]
        folder = self.version_dir(name, version)
        manifest_path = folder / MANIFEST_FILE
        try:
            manifest, signed_by = load_trusted_manifest(manifest_path, self.trust)
        except SignatureError as e:
            raise UntrustedModelError(f"{name}@{version}: {e}") from e
        except ModelArtifactError as e:
            raise RegistryIntegrityError(f"{name}@{version}: {e}") from e
        index_sha = str(entry.get("sha256", "")).lower().removeprefix("sha256:")
        if index_sha != manifest.sha256:
            raise RegistryIntegrityError(
                f"{name}@{version}: the registry index {self.root / INDEX_FILE} says sha256 {index_sha or '(none)'} "
                f"but the manifest {manifest_path} says {manifest.sha256}; one of them was changed after "
                f"registration, refusing the model (run `inspector-train models verify`)")
        if manifest.name != name or manifest.version != version:
            raise RegistryIntegrityError(
                f"{name}@{version}: the manifest {manifest_path} describes {manifest.name}@{manifest.version}; "
                f"the folder holds the wrong model, refusing it")
        return ResolvedModel(
            name=name,
            version=version,
            stage=str(entry.get("stage", "")),
            onnx_path=manifest.onnx_path,
            manifest_path=manifest_path,
            sha256=manifest.sha256,
            class_names=manifest.class_names,
            imgsz=manifest.imgsz,
            signed_by=signed_by,
        )


def _production_of(versions: Mapping[str, Mapping[str, Any]], name: str, root: Path) -> str | None:
    prod = sorted((v for v, e in versions.items() if e.get("stage") == PRODUCTION), key=version_sort_key)
    if len(prod) > 1:
        raise RegistryIntegrityError(f"model '{name}' has {len(prod)} versions in production ({', '.join(prod)}) "
                                     f"in {root / INDEX_FILE}; exactly one is allowed "
                                     "(run `inspector-train models verify`)")
    return prod[0] if prod else None
