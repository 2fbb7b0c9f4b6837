"""Role-checked human actions: the functions the GUI (and any other face) calls to act on a station.

The GUI must not write reviews, incidents, users or settings through the store directly: it calls
these, which check the session's role against :data:`PERMISSIONS` *before* touching anything (a
refused action writes no row and no audit row) and then write through the store, whose functions
append the audit row in the same transaction as the change.

A ``Session`` comes only from :func:`login` (a password; failures throttled and audited) or, for
the station's own unattended work, from :func:`system_session` (recorded and audited): each
carries a random token whose sha256 the database keeps. Every check looks the token up (in the
given connection, else in the database that issued the session), and re-reads the user, so a
hand-made ``Session``, an ended or expired one, a deactivated user or a changed role is refused.
The store's writers (reviews, incidents) make the same check at their entry.

Run-time settings: an engineer may move rule thresholds and model confidence floors while the
station runs, but only within :class:`Limit` s computed by :func:`tunable_limits` from the
*baseline* config (the reviewed file the station started from): by default +-0.2 around the
baseline value and never outside (0, 1). Each accepted change is validated by the config schema,
stored as a new config version (by hash) and audited with the old hash, the new hash and every
field changed, so each later decision points at the exact settings that made it.

Models are promoted and rolled back by running ``inspector-train`` in a subprocess: ``inspector``
never imports ``training`` (nor torch); the registry keeps its own hash-chained event log of who did it.

The package: ``auth`` (permission table, sessions, log-in), ``reviews`` (decisions, reviews,
incidents), ``accounts`` (users), ``settings`` (run-time tuning) and ``models`` (promote / roll
back); the faces use them as ``from inspector.station import actions; actions.login(...)``.
"""

from inspector.station.actions.accounts import (
    activate,
    add_user,
    change_own_password,
    deactivate,
    set_password,
    set_role,
)
from inspector.station.actions.auth import (
    PERMISSIONS,
    REVIEW_PERMISSION,
    PermissionDenied,
    Session,
    allowed,
    login,
    logout,
    require,
    system_session,
)
from inspector.station.actions.models import TOOL_TIMEOUT_S, Runner, ToolResult, models_promote, models_rollback
from inspector.station.actions.reports import (
    EvidenceExport,
    export_evidence,
    export_unredacted,
    generate_incident_report,
    generate_report,
    scheduled_report,
)
from inspector.station.actions.reviews import (
    acknowledge_incident,
    add_incident,
    close_incident,
    mark_false_alarm,
    review,
    review_queue,
    set_incident_status,
    view_decisions,
    view_incidents,
)
from inspector.station.actions.settings import (
    CEILING,
    DEFAULT_MAX_STEP,
    FLOOR,
    Limit,
    SettingsError,
    _tunables,  # the GUI's settings view lists the tunable values
    change_settings,
    tunable_limits,
)

__all__ = [
    "EvidenceExport", "export_evidence", "export_unredacted", "generate_incident_report", "generate_report",
    "scheduled_report",
    "DEFAULT_MAX_STEP", "PERMISSIONS", "REVIEW_PERMISSION", "Limit", "PermissionDenied", "Session", "SettingsError",
    "ToolResult", "acknowledge_incident", "activate", "add_incident", "add_user", "allowed", "change_own_password", "change_settings",
    "close_incident", "deactivate", "login", "logout", "mark_false_alarm", "models_promote", "models_rollback", "require", "review", "review_queue",
    "set_incident_status", "set_password", "set_role", "system_session", "tunable_limits", "view_decisions",
    "view_incidents",
]
