"""Pydantic v2 schema of a station config (station_configs/*.yaml).

Conventions (Frigate-style):
- every model forbids unknown fields, so a typo is an error instead of a silently ignored key;
- every field has a description: it feeds the exported JSON schema (editor hover help);
- plug-ins (sources, rules, MES outputs) are chosen by a ``type`` key (discriminated unions);
- models are frozen: a loaded config is identified by its hash and must not change afterwards.

Checks that need several fields raise :class:`FieldIssues`, which carries one message per
offending field (with its path relative to the model), so the loader can report each one
at its own path instead of one lump at the model.

Paths: file paths are kept as the text written in the YAML (not ``pathlib.Path``) so the config
hash is the same on every OS. Inputs (folders, masks, model files, CTI files, CA files) resolve
relative to the current directory; output folders (MES file drops, KLARF) resolve relative to the
data folder.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
REGISTRY_PATTERN = r"^[a-z0-9][a-z0-9_.-]*(@[0-9A-Za-z_.-]+)?$"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# Plain-words explanation of each pattern, used by the loader's error messages.
PATTERN_HINTS: dict[str, str] = {
    SLUG_PATTERN: "a lowercase id (a-z, 0-9, '_' or '-', starting with a letter or digit)",
    REGISTRY_PATTERN: "'name' or 'name@version' (lowercase name; no version means the production model)",
    SHA256_PATTERN: "a sha256 digest: 64 hexadecimal characters",
    ENV_NAME_PATTERN: "the NAME of an environment variable (letters, digits, '_'), never the secret itself",
    MODEL_NAME_PATTERN: "a model name (letters, digits, '_', '.' or '-')",
}

# Placeholders an MQTT topic template may use; checked at load time so a typo fails early.
MQTT_TOPIC_FIELDS = ("station", "source", "camera", "zone", "lot", "wafer", "unit", "verdict")

Loc = tuple[Union[str, int], ...]


class FieldIssues(ValueError):
    """Several problems found by one model validator, each with a path relative to the model."""

    def __init__(self, issues: list[tuple[Loc, str]]):
        self.issues = list(issues)
        super().__init__("; ".join(f"{_dotted(loc)}: {msg}" if loc else msg for loc, msg in self.issues))


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _raise_if(issues: list[tuple[Loc, str]]) -> None:
    if issues:
        raise FieldIssues(issues)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Reusable field types
# --------------------------------------------------------------------------------------------

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PathText = Annotated[str, Field(min_length=1)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]


def _multiple_of_32(v: int) -> int:
    if v % 32:
        raise ValueError(f"expected a multiple of 32, got {v}")
    return v


Size32 = Annotated[int, Field(ge=32, le=4096), AfterValidator(_multiple_of_32)]

Point = Annotated[tuple[float, float], Field(description="One [x, y] vertex in image pixels.")]


def _check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 [x, y] points, got {len(points)}")
    # Shoelace area: a zero-area polygon (all points on a line) contains nothing, surely a mistake.
    area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]))
    if area2 == 0:
        raise ValueError("polygon has zero area (its points lie on one line)")
    return points


Polygon = Annotated[list[Point], AfterValidator(_check_polygon)]


def _unique(values: list, what: str) -> list:
    seen: set = set()
    for v in values:
        if v in seen:
            raise ValueError(f"duplicate {what} {v!r}; each must appear once")
        seen.add(v)
    return values


def _unique_list(what: str) -> AfterValidator:
    return AfterValidator(lambda values: _unique(values, what))


# --------------------------------------------------------------------------------------------
# Station, wafer geometry
# --------------------------------------------------------------------------------------------


class StationInfo(_Model):
    id: Slug = Field(..., description="Station id, recorded with every frame and decision (lowercase slug).")
    name: str = Field(..., min_length=1, description="Human-readable station name shown in the GUI and reports.")
    domain: Literal["wafer", "construction", "generic"] = Field(
        ..., description="Application domain; selects domain checks (wafer geometry, live-video flow)."
    )


class WaferGeometry(_Model):
    diameter_mm: float = Field(300.0, gt=0, description="Wafer diameter in millimetres.")
    die_pitch_x_mm: float = Field(..., gt=0, description="Die pitch along x (die width plus street) in mm.")
    die_pitch_y_mm: float = Field(..., gt=0, description="Die pitch along y (die height plus street) in mm.")
    edge_exclusion_mm: float = Field(
        3.0, ge=0, description="Width of the unusable ring at the wafer edge, in mm; dies inside it are not judged."
    )
    notch: Literal["down", "up", "left", "right"] = Field(
        "down", description="Notch orientation in the wafer map (where the notch points)."
    )

    @model_validator(mode="after")
    def _fits(self) -> "WaferGeometry":
        issues: list[tuple[Loc, str]] = []
        radius = self.diameter_mm / 2
        if self.edge_exclusion_mm >= radius:
            got = self.edge_exclusion_mm
            issues.append((("edge_exclusion_mm",), f"expected less than the wafer radius {radius:g} mm, got {got:g}"))
        for name in ("die_pitch_x_mm", "die_pitch_y_mm"):
            if getattr(self, name) > self.diameter_mm:
                got = getattr(self, name)
                issues.append(((name,), f"expected at most the wafer diameter {self.diameter_mm:g} mm, got {got:g}"))
        _raise_if(issues)
        return self


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


class Zone(_Model):
    id: Slug = Field(..., description="Zone id, recorded in frame context and incidents.")
    polygon: Polygon = Field(..., description="Zone outline: list of [x, y] image-pixel points (at least 3).")
    kind: Literal["restricted", "ppe_required", "exclusion", "inspection"] = Field(
        ..., description="What the zone means: restricted (no entry), ppe_required, exclusion (ignored), inspection."
    )


def _zones_unique(zones: list[Zone]) -> list[Zone]:
    _unique([z.id for z in zones], "zone id")
    return zones


Zones = Annotated[list[Zone], AfterValidator(_zones_unique)]


class _SourceBase(_Model):
    id: Optional[Slug] = Field(
        None, description="Source id recorded in each frame's context; defaults to the camera id or '<type>-<index>'."
    )


WaferSignature = Literal["random", "cluster", "edge_ring", "scratch_line"]


class SyntheticWaferSource(_SourceBase):
    type: Literal["synthetic_wafer"] = Field(..., description="Synthetic wafer die images (offline demo and tests).")
    seed: int = Field(0, description="Random seed; the same seed gives the same wafers, defects and images.")
    lots: int = Field(1, ge=1, description="Number of lots to generate.")
    wafers_per_lot: int = Field(1, ge=1, description="Wafers per lot.")
    die_px: int = Field(640, ge=64, le=4096, description="Side of each square die image in pixels.")
    defect_rate: Fraction = Field(0.2, description="Probability (0..1) that a die has defects.")
    signatures: Annotated[list[WaferSignature], _unique_list("signature")] = Field(
        default_factory=lambda: ["random", "cluster", "edge_ring", "scratch_line"],
        description="Spatial defect patterns the generator may place on a wafer.",
    )
    rate_hz: Optional[float] = Field(
        None, gt=0, description="Dies per second, to pace a simulated line; null = as fast as possible."
    )


class FolderSource(_SourceBase):
    type: Literal["folder"] = Field(..., description="Images read from a folder on disk.")
    path: PathText = Field(..., description="Folder to read (relative paths resolve against the current directory).")
    pattern: str = Field("*.png", min_length=1, description="Glob pattern of image file names.")
    recursive: bool = Field(False, description="Also read sub-folders.")
    context_regex: Optional[str] = Field(
        None,
        description="Regex with named groups matched against the relative file path to fill frame context, "
        "e.g. '(?P<lot>[^/]+)/(?P<wafer>\\d+)_(?P<die_x>\\d+)_(?P<die_y>\\d+)'.",
    )
    sidecar_csv: Optional[PathText] = Field(
        None, description="CSV with a 'file' column plus context columns (lot, wafer, die_x, ...), one row per image."
    )
    loop: bool = Field(False, description="Start again at the first image after the last one (demos).")

    @field_validator("context_regex")
    @classmethod
    def _regex(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"expected a valid regular expression, got {v!r} ({exc})") from None
        if not compiled.groupindex:
            raise ValueError(f"expected named groups such as (?P<lot>...), got {v!r} with none")
        return v


class ReconnectPolicy(_Model):
    stall_timeout_s: float = Field(
        2.0, gt=0, description="Seconds without a frame before the stream counts as stalled and is reopened."
    )
    backoff_initial_s: float = Field(
        0.5, gt=0, description="First wait before reconnecting, in seconds; doubles after each failure."
    )
    backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between reconnect attempts, in seconds.")

    @model_validator(mode="after")
    def _order(self) -> "ReconnectPolicy":
        if self.backoff_initial_s > self.backoff_max_s:
            msg = f"expected at most backoff_max_s ({self.backoff_max_s:g}), got {self.backoff_initial_s:g}"
            raise FieldIssues([(("backoff_initial_s",), msg)])
        return self


_USB_RE = re.compile(r"^usb:\d+$")


class VideoSource(_SourceBase):
    type: Literal["video"] = Field(
        ..., description="OpenCV video: a file, an rtsp:// / http(s):// stream, or a USB camera."
    )
    uri: str = Field(
        ..., min_length=1,
        description="Video file path, 'rtsp://...' / 'http(s)://...' URL, or 'usb:N' for USB camera N.",
    )
    camera: Slug = Field(..., description="Camera id recorded in frame context and incidents.")
    fps_limit: Optional[float] = Field(
        None, gt=0, description="Maximum frames per second to process; null = every frame."
    )
    reconnect: ReconnectPolicy = Field(
        default_factory=ReconnectPolicy, description="Stall watchdog and reconnect back-off."
    )
    zones: Zones = Field(default_factory=list, description="Zones drawn on this camera's image.")

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if v.startswith("usb") and not _USB_RE.match(v):
            raise ValueError(f"expected 'usb:N' with N a camera index, got {v!r}")
        return v


class GenicamSource(_SourceBase):
    type: Literal["genicam"] = Field(..., description="Industrial GenICam camera through a GenTL producer (.cti).")
    cti_file: PathText = Field(..., description="Path of the GenTL producer (.cti) library of the camera vendor.")
    serial: Optional[str] = Field(None, description="Camera serial number; null = the first camera found.")
    camera: Slug = Field(..., description="Camera id recorded in frame context.")
    exposure_us: Optional[float] = Field(
        None, gt=0, description="Exposure time in microseconds; null = keep the camera's setting."
    )
    zones: Zones = Field(default_factory=list, description="Zones drawn on this camera's image.")


Source = Annotated[
    Union[SyntheticWaferSource, FolderSource, VideoSource, GenicamSource], Field(discriminator="type")
]


# --------------------------------------------------------------------------------------------
# Models and fusion
# --------------------------------------------------------------------------------------------


class Tiling(_Model):
    tile: Size32 = Field(
        ..., description="Tile side in pixels (multiple of 32), for images larger than the model input."
    )
    overlap: float = Field(
        0.2, ge=0.0, le=0.5, description="Overlap between neighbouring tiles as a fraction of the tile (0..0.5)."
    )
    batch: int = Field(1, ge=1, description="Tiles per inference batch.")


class ModelSpec(_Model):
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
    class_names: Annotated[list[Annotated[str, Field(min_length=1)]], _unique_list("class name")] = Field(
        ...,
        min_length=1,
        description="Class names in model output order (non-empty, unique); must match the model's metadata.",
    )
    weight: float = Field(1.0, gt=0, description="Weight of this model in ensemble fusion.")
    conf: Fraction = Field(0.25, description="Minimum score kept from this model (0..1).")
    iou: Fraction = Field(0.45, description="IoU threshold of this model's own NMS (0..1).")
    max_det: int = Field(300, ge=1, description="Maximum detections kept per image from this model.")
    providers: Annotated[list[Literal["cpu", "cuda", "tensorrt"]], _unique_list("provider")] = Field(
        default_factory=lambda: ["cpu"], min_length=1, description="Execution providers in order of preference."
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
        _raise_if(issues)
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


class FusionConfig(_Model):
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


# --------------------------------------------------------------------------------------------
# Rules (per frame / die)
# --------------------------------------------------------------------------------------------

Verdict = Literal["fail", "review"]


class _RuleBase(_Model):
    id: Slug = Field(..., description="Rule id, unique across rules and wafer_rules; recorded in decision reasons.")
    classes: Optional[Annotated[list[Annotated[str, Field(min_length=1)]], _unique_list("class")]] = Field(
        None, min_length=1, description="Class names the rule applies to (at least one); null = all classes."
    )


class ClassThresholdRule(_RuleBase):
    type: Literal["class_threshold"] = Field(..., description="Drop detections scoring below a per-class threshold.")
    thresholds: dict[str, Fraction] = Field(default_factory=dict, description="Class name -> minimum score (0..1).")
    default: Fraction = Field(0.0, description="Minimum score for classes not listed in `thresholds`.")


class SizeRule(_RuleBase):
    type: Literal["size"] = Field(..., description="Act on boxes by size (longest side of the box).")
    min: Optional[float] = Field(None, ge=0, description="Boxes whose longest side is below this match (in `unit`).")
    max: Optional[float] = Field(None, ge=0, description="Boxes whose longest side is above this match (in `unit`).")
    unit: Literal["px", "um"] = Field(
        "px", description="Unit of min / max: image pixels, or micrometres (needs pixel_size_um)."
    )
    action: Literal["drop", "fail", "review"] = Field(
        "drop", description="What a matching box does: dropped, or sends the unit to fail / review."
    )

    @model_validator(mode="after")
    def _bounds(self) -> "SizeRule":
        if self.min is None and self.max is None:
            raise FieldIssues([((), "give `min`, `max` or both")])
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldIssues([(("min",), f"expected min <= max ({self.max:g}), got {self.min:g}")])
        return self


class RegionRule(_RuleBase):
    type: Literal["region"] = Field(..., description="Keep or drop detections by where their centre lies.")
    mode: Literal["include", "exclude"] = Field(
        "exclude", description="include: keep only detections inside the region; exclude: drop those inside it."
    )
    polygons: list[Polygon] = Field(
        default_factory=list, description="Region as polygons of [x, y] image-pixel points."
    )
    mask_file: Optional[PathText] = Field(
        None, description="Region as a mask image (non-zero = inside), same size as the frame."
    )
    edge_exclusion_mm: Optional[float] = Field(
        None, gt=0, description="Region as the wafer's edge ring of this width in mm (needs the `wafer` section)."
    )

    @model_validator(mode="after")
    def _something(self) -> "RegionRule":
        if not self.polygons and self.mask_file is None and self.edge_exclusion_mm is None:
            raise FieldIssues([((), "give at least one of `polygons`, `mask_file` or `edge_exclusion_mm`")])
        return self


class AgreementRule(_RuleBase):
    type: Literal["agreement"] = Field(..., description="Flag boxes backed by fewer than k ensemble models.")
    k: int = Field(2, ge=1, description="Minimum number of models that must back a box (<= number of models).")
    verdict: Verdict = Field("review", description="Verdict when a box has too little backing.")


class PersistenceRule(_RuleBase):
    type: Literal["persistence"] = Field(..., description="Keep only detections seen on consecutive frames (video).")
    min_frames: Optional[int] = Field(None, ge=1, description="Consecutive frames an object must be seen.")
    min_seconds: Optional[float] = Field(None, gt=0, description="Seconds an object must be seen.")
    match_iou: Fraction = Field(0.3, description="IoU that makes a box the same object as one on the previous frame.")

    @model_validator(mode="after")
    def _something(self) -> "PersistenceRule":
        if self.min_frames is None and self.min_seconds is None:
            raise FieldIssues([((), "give `min_frames`, `min_seconds` or both")])
        return self


class CountRule(_RuleBase):
    type: Literal["count"] = Field(..., description="Judge the unit when it has too many detections of some classes.")
    classes: list[Annotated[str, Field(min_length=1)]] = Field(
        ..., min_length=1, description="Class names counted together."
    )
    max_count: int = Field(..., ge=0, description="Highest allowed count; more gives `verdict`.")
    verdict: Verdict = Field("fail", description="Verdict when the count is exceeded.")


class UncertaintyRule(_RuleBase):
    type: Literal["uncertainty"] = Field(
        ..., description="Send the unit to review when a score falls in an uncertain band."
    )
    low: Fraction = Field(..., description="Lower edge of the uncertain score band.")
    high: Fraction = Field(..., description="Upper edge of the uncertain score band.")
    verdict: Verdict = Field("review", description="Verdict for a score inside [low, high).")

    @model_validator(mode="after")
    def _band(self) -> "UncertaintyRule":
        if self.low >= self.high:
            raise FieldIssues([(("low",), f"expected low < high ({self.high:g}), got {self.low:g}")])
        return self


class DisagreementRule(_RuleBase):
    type: Literal["disagreement"] = Field(..., description="Send the unit to review when ensemble models disagree.")
    max_spread: Optional[Fraction] = Field(
        None, description="Largest allowed spread (max - min) of model scores on one fused box."
    )
    min_agreement: Optional[Fraction] = Field(
        None, description="Smallest allowed fraction of models that found a fused box."
    )
    verdict: Verdict = Field("review", description="Verdict on disagreement.")

    @model_validator(mode="after")
    def _something(self) -> "DisagreementRule":
        if self.max_spread is None and self.min_agreement is None:
            raise FieldIssues([((), "give `max_spread`, `min_agreement` or both")])
        return self


class AnyDefectRule(_RuleBase):
    type: Literal["any_defect"] = Field(
        ..., description="Judge the unit when any detection of `classes` remains (usually the last rule)."
    )
    verdict: Verdict = Field("fail", description="Verdict when a detection remains.")
    min_score: Fraction = Field(
        0.0, description="Only detections scoring at least this count; lower ones are left to an uncertainty rule."
    )


Rule = Annotated[
    Union[
        ClassThresholdRule,
        SizeRule,
        RegionRule,
        AgreementRule,
        PersistenceRule,
        CountRule,
        UncertaintyRule,
        DisagreementRule,
        AnyDefectRule,
    ],
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------------------------
# Wafer-level rules
# --------------------------------------------------------------------------------------------


class DefectDieFractionRule(_Model):
    type: Literal["defect_die_fraction"] = Field(..., description="Judge the wafer by the fraction of defective dies.")
    id: Slug = Field(..., description="Rule id, unique across rules and wafer_rules.")
    max_fraction: Fraction = Field(..., description="Highest allowed fraction (0..1) of failed dies on the wafer.")
    verdict: Verdict = Field("fail", description="Wafer verdict when the fraction is exceeded.")


class SpatialSignatureRule(_Model):
    type: Literal["spatial_signature"] = Field(
        ..., description="Judge the wafer by spatial patterns of defective dies."
    )
    id: Slug = Field(..., description="Rule id, unique across rules and wafer_rules.")
    signatures: Annotated[list[Literal["cluster", "edge_ring", "scratch_line"]], _unique_list("signature")] = Field(
        default_factory=lambda: ["cluster", "edge_ring", "scratch_line"],
        min_length=1,
        description="Patterns that trigger the rule.",
    )
    min_dies: int = Field(3, ge=1, description="Minimum defective dies forming a pattern.")
    verdict: Verdict = Field("fail", description="Wafer verdict when a pattern is found.")


WaferRule = Annotated[Union[DefectDieFractionRule, SpatialSignatureRule], Field(discriminator="type")]


# --------------------------------------------------------------------------------------------
# Flow, storage
# --------------------------------------------------------------------------------------------


class FlowConfig(_Model):
    mode: Literal["inspection", "monitoring"] = Field(
        "inspection",
        description="inspection: every unit is judged, queues apply back-pressure and never drop; "
        "monitoring: live video, latest frame wins, dropped frames are counted.",
    )
    queue_size: int = Field(8, ge=1, description="Capacity of each pipeline queue, in frames.")
    batch_size: int = Field(1, ge=1, description="Frames per inference batch.")
    workers: int = Field(1, ge=1, description="Inference worker threads.")


class StorageConfig(_Model):
    data_dir: Optional[str] = Field(
        None,
        min_length=1,
        description="Data folder (database, images, config snapshots). Resolution order: environment variable "
        "INSPECTOR_DATA, then this field, then './inspector-data' relative to the current directory.",
    )
    db_name: str = Field(
        "inspector.sqlite", pattern=r"^[^/\\]+$", description="SQLite file name inside the data folder."
    )
    image_format: Literal["png", "jpeg"] = Field(
        "png", description="Format of stored frames (wafer images must be png: lossless)."
    )
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality 1..100 when image_format is jpeg.")
    retention_days: Optional[int] = Field(
        None, ge=1, description="Delete stored images older than this many days; null = keep forever."
    )
    store_images: Literal["all", "flagged", "none"] = Field(
        "all", description="Which frames' images are stored: all, only fail / review ones, or none."
    )


# --------------------------------------------------------------------------------------------
# MES outputs
# --------------------------------------------------------------------------------------------


class BackoffConfig(_Model):
    """Retry delays of one MES output: ``initial_s * multiplier**(n-1)`` capped at ``max_s``, with jitter."""

    initial_s: float = Field(0.5, gt=0, le=3600, description="Delay after the first failure, in seconds.")
    max_s: float = Field(60.0, gt=0, le=86400, description="Longest delay between retries, in seconds.")
    multiplier: float = Field(2.0, ge=1.0, le=10.0, description="Growth of the delay per consecutive failure "
                              "(1 = constant delay).")
    jitter: Fraction = Field(
        0.5, description="Random share of each delay (0 = fixed, 0.5 = half fixed half random, 1 = fully random), "
        "so that many stations do not retry in step after a shared outage."
    )

    @model_validator(mode="after")
    def _order(self) -> "BackoffConfig":
        if self.max_s < self.initial_s:
            raise FieldIssues([(("max_s",), f"must be >= initial_s ({self.initial_s:g}), got {self.max_s:g}")])
        return self


class _OutboxOutput(_Model):
    """What every outbox-fed output shares: how its forwarder retries and batches."""

    backoff: BackoffConfig = Field(default_factory=BackoffConfig, description="Retry back-off after failures.")
    batch_size: int = Field(
        200, ge=1, le=10000, description="Messages handed to the transport per delivery round "
        "(and marked delivered per transaction)."
    )


class _TlsFields(_Model):
    """Server verification and the optional client certificate (mutual TLS)."""

    verify_tls: bool = Field(
        True, description="Verify the server's TLS certificate and host name; false is insecure (test benches only) "
        "and is logged as such."
    )
    ca_file: Optional[PathText] = Field(
        None, description="CA bundle (PEM) to verify the server with, e.g. a private CA; null = the system CAs."
    )
    cert_file: Optional[PathText] = Field(
        None, description="Client certificate (PEM) for servers that require one (mutual TLS); null = none."
    )
    key_file: Optional[PathText] = Field(
        None, description="Private key (PEM) of cert_file; null = the key is inside cert_file."
    )

    @model_validator(mode="after")
    def _tls_files(self) -> "_TlsFields":
        issues: list[tuple[Loc, str]] = []
        if self.ca_file is not None and not self.verify_tls:
            issues.append((("ca_file",), "a CA file is given but verify_tls is false; remove one of them "
                           "(a CA file is only used to verify the server)"))
        if self.key_file is not None and self.cert_file is None:
            issues.append((("key_file",), "a key file needs its certificate: give cert_file too"))
        _raise_if(issues)
        return self


class HttpOutput(_OutboxOutput, _TlsFields):
    type: Literal["http"] = Field(..., description="POST one JSON result per unit to an HTTP endpoint.")
    id: Slug = Field(..., description="Output id, unique among MES outputs (names its outbox).")
    url: str = Field(..., description="Endpoint URL, starting with http:// or https://.")
    token_env: Optional[EnvName] = Field(
        None, description="Name of the environment variable holding the bearer token (never the token itself)."
    )
    timeout_s: float = Field(5.0, gt=0, le=600, description="Timeout of one request (connect, send, answer), "
                             "in seconds.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected a URL starting with http:// or https://, got {v!r}")
        return v

    @model_validator(mode="after")
    def _tls_needs_https(self) -> "HttpOutput":
        if not self.url.startswith("https://"):
            given = [f for f in ("ca_file", "cert_file") if getattr(self, f) is not None]
            if given:
                raise FieldIssues([((given[0],), f"only used with an https:// url, got {self.url!r}")])
        return self


class MqttOutput(_OutboxOutput, _TlsFields):
    type: Literal["mqtt"] = Field(..., description="Publish one JSON result per unit to an MQTT broker.")
    id: Slug = Field(..., description="Output id, unique among MES outputs (names its outbox).")
    host: str = Field(..., min_length=1, description="Broker host name or IP address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    topic_template: str = Field(
        "inspector/{station}/{lot}",
        min_length=1,
        description="Topic with placeholders among: " + ", ".join("{" + f + "}" for f in MQTT_TOPIC_FIELDS) + ".",
    )
    qos: Literal[0, 1, 2] = Field(
        1, description="MQTT quality of service (1 = at least once; results carry ids to de-duplicate)."
    )
    tls: bool = Field(False, description="Connect with TLS (usually port 8883); see verify_tls, ca_file, cert_file.")
    username_env: Optional[EnvName] = Field(None, description="Name of the environment variable holding the user name.")
    password_env: Optional[EnvName] = Field(None, description="Name of the environment variable holding the password.")
    timeout_s: float = Field(5.0, gt=0, le=600, description="Longest wait for the broker's CONNACK and for the "
                             "PUBACKs of one window of messages, in seconds.")
    window: int = Field(100, ge=1, le=65535, description="Messages in flight (published, PUBACK pending) at once.")

    @model_validator(mode="after")
    def _tls_fields_need_tls(self) -> "MqttOutput":
        if not self.tls:
            given = [f for f in ("ca_file", "cert_file") if getattr(self, f) is not None]
            if not self.verify_tls:
                given.append("verify_tls")
            if given:
                raise FieldIssues([((given[0],), "only used with tls: true (the connection is plain MQTT)")])
        return self

    @field_validator("topic_template")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as exc:
            raise ValueError(f"expected a topic with {{placeholders}}, got {v!r} ({exc})") from None
        for name in names:
            if name not in MQTT_TOPIC_FIELDS:
                raise ValueError(f"unknown placeholder {{{name}}}; allowed: {', '.join(MQTT_TOPIC_FIELDS)}")
        return v


class FileDropOutput(_OutboxOutput):
    type: Literal["filedrop"] = Field(..., description="Write one JSON file per unit into a folder (atomic rename).")
    id: Slug = Field(..., description="Output id, unique among MES outputs.")
    folder: PathText = Field(..., description="Target folder; relative paths resolve against the data folder.")


class KlarfOutput(_OutboxOutput):
    type: Literal["klarf"] = Field(..., description="Write one KLARF defect file per wafer.")
    id: Slug = Field(..., description="Output id, unique among MES outputs.")
    folder: PathText = Field(..., description="Target folder; relative paths resolve against the data folder.")


class OpcUaOutput(_Model):
    type: Literal["opcua"] = Field(..., description="Expose the latest results on an OPC UA server.")
    id: Slug = Field(..., description="Output id, unique among MES outputs.")
    endpoint: str = Field(
        "opc.tcp://127.0.0.1:4840/inspector",
        pattern=r"^opc\.tcp://",
        description="Server endpoint 'opc.tcp://host:port/path'.",
    )


MesOutput = Annotated[
    Union[HttpOutput, MqttOutput, FileDropOutput, KlarfOutput, OpcUaOutput], Field(discriminator="type")
]


class MesOutboxConfig(_Model):
    """Housekeeping of the outbox shared by every MES output."""

    retention_days: float = Field(
        7.0, gt=0, le=3650, description="Delivered messages older than this many days are deleted (the decisions "
        "stay in the store; undelivered messages are never deleted)."
    )
    prune_interval_min: float = Field(
        10.0, gt=0, le=1440, description="How often, in minutes, each forwarder looks for delivered messages to delete."
    )
    prune_batch: int = Field(
        500, ge=1, le=100000, description="Rows deleted per transaction when pruning (small: the station's "
        "writer never waits long)."
    )


# --------------------------------------------------------------------------------------------
# Top level
# --------------------------------------------------------------------------------------------


def source_id(source: Union[SyntheticWaferSource, FolderSource, VideoSource, GenicamSource], index: int) -> str:
    """Id a source's frames carry: its `id`, else its camera id, else '<type>-<index>'."""
    return source.id or getattr(source, "camera", None) or f"{source.type}-{index}"


