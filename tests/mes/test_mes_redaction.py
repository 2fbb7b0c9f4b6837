"""A MES URL's credentials never reach the outbox's stored error, the forwarder's stats or the log;
MQTT credentials over plain MQTT are warned about."""

from __future__ import annotations

import logging
import time

from helpers.mes_testkit import Producer, free_port, make_record

from inspector.mes import outbox
from inspector.mes.http import HttpTransport
from inspector.mes.mqtt import credentials_in_clear
from inspector.store.db import open_db


def test_http_errors_are_stored_and_shown_without_the_urls_credentials(tmp_path, caplog):
    port = free_port()
    url = f"http://ann:hunter2@127.0.0.1:{port}/mes?token=t0k"  # nobody listens: refused
    t = HttpTransport("mes", url)
    assert t.url == url  # the transport itself still uses the real URL
    with caplog.at_level(logging.WARNING, logger="inspector.mes"):
        p = Producer(tmp_path / "st.sqlite", [t])
        try:
            p.write([make_record("run-a", 0, 0, ["mes"])])
            deadline = time.monotonic() + 10
            while not p.forwarders[0].stats()["last_error"] and time.monotonic() < deadline:
                time.sleep(0.02)
            shown = p.forwarders[0].stats()["last_error"]
        finally:
            p.close()
    conn = open_db(tmp_path / "st.sqlite")
    stored = conn.execute("SELECT last_error FROM outbox").fetchone()[0]
    conn.close()
    logged = caplog.text
    assert f"POST http://ann:***@127.0.0.1:{port}/mes?token=***: ConnectionRefused" in stored
    for text in (stored, shown, logged, outbox.status(open_db(tmp_path / "st.sqlite"))["mes"]["last_error"]):
        assert "hunter2" not in text and "t0k" not in text, text


def test_mqtt_credentials_over_plain_mqtt_are_warned_about():
    why = credentials_in_clear("mq", "broker", 1883, tls=False, has_credentials=True)
    assert why and "plain MQTT" in why and "tls: true" in why
    assert credentials_in_clear("mq", "broker", 8883, tls=True, has_credentials=True) is None
    assert credentials_in_clear("mq", "broker", 1883, tls=False, has_credentials=False) is None


def test_the_mqtt_transport_logs_the_warning_when_built(caplog):
    import pytest

    pytest.importorskip("paho.mqtt.client")
    from inspector.mes.mqtt import MqttTransport

    with caplog.at_level(logging.WARNING, logger="inspector.mes.mqtt"):
        MqttTransport("mq", "broker", 1883, username="u", password="pw-SECRET")
        MqttTransport("mq2", "broker", 1883)
    warned = [r.getMessage() for r in caplog.records if "plain MQTT" in r.getMessage()]
    assert len(warned) == 1 and "mes output mq:" in warned[0] and "pw-SECRET" not in warned[0]
