"""What a MODEL argument names: a ``.pt`` checkpoint, an ``.onnx`` file or a registry model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.evaluate.thresholds import EvalError


@dataclass
class ModelSource:
    """What a MODEL argument resolved to."""

    spec: str
    label: str  # short name for folders and tables
    pt: Path | None = None
    onnx: Path | None = None
    manifest: Path | None = None
    sha256: str | None = None
    class_names: tuple[str, ...] | None = None
    imgsz: tuple[int, int] | None = None
    registry: dict[str, Any] | None = None  # name, version, stage, root

    @property
    def primary(self) -> str:
        """Which runtime gives the headline figures: the deployed artifact (ONNX) for registry models
        and ONNX files, the checkpoint (PyTorch) for a .pt file."""
        return "pytorch" if self.registry is None and self.onnx is None else "onnx"


def resolve_model(spec: str | Path, registry_root: Path | str | None = None) -> ModelSource:
    """A ``.pt`` / ``.onnx`` file, or a registry ``name`` (its production version) / ``name@version``."""
    from inspector.runtime.model_artifact import load_manifest, manifest_path_for

    text = str(spec)
    p = Path(text)
    if p.suffix in (".pt", ".onnx") or p.exists():
        if not p.is_file():
            raise EvalError(f"model file {p} does not exist")
        if p.suffix == ".pt":
            label = p.parent.parent.name if p.parent.name == "weights" and p.parent.parent.name else p.stem
            return ModelSource(text, label, pt=p)
        if p.suffix != ".onnx":
            raise EvalError(f"model file {p}: expected a .pt checkpoint or an .onnx model")
        src = ModelSource(text, p.stem, onnx=p)
        man = manifest_path_for(p)
        if man.is_file():
            m = load_manifest(man)
            src.manifest, src.sha256, src.class_names, src.imgsz = man, m.sha256, m.class_names, m.imgsz
        for sib in (p.with_suffix(".pt"), p.parent / "weights.pt"):
            if sib.is_file():
                src.pt = sib
                break
        return src
    try:
        from inspector.runtime.registry import RegistryError, RegistryReader
    except ImportError:  # pragma: no cover - the registry ships with the station
        raise EvalError(f"model {text!r} is not a file, and this installation has no model registry") from None
    reader = RegistryReader(registry_root)
    try:
        r = reader.resolve(text)
    except RegistryError as e:
        raise EvalError(str(e)) from None
    src = ModelSource(text, f"{r.name}@{r.version}", onnx=r.onnx_path, manifest=r.manifest_path, sha256=r.sha256,
                      class_names=tuple(r.class_names), imgsz=tuple(r.imgsz),
                      registry={"name": r.name, "version": r.version, "stage": r.stage, "root": str(reader.root)})
    weights = r.onnx_path.parent / "weights.pt"
    if weights.is_file():
        src.pt = weights
    return src

