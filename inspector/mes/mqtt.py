"""MQTT transport (paho-mqtt): publish each JSON result with QoS 1; the broker's PUBACK is the
acknowledgement.

Messages are published in windows (up to ``window`` in flight, sent in order over one TCP
connection, so the broker receives them in order); the rows acknowledged form a prefix that the
forwarder marks delivered. Any disconnect or missing PUBACK drops the connection and reports the
transport down: the unacknowledged rows are published again from a new connection later (the
payload's ``message_id`` lets subscribers de-duplicate). The topic of each row was rendered from
``topic_template`` when the row was written (``meta["topic"]``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from inspector.mes.forwarder import Delivery, DeliveryError
from inspector.mes.outbox import OutboxRow
from inspector.mes.tls import describe_tls_error, tls_context


log = logging.getLogger(__name__)


def credentials_in_clear(name: str, host: str, port: int, *, tls: bool, has_credentials: bool) -> str | None:
    """The warning for a user name and password sent over plain MQTT (readable by anyone on the
    network path), or None. Shared by the transport (a log line at start) and ``config check``."""
    if tls or not has_credentials:
        return None
    return (f"mes output {name}: MQTT user name and password go to {host}:{port} over plain MQTT, readable "
            "by anyone on the network path; set tls: true (usually port 8883)")


class MqttUnavailable(ImportError):
    """paho-mqtt is not installed."""


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as e:  # the station can run without MES; a config asking for MQTT cannot
        raise MqttUnavailable("the MQTT output needs paho-mqtt: pip install 'inspector-station[mes]'") from e
    return mqtt


def render_topic(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``{station}``, ``{lot}``, ... ; a missing value becomes ``_`` (never an empty topic level)."""
    import string

    out = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            v = values.get(name)
            text = "_" if v is None or str(v) == "" else str(v)
            out.append(text.replace("/", "_").replace("+", "_").replace("#", "_"))  # no wildcards from data
    return "".join(out)


class MqttTransport:
    """See the module doc. ``connect_timeout_s`` also bounds the wait for each window's PUBACKs."""

    kinds = frozenset({"unit", "wafer", "incident"})

    def __init__(self, name: str, host: str, port: int = 1883, *, qos: int = 1, tls: bool = False,
                 ca_file: str | None = None, verify_tls: bool = True, cert_file: str | None = None,
                 key_file: str | None = None, username: str | None = None, password: str | None = None,
                 timeout_s: float = 5.0, window: int = 100, client_id: str | None = None) -> None:
        self._mqtt = _paho()
        self.name = name
        self.host, self.port, self.qos = host, int(port), int(qos)
        self.tls, self.ca_file, self.verify_tls = tls, ca_file, verify_tls
        # Built once (a bad CA or key file fails here, at configuration time, not per message).
        self._tls_ctx = tls_context(verify_tls, ca_file, cert_file, key_file) if tls else None
        self.username, self.password = username, password
        if (why := credentials_in_clear(name, host, self.port, tls=tls, has_credentials=username is not None)):
            log.warning("%s", why)
        self.timeout_s = float(timeout_s)
        self.window = max(1, int(window))
        self.client_id = client_id or f"inspector-{name}-{secrets.token_hex(4)}"
        self._client: Any = None
        self._cond = threading.Condition()
        self._connected = False
        self._connect_error: str | None = None

    # --- connection ---------------------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        with self._cond:
            failed = getattr(reason_code, "is_failure", bool(reason_code))
            self._connected = not failed
            self._connect_error = None if not failed else f"broker refused the connection: {reason_code}"
            self._cond.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, *args: Any) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def _on_publish(self, client: Any, userdata: Any, *args: Any) -> None:
        with self._cond:
            self._cond.notify_all()

    def _connect(self) -> Any:
        mqtt = self._mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True,
                        reconnect_on_failure=False)
        c.on_connect, c.on_disconnect, c.on_publish = self._on_connect, self._on_disconnect, self._on_publish
        c.max_inflight_messages_set(self.window)
        c.max_queued_messages_set(0)
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
        if self._tls_ctx is not None:
            c.tls_set_context(self._tls_ctx)  # the same verification rules as HTTPS
        with self._cond:
            self._connected, self._connect_error = False, None
        c.connect(self.host, self.port, keepalive=30)
        c.loop_start()
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while not self._connected and self._connect_error is None and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            ok, err = self._connected, self._connect_error
        if not ok:
            self._teardown(c)
            raise ConnectionError(err or f"no CONNACK from {self.host}:{self.port} within {self.timeout_s:g} s")
        self._client = c
        return c

    def _teardown(self, c: Any) -> None:
        try:
            c.disconnect()
        except Exception:  # noqa: BLE001
            pass
        try:
            c.loop_stop()
        except Exception:  # noqa: BLE001
            pass

    # --- delivery -----------------------------------------------------------------------------
    def deliver(self, rows: Sequence[OutboxRow]) -> Delivery:
        where = f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
        try:
            c = self._client if self._client is not None and self._connected else None
            if c is None:
                self.close()
                c = self._connect()
        except (OSError, ConnectionError) as e:
            why = describe_tls_error(e) or f"{type(e).__name__}: {e}"
            return Delivery(0, DeliveryError(f"{where}: cannot connect: {why}", "transport"))
        done = 0
        for start in range(0, len(rows), self.window):
            chunk = rows[start:start + self.window]
            infos = []
            error: DeliveryError | None = None
            for row in chunk:
                topic = row.meta.get("topic")
                if not topic:
                    error = DeliveryError(f"{where}: message {row.key} has no topic", "message")
                    break
                info = c.publish(str(topic), row.body.encode("utf-8"), qos=self.qos)
                if info.rc != 0:
                    error = DeliveryError(f"{where}: publish failed: {self._mqtt.error_string(info.rc)}", "transport")
                    break
                infos.append(info)
            deadline = time.monotonic() + self.timeout_s
            with self._cond:
                while (not all(i.is_published() for i in infos) and self._connected
                       and time.monotonic() < deadline):
                    self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            acked = 0
            for i in infos:  # PUBACKs come in order; count the acknowledged prefix only
                if not i.is_published():
                    break
                acked += 1
            done += acked
            if acked < len(infos):
                self.close()  # a fresh connection re-sends from the first unacknowledged row, in order
                why = "connection lost" if not self._connected else f"no PUBACK within {self.timeout_s:g} s"
                return Delivery(done, DeliveryError(f"{where}: {why}", "transport"))
            if error is not None:
                if error.scope == "transport":
                    self.close()
                return Delivery(done, error)
        return Delivery(done)

    def close(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            self._teardown(c)


__all__ = ["MqttTransport", "MqttUnavailable", "render_topic"]
