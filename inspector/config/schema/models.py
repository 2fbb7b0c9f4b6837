"""Detection models of the ensemble (registry or file), tiling, and how their detections are fused."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from inspector.config.schema.base import (
    MODEL_NAME_PATTERN,
    REGISTRY_PATTERN,
    SHA256_PATTERN,
    ConfigModel,
    Fraction,
    Loc,
    PathText,
    Size32,
    raise_if,
    unique_list,
)


class Tiling(ConfigModel):
    tile: Size32 = Field(
        ..., description="Tile side in pixels (multiple of 32), for images larger than the model input."
    )
    overlap: float = Field(
        0.2, ge=0.0, le=0.5, description="Overlap between neighbouring tiles as a fraction of the tile (0..0.5)."
    )
    batch: int = Field(1, ge=1, description="Tiles per inference batch.")


class ModelSpec(ConfigModel):
    name: str = Field(
        ..., pattern=MODEL_NAME_PATTERN,
        description="Name of this ensemble member, recorded in detections and decisions.",
    )
    registry: Optional[str] = Field(
        None,
        pattern=REGISTRY_PATTERN,
        description="Registry model 'name@version', or 'name' for the version in production.",
    )
    path: Optional[PathText] = Field(None, description="ONNX / engine file outside the registry (needs sha256).")
    sha256: Optional[str] = Field(
        None, pattern=SHA256_PATTERN, description="sha256 of the file at `path`, checked before loading."
    )
    imgsz: Size32 = Field(640, description="Model input side in pixels (multiple of 32, 32..4096).")
    rect: bool = Field(
        False,
        description="Letterbox each frame into the smallest stride-multiple rectangle that holds it at the model's "
        "scale (480x288 for a 16:9 frame at imgsz 480) instead of the full square: less to infer, same detections "
        "scale. Needs a model exported with a dynamic input size (`inspector-train export --dynamic`).",
    )
    class_names: Annotated[list[Annotated[str, Field(min_length=1)]], unique_list("class name")] = Field(
        ...,
        min_length=1,
        description="Class names in model output order (non-empty, unique); must match the model's metadata.",
    )
    weight: float = Field(1.0, gt=0, description="Weight of this model in ensemble fusion.")
    conf: Fraction = Field(0.25, description="Minimum score kept from this model (0..1).")
    iou: Fraction = Field(0.45, description="IoU threshold of this model's own NMS (0..1).")
    max_det: int = Field(300, ge=1, description="Maximum detections kept per image from this model.")
    providers: Annotated[list[Literal["cpu", "cuda", "tensorrt", "openvino"]], unique_list("provider")] = Field(
        default_factory=lambda: ["cpu"], min_length=1,
        description="Execution providers in order of preference: onnxruntime's cpu / cuda / tensorrt, or openvino "
        "(OpenVINO on the CPU, needs the `openvino` package; `[openvino, cpu]` falls back to onnxruntime without it).",
    )
    tiling: Optional[Tiling] = Field(
        None, description="Tile large images before inference; null = resize the whole image."
    )

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        issues: list[tuple[Loc, str]] = []
        if self.registry is not None and self.path is not None:
            issues.append((("registry",), "give exactly one of `registry` or `path` (+ `sha256`), got both"))
        elif self.registry is None and self.path is None:
            msg = "give exactly one of `registry` ('name' or 'name@version') or `path` + `sha256`, got neither"
            issues.append(((), msg))
        elif self.path is not None and self.sha256 is None:
            msg = "required with `path`: the file's sha256 (64 hex characters), so a swapped file is refused"
            issues.append((("sha256",), msg))
        if self.registry is not None and self.sha256 is not None:
            issues.append((("sha256",), "only allowed with `path`; registry models carry their sha256 in the manifest"))
        raise_if(issues)
        return self

    @property
    def registry_name(self) -> Optional[str]:
        """Registry model name without the version."""
        return self.registry.split("@", 1)[0] if self.registry else None

    @property
    def registry_version(self) -> Optional[str]:
        """Pinned registry version, or None for the production version."""
        if self.registry and "@" in self.registry:
            return self.registry.split("@", 1)[1]
        return None


class FusionConfig(ConfigModel):
    method: Literal["wbf", "nms", "vote"] = Field(
        "wbf", description="How ensemble detections are combined: weighted box fusion, NMS, or voting."
    )
    iou_thr: Fraction = Field(0.55, description="IoU above which boxes from different models are the same object.")
    skip_box_thr: Fraction = Field(0.0, description="Boxes scoring below this are ignored before fusion.")
    conf_type: Literal["avg", "max", "box_and_model_avg", "absent_model_aware_avg"] = Field(
        "avg", description="How a fused box's score is computed (WBF)."
    )
    k: int = Field(
        1, ge=1, description="Vote: minimum number of models that must agree on a box (<= number of models)."
    )


class ModelTrust(ConfigModel):
    """Signed models: which keys the station trusts, and whether it refuses models they did not sign."""

    require_signature: bool = Field(
        False,
        description="Refuse any model whose manifest is not signed by one of `trusted_keys` (registry models: "
        "model.manifest.json.sig; `path` models: the signed manifest beside the file). Off: signatures are not "
        "checked (the shipped demo models are unsigned).",
    )
    trusted_keys: Annotated[list[PathText], unique_list("trusted key")] = Field(
        default_factory=list,
        description="ed25519 PUBLIC key files (PEM, from `inspector-train keygen`) whose signatures this station "
        "accepts. Never a private key.",
    )

    @model_validator(mode="after")
    def _keys_when_required(self) -> "ModelTrust":
        if self.require_signature and not self.trusted_keys:
            raise_if([(("trusted_keys",), "required when require_signature is true: at least one public key file")])
        return self
