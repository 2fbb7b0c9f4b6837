"""Incident events to the MES: through the outbox in the decision's transaction, one stream and one
MQTT topic per camera, the same JSON body to the broker (real Mosquitto) and the file drop."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from helpers.mes_testkit import FAST, Broker, MqttReceiver, mosquitto_binary

from inspector.config import config_hash, load_config_text
from inspector.core import Decision, Detections, Frame
from inspector.core.site.types import IncidentEvent
from inspector.mes import outbox
from inspector.mes.hub import MesHub, incident_topic
from inspector.mes.payload import INCIDENT_SCHEMA_ID, incident_payload
from inspector.store.db import open_db
from inspector.store.writer import DecisionRecord, StoreWriter

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)
RUN = "run-7"
CONFIG = """
station: {{id: site-1, name: Site, domain: construction}}
sources: [{{type: synthetic_site, camera: gate}}, {{type: synthetic_site, camera: yard}}]
models: [{{name: m, registry: m, imgsz: 32, class_names: [hat, vest, worker]}}]
flow: {{mode: monitoring}}
site: {{incidents: [{{id: hat-rule, kind: no_hard_hat}}]}}
mes:
  - {{type: filedrop, id: files, folder: drop}}
  - {{type: mqtt, id: broker, host: 127.0.0.1, port: {port}, topic_template: "plant/{{station}}/{{source}}", timeout_s: 2}}
"""


def event(kind: str, camera: str, track: int, seq: int, i: int) -> IncidentEvent:
    return IncidentEvent(kind, f"{camera}/{RUN}/{track}/no_hard_hat/1", seq, camera, track, "no_hard_hat", "hat-rule",
                         "medium", None, T0 + timedelta(seconds=i), f"{RUN}/{camera}/{i}", f"{RUN}/{camera}/0",
                         f"{RUN}/{camera}/{i}", 0.6, T0, "cleared" if kind == "end" else "")


def record(hub: MesHub, camera: str, i: int, events) -> DecisionRecord:
    frame = Frame(f"{RUN}/{camera}/{i}", "site-1", camera, float(i), T0 + timedelta(seconds=i),
                  np.zeros((4, 4, 3), np.uint8), {"camera": camera})
    dec = Decision(frame.frame_id, "fail" if events else "pass", (), Detections.empty(), "ms-1", "h", T0)
    return DecisionRecord(frame, dec, None, RUN, ("hat", "vest", "worker"), False,
                          outbox=hub.incident_drafts(events), incidents=tuple(events))


def test_incident_payload_names_its_step_and_is_keyed_by_incident_and_seq():
    e = event("end", "gate", 3, 2, 9)
    p = incident_payload(e, station="site-1", run_id=RUN, config_hash="h", model_set_version="ms-1")
    assert (p["schema"], p["kind"], p["message_id"], p["stream"]) == (
        INCIDENT_SCHEMA_ID, "incident.end", f"site-1/gate/{RUN}/3/no_hard_hat/1/2", "gate/incidents")
    assert p["end_reason"] == "cleared" and p["incident"]["track_id"] == 3 and p["last_frame_id"] == f"{RUN}/gate/9"
    assert incident_payload(event("new", "gate", 3, 0, 1), station="s", run_id=RUN, config_hash="h",
                            model_set_version="m")["end_reason"] is None
    json.dumps(p)


@pytest.mark.parametrize("template, topic", [
    ("plant/{station}/{source}", "plant/site-1/gate/incidents"),
    ("{station}/units", "inspector/site-1/gate/incidents"),
])
def test_incident_topic_is_per_camera(template, topic):
    assert incident_topic(template, "site-1", "gate") == topic


BINARY = mosquitto_binary()


@pytest.mark.skipif(BINARY is None, reason="needs the mosquitto broker binary (apt-get install mosquitto)")
def test_incident_events_reach_the_broker_and_the_file_drop_in_order(tmp_path):
    pytest.importorskip("paho.mqtt.client")
    broker = Broker(BINARY, tmp_path).start()
    sub = MqttReceiver(broker.port, topic="plant/#")
    writer = None
    hub = None
    try:
        cfg = load_config_text(CONFIG.format(port=broker.port))
        hub = MesHub.from_config(cfg, config_hash(cfg), RUN, tmp_path, settings=FAST, model_set_version="ms-1")
        db = tmp_path / "s.sqlite"
        writer = StoreWriter(db, None, outbox_hook=outbox.write_drafts).start()
        hub.start(db)
        steps = [("gate", [event("new", "gate", 1, 0, 1)]), ("yard", [event("new", "yard", 2, 0, 1)]),
                 ("gate", [event("update", "gate", 1, 1, 2)]), ("gate", []),
                 ("gate", [event("end", "gate", 1, 2, 4)]), ("yard", [event("end", "yard", 2, 1, 4)])]
        futures = [writer.submit(record(hub, cam, i, evs)) for i, (cam, evs) in enumerate(steps)]
        for f in futures:
            f.result(10)
        for fw in hub.forwarders:
            fw.notify()
        assert sub.wait_for(5, timeout=20)
        got = [(m["kind"], m["camera"], m["seq"]) for m in sub.applied]
        assert [g for g in got if g[1] == "gate"] == [("incident.new", "gate", 0), ("incident.update", "gate", 1),
                                                      ("incident.end", "gate", 2)]
        assert [g for g in got if g[1] == "yard"] == [("incident.new", "yard", 0), ("incident.end", "yard", 1)]
        assert set(sub.topics) == {"plant/site-1/gate/incidents", "plant/site-1/yard/incidents"}
        hub.stop(5)
        files = sorted((tmp_path / "drop").glob("*.json"))
        bodies = [json.loads(p.read_text()) for p in files]
        assert [(b["kind"], b["seq"]) for b in bodies if b["camera"] == "gate"] == [  # names sort in outbox order
            ("incident.new", 0), ("incident.update", 1), ("incident.end", 2)]
        assert {b["message_id"]: b for b in bodies} == {m["message_id"]: m for m in sub.applied}  # one body
        conn = open_db(db)
        assert conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 2
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL").fetchone()[0] == 0
        conn.close()
    finally:
        if hub is not None:
            hub.stop(5)
        if writer is not None:
            writer.close(10)
        sub.close()
        broker.stop()
