"""The status bar text from a metrics snapshot (pure: tested without Qt)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Long transport errors -> a few words for the status bar (the full text is in `inspector mes status`).
_SHORT_ERRORS: tuple[tuple[str, str], ...] = (
    (r"connection refused", "connection refused"),
    (r"certificate verification failed|certificate_verify_failed", "TLS certificate not trusted"),
    (r"client certificate|certificate required", "TLS client certificate needed"),
    (r"handshake failed|\bssl\b|\btls\b", "TLS error"),
    (r"timed out|timeout", "timeout"),
    (r"no puback", "no PUBACK"),
    (r"broker refused", "broker refused"),
    (r"name or service not known|nodename nor servname|getaddrinfo|name resolution", "host not found"),
    (r"no route to host", "no route to host"),
    (r"network is unreachable", "network unreachable"),
    (r"connection reset|connection aborted|connection lost|remote end closed", "connection lost"),
    (r"no space left", "disk full"),
    (r"database or disk is full", "store full"),
    (r"disk i/o error", "store I/O error"),
    (r"database is locked", "store locked"),
    (r"permission denied", "permission denied"),
    (r"cannot (write|create folder|sync folder)", "cannot write the folder"),
)
_MAX_ERROR = 40


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


def duration(seconds: float | None) -> str:
    """45s, 3m, 2h05m, 3d04h: short and still readable at a glance."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def short_error(message: str | None) -> str:
    """A few words for a transport's last error: 'connection refused', 'HTTP 503', 'timeout', ..."""
    if not message:
        return ""
    text = str(message)
    m = re.search(r"\bHTTP (\d{3})\b", text)
    if m:
        return f"HTTP {m.group(1)}"
    low = text.lower()
    for pattern, short in _SHORT_ERRORS:
        if re.search(pattern, low):
            return short
    text = text.rsplit(": ", 1)[-1].strip()  # the innermost cause, without the message key / URL
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR - 1].rstrip() + "\u2026"


def mes_stats(snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
    """Per output stats (MesHub.stats) from a station snapshot: ``mes`` or the ``queues.mes`` gauge."""
    stats = snapshot.get("mes")
    if not isinstance(stats, Mapping):
        stats = (snapshot.get("queues") or {}).get("mes")
    return stats if isinstance(stats, Mapping) else {}


def mes_link(name: str, st: Mapping[str, Any] | None) -> str:
    """One output: 'mqtt down 2m (connection refused), depth 1,234, oldest 3m'."""
    if not isinstance(st, Mapping):
        return name  # not started (or an OPC UA live view, which has no outbox)
    link = st.get("link") or ("down" if st.get("down") else "unknown")
    text = f"{name} {link}"
    if link == "down":
        since = st.get("link_for_s")
        err = short_error(st.get("last_error"))
        text += (f" {duration(since)}" if since is not None else "") + (f" ({err})" if err else "")
    elif link == "retrying":
        held = int(st.get("held_streams") or 0)
        err = short_error(st.get("last_error"))
        text += f" ({held} stream{'s' if held != 1 else ''} held" + (f": {err})" if err else ")")
    pending = int(st.get("pending") or 0)
    text += f", depth {pending:,}"
    if pending and st.get("oldest_age_s") is not None:
        text += f", oldest {duration(float(st['oldest_age_s']))}"
    return text


def mes_field(snapshot: Mapping[str, Any] | None, configured: Sequence[str]) -> str:
    """The status bar's MES text: every configured output, then any other output with stats."""
    if not configured:
        return "MES: not configured"
    stats = mes_stats(snapshot or {})
    names = list(configured) + sorted(n for n in stats if n not in configured)
    return "MES: " + " | ".join(mes_link(n, stats.get(n)) for n in names)


def fault_reason(snapshot: Mapping[str, Any]) -> str:
    """Why the station faulted, in a few words (the newest 'faulted: ...' error), or ''."""
    for err in reversed(list(snapshot.get("errors") or ())):
        if str(err).startswith("faulted: "):
            return short_error(str(err)[len("faulted: "):])
    return ""


def events_text(snapshot: Mapping[str, Any]) -> str:
    """Station events for the status bar: 'stall 1, freeze 2; FROZEN gate since 08:00:01', or ''."""
    ev = snapshot.get("events") or {}
    counts = ev.get("counts") or {}
    text = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in sorted(counts.items()))
    open_now = [f"{str(o.get('kind', '')).replace('_', ' ').upper()} {o.get('source') or 'station'} since "
                f"{str(o.get('since', ''))[11:19]}" for o in ev.get("open") or ()]
    return "; ".join(x for x in (text, ", ".join(open_now)) if x)


def status_fields(snapshot: Mapping[str, Any] | None, *, state: str, models: Sequence[str],
                  mes: Sequence[str]) -> dict[str, str]:
    """One text per status-bar field: state (with the fault's reason), fps, latency, queue, drops
    (with station events: stalls, freezes, reconnects, store gaps), models, MES."""
    snap = snapshot or {}
    if state == "faulted":
        why = fault_reason(snap)
        state = "FAULTED" + (f": {why}" if why else "")
    events = events_text(snap)
    lat = (snap.get("latency_ms") or {})
    e2e = lat.get("end_to_end") or {}
    if not e2e.get("n"):
        e2e = lat.get("record") or {}
    return {
        "state": state,
        "fps": f"{float(snap.get('fps') or 0.0):.1f} fps",
        "latency": f"latency p50 {_ms(e2e.get('p50'))} / p99 {_ms(e2e.get('p99'))} ms",
        "queue": f"queue {queue_depth(snap)}",
        "drops": f"drops {int(snap.get('dropped') or 0)}" + (f" | events: {events}" if events else ""),
        "models": "models: " + (", ".join(models) if models else "none"),
        "mes": mes_field(snap, mes),
    }
