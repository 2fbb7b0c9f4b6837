"""Frame sources (chosen by ``type``) and the zones drawn on a camera's image."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, Field, field_validator, model_validator

from inspector.config.schema.base import (
    ConfigModel,
    FieldIssues,
    Fraction,
    PathText,
    Polygon,
    Slug,
    unique,
    unique_list,
)


class Zone(ConfigModel):
    id: Slug = Field(..., description="Zone id, recorded in frame context and incidents.")
    polygon: Polygon = Field(..., description="Zone outline: list of [x, y] image-pixel points (at least 3).")
    kind: Literal["restricted", "ppe_required", "exclusion", "inspection"] = Field(
        ..., description="What the zone means: restricted (no entry), ppe_required, exclusion (ignored), inspection."
    )


def _zones_unique(zones: list[Zone]) -> list[Zone]:
    unique([z.id for z in zones], "zone id")
    return zones


Zones = Annotated[list[Zone], AfterValidator(_zones_unique)]


class _SourceBase(ConfigModel):
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
    signatures: Annotated[list[WaferSignature], unique_list("signature")] = Field(
        default_factory=lambda: ["random", "cluster", "edge_ring", "scratch_line"],
        description="Spatial defect patterns the generator may place on a wafer.",
    )
    rate_hz: Optional[float] = Field(
        None, gt=0, description="Dies per second, to pace a simulated line; null = as fast as possible."
    )


class SyntheticSiteSource(_SourceBase):
    type: Literal["synthetic_site"] = Field(
        ..., description="Synthetic construction-site camera: moving workers with and without hard hat or vest, "
        "occluders and exact ground truth (offline demo and tests; honestly synthetic, not a real site).",
    )
    camera: Slug = Field(..., description="Camera id recorded in frame context and incidents.")
    seed: int = Field(0, description="Random seed; the same seed gives the same scene, people and images.")
    width: int = Field(960, ge=160, le=3840, description="Image width in pixels.")
    height: int = Field(540, ge=120, le=2160, description="Image height in pixels.")
    fps: float = Field(10.0, gt=0, le=60, description="Frames per second of the simulated camera.")
    duration_s: float = Field(60.0, gt=0, description="Seconds of video to generate.")
    workers: int = Field(6, ge=0, le=50, description="Workers walking the site at any time.")
    p_no_hat: Fraction = Field(0.3, description="Share of workers without a hard hat.")
    p_no_vest: Fraction = Field(0.3, description="Share of workers without a vest.")
    occluders: int = Field(2, ge=0, le=20, description="Static occluders (containers, stacks) workers pass behind.")
    realtime: bool = Field(False, description="Pace frames at `fps` like a live camera; false = as fast as possible.")
    zones: Zones = Field(default_factory=list, description="Zones drawn on this camera's image.")


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
    max_megapixels: Optional[float] = Field(
        100.0, gt=0,
        description="Largest image to decode, in megapixels, checked from the file header before decoding; a "
        "larger file is recorded as ERROR with its size. 100 MP covers area-scan sensors with room and bounds one "
        "decode at ~300 MB (8-bit colour); null = no limit (only for trusted, stitched line-scan images).",
    )

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


class ReconnectPolicy(ConfigModel):
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
    freeze_frames: Optional[int] = Field(
        50, ge=2,
        description="Identical pictures in a row that count as a frozen stream (a freeze event is stored; in "
        "monitoring flow the repeats are skipped, not judged as new units). 50 is 2 s at 25 fps, like the stall "
        "timeout; a real sensor's noise makes two identical pictures unlikely. null = no count-based check.",
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
    Union[SyntheticWaferSource, SyntheticSiteSource, FolderSource, VideoSource, GenicamSource],
    Field(discriminator="type"),
]
