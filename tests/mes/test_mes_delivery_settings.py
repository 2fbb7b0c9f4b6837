"""Retry back-off, batching and timeouts per MES output: validated in the config (errors name the
field), carried to the forwarder, and used by it. Also the link state the forwarder reports."""

from __future__ import annotations

import copy
import random
import threading
import time

import pytest
import yaml

from helpers.mes_testkit import Producer, make_record

from inspector.config import ConfigError, load_config_text
from inspector.mes.forwarder import Backoff, Delivery, DeliveryError, ForwarderSettings, Retention
from inspector.mes.hub import MesHub

BASE = {
    "station": {"id": "w1", "name": "W", "domain": "wafer"},
    "wafer": {"die_pitch_x_mm": 10, "die_pitch_y_mm": 10},
    "sources": [{"type": "synthetic_wafer", "seed": 1}],
    "models": [{"name": "a", "registry": "wafer-demo", "class_names": ["particle", "scratch"]}],
}


def load(mes, **top):
    return load_config_text(yaml.safe_dump({**copy.deepcopy(BASE), "mes": mes, **top}))


def test_settings_from_the_config_reach_the_forwarders(tmp_path):
    cfg = load([
        {"type": "filedrop", "id": "files", "folder": "out", "batch_size": 7,
         "backoff": {"initial_s": 2, "max_s": 30, "multiplier": 3, "jitter": 0}},
        {"type": "http", "id": "mes", "url": "http://127.0.0.1:9/x", "timeout_s": 1.5},
        {"type": "mqtt", "id": "mq", "host": "b", "timeout_s": 3, "window": 10},
    ], mes_outbox={"retention_days": 2, "prune_interval_min": 5, "prune_batch": 50})
    pytest.importorskip("paho.mqtt.client")
    hub = MesHub.from_config(cfg, "h" * 64, "run-a", tmp_path)
    files = hub.output_settings["files"]
    assert files.batch == 7 and files.backoff == Backoff(initial_s=2, max_s=30, jitter=0, multiplier=3)
    assert files.retention == Retention(keep_s=2 * 86400, every_s=300, batch=50)
    assert hub.output_settings["mes"].backoff == Backoff() and hub.output_settings["mes"].batch == 200  # defaults
    http, mqtt = hub.transports[1], hub.transports[2]
    assert http._timeout == 1.5 and (mqtt.timeout_s, mqtt.window) == (3.0, 10)
    hub.start(tmp_path / "s.sqlite")
    try:
        assert [f.settings for f in hub.forwarders] == [hub.output_settings[n] for n in ("files", "mes", "mq")]
    finally:
        hub.stop(5, drain_s=0)


BAD = [
    ("max-below-initial", {"backoff": {"initial_s": 10, "max_s": 5}}, "mes[0].backoff.max_s",
     "must be >= initial_s (10), got 5"),
    ("jitter-over-one", {"backoff": {"jitter": 1.5}}, "mes[0].backoff.jitter", "at most 1"),
    ("multiplier-below-one", {"backoff": {"multiplier": 0.5}}, "mes[0].backoff.multiplier", "at least 1"),
    ("initial-zero", {"backoff": {"initial_s": 0}}, "mes[0].backoff.initial_s", "greater than 0"),
    ("typo-in-backoff", {"backoff": {"max": 5}}, "mes[0].backoff.max", ""),
    ("batch-zero", {"batch_size": 0}, "mes[0].batch_size", "at least 1"),
    ("batch-text", {"batch_size": "many"}, "mes[0].batch_size", "integer"),
    ("timeout-negative", {"timeout_s": -1}, "mes[0].timeout_s", "greater than 0"),
    ("key-without-cert", {"url": "https://m/x", "key_file": "k.pem"}, "mes[0].key_file", "give cert_file too"),
    ("ca-on-plain-http", {"ca_file": "ca.pem"}, "mes[0].ca_file", "only used with an https:// url"),
    ("ca-and-no-verify", {"url": "https://m/x", "ca_file": "ca.pem", "verify_tls": False}, "mes[0].ca_file",
     "verify_tls is false"),
]


@pytest.mark.parametrize("change, path, words", [pytest.param(*c[1:], id=c[0]) for c in BAD])
def test_malformed_delivery_settings_name_the_field(change, path, words):
    with pytest.raises(ConfigError) as e:
        load([{"type": "http", "id": "mes", "url": "http://m/x", **change}])
    found = [x for x in e.value.errors if x.path == path]
    assert found, f"no error at {path}: {e.value}"
    assert words in found[0].message


