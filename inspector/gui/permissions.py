"""What each role may do in the window (to hide / disable controls).

The GUI only mirrors the rules: ``inspector.station.actions`` owns the permission table and
checks the role again on every call (raising ``PermissionDenied``), so a control enabled by
mistake still cannot act.
"""

from __future__ import annotations

from typing import Any

from inspector.station import actions

# GUI capability -> the actions permission it needs (a tuple: any one of them).
CAPABILITIES: dict[str, str | tuple[str, ...]] = {
    "station": "review",     # start / stop / pause the line: the people who judge its output
    "review": "review",
    "relabel": "relabel",
    "settings": "settings",
    "models": "models",
    "history": "view",
    "export": "view",
    "wafer": "view",
    # The incidents tab: whoever acts on incidents (safety manager) and whoever turns false alarms
    # into better models (engineer, who may relabel); the steps themselves need "incidents".
    "incidents_view": ("incidents", "relabel"),
    "incidents": "incidents",
}


def can(session: Any, capability: str) -> bool:
    role = None if session is None else getattr(session, "role", None)
    if role is None:
        return False
    needs = CAPABILITIES.get(capability, capability)
    return any(actions.allowed(role, n) for n in ((needs,) if isinstance(needs, str) else needs))
