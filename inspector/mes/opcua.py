"""Optional OPC UA server (asyncua, extra ``opcua``): station state, active config, latest result.

The address space loosely follows OPC 40100 (OPC UA for Machine Vision) without loading its
nodeset: the same object names, plain variables instead of the spec's types and methods (see
docs/mes.md for the coverage table). Namespace :data:`NAMESPACE`::

    Objects/VisionSystem
      StationId, StationName
      VisionStateMachine/CurrentState          (idle, running, paused, stopping, stopped, faulted)
      ConfigurationManagement/ActiveConfiguration/ConfigurationId   (config sha256)
      RecipeManagement/ActiveRecipe/ExternalId                      (config sha256: a station's recipe is its config)
      ResultManagement/LatestResult/ResultId, CreationTime, Verdict, IsPass, Lot, Wafer, DieX, DieY,
                                   Camera, Zone, DefectCount, ResultContent (unit-result JSON)
      ResultManagement/Statistics/ResultCount, PassCount, FailCount, ReviewCount, ErrorCount

The server runs its own asyncio loop on a thread. ``publish_result`` only stores the newest
result; the loop writes it (and the state) into the address space every ``interval_s``, so the
record thread never waits for OPC UA. Read-only for clients; no security policy (put it behind
the plant firewall, as the spec's "None" profile).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from inspector.util.redact import redact_url

log = logging.getLogger(__name__)

NAMESPACE = "urn:inspector:machine-vision"


class OpcUaUnavailable(ImportError):
    """asyncua is not installed."""


def _asyncua() -> Any:
    try:
        import asyncua
    except ImportError as e:
        raise OpcUaUnavailable("the OPC UA output needs asyncua: pip install 'inspector-station[opcua]'") from e
    return asyncua


class VisionServer:
    """See the module doc. ``state()`` is polled for the state machine's current state."""

    def __init__(self, endpoint: str, *, station: str, station_name: str = "", config_hash: str = "",
                 state: Callable[[], str] | None = None, interval_s: float = 0.2) -> None:
        self._ua = _asyncua()
        parts = urlsplit(endpoint)
        if parts.scheme != "opc.tcp" or not parts.hostname:
            raise ValueError(f"expected 'opc.tcp://host:port/path', got {redact_url(endpoint)!r}")
        try:
            parts.port
        except ValueError as e:
            raise ValueError(f"bad port in {redact_url(endpoint)!r}: {e}") from None
        self.endpoint = endpoint
        self.station, self.station_name, self.config_hash = station, station_name, config_hash
        self.state = state or (lambda: "idle")
        self.interval_s = float(interval_s)
        self._latest: Mapping[str, Any] | None = None
        self._counts = {"ResultCount": 0, "PassCount": 0, "FailCount": 0, "ReviewCount": 0, "ErrorCount": 0}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- the station side ---------------------------------------------------------------------
    def publish_result(self, payload: Mapping[str, Any]) -> None:
        """Newest committed unit result (a unit-result dict); cheap, never blocks."""
        v = payload.get("verdict")
        with self._lock:
            self._latest = payload
            self._counts["ResultCount"] += 1
            key = {"pass": "PassCount", "fail": "FailCount", "review": "ReviewCount"}.get(str(v), "ErrorCount")
            self._counts[key] += 1

    def start(self, timeout: float = 30.0) -> VisionServer:
        self._thread = threading.Thread(target=self._run, name="opcua-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"OPC UA server {redact_url(self.endpoint)} did not start within {timeout:g} s")
        if self._error is not None:
            raise RuntimeError(f"OPC UA server {redact_url(self.endpoint)} could not start: {self._error}") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the server thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - reported to start(), logged otherwise
            if not self._ready.is_set():
                self._error = e
                self._ready.set()
            else:
                log.exception("OPC UA server stopped with an error")

    async def _serve(self) -> None:
        ua = self._ua.ua
        server = self._ua.Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"Inspector {self.station}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE)
        vs = await server.nodes.objects.add_object(idx, "VisionSystem")
        await vs.add_property(idx, "StationId", self.station)
        await vs.add_property(idx, "StationName", self.station_name)
        sm = await vs.add_object(idx, "VisionStateMachine")
        current = await sm.add_variable(idx, "CurrentState", self.state())
        cm = await vs.add_object(idx, "ConfigurationManagement")
        active_cfg = await cm.add_object(idx, "ActiveConfiguration")
        await active_cfg.add_variable(idx, "ConfigurationId", self.config_hash)
        rm = await vs.add_object(idx, "RecipeManagement")
        active_recipe = await rm.add_object(idx, "ActiveRecipe")
        await active_recipe.add_variable(idx, "ExternalId", self.config_hash)
        res = await vs.add_object(idx, "ResultManagement")
        latest = await res.add_object(idx, "LatestResult")
        fields: dict[str, tuple[Any, Any]] = {
            "ResultId": ("", ua.VariantType.String), "CreationTime": (datetime.now(timezone.utc), ua.VariantType.DateTime),
            "Verdict": ("", ua.VariantType.String), "IsPass": (False, ua.VariantType.Boolean),
            "Lot": ("", ua.VariantType.String), "Wafer": ("", ua.VariantType.String),
            "DieX": (0, ua.VariantType.Int32), "DieY": (0, ua.VariantType.Int32),
            "Camera": ("", ua.VariantType.String), "Zone": ("", ua.VariantType.String),
            "DefectCount": (0, ua.VariantType.Int32), "ResultContent": ("", ua.VariantType.String)}
        nodes = {name: await latest.add_variable(idx, name, ua.Variant(v, t)) for name, (v, t) in fields.items()}
        stats_obj = await res.add_object(idx, "Statistics")
        counters = {name: await stats_obj.add_variable(idx, name, ua.Variant(0, ua.VariantType.Int64))
                    for name in self._counts}
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with server:
            self._ready.set()
            shown: Any = None
            shown_state = None
            while not self._stop.is_set():
                st = self.state()
                if st != shown_state:
                    await current.write_value(st)
                    shown_state = st
                with self._lock:
                    p, counts = self._latest, dict(self._counts)
                if p is not None and p is not shown:
                    unit = p.get("unit") or {}
                    values = {
                        "ResultId": p.get("message_id", ""), "Verdict": p.get("verdict", ""),
                        "CreationTime": datetime.fromisoformat(p["t_decided"]) if p.get("t_decided") else
                        datetime.now(timezone.utc),
                        "IsPass": p.get("verdict") == "pass", "Lot": unit.get("lot") or "",
                        "Wafer": unit.get("wafer") or "", "DieX": int(unit.get("die_x") or 0),
                        "DieY": int(unit.get("die_y") or 0), "Camera": unit.get("camera") or "",
                        "Zone": unit.get("zone") or "", "DefectCount": len(p.get("defects") or []),
                        "ResultContent": json.dumps(p, separators=(",", ":"), ensure_ascii=False)}
                    for name, v in values.items():
                        await nodes[name].write_value(ua.Variant(v, fields[name][1]))
                    for name, n in counts.items():
                        await counters[name].write_value(ua.Variant(n, ua.VariantType.Int64))
                    shown = p
                try:
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)
                except asyncio.TimeoutError:
                    pass


__all__ = ["NAMESPACE", "OpcUaUnavailable", "VisionServer"]
