"""The status bar text from a metrics snapshot (pure: tested without Qt)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def queue_depth(snapshot: Mapping[str, Any]) -> int:
    total = 0
    for v in (snapshot.get("queues") or {}).values():
        if isinstance(v, (int, float)):
            total += int(v)
        elif isinstance(v, Mapping):
            total += sum(int(x) for x in v.values() if isinstance(x, (int, float)))
    return total


def status_fields(snapshot: Mapping[str, Any] | None, *, state: str, models: Sequence[str],
                  mes: Sequence[str]) -> dict[str, str]:
    """One text per status-bar field: state, fps, latency, queue, drops, models, MES."""
    snap = snapshot or {}
    lat = (snap.get("latency_ms") or {})
    e2e = lat.get("end_to_end") or {}
    if not e2e.get("n"):
        e2e = lat.get("record") or {}
    return {
        "state": state,
        "fps": f"{float(snap.get('fps') or 0.0):.1f} fps",
        "latency": f"latency p50 {_ms(e2e.get('p50'))} / p99 {_ms(e2e.get('p99'))} ms",
        "queue": f"queue {queue_depth(snap)}",
        "drops": f"drops {int(snap.get('dropped') or 0)}",
        "models": "models: " + (", ".join(models) if models else "none"),
        "mes": "MES: not configured" if not mes else "MES: " + ", ".join(mes) + " (link state n/a)",
    }