class StationConfig(_Model):
    version: int = Field(
        SCHEMA_VERSION, description=f"Schema version of this file (this Inspector reads version {SCHEMA_VERSION})."
    )
    station: StationInfo = Field(..., description="Who this station is.")
    sources: list[Source] = Field(..., min_length=1, description="Frame sources (plug-in chosen by `type`).")
    models: list[ModelSpec] = Field(
        ..., min_length=1, description="Detection models of the ensemble (all with the same class_names)."
    )
    fusion: FusionConfig = Field(default_factory=FusionConfig, description="How ensemble detections are fused.")
    rules: list[Rule] = Field(
        default_factory=list, description="Per-frame rules, applied in order (plug-in chosen by `type`)."
    )
    wafer_rules: list[WaferRule] = Field(
        default_factory=list, description="Wafer-level rules applied once all dies of a wafer are judged."
    )
    flow: FlowConfig = Field(
        default_factory=FlowConfig, description="Pipeline flow: inspection (never drop) or monitoring (latest wins)."
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig, description="Where and how results and images are stored."
    )
    mes: list[MesOutput] = Field(
        default_factory=list, description="MES / line-control outputs, each fed through a durable outbox."
    )
    mes_outbox: MesOutboxConfig = Field(
        default_factory=MesOutboxConfig, description="Retention of delivered MES messages in the outbox."
    )
    wafer: Optional[WaferGeometry] = Field(None, description="Wafer geometry; required when station.domain is 'wafer'.")
    pixel_size_um: Optional[float] = Field(
        None, gt=0, description="Micrometres per image pixel; needed by size rules in unit 'um'."
    )

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"unsupported config version {v}; this Inspector reads version {SCHEMA_VERSION}")
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> "StationConfig":
        # All cross-field problems are collected and raised together, each at its own path.
        issues: list[tuple[Loc, str]] = []

        def add(loc: Loc, msg: str) -> None:
            issues.append((loc, msg))

        domain = self.station.domain
        n_models = len(self.models)

        if domain == "wafer" and self.wafer is None:
            add(("wafer",), "required when station.domain is 'wafer' (die_pitch_x_mm, die_pitch_y_mm, ...)")
        if domain == "construction" and self.flow.mode == "inspection":
            add(("flow", "mode"), "domain 'construction' must use 'monitoring': live video cannot wait for the "
                "pipeline, so the latest frame wins; got 'inspection'")
        if domain == "wafer" and self.storage.image_format == "jpeg":
            add(("storage", "image_format"), "wafer images must be stored lossless: expected 'png', got 'jpeg'")

        # One label space for the whole ensemble, or fusion would merge unrelated classes.
        first = self.models[0]
        for i, m in enumerate(self.models[1:], start=1):
            if m.class_names != first.class_names:
                add(("models", i, "class_names"), f"model {m.name!r} has class_names {m.class_names}, but model "
                    f"{first.name!r} has {first.class_names}; all models need the same classes in the same order")
        _dupes(issues, [m.name for m in self.models], "models", "name", "model name")
        if self.fusion.k > n_models:
            add(("fusion", "k"), f"expected at most the number of models ({n_models}), got {self.fusion.k}")

        source_fields = ["camera" if s.id is None and hasattr(s, "camera") else "id" for s in self.sources]
        _dupes(issues, [source_id(s, i) for i, s in enumerate(self.sources)], "sources", source_fields, "source id")
        _dupes(issues, [o.id for o in self.mes], "mes", "id", "MES output id")

        seen: dict[str, str] = {}
        for section, rules in (("rules", self.rules), ("wafer_rules", self.wafer_rules)):
            for i, rule in enumerate(rules):
                if rule.id in seen:
                    add((section, i, "id"), f"duplicate rule id {rule.id!r} (already used by {seen[rule.id]})")
                else:
                    seen[rule.id] = f"{section}[{i}]"

        known = set().union(*(m.class_names for m in self.models))
        unknown = "unknown class {!r}; the models' classes are: " + ", ".join(first.class_names)
        for i, rule in enumerate(self.rules):
            for j, name in enumerate(rule.classes or []):
                if name not in known:
                    add(("rules", i, "classes", j), unknown.format(name))
            if isinstance(rule, ClassThresholdRule):
                for name in rule.thresholds:
                    if name not in known:
                        add(("rules", i, "thresholds", name), unknown.format(name))
            if isinstance(rule, SizeRule) and rule.unit == "um" and self.pixel_size_um is None:
                add(("rules", i, "unit"), "unit 'um' needs the top-level `pixel_size_um` (micrometres per pixel)")
            if isinstance(rule, RegionRule) and rule.edge_exclusion_mm is not None and self.wafer is None:
                add(("rules", i, "edge_exclusion_mm"), "needs the `wafer` section (wafer geometry)")
            if isinstance(rule, AgreementRule) and rule.k > n_models:
                add(("rules", i, "k"), f"expected at most the number of models ({n_models}), got {rule.k}")
        if self.wafer_rules and self.wafer is None:
            add(("wafer_rules",), "wafer rules need the `wafer` section (wafer geometry)")

        _raise_if(issues)
        return self


def _dupes(
    issues: list[tuple[Loc, str]], values: list[str], section: str, field: Union[str, list[str]], what: str
) -> None:
    first: dict[str, int] = {}
    for i, v in enumerate(values):
        if v in first:
            name = field if isinstance(field, str) else field[i]
            issues.append(((section, i, name), f"duplicate {what} {v!r} (already used by {section}[{first[v]}])"))
        else:
            first[v] = i
