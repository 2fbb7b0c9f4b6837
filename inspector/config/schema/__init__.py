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

The package: ``base`` (conventions, field types), ``sources``, ``models``, ``rules``, ``mes``, ``site``,
``reports`` (scheduled reports) and ``station`` (the whole config); every public name is importable from here.
"""

from inspector.config.schema.base import (
    ENV_NAME_PATTERN,
    MODEL_NAME_PATTERN,
    MQTT_TOPIC_FIELDS,
    PATTERN_HINTS,
    REGISTRY_PATTERN,
    SCHEMA_VERSION,
    SHA256_PATTERN,
    SLUG_PATTERN,
    EnvName,
    FieldIssues,
    Fraction,
    Loc,
    PathText,
    Point,
    Polygon,
    Size32,
    Slug,
)
from inspector.config.schema.audit import AuditConfig
from inspector.config.schema.site import (
    EvidenceConfig,
    IncidentKind,
    IncidentRule,
    PpeAssociation,
    SiteClasses,
    SiteConfig,
    TrackerConfig,
)
from inspector.config.schema.sources import (
    FolderSource,
    GenicamSource,
    ReconnectPolicy,
    Source,
    SyntheticSiteSource,
    SyntheticWaferSource,
    VideoSource,
    WaferSignature,
    Zone,
    Zones,
)
from inspector.config.schema.models import (
    FusionConfig,
    ModelSpec,
    ModelTrust,
    Tiling,
)
from inspector.config.schema.rules import (
    AgreementRule,
    AnyDefectRule,
    ClassThresholdRule,
    CountRule,
    DefectDieFractionRule,
    DisagreementRule,
    PersistenceRule,
    RegionRule,
    Rule,
    SizeRule,
    SpatialSignatureRule,
    UncertaintyRule,
    Verdict,
    WaferRule,
)
from inspector.config.schema.mes import (
    BackoffConfig,
    FileDropOutput,
    HttpOutput,
    KlarfOutput,
    MesOutboxConfig,
    MesOutput,
    MqttOutput,
    OpcUaOutput,
)
from inspector.config.schema.reports import (
    WEEKDAYS,
    IncidentState,
    ReportFilters,
    ReportSchedule,
    ReportsConfig,
)
from inspector.config.schema.station import (
    FlowConfig,
    StationConfig,
    StationInfo,
    StorageConfig,
    WaferGeometry,
    source_id,
)

__all__ = [
    "AuditConfig",
    "WEEKDAYS",
    "IncidentState",
    "ReportFilters",
    "ReportSchedule",
    "ReportsConfig",
    "EvidenceConfig",
    "IncidentKind",
    "IncidentRule",
    "PpeAssociation",
    "SiteClasses",
    "SiteConfig",
    "TrackerConfig",
    "AgreementRule",
    "AnyDefectRule",
    "BackoffConfig",
    "ClassThresholdRule",
    "CountRule",
    "DefectDieFractionRule",
    "DisagreementRule",
    "ENV_NAME_PATTERN",
    "EnvName",
    "FieldIssues",
    "FileDropOutput",
    "FlowConfig",
    "FolderSource",
    "Fraction",
    "FusionConfig",
    "GenicamSource",
    "HttpOutput",
    "KlarfOutput",
    "Loc",
    "MODEL_NAME_PATTERN",
    "MQTT_TOPIC_FIELDS",
    "MesOutboxConfig",
    "MesOutput",
    "ModelSpec",
    "ModelTrust",
    "MqttOutput",
    "OpcUaOutput",
    "PATTERN_HINTS",
    "PathText",
    "PersistenceRule",
    "Point",
    "Polygon",
    "REGISTRY_PATTERN",
    "ReconnectPolicy",
    "RegionRule",
    "Rule",
    "SCHEMA_VERSION",
    "SHA256_PATTERN",
    "SLUG_PATTERN",
    "Size32",
    "SizeRule",
    "Slug",
    "Source",
    "SpatialSignatureRule",
    "StationConfig",
    "StationInfo",
    "StorageConfig",
    "SyntheticSiteSource",
    "SyntheticWaferSource",
    "Tiling",
    "UncertaintyRule",
    "Verdict",
    "VideoSource",
    "WaferGeometry",
    "WaferRule",
    "WaferSignature",
    "Zone",
    "Zones",
    "source_id",
]
