"""The station's MES side, built from the config's ``mes`` section.

``MesHub.from_config`` checks every output *before* anything runs (environment variables named
by ``token_env`` / ``username_env`` / ``password_env`` set, CA files present, optional packages
installed) and raises :class:`MesConfigError` naming the field (``mes[1].token_env: ...``).

Per unit, ``drafts(frame, decision)`` returns the outbox messages the store writes in the
decision's transaction; per wafer, ``wafer_drafts(summary)`` the wafer result and the KLARF file;
per batch of incident events, ``incident_drafts(events)`` (written in the same transaction as them).
``start(db_path)`` starts one :class:`Forwarder` per outbox transport (and the OPC UA server).
"""

from __future__ import annotations

import copy
import logging
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.config.schema import (
    FileDropOutput,
    HttpOutput,
    KlarfOutput,
    MesOutboxConfig,
    MqttOutput,
    OpcUaOutput,
    StationConfig,
)
from inspector.core.decision import Decision
from inspector.core.frame import Frame
from inspector.mes.filedrop import FileDropTransport
from inspector.mes.forwarder import Backoff, Forwarder, ForwarderSettings, Retention, Transport
from inspector.mes.klarf import WaferDefectCollector, klarf_for_wafer, write_klarf
from inspector.mes.outbox import Draft
from inspector.mes.payload import incident_payload, safe_name, stream_of, unit_payload, wafer_result_payload

log = logging.getLogger(__name__)


