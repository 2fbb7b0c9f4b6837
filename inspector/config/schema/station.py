"""The whole station config: who the station is, its wafer geometry, flow and storage, and the
checks that span sections (unique ids, rules naming known models and classes, ...)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from inspector.config.schema.audit import AuditConfig
from inspector.config.schema.base import SCHEMA_VERSION, ConfigModel, Loc, Slug, raise_if
from inspector.config.schema.mes import MesOutboxConfig, MesOutput
from inspector.config.schema.models import FusionConfig, ModelSpec, ModelTrust
from inspector.config.schema.reports import ReportsConfig, report_issues
from inspector.config.schema.rules import AgreementRule, ClassThresholdRule, RegionRule, Rule, SizeRule, WaferRule
from inspector.config.schema.site import SiteConfig
from inspector.config.schema.sources import (
    FolderSource,
    GenicamSource,
    Source,
    SyntheticSiteSource,
    SyntheticWaferSource,
    VideoSource,
)


# --------------------------------------------------------------------------------------------
# Station, wafer geometry
# --------------------------------------------------------------------------------------------


class StationInfo(ConfigModel):
    id: Slug = Field(..., description="Station id, recorded with every frame and decision (lowercase slug).")
    name: str = Field(..., min_length=1, description="Human-readable station name shown in the GUI and reports.")
    domain: Literal["wafer", "construction", "generic"] = Field(
        ..., description="Application domain; selects domain checks (wafer geometry, live-video flow)."
    )


class WaferGeometry(ConfigModel):
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
        raise_if(issues)
        return self



# --------------------------------------------------------------------------------------------
# Flow, storage
# --------------------------------------------------------------------------------------------


class FlowConfig(ConfigModel):
    mode: Literal["inspection", "monitoring"] = Field(
        "inspection",
        description="inspection: every unit is judged, queues apply back-pressure and never drop; "
        "monitoring: live video, latest frame wins, dropped frames are counted.",
    )
    queue_size: int = Field(8, ge=1, description="Capacity of each pipeline queue, in frames.")
    batch_size: int = Field(1, ge=1, description="Frames per inference batch.")
    workers: int = Field(1, ge=1, description="Inference worker threads.")


class StorageConfig(ConfigModel):
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
# Top level
# --------------------------------------------------------------------------------------------


def source_id(source: Union[SyntheticWaferSource, SyntheticSiteSource, FolderSource, VideoSource, GenicamSource],
              index: int) -> str:
    """Id a source's frames carry: its `id`, else its camera id, else '<type>-<index>'."""
    return source.id or getattr(source, "camera", None) or f"{source.type}-{index}"


class StationConfig(ConfigModel):
    version: int = Field(
        SCHEMA_VERSION, description=f"Schema version of this file (this Inspector reads version {SCHEMA_VERSION})."
    )
    station: StationInfo = Field(..., description="Who this station is.")
    sources: list[Source] = Field(..., min_length=1, description="Frame sources (plug-in chosen by `type`).")
    models: list[ModelSpec] = Field(
        ..., min_length=1, description="Detection models of the ensemble (all with the same class_names)."
    )
    fusion: FusionConfig = Field(default_factory=FusionConfig, description="How ensemble detections are fused.")
    model_trust: ModelTrust = Field(
        default_factory=ModelTrust, description="Signed models: require signatures, and the trusted public keys."
    )
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
    site: Optional[SiteConfig] = Field(
        None, description="Construction site: tracking, PPE association, incident rules, evidence (defaults apply "
        "when station.domain is 'construction' and this is left out).",
    )
    pixel_size_um: Optional[float] = Field(
        None, gt=0, description="Micrometres per image pixel; needed by size rules in unit 'um'."
    )
    reports: ReportsConfig = Field(
        default_factory=ReportsConfig, description="Incident reports the station writes on a schedule."
    )
    audit: AuditConfig = Field(
        default_factory=AuditConfig, description="Anchors of the audit chain outside the database: signed checkpoints."
    )

    @property
    def site_config(self) -> SiteConfig:
        """The site section, or its defaults."""
        return self.site if self.site is not None else SiteConfig()

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
        if self.site is not None:  # left out, its defaults are checked where a site station is built
            site = self.site
            names = set(self.models[0].class_names)
            for key in ("worker", "hat", "vest"):
                cls = getattr(site.classes, key)
                if cls not in names:
                    add(("site", "classes", key), f"unknown class {cls!r}; the models' classes are: "
                        + ", ".join(self.models[0].class_names))
            zone_ids = {z.id for src in self.sources for z in getattr(src, "zones", [])}
            for i, rule in enumerate(site.incidents):
                for j, z in enumerate(rule.zones or []):
                    if z not in zone_ids:
                        add(("site", "incidents", i, "zones", j), f"unknown zone {z!r}; the sources' zones are: "
                            + (", ".join(sorted(zone_ids)) or "none"))
            seen_ids: dict[str, int] = {}
            for i, rule in enumerate(site.incidents):
                if rule.id in seen_ids:
                    add(("site", "incidents", i, "id"), f"duplicate incident rule id {rule.id!r} (already used by "
                        f"site.incidents[{seen_ids[rule.id]}])")
                seen_ids.setdefault(rule.id, i)
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
        issues += report_issues(
            self.reports, mes_ids={o.id for o in self.mes if o.type in ("filedrop", "http")},
            cameras={getattr(s, "camera", None) or source_id(s, i) for i, s in enumerate(self.sources)},
            zones={z.id for src in self.sources for z in getattr(src, "zones", [])})

        raise_if(issues)
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
