"""The JSON a MES receives: one unit result per frame, one wafer result per wafer, one incident
event per step of a construction-site incident.

Pure functions from station objects to plain dicts (no I/O). The bodies are fixed when the
outbox row is written, so a re-delivery sends the very same bytes; ``message_id`` (also sent as
the HTTP ``Idempotency-Key`` header) is what a receiver de-duplicates on. The schema is
:data:`UNIT_RESULT_SCHEMA` (JSON Schema, draft 2020-12), documented in docs/mes.md.

Every JSON message also carries ``audit_head`` (:func:`with_audit_head`, added by the outbox when
it queues the message): the station's audit chain head ``{seq, hash}`` as of the message's own
transaction, so it includes the audit row of the decision (and incident events) the message
reports. The outbox row's own audit row (which hashes this body) necessarily comes after it. A
receiver that keeps messages holds heads the station's database alone cannot rewrite
(``inspector db verify --mes-messages``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from inspector.core.decision import Decision
from inspector.core.frame import Frame

UNIT_SCHEMA_ID = "inspector.unit-result/1"
WAFER_SCHEMA_ID = "inspector.wafer-result/1"
INCIDENT_SCHEMA_ID = "inspector.incident-event/1"
UNIT_KEYS = ("lot", "wafer", "die_x", "die_y", "camera", "zone")
AUDIT_HEAD_KEY = "audit_head"


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds")


def idempotency_key(station: str, run_id: str, frame_id: str) -> str:
    """``station/run/frame``. Station frame ids already start with ``<run>/``: not repeated."""
    local = frame_id[len(run_id) + 1:] if frame_id.startswith(run_id + "/") else frame_id
    return f"{station}/{run_id}/{local}"


def stream_of(context: Mapping[str, Any], source: str) -> str:
    """The unit stream whose order is kept: ``lot/wafer`` (wafers), ``camera/zone`` (video), else the source."""
    if "wafer" in context:
        return f"{context.get('lot', '')}/{context['wafer']}"
    if "camera" in context or "zone" in context:
        return f"{context.get('camera', source)}/{context.get('zone', '')}"
    return str(source)


def _unit(context: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in UNIT_KEYS:
        v = context.get(k)
        if v is None:
            out[k] = None
        elif k in ("die_x", "die_y"):
            try:
                out[k] = int(v)
            except (TypeError, ValueError):
                out[k] = None
        else:
            out[k] = str(v)
    return out


def _r(v: float, nd: int = 3) -> float:
    return round(float(v), nd)


def defects(decision: Decision, class_names: Sequence[str], pixel_size_um: float | None) -> list[dict[str, Any]]:
    """The kept (fused) detections: class, score, box and size in pixels and, with a pixel size, in µm."""
    det = decision.detections
    out = []
    for (x0, y0, x1, y1), score, cid in zip(det.xyxy.tolist(), det.score.tolist(), det.class_id.tolist()):
        w, h = x1 - x0, y1 - y0
        d: dict[str, Any] = {
            "class": class_names[cid] if 0 <= cid < len(class_names) else str(cid),
            "class_id": int(cid),
            "score": _r(score, 4),
            "box_px": [_r(x0), _r(y0), _r(x1), _r(y1)],
            "size_px": {"w": _r(w), "h": _r(h), "max": _r(max(w, h))},
            "size_um": None,
        }
        if pixel_size_um:
            s = pixel_size_um
            d["size_um"] = {"w": _r(w * s), "h": _r(h * s), "max": _r(max(w, h) * s)}
        out.append(d)
    return out


def unit_payload(frame: Frame, decision: Decision, *, station: str, run_id: str, class_names: Sequence[str],
                 pixel_size_um: float | None = None, models: Sequence[Mapping[str, str]] = (),
                 image: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One unit result (schema ``inspector.unit-result/1``). ``image`` stays None until the store
    has written the image (the outbox hook fills it in with the stored sha256 and path)."""
    ctx = frame.context
    return {
        "schema": UNIT_SCHEMA_ID,
        "message_id": idempotency_key(station, run_id, frame.frame_id),
        "kind": "unit",
        "station": station,
        "run_id": run_id,
        "frame_id": frame.frame_id,
        "source": frame.source,
        "stream": stream_of(ctx, frame.source),
        "unit": _unit(ctx),
        "verdict": decision.verdict.value,
        "reasons": [{"rule_id": r.rule_id, "verdict": r.verdict.value, "message": r.message}
                    for r in decision.reasons],
        "error": decision.error,
        "defects": defects(decision, class_names, pixel_size_um),
        "pixel_size_um": pixel_size_um,
        "image_px": {"w": frame.width, "h": frame.height},
        "config_hash": decision.config_hash,
        "model_set_version": decision.model_set_version,
        "models": [dict(m) for m in models],
        "t_capture": _iso(frame.t_utc),
        "t_decided": _iso(decision.t_decided),
        "image": None if image is None else dict(image),
    }