class MesConfigError(ValueError):
    """An MES output cannot be used as configured; ``field`` is its path (``mes[0].token_env``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _env(index: int, field: str, name: str | None, env: Mapping[str, str]) -> str | None:
    if name is None:
        return None
    value = env.get(name)
    if not value:
        raise MesConfigError(f"mes[{index}].{field}", f"environment variable {name} is not set (it must hold the "
                             f"{field.removesuffix('_env').replace('_', ' ')})")
    return value


def _ca(index: int, ca_file: str | None, verify: bool) -> str | None:
    if ca_file is None:
        return None
    if not verify:
        raise MesConfigError(f"mes[{index}].ca_file", "a CA file is given but verify_tls is false; "
                             "remove one of them (a CA file is only used to verify)")
    return _file(index, "ca_file", ca_file, "CA file")


def _file(index: int, field: str, path: str | None, what: str) -> str | None:
    if path is not None and not Path(path).is_file():
        raise MesConfigError(f"mes[{index}].{field}", f"{what} {path} not found "
                             f"(relative paths resolve against {Path.cwd()})")
    return path


def _check_tls(index: int, out: HttpOutput | MqttOutput) -> dict[str, Any]:
    """The TLS arguments of a transport, each file checked and loaded now (a bad PEM is a config
    error naming its field, not a delivery failure at 3 a.m.)."""
    ca = _ca(index, out.ca_file, out.verify_tls)
    cert = _file(index, "cert_file", out.cert_file, "client certificate")
    key = _file(index, "key_file", out.key_file, "client key")
    ctx = ssl.create_default_context()
    if ca is not None:
        try:
            ctx.load_verify_locations(ca)
        except (ssl.SSLError, OSError, ValueError) as e:
            raise MesConfigError(f"mes[{index}].ca_file", f"cannot load CA file {ca}: {e}") from None
    if cert is not None:
        try:
            ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError, ValueError) as e:
            field = "key_file" if key is not None and "key" in str(e).lower() else "cert_file"
            raise MesConfigError(f"mes[{index}].{field}", f"cannot load the client certificate {cert}"
                                 + (f" with key {key}" if key else "") + f": {e}") from None
    if not out.verify_tls:
        log.warning("mes[%d] (%s): TLS certificate verification is OFF (verify_tls: false): INSECURE, anyone "
                    "on the network path can impersonate the receiver; use ca_file instead", index, out.id)
    return {"verify_tls": out.verify_tls, "ca_file": ca, "cert_file": cert, "key_file": key}


def forwarder_settings(out: Any, outbox_cfg: MesOutboxConfig | None = None) -> ForwarderSettings:
    """Retry, batching and retention of one outbox output, from its config entry."""
    b = out.backoff
    r = outbox_cfg or MesOutboxConfig()
    return ForwarderSettings(
        backoff=Backoff(initial_s=b.initial_s, max_s=b.max_s, jitter=b.jitter, multiplier=b.multiplier),
        batch=out.batch_size,
        retention=Retention(keep_s=r.retention_days * 86400.0, every_s=r.prune_interval_min * 60.0,
                            batch=r.prune_batch))


def build_transport(index: int, out: Any, data_dir: Path, env: Mapping[str, str] | None = None) -> Transport | None:
    """One outbox transport from ``mes[index]`` (None for OPC UA, which is not outbox-fed)."""
    env = os.environ if env is None else env
    if isinstance(out, HttpOutput):
        from inspector.mes.http import HttpTransport

        token = _env(index, "token_env", out.token_env, env)
        if token and out.url.startswith("http://"):
            log.warning("mes[%d] (%s): a bearer token is sent over plain http://", index, out.id)
        tls = _check_tls(index, out) if out.url.startswith("https://") else {}
        return HttpTransport(out.id, out.url, token=token, timeout_s=out.timeout_s, **tls)
    if isinstance(out, MqttOutput):
        try:
            from inspector.mes.mqtt import MqttTransport
            user = _env(index, "username_env", out.username_env, env)
            password = _env(index, "password_env", out.password_env, env)
            tls = _check_tls(index, out) if out.tls else {}
            return MqttTransport(out.id, out.host, out.port, qos=out.qos, tls=out.tls, username=user,
                                 password=password, timeout_s=out.timeout_s, window=out.window, **tls)
        except ImportError as e:
            raise MesConfigError(f"mes[{index}].type", str(e)) from None
    if isinstance(out, FileDropOutput):
        folder = Path(out.folder)
        return FileDropTransport(out.id, folder if folder.is_absolute() else data_dir / folder)
    if isinstance(out, KlarfOutput):
        folder = Path(out.folder)
        return FileDropTransport(out.id, folder if folder.is_absolute() else data_dir / folder,
                                 kinds=frozenset({"klarf"}))
    if isinstance(out, OpcUaOutput):
        return None
    raise MesConfigError(f"mes[{index}].type", f"unknown MES output type {getattr(out, 'type', out)!r}")


def incident_topic(unit_template: str, station: str, camera: str) -> str:
    """``<prefix>/<station>/<camera>/incidents`` (one topic per camera, like Frigate's events):
    the prefix is the first level of the output's unit topic when it is fixed text, else ``inspector``."""
    from inspector.mes.mqtt import render_topic

    first = unit_template.split("/", 1)[0]
    prefix = first if first and "{" not in first else "inspector"
    return render_topic(prefix + "/{station}/{camera}/incidents", {"station": station, "camera": camera})


@dataclass(frozen=True)
class _Route:
    name: str
    kinds: frozenset[str]
    topic_template: str | None = None


class MesHub:
    """See the module doc. ``drafts`` / ``wafer_drafts`` run on the record thread."""

    def __init__(self, cfg: StationConfig, config_hash: str, run_id: str, transports: Sequence[Transport], *,
                 models: Sequence[Mapping[str, str]] = (), class_names: Sequence[str] = (),
                 opcua: Any = None, settings: ForwarderSettings | None = None,
                 model_set_version: str = "") -> None:
        self.cfg = cfg
        self.station = cfg.station.id
        self.config_hash = config_hash
        self.run_id = run_id
        self.transports = list(transports)
        self.models = [dict(m) for m in models]
        self.model_set_version = model_set_version
        self.class_names = tuple(class_names) or tuple(cfg.models[0].class_names)
        self.settings = settings  # overrides every output's own settings (tests, benchmarks)
        outs = {o.id: o for o in cfg.mes}
        self.output_settings = {t.name: forwarder_settings(outs[t.name], cfg.mes_outbox) for t in self.transports
                                if t.name in outs and hasattr(outs[t.name], "backoff")}
        self.opcua = opcua
        topics = {o.id: o.topic_template for o in cfg.mes if isinstance(o, MqttOutput)}
        self.routes = [_Route(t.name, frozenset(t.kinds), topics.get(t.name)) for t in self.transports]
        self.forwarders: list[Forwarder] = []
        w = cfg.wafer
        self.collector = (WaferDefectCollector((w.die_pitch_x_mm * 1000, w.die_pitch_y_mm * 1000), cfg.pixel_size_um)
                          if w is not None and any("klarf" in r.kinds for r in self.routes) else None)

    @classmethod
    def from_config(cls, cfg: StationConfig, config_hash: str, run_id: str, data_dir: str | Path, *,
                    models: Sequence[Mapping[str, str]] = (), class_names: Sequence[str] = (),
                    env: Mapping[str, str] | None = None, settings: ForwarderSettings | None = None,
                    state: Callable[[], str] | None = None, model_set_version: str = "") -> MesHub:
        """Check and build every configured output (no connection is made yet)."""
        transports: list[Transport] = []
        opcua = None
        for i, out in enumerate(cfg.mes):
            if isinstance(out, KlarfOutput) and cfg.wafer is None:
                raise MesConfigError(f"mes[{i}].type", "KLARF output needs the `wafer` section (die pitch)")
            t = build_transport(i, out, Path(data_dir), env)
            if t is not None:
                transports.append(t)
            elif isinstance(out, OpcUaOutput):
                from inspector.mes.opcua import OpcUaUnavailable, VisionServer
                try:
                    opcua = VisionServer(out.endpoint, station=cfg.station.id, station_name=cfg.station.name,
                                         config_hash=config_hash, state=state)
                except OpcUaUnavailable as e:
                    raise MesConfigError(f"mes[{i}].type", str(e)) from None
                except ValueError as e:
                    raise MesConfigError(f"mes[{i}].endpoint", str(e)) from None
        return cls(cfg, config_hash, run_id, transports, models=models, class_names=class_names, opcua=opcua,
                   settings=settings, model_set_version=model_set_version)

    @property
    def active(self) -> bool:
        return bool(self.transports) or self.opcua is not None

    @property
    def wafer_level(self) -> bool:
        """Whether completed wafers produce messages (wafer result or KLARF)."""
        return any(r.kinds & {"wafer", "klarf"} for r in self.routes)

    def for_run(self, run_id: str, config_hash: str, model_set_version: str, cfg: StationConfig | None = None) -> MesHub:
        """A copy that builds the messages of an earlier run (recovery after a crash), for this hub's
        outputs; ``cfg`` is that run's config when it can still be read (geometry, class names)."""
        other = copy.copy(self)
        other.run_id, other.config_hash, other.model_set_version = run_id, config_hash, model_set_version
        if cfg is not None:
            other.cfg = cfg
            other.class_names = tuple(cfg.models[0].class_names)
        w = other.cfg.wafer
        other.collector = (WaferDefectCollector((w.die_pitch_x_mm * 1000, w.die_pitch_y_mm * 1000),
                                                other.cfg.pixel_size_um)
                           if w is not None and any("klarf" in r.kinds for r in self.routes) else None)
        other.forwarders = []
        other.opcua = None
        return other

    # --- messages ----------------------------------------------------------------------------
    def drafts(self, frame: Frame, decision: Decision) -> tuple[Draft, ...]:
        """The outbox messages of one unit (one body shared by every JSON transport)."""
        if self.collector is not None:
            self.collector.add(frame, decision)
        routes = [r for r in self.routes if "unit" in r.kinds]
        if not routes:
            return ()
        body = unit_payload(frame, decision, station=self.station, run_id=self.run_id,
                            class_names=self.class_names, pixel_size_um=self.cfg.pixel_size_um, models=self.models)
        key, stream = body["message_id"], body["stream"]
        out = []
        for r in routes:
            meta: dict[str, Any] = {}
            if r.topic_template is not None:
                from inspector.mes.mqtt import render_topic
                meta["topic"] = render_topic(r.topic_template, {
                    "station": self.station, "source": frame.source, "unit": stream,
                    "verdict": decision.verdict.value, **body["unit"]})
            out.append(Draft(r.name, key, stream, "unit", body, meta))
        return tuple(out)

    def wafer_drafts(self, summary: Any) -> tuple[Draft, ...]:
        """Wafer result (JSON transports) and KLARF file (KLARF outputs) of a completed wafer."""
        r = summary.result
        lot, wafer = str(summary.lot), str(summary.wafer)
        stream = f"{lot}/{wafer}"
        out: list[Draft] = []
        json_routes = [x for x in self.routes if "wafer" in x.kinds]
        if json_routes:
            body = wafer_result_payload(
                station=self.station, run_id=self.run_id, lot=lot, wafer=wafer, verdict=r.verdict.value,
                signature=r.signature, defect_fraction=r.defect_fraction, dies_seen=summary.dies_seen,
                die_map=r.die_map, reasons=[{"rule_id": x.rule_id, "verdict": x.verdict.value, "message": x.message}
                                            for x in r.reasons],
                config_hash=self.config_hash, model_set_version=self.model_set_version)
            for x in json_routes:
                meta: dict[str, Any] = {}
                if x.topic_template is not None:
                    from inspector.mes.mqtt import render_topic
                    meta["topic"] = render_topic(x.topic_template, {
                        "station": self.station, "lot": lot, "wafer": wafer, "unit": stream,
                        "verdict": r.verdict.value})
                out.append(Draft(x.name, body["message_id"], stream, "wafer", body, meta))
        klarf_routes = [x for x in self.routes if "klarf" in x.kinds]
        if self.collector is not None:
            dies, defects = self.collector.pop(lot, wafer)
            if klarf_routes:
                w = self.cfg.wafer
                assert w is not None
                k = klarf_for_wafer(lot=lot, wafer=wafer, dies=dies, defects=defects, classes=self.class_names,
                                    pitch_um=(w.die_pitch_x_mm * 1000, w.die_pitch_y_mm * 1000),
                                    diameter_mm=w.diameter_mm, notch=w.notch, station=self.station,
                                    run_id=self.run_id, config_hash=self.config_hash)
                text = write_klarf(k)
                key = f"{self.station}/{self.run_id}/klarf/{lot}/{wafer}"
                name = f"{safe_name(lot)}_{safe_name(wafer)}_{safe_name(self.run_id)}.klarf"
                out += [Draft(x.name, key, stream, "klarf", text, {"file": name}) for x in klarf_routes]
        return tuple(out)

    @property
    def incident_level(self) -> bool:
        """Whether incident events produce messages."""
        return any("incident" in r.kinds for r in self.routes)

    def incident_drafts(self, events: Sequence[Any]) -> tuple[Draft, ...]:
        """The outbox messages of incident events (``IncidentEvent``s), one per event and JSON
        transport; MQTT publishes them on ``<prefix>/<station>/<camera>/incidents``."""
        routes = [r for r in self.routes if "incident" in r.kinds]
        out: list[Draft] = []
        for e in events if routes else ():
            body = incident_payload(e, station=self.station, run_id=self.run_id, config_hash=self.config_hash,
                                    model_set_version=self.model_set_version)
            for r in routes:
                meta: dict[str, Any] = {}
                if r.topic_template is not None:
                    meta["topic"] = incident_topic(r.topic_template, self.station, e.camera)
                out.append(Draft(r.name, body["message_id"], body["stream"], body["kind"], body, meta))
        return tuple(out)

    def committed(self, frame: Frame, decision: Decision) -> None:
        """A decision was committed: show it on the OPC UA server and wake the forwarders."""
        if self.opcua is not None:
            try:
                self.opcua.publish_result(unit_payload(frame, decision, station=self.station, run_id=self.run_id,
                                                       class_names=self.class_names,
                                                       pixel_size_um=self.cfg.pixel_size_um, models=self.models))
            except Exception as e:  # noqa: BLE001 - a display interface must never cost a record
                log.warning("opcua: latest result not published: %s", e)
        for f in self.forwarders:
            f.notify()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, db_path: str | Path) -> MesHub:
        for t in self.transports:
            settings = self.settings or self.output_settings.get(t.name)
            self.forwarders.append(Forwarder(db_path, t, settings).start())
        if self.opcua is not None:
            self.opcua.start()
        return self

    def stop(self, timeout: float | None = 10.0, drain_s: float = 2.0) -> None:
        """Stop the forwarders, giving reachable receivers up to ``drain_s`` to take what is pending."""
        for f in self.forwarders:
            f.stop(timeout, drain_s)
        if self.opcua is not None:
            self.opcua.stop()

    def stats(self) -> dict[str, Any]:
        """Per transport (:meth:`Forwarder.stats`): link state (up / down / retrying / unknown) and since
        when, outbox depth, oldest pending age, delivered count, last error."""
        return {f.name: f.stats() for f in self.forwarders}


__all__ = ["MesConfigError", "MesHub", "build_transport", "forwarder_settings", "incident_topic", "stream_of"]
