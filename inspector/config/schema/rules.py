"""Rules: per frame / die (chosen by ``type``) and per wafer."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from inspector.config.schema.base import ConfigModel, FieldIssues, Fraction, PathText, Polygon, Slug, unique_list


Verdict = Literal["fail", "review"]


class _RuleBase(ConfigModel):
    id: Slug = Field(..., description="Rule id, unique across rules and wafer_rules; recorded in decision reasons.")
    classes: Optional[Annotated[list[Annotated[str, Field(min_length=1)]], unique_list("class")]] = Field(
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


class DefectDieFractionRule(ConfigModel):
    type: Literal["defect_die_fraction"] = Field(..., description="Judge the wafer by the fraction of defective dies.")
    id: Slug = Field(..., description="Rule id, unique across rules and wafer_rules.")
    max_fraction: Fraction = Field(..., description="Highest allowed fraction (0..1) of failed dies on the wafer.")
    verdict: Verdict = Field("fail", description="Wafer verdict when the fraction is exceeded.")


class SpatialSignatureRule(ConfigModel):
    type: Literal["spatial_signature"] = Field(
        ..., description="Judge the wafer by spatial patterns of defective dies."
    )
    id: Slug = Field(..., description="Rule id, unique across rules and wafer_rules.")
    signatures: Annotated[list[Literal["cluster", "edge_ring", "scratch_line"]], unique_list("signature")] = Field(
        default_factory=lambda: ["cluster", "edge_ring", "scratch_line"],
        min_length=1,
        description="Patterns that trigger the rule.",
    )
    min_dies: int = Field(3, ge=1, description="Minimum defective dies forming a pattern.")
    verdict: Verdict = Field("fail", description="Wafer verdict when a pattern is found.")


WaferRule = Annotated[Union[DefectDieFractionRule, SpatialSignatureRule], Field(discriminator="type")]
