"""Builds the detector ensemble a station config names, from the registry or verified files."""

from __future__ import annotations

import logging
from pathlib import Path

from inspector.config.schema import ModelSpec, StationConfig
from inspector.runtime.ensemble import Ensemble, Member
from inspector.runtime.model_artifact import TrustPolicy, load_trusted_manifest
from inspector.runtime.onnx_detector import OnnxDetector
from inspector.runtime.providers import OPENVINO, choose_runtime
from inspector.runtime.registry import RegistryReader
from inspector.runtime.tiling import TiledDetector


log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """A configured model could not be loaded; the message names the config entry and the cause."""


def _detector_class(providers: tuple[str, ...]) -> tuple[type[OnnxDetector], tuple[str, ...], list[str]]:
    """The detector class for the configured providers (onnxruntime or OpenVINO), the providers it gets,
    and notes on what was passed over (see ``inspector.runtime.providers.choose_runtime``)."""
    choice = choose_runtime(providers)
    if choice.runtime == OPENVINO:
        from inspector.runtime.openvino_detector import OpenVinoDetector  # imports openvino only when chosen

        return OpenVinoDetector, choice.providers, choice.notes
    return OnnxDetector, choice.providers, choice.notes


def _member(i: int, spec: ModelSpec, reader: RegistryReader, threads: int | None) -> Member:
    cls, providers, notes = _detector_class(tuple(spec.providers))
    kw = dict(conf=spec.conf, iou=spec.iou, max_det=spec.max_det, providers=providers, threads=threads,
              rect=spec.rect)
    if spec.registry is not None:
        resolved = reader.resolve(spec.registry)
        if tuple(resolved.imgsz) != (spec.imgsz, spec.imgsz):
            raise ModelLoadError(f"models[{i}] ({spec.name}): config imgsz {spec.imgsz} but {resolved.spec} "
                                 f"was exported at {list(resolved.imgsz)}")
        det = resolved.load(cls, class_names=spec.class_names, **kw)
        name, version, sha = resolved.name, resolved.version, resolved.sha256
    else:
        if reader.trust is not None and reader.trust.require:  # a file outside the registry: its signed manifest
            manifest, _ = load_trusted_manifest(Path(spec.path), reader.trust)
            if manifest.sha256 != spec.sha256:
                raise ModelLoadError(f"models[{i}] ({spec.name}): the signed manifest beside {spec.path} is for "
                                     f"sha256 {manifest.sha256}, the config says {spec.sha256}")
        det = cls(spec.path, spec.class_names, spec.imgsz, sha256=spec.sha256, name=spec.name, **kw)
        name, version, sha = spec.name, "file", str(spec.sha256)
    if spec.rect and not det.rect:
        raise ModelLoadError(f"models[{i}] ({spec.name}): rect: true needs a model with a dynamic input size, and "
                             f"{name}@{version} takes a fixed {det.imgsz[0]}x{det.imgsz[1]} input (export it with "
                             "`inspector-train export --dynamic`, or set rect: false)")
    for note in notes:  # why a preferred runtime was passed over: on record with the detector's own notes
        log.info("%s: %s", spec.name, note)
    det.provider_notes[:0] = notes
    if spec.tiling is not None:
        det = TiledDetector(det, tile=spec.tiling.tile, overlap=spec.tiling.overlap, batch=spec.tiling.batch)
    return Member(name, version, sha, det, spec.weight)


def build_ensemble(cfg: StationConfig, registry_root: Path | None = None, threads: int | None = None) -> Ensemble:
    """Every configured model, sha256-verified before its session exists, fused as configured."""
    trust = cfg.model_trust
    try:
        policy = TrustPolicy.from_paths(trust.require_signature, trust.trusted_keys) if trust.require_signature \
            else None
    except Exception as e:  # a key that cannot be read: no model is trusted
        raise ModelLoadError(f"model_trust: {e}") from e
    reader = RegistryReader(registry_root, trust=policy)
    members = []
    for i, spec in enumerate(cfg.models):
        try:
            members.append(_member(i, spec, reader, threads))
        except ModelLoadError:
            raise
        except Exception as e:  # registry, integrity, provider and shape errors all carry their own message
            raise ModelLoadError(f"models[{i}] ({spec.name}): {e}") from e
    return Ensemble(members, cfg.fusion.method, cfg.fusion.model_dump())
