"""What each role may do in the window (to hide / disable controls).

The GUI only mirrors the rules: ``inspector.station.actions`` owns the permission table and
checks the role again on every call (raising ``PermissionDenied``), so a control enabled by
mistake still cannot act.
"""

from __future__ import annotations

from typing import Any

from inspector.station import actions

# GUI capability -> the actions permission it needs.
CAPABILITIES: dict[str, str] = {
    "station": "review",     # start / stop / pause the line: the people who judge its output
    "review": "review",
    "relabel": "relabel",
    "settings": "settings",
    "models": "models",
    "history": "view",
    "export": "view",
    "wafer": "view",
}


def can(session: Any, capability: str) -> bool:
    role = None if session is None else getattr(session, "role", None)
    if role is None:
        return False
    return actions.allowed(role, CAPABILITIES.get(capability, capability))
