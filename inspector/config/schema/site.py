"""The construction-site section: which classes are workers and PPE, the tracker, incident rules
and evidence. Required when ``station.domain`` is ``construction``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from inspector.config.schema.base import ConfigModel, FieldIssues, Fraction, Slug, unique_list

IncidentKind = Literal["no_hard_hat", "no_vest", "in_danger_zone"]


class SiteClasses(ConfigModel):
    worker: str = Field("worker", min_length=1, description="Model class of a person (the tracked object).")
    hat: str = Field("hat", min_length=1, description="Model class of a hard hat.")
    vest: str = Field("vest", min_length=1, description="Model class of a high-visibility vest.")


class TrackerConfig(ConfigModel):
    """ByteTrack's settings in seconds and plain geometry. The tracker runs on each frame's video time,
    so they hold whatever share of a camera's frames the station judges (monitoring flow drops
    frames, an archive is analysed with a stride): ``lost_s`` is a time budget, not a frame count."""

    type: Literal["bytetrack"] = Field("bytetrack", description="Multi-object tracker (ByteTrack of Roboflow's trackers).")
    min_score: Fraction = Field(0.25, description="Worker detections below this score are not tracked.")
    activation_score: Fraction = Field(0.5, description="Score a detection needs to start a new track.")
    match_iou: Fraction = Field(
        0.9, description="Matching threshold (1 - IoU cost) of ByteTrack's association: 0.9 accepts a box that overlaps "
        "a track's predicted box by IoU 0.1 (few frames a second: people move far between judged frames).",
    )
    match_buffer: float = Field(
        0.3, ge=0, le=2, description="Buffered IoU (C-BIoU): both boxes grow by this share of their size before "
        "matching, so a worker who turned or stopped between two judged frames still meets its track. 0 = plain IoU.",
    )
    motion_hz: float = Field(
        15.0, gt=0, le=120, description="Time step of the tracker's constant-velocity motion model, per second "
        "(ByteTrack's Kalman noise is tuned per step): fixed in time, not the camera's frame rate, so motion is "
        "modelled alike at 5 or 30 frames/s and across dropped frames.",
    )
    lost_s: float = Field(1.5, gt=0, description="Seconds a track survives without a detection (occlusions).")
    min_frames: int = Field(2, ge=1, description="Consecutive frames before a track counts as confirmed.")


class PpeAssociation(ConfigModel):
    head_fraction: Fraction = Field(0.3, description="Top share of a worker box taken as the head region.")
    torso: tuple[Fraction, Fraction] = Field(
        (0.2, 0.7), description="Vertical band of a worker box (from its top) taken as the torso, for vests."
    )
    hat_min_score: Fraction = Field(0.3, description="Hard-hat detections below this score are ignored.")
    vest_min_score: Fraction = Field(0.3, description="Vest detections below this score are ignored.")
    smoothing_s: float = Field(
        0.5, ge=0, description="PPE state of a track is the majority over this window (one missed hat is no violation)."
    )

    @model_validator(mode="after")
    def _band(self) -> "PpeAssociation":
        if self.torso[0] >= self.torso[1]:
            raise FieldIssues([(("torso",), f"expected top < bottom, got {list(self.torso)}")])
        return self


class IncidentRule(ConfigModel):
    id: Slug = Field(..., description="Rule id, recorded with every incident it opens.")
    kind: IncidentKind = Field(
        ..., description="no_hard_hat (anywhere on the camera), no_vest (inside a ppe_required zone), "
        "in_danger_zone (inside a restricted zone).",
    )
    persist_s: float = Field(2.0, ge=0, description="Seconds a violation must last on one track to open an incident.")
    clear_s: float = Field(2.0, ge=0, description="Seconds without the violation before the incident closes.")
    severity: Literal["low", "medium", "high"] = Field("medium", description="Severity recorded with the incident.")
    zones: Annotated[list[Slug], unique_list("zone")] | None = Field(
        None, description="Zone ids the rule applies to; null = every zone of the matching kind (or the whole image "
        "for no_hard_hat).",
    )


class EvidenceConfig(ConfigModel):
    pre_s: float = Field(3.0, ge=0, le=30, description="Seconds of video before an incident opens kept in its clip.")
    post_s: float = Field(2.0, ge=0, le=30, description="Seconds after it closes kept in its clip.")
    max_clip_s: float = Field(30.0, gt=0, le=600, description="Longest clip; a longer incident keeps its first part.")
    clip_fps: float = Field(10.0, gt=0, le=60, description="Frame rate of evidence clips (frames are sampled).")
    clip_max_side: int = Field(
        1280, ge=16, le=8192,
        description="Longest side of evidence clips in pixels (a 1080p camera's clip is 1280x720: 43 % of the "
        "encoding); the first, worst and last frames keep full size.",
    )


class SiteConfig(ConfigModel):
    classes: SiteClasses = Field(default_factory=SiteClasses, description="Which model classes are worker, hat, vest.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Worker tracking.")
    ppe: PpeAssociation = Field(default_factory=PpeAssociation, description="Associating hats and vests to workers.")
    incidents: list[IncidentRule] = Field(
        default_factory=list, description="Rules that open incidents from persistent violations."
    )
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig, description="Evidence frames and clips.")