@pytest.mark.parametrize("mes, top, path, words", [
    ({"type": "mqtt", "id": "m", "host": "b", "ca_file": "ca.pem"}, {}, "mes[0].ca_file", "only used with tls: true"),
    ({"type": "mqtt", "id": "m", "host": "b", "window": 0}, {}, "mes[0].window", "at least 1"),
    ({"type": "klarf", "id": "k", "folder": "k", "backoff": {"max_s": 0.1}}, {}, "mes[0].backoff.max_s",
     "must be >= initial_s (0.5), got 0.1"),
    ({"type": "filedrop", "id": "f", "folder": "f"}, {"mes_outbox": {"retention_days": 0}},
     "mes_outbox.retention_days", "greater than 0"),
    ({"type": "filedrop", "id": "f", "folder": "f"}, {"mes_outbox": {"prune_batch": 0}}, "mes_outbox.prune_batch",
     "at least 1"),
])
def test_malformed_settings_of_other_outputs(mes, top, path, words):
    with pytest.raises(ConfigError) as e:
        load([mes], **top)
    assert any(x.path == path and words in x.message for x in e.value.errors), str(e.value)


def test_backoff_grows_by_the_multiplier_up_to_the_cap_with_bounded_jitter():
    b = Backoff(initial_s=1, max_s=10, jitter=0, multiplier=3)
    assert [b.delay(n) for n in range(1, 6)] == [1, 3, 9, 10, 10]
    assert Backoff(initial_s=1, max_s=60, multiplier=1).base(50) == 1  # constant
    assert Backoff(initial_s=1, max_s=60, multiplier=10).base(10_000) == 60  # no overflow on long outages
    j = Backoff(initial_s=4, max_s=4, jitter=0.5)
    rng = random.Random(1)
    delays = [j.delay(1, rng) for _ in range(200)]
    assert 2 <= min(delays) < 2.2 and 3.8 < max(delays) <= 4
    with pytest.raises(ValueError, match="multiplier"):
        Backoff(multiplier=0.9)


class Scripted:
    """A transport whose next answers the test decides; records the batch sizes it was handed."""

    name = "mes"
    kinds = frozenset({"unit", "wafer"})

    def __init__(self) -> None:
        self.mode = "ok"
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def deliver(self, rows):
        with self.lock:
            self.sizes.append(len(rows))
            mode = self.mode
        if mode == "down":
            return Delivery(0, DeliveryError("POST http://mes/x: ConnectionRefusedError: [Errno 111] Connection refused"))
        if mode == "refuse":
            return Delivery(0, DeliveryError("POST http://mes/x: HTTP 422 Unprocessable Entity", "message"))
        return Delivery(len(rows))

    def close(self):
        pass


def wait(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_forwarder_uses_the_batch_size_and_the_configured_first_delay(tmp_path):
    t = Scripted()
    settings = ForwarderSettings(backoff=Backoff(initial_s=5, max_s=60, jitter=0), batch=7, poll_s=0.02,
                                 stats_every_s=0.02)
    p = Producer(tmp_path / "s.sqlite", [t], settings)
    try:
        p.write([make_record("run-a", i, 0, ["mes"]) for i in range(20)])
        assert p.forwarders[0].wait_empty(5)
        assert max(t.sizes) == 7 and sum(t.sizes) == 20
        t.mode = "down"
        p.write([make_record("run-a", 20, 0, ["mes"])])
        fw = p.forwarders[0]
        assert wait(lambda: fw.stats()["link"] == "down")
        assert 4.0 < fw.stats()["retry_in_s"] <= 5.0  # initial_s, no jitter: the next try in 5 s, not sooner
        calls = len(t.sizes)
        time.sleep(0.3)
        assert len(t.sizes) == calls  # and nothing is attempted meanwhile
    finally:
        p.close()


def test_link_state_follows_the_last_attempt(tmp_path):
    t = Scripted()
    settings = ForwarderSettings(backoff=Backoff(initial_s=0.05, max_s=0.05), poll_s=0.02, stats_every_s=0.02)
    p = Producer(tmp_path / "s.sqlite", [t], settings)
    fw = p.forwarders[0]
    try:
        assert fw.stats()["link"] == "unknown"
        p.write([make_record("run-a", 0, 0, ["mes"])])
        assert wait(lambda: fw.stats()["link"] == "up") and fw.stats()["last_delivered_at"]

        t.mode = "down"
        p.write([make_record("run-a", 1, 0, ["mes"])])
        assert wait(lambda: fw.stats()["link"] == "down")
        st = fw.stats()
        assert "Connection refused" in st["last_error"] and st["down"] and st["link_since"]
        assert wait(lambda: fw.stats()["pending"] == 1)

        t.mode = "refuse"  # reachable again, but this message is refused: its stream is held
        assert wait(lambda: fw.stats()["link"] == "retrying")
        assert fw.stats()["held_streams"] == 1 and "HTTP 422" in fw.stats()["last_error"]

        t.mode = "ok"
        assert wait(lambda: fw.stats()["link"] == "up" and fw.stats()["held_streams"] == 0)
        assert fw.wait_empty(5)
    finally:
        p.close()