def with_audit_head(body: Mapping[str, Any], head: tuple[int, str] | None) -> dict[str, Any]:
    """The body with the audit chain head ``{seq, hash}`` (None on an empty chain)."""
    return {**body, AUDIT_HEAD_KEY: None if head is None else {"seq": int(head[0]), "hash": str(head[1])}}


def incident_key(station: str, key: str, seq: int) -> str:
    """``station/<incident key>/<seq>``: one message per step of an incident, sent at least once."""
    return f"{station}/{key}/{int(seq)}"


def incident_stream(camera: str) -> str:
    """A camera's incident events keep their order (new before update before end)."""
    return f"{camera}/incidents"


def incident_payload(event: Any, *, station: str, run_id: str, config_hash: str,
                     model_set_version: str) -> dict[str, Any]:
    """One incident event (schema ``inspector.incident-event/1``; ``event`` is an
    :class:`inspector.core.site.types.IncidentEvent`). ``kind`` is ``incident.new`` / ``update`` / ``end``."""
    return {
        "schema": INCIDENT_SCHEMA_ID,
        "message_id": incident_key(station, event.key, event.seq),
        "kind": f"incident.{event.event}",
        "station": station,
        "run_id": run_id,
        "camera": event.camera,
        "stream": incident_stream(event.camera),
        "incident": {
            "key": event.key,
            "kind": event.kind,
            "rule_id": event.rule_id,
            "severity": event.severity,
            "zone": event.zone,
            "track_id": int(event.track_id),
            "started": _iso(event.started_utc),
        },
        "seq": int(event.seq),
        "t_event": _iso(event.t_utc),
        "frame_id": event.frame_id,
        "first_frame_id": event.first_frame_id,
        "worst_frame_id": event.worst_frame_id,
        "last_frame_id": event.last_frame_id or event.frame_id,
        "worst_score": _r(event.worst_score, 4),
        "end_reason": (event.reason or None) if event.event == "end" else None,
        "config_hash": config_hash,
        "model_set_version": model_set_version,
    }


def wafer_result_payload(*, station: str, run_id: str, lot: str, wafer: str, verdict: str,
                         signature: str | None, defect_fraction: float, dies_seen: int,
                         die_map: Mapping[tuple[int, int], str], reasons: Sequence[Mapping[str, Any]],
                         config_hash: str, model_set_version: str, t: datetime | None = None) -> dict[str, Any]:
    """One wafer result (schema ``inspector.wafer-result/1``), sent once the wafer completes."""
    return {
        "schema": WAFER_SCHEMA_ID,
        "message_id": f"{station}/{run_id}/wafer/{lot}/{wafer}",
        "kind": "wafer",
        "station": station,
        "run_id": run_id,
        "stream": f"{lot}/{wafer}",
        "unit": {"lot": lot, "wafer": wafer},
        "verdict": verdict,
        "signature": signature,
        "defect_fraction": round(float(defect_fraction), 6),
        "dies_seen": int(dies_seen),
        "die_map": {f"{x},{y}": v for (x, y), v in sorted(die_map.items())},
        "reasons": [dict(r) for r in reasons],
        "config_hash": config_hash,
        "model_set_version": model_set_version,
        "t_decided": _iso(t or datetime.now(timezone.utc)),
    }


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, max_len: int = 120) -> str:
    """A file-name-safe form of a key (slashes and odd characters become '_')."""
    return _SAFE.sub("_", text).strip("._")[:max_len] or "_"


