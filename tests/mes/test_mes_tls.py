"""TLS for real: HTTPS and MQTT over TLS on loopback, with certificates generated per test.

Transports are built from config entries (``build_transport``), so the fields a station config
uses (ca_file, verify_tls, cert_file / key_file) are what is tested.
"""

from __future__ import annotations

import logging
import time

import pytest

from helpers.mes_testkit import Broker, HttpReceiver, Producer, make_record, mosquitto_binary
from helpers.mes_tls import make_pki

from inspector.config.schema import HttpOutput, MqttOutput
from inspector.mes import outbox
from inspector.mes.hub import MesConfigError, build_transport
from inspector.store.db import open_db


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def http_out(url: str, **kw) -> HttpOutput:
    return HttpOutput.model_validate({"type": "http", "id": "mes", "url": url, "timeout_s": 2, **kw})


def wait_error(fw, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = fw.stats()
        if st["last_error"]:
            return st
        time.sleep(0.02)
    raise AssertionError(f"no delivery error within {timeout} s: {fw.stats()}")


def test_https_verified_with_the_ca_file_of_the_config(tmp_path, pki):
    rec = HttpReceiver(pki.server_context()).start()
    try:
        p = Producer(tmp_path / "st.sqlite", [build_transport(0, http_out(rec.url, ca_file=str(pki.ca)), tmp_path)])
        p.write([make_record("run-a", i, 0, ["mes"]) for i in range(5)])
        assert rec.wait_for(5, 10) and p.forwarders[0].wait_empty(5)
        assert p.forwarders[0].stats()["link"] == "up"
        p.close()
    finally:
        rec.stop()
    assert len(rec.applied) == 5


def test_https_untrusted_certificate_fails_clearly_and_nothing_is_lost(tmp_path, pki):
    db = tmp_path / "st.sqlite"
    rec = HttpReceiver(pki.server_context()).start()
    try:
        # Default verification (system CAs) does not know the test CA: every attempt fails ...
        p = Producer(db, [build_transport(0, http_out(rec.url), tmp_path)])
        p.write([make_record("run-a", i, 0, ["mes"]) for i in range(3)])
        st = wait_error(p.forwarders[0])
        assert "TLS certificate verification failed" in st["last_error"] and "ca_file" in st["last_error"]
        assert st["link"] == "down" and rec.applied == []
        p.close()
        conn = open_db(db)
        row = outbox.status(conn)["mes"]  # ... the error is in the outbox too, the messages still pending
        assert row["pending"] == 3 and "TLS certificate verification failed" in row["last_error"]
        conn.close()

        # The config is fixed (ca_file): the station's next start delivers them, each once.
        p = Producer(db, [build_transport(0, http_out(rec.url, ca_file=str(pki.ca)), tmp_path)])
        p.forwarders[0].notify()
        assert rec.wait_for(3, 10) and p.forwarders[0].wait_empty(5)
        p.close()
    finally:
        rec.stop()
    assert len(rec.applied) == 3 and sum(rec.arrivals.values()) == 3


def test_https_verify_false_delivers_and_is_logged_as_insecure(tmp_path, pki, caplog):
    rec = HttpReceiver(pki.server_context()).start()
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.mes.hub"):
            t = build_transport(3, http_out(rec.url, verify_tls=False), tmp_path)
        assert any("mes[3]" in r.getMessage() and "INSECURE" in r.getMessage() for r in caplog.records)
        p = Producer(tmp_path / "st.sqlite", [t])
        p.write([make_record("run-a", i, 0, ["mes"]) for i in range(2)])
        assert rec.wait_for(2, 10)
        p.close()
    finally:
        rec.stop()


def test_https_client_certificate_when_the_server_requires_one(tmp_path, pki):
    rec = HttpReceiver(pki.server_context(require_client_cert=True)).start()
    db = tmp_path / "st.sqlite"
    try:
        p = Producer(db, [build_transport(0, http_out(rec.url, ca_file=str(pki.ca)), tmp_path)])
        p.write([make_record("run-a", 0, 0, ["mes"])])
        st = wait_error(p.forwarders[0])
        # TLS 1.3 refuses the missing certificate after the client's handshake: the alert, or a reset
        assert any(w in st["last_error"] for w in ("TLS handshake failed", "reset", "Disconnected")), st["last_error"]
        assert st["link"] == "down" and rec.applied == []
        p.close()
        out = http_out(rec.url, ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
        p = Producer(db, [build_transport(0, out, tmp_path)])
        p.forwarders[0].notify()
        assert rec.wait_for(1, 10)
        p.close()
    finally:
        rec.stop()


def test_tls_files_are_checked_when_the_output_is_built(tmp_path, pki):
    with pytest.raises(MesConfigError, match=r"mes\[0\]\.key_file: client key .* not found"):
        build_transport(0, http_out("https://127.0.0.1:1/x", cert_file=str(pki.client_cert),
                                    key_file=str(tmp_path / "missing.key")), tmp_path)
    with pytest.raises(MesConfigError, match=r"mes\[0\]\.(cert|key)_file: cannot load the client certificate"):
        build_transport(0, http_out("https://127.0.0.1:1/x", cert_file=str(pki.client_cert),
                                    key_file=str(pki.server_key)), tmp_path)  # a key that does not match


BINARY = mosquitto_binary()


@pytest.mark.skipif(BINARY is None, reason="needs the mosquitto broker binary (apt-get install mosquitto)")
def test_mqtt_over_tls_needs_the_ca_file_then_delivers(tmp_path, pki):
    pytest.importorskip("paho.mqtt.client", reason="MQTT tests need paho-mqtt")
    from helpers.mes_testkit import MqttReceiver

    broker = Broker(BINARY, tmp_path, tls=pki).start()
    db = tmp_path / "st.sqlite"
    topic = "inspector/st-1/{stream}"

    def out(**kw) -> MqttOutput:
        return MqttOutput.model_validate({"type": "mqtt", "id": "mq", "host": "127.0.0.1", "port": broker.port,
                                          "tls": True, "timeout_s": 2, **kw})

    sub = None
    try:
        sub = MqttReceiver(broker.port, ca_file=pki.ca)
        p = Producer(db, [build_transport(0, out(), tmp_path)])  # system CAs only: refused
        p.write([make_record("run-a", i, 0, ["mq"], topic=topic) for i in range(4)])
        st = wait_error(p.forwarders[0])
        assert st["last_error"].startswith("st-1/") and "mqtts://127.0.0.1" in st["last_error"]
        assert "cannot connect: TLS certificate verification failed" in st["last_error"] and st["link"] == "down"
        p.close()
        assert sub.applied == []

        p = Producer(db, [build_transport(0, out(ca_file=str(pki.ca)), tmp_path)])
        p.forwarders[0].notify()
        assert sub.wait_for(4, 10), f"only {len(sub.applied)} of 4 arrived"
        assert p.forwarders[0].wait_empty(5) and p.forwarders[0].stats()["link"] == "up"
        p.close()
        assert len(sub.applied) == 4
    finally:
        if sub is not None:
            sub.close()
        broker.stop()
