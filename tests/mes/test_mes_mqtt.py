"""MQTT delivery through a real Mosquitto broker on loopback: QoS 1, outage, producer restart."""

from __future__ import annotations

import time

import pytest

from helpers.mes_testkit import Broker, Producer, make_record, mosquitto_binary

from inspector.mes import outbox
from inspector.store.db import open_db

pytest.importorskip("paho.mqtt.client", reason="MQTT tests need paho-mqtt (pip install 'inspector-station[mes]')")
BINARY = mosquitto_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="needs the mosquitto broker binary "
                                "(apt-get install mosquitto; .ci/run installs it)")

TOPIC = "inspector/st-1/{stream}"


@pytest.fixture
def broker(tmp_path):
    b = Broker(BINARY, tmp_path).start()
    yield b
    b.stop()


def test_broker_outage_and_restart_deliver_every_message_once(tmp_path, broker):
    from helpers.mes_testkit import MqttReceiver
    from inspector.mes.mqtt import MqttTransport

    db = tmp_path / "st.sqlite"
    sub = MqttReceiver(broker.port)

    def transport():
        return MqttTransport("mq", "127.0.0.1", broker.port, timeout_s=2.0, window=20)

    try:
        p = Producer(db, [transport()])
        p.write([make_record("run-a", i, i % 3, ["mq"], topic=TOPIC) for i in range(30)])
        assert sub.wait_for(30, 10)
        assert p.forwarders[0].wait_empty(5)

        broker.stop()  # the broker goes down ...
        p.write([make_record("run-a", i, i % 3, ["mq"], topic=TOPIC) for i in range(30, 60)])
        time.sleep(0.3)
        p.close()  # ... and the station restarts during the outage
        p = Producer(db, [transport()])
        p.write([make_record("run-b", i, i % 3, ["mq"], topic=TOPIC) for i in range(60, 90)])
        conn = open_db(db)
        st = outbox.status(conn)["mq"]
        assert st["pending"] == 60 and "cannot connect" in st["last_error"]

        broker.start()  # back, with the subscriber's persistent session
        assert sub.wait_for(90, 20), f"only {len(sub.applied)} of 90 arrived"
        assert p.forwarders[0].wait_empty(10)
        p.close()
        assert len(sub.applied) == 90 and len(sub.keys) == 90
        sub.check_order()
        assert set(sub.topics) == {"inspector/st-1/L1_W0", "inspector/st-1/L1_W1", "inspector/st-1/L1_W2"} or \
            all(t.startswith("inspector/st-1/L1/W") for t in sub.topics)
        assert outbox.status(conn)["mq"]["delivered"] == 90
        conn.close()
    finally:
        sub.close()


def test_render_topic_fills_placeholders_and_strips_wildcards():
    from inspector.mes.mqtt import render_topic

    t = render_topic("inspector/{station}/{lot}/{wafer}/{camera}", {"station": "s1", "lot": "L#1", "wafer": "W/2"})
    assert t == "inspector/s1/L_1/W_2/_"