_NUM = {"type": "number"}
_STR_OR_NULL = {"type": ["string", "null"]}
_SIZE = {"type": "object", "required": ["w", "h", "max"],
         "properties": {"w": _NUM, "h": _NUM, "max": _NUM}}

UNIT_RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": UNIT_SCHEMA_ID,
    "title": "Inspector unit result",
    "type": "object",
    "required": ["schema", "message_id", "kind", "station", "run_id", "frame_id", "source", "stream", "unit",
                 "verdict", "reasons", "defects", "config_hash", "model_set_version", "t_capture", "t_decided"],
    "properties": {
        "schema": {"const": UNIT_SCHEMA_ID},
        "message_id": {"type": "string", "description": "station/run/frame: de-duplicate on this"},
        "kind": {"const": "unit"},
        "station": {"type": "string"},
        "run_id": {"type": "string"},
        "frame_id": {"type": "string"},
        "source": {"type": "string"},
        "stream": {"type": "string", "description": "lot/wafer or camera/zone; order is kept within it"},
        "unit": {"type": "object", "properties": {
            "lot": _STR_OR_NULL, "wafer": _STR_OR_NULL, "die_x": {"type": ["integer", "null"]},
            "die_y": {"type": ["integer", "null"]}, "camera": _STR_OR_NULL, "zone": _STR_OR_NULL}},
        "verdict": {"enum": ["pass", "fail", "review", "error", "not_inspected"]},
        "reasons": {"type": "array", "items": {"type": "object", "required": ["rule_id", "verdict", "message"]}},
        "error": _STR_OR_NULL,
        "defects": {"type": "array", "items": {
            "type": "object", "required": ["class", "class_id", "score", "box_px", "size_px", "size_um"],
            "properties": {
                "class": {"type": "string"}, "class_id": {"type": "integer"}, "score": _NUM,
                "box_px": {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4,
                           "description": "x0, y0, x1, y1 in image pixels"},
                "size_px": _SIZE, "size_um": {"oneOf": [_SIZE, {"type": "null"}]}}}},
        "pixel_size_um": {"type": ["number", "null"]},
        "image_px": {"type": "object", "properties": {"w": {"type": "integer"}, "h": {"type": "integer"}}},
        "config_hash": {"type": "string"},
        "model_set_version": {"type": "string"},
        "models": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "version": {"type": "string"}, "sha256": {"type": "string"}}}},
        "t_capture": {"type": "string", "format": "date-time"},
        "t_decided": {"type": "string", "format": "date-time"},
        "image": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
            "sha256": {"type": "string"}, "path": {"type": "string",
                                                   "description": "relative to the station's data folder"}}}]},
        AUDIT_HEAD_KEY: {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["seq", "hash"],
            "properties": {"seq": {"type": "integer"}, "hash": {"type": "string"}},
            "description": "the station's audit chain head as of this message's transaction (includes this "
                           "decision's audit row): keep it to check the station's record later"}]},
    },
}


def check_unit_payload(p: Mapping[str, Any]) -> list[str]:
    """Problems of a unit payload against the required fields and types (a light check, no jsonschema)."""
    problems = [f"missing field {k!r}" for k in UNIT_RESULT_SCHEMA["required"] if k not in p]
    if p.get("schema") != UNIT_SCHEMA_ID:
        problems.append(f"schema: expected {UNIT_SCHEMA_ID!r}, got {p.get('schema')!r}")
    if p.get("verdict") not in UNIT_RESULT_SCHEMA["properties"]["verdict"]["enum"]:
        problems.append(f"verdict: unexpected {p.get('verdict')!r}")
    for i, d in enumerate(p.get("defects") or []):
        for k in UNIT_RESULT_SCHEMA["properties"]["defects"]["items"]["required"]:
            if k not in d:
                problems.append(f"defects[{i}]: missing field {k!r}")
    return problems


__all__ = ["AUDIT_HEAD_KEY", "INCIDENT_SCHEMA_ID", "UNIT_KEYS", "UNIT_RESULT_SCHEMA", "UNIT_SCHEMA_ID", "WAFER_SCHEMA_ID",
           "check_unit_payload", "defects", "idempotency_key", "incident_key", "incident_payload", "incident_stream",
           "safe_name", "stream_of", "unit_payload", "wafer_result_payload", "with_audit_head"]
