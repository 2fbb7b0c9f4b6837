"""Builds the detector ensemble a station config names, from the registry or verified files."""

from __future__ import annotations

from pathlib import Path

from inspector.config.schema import ModelSpec, StationConfig
from inspector.runtime.ensemble import Ensemble, Member
from inspector.runtime.onnx_detector import OnnxDetector
from inspector.runtime.registry import RegistryReader
from inspector.runtime.tiling import TiledDetector


class ModelLoadError(Exception):
    """A configured model could not be loaded; the message names the config entry and the cause."""


def _member(i: int, spec: ModelSpec, reader: RegistryReader, threads: int | None) -> Member:
    kw = dict(conf=spec.conf, iou=spec.iou, max_det=spec.max_det, providers=tuple(spec.providers), threads=threads)
    if spec.registry is not None:
        resolved = reader.resolve(spec.registry)
        if tuple(resolved.imgsz) != (spec.imgsz, spec.imgsz):
            raise ModelLoadError(f"models[{i}] ({spec.name}): config imgsz {spec.imgsz} but {resolved.spec} "
                                 f"was exported at {list(resolved.imgsz)}")
        det = resolved.load(class_names=spec.class_names, **kw)
        name, version, sha = resolved.name, resolved.version, resolved.sha256
    else:
        det = OnnxDetector(spec.path, spec.class_names, spec.imgsz, sha256=spec.sha256, name=spec.name, **kw)
        name, version, sha = spec.name, "file", str(spec.sha256)
    if spec.tiling is not None:
        det = TiledDetector(det, tile=spec.tiling.tile, overlap=spec.tiling.overlap, batch=spec.tiling.batch)
    return Member(name, version, sha, det, spec.weight)


def build_ensemble(cfg: StationConfig, registry_root: Path | None = None, threads: int | None = None) -> Ensemble:
    """Every configured model, sha256-verified before its session exists, fused as configured."""
    reader = RegistryReader(registry_root)
    members = []
    for i, spec in enumerate(cfg.models):
        try:
            members.append(_member(i, spec, reader, threads))
        except ModelLoadError:
            raise
        except Exception as e:  # registry, integrity, provider and shape errors all carry their own message
            raise ModelLoadError(f"models[{i}] ({spec.name}): {e}") from e
    return Ensemble(members, cfg.fusion.method, cfg.fusion.model_dump())
