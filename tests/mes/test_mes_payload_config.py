"""Payload schema, keys and streams, back-off, file drop, malformed MES configs."""

from __future__ import annotations

import json
import random

import pytest

from helpers.mes_testkit import make_record

from inspector.config import ConfigError, load_config_text
from inspector.mes.filedrop import FileDropTransport
from inspector.mes.forwarder import Backoff
from inspector.mes.outbox import OutboxRow
from inspector.mes.payload import UNIT_RESULT_SCHEMA, check_unit_payload, idempotency_key, stream_of


def test_unit_payload_follows_the_schema():
    body = make_record("run-a", 3, 1, ["x"]).outbox[0].body
    assert check_unit_payload(body) == []
    assert set(UNIT_RESULT_SCHEMA["required"]) <= set(body)
    assert body["message_id"] == "st-1/run-a/f00003" and body["stream"] == "L1/W1"
    assert body["unit"] == {"lot": "L1", "wafer": "W1", "die_x": 3, "die_y": 1, "camera": None, "zone": None}
    d = body["defects"][0]
    assert d["class"] == "scratch" and d["box_px"] == [10.0, 20.0, 30.0, 60.0]
    assert d["size_px"] == {"w": 20.0, "h": 40.0, "max": 40.0} and d["size_um"] == {"w": 40.0, "h": 80.0, "max": 80.0}
    json.dumps(body)  # plain JSON


def test_keys_and_streams():
    assert idempotency_key("st", "run-1", "run-1/cam/7") == "st/run-1/cam/7"
    assert idempotency_key("st", "run-1", "other") == "st/run-1/other"
    assert stream_of({"camera": "c1", "zone": "z"}, "src") == "c1/z"
    assert stream_of({}, "src") == "src"


def test_backoff_grows_capped_with_jitter():
    b = Backoff(0.5, 8.0, jitter=0.5)
    rng = random.Random(1)
    for n, base in ((1, 0.5), (2, 1.0), (3, 2.0), (10, 8.0), (1000, 8.0)):
        for _ in range(20):
            assert base / 2 <= b.delay(n, rng) <= base
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(2.0, 1.0)


def test_file_drop_writes_then_renames(tmp_path):
    t = FileDropTransport("files", tmp_path / "out")
    rows = [OutboxRow(i, "files", f"st/run/{i}", "s", "unit", json.dumps({"i": i}), {}, "t", 0) for i in (1, 2)]
    assert t.deliver(rows).delivered == 2
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["000000000001_st_run_1.json", "000000000002_st_run_2.json"]
    (tmp_path / "blocked").write_text("a file where the folder should be")
    r = FileDropTransport("files", tmp_path / "blocked").deliver(rows)
    assert r.delivered == 0 and r.error.scope == "transport" and "blocked" in str(r.error)


BASE = """
version: 1
station: {id: s1, name: S, domain: generic}
sources: [{type: folder, id: cam, path: x}]
models: [{name: m, registry: m, class_names: [a]}]
"""


@pytest.mark.parametrize("mes, path, words", [
    ("[{type: http, id: h, url: 'ftp://mes'}]", "mes[0].url", "http:// or https://"),
    ("[{type: http, id: h, url: 'https://mes', token_env: 'abc def'}]", "mes[0].token_env", "environment variable"),
    ("[{type: http, id: h, url: 'https://mes', timeout_s: 0}]", "mes[0].timeout_s", ""),
    ("[{type: mqtt, id: m, host: b, topic_template: 'x/{lott}'}]", "mes[0].topic_template", "unknown placeholder"),
    ("[{type: mqtt, id: m, host: b, port: 70000}]", "mes[0].port", ""),
    ("[{type: mqtt, id: m, host: b, qos: 3}]", "mes[0].qos", ""),
    ("[{type: filedrop, id: f}]", "mes[0].folder", ""),
    ("[{type: smtp, id: f}]", "mes[0]", "type"),
    ("[{type: filedrop, id: f, folder: a}, {type: filedrop, id: f, folder: b}]", "mes[1].id", "duplicate"),
    ("[{type: opcua, id: o, endpoint: 'http://x'}]", "mes[0].endpoint", ""),
    ("[{type: http, id: h, url: 'https://mes', verfy_tls: false}]", "mes[0]", "verfy_tls"),
])
def test_malformed_mes_configs_name_the_field(mes, path, words):
    with pytest.raises(ConfigError) as e:
        load_config_text(BASE + f"mes: {mes}\n")
    text = str(e.value)
    assert path in text and words in text, text
