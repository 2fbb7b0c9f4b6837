"""The MES field of the GUI status bar (inspector/gui/status.py, pure: no Qt) from station snapshots."""

from __future__ import annotations

import pytest

from inspector.gui.status import duration, mes_field, short_error, status_fields

UP = {"link": "up", "pending": 0, "oldest_age_s": None, "last_error": None}
DOWN = {"link": "down", "link_for_s": 125.0, "pending": 1234, "oldest_age_s": 190.0, "down": True,
        "last_error": "st-1/run-a/f00007: mqtt://127.0.0.1:1883: cannot connect: ConnectionRefusedError: "
                      "[Errno 111] Connection refused"}


def test_per_output_link_depth_and_oldest_age_from_the_station_gauge():
    snap = {"queues": {"mes": {"http": UP, "mqtt": DOWN}, "store": 3}}
    f = status_fields(snap, state="running", models=["m@1"], mes=["http", "mqtt"])
    assert f["mes"] == "MES: http up, depth 0 | mqtt down 2m (connection refused), depth 1,234, oldest 3m"
    assert f["queue"] == "queue 3"  # the MES stats are not counted as a pipeline queue


def test_retrying_unknown_and_outputs_without_stats():
    retrying = {"link": "retrying", "held_streams": 2, "pending": 5, "oldest_age_s": 42,
                "last_error": "k: POST https://mes/api: HTTP 422 Unprocessable Entity: bad lot"}
    snap = {"mes": {"http": retrying, "files": {"link": "unknown", "pending": 0}}}
    text = mes_field(snap, ["http", "files", "opc"])
    assert text == "MES: http retrying (2 streams held: HTTP 422), depth 5, oldest 42s | files unknown, depth 0 | opc"
    assert mes_field(None, ["http", "mqtt"]) == "MES: http | mqtt"  # configured, station not running
    assert mes_field({}, []) == "MES: not configured"


def test_older_stats_without_a_link_key_fall_back_to_the_down_flag():
    assert mes_field({"mes": {"h": {"down": True, "pending": 2, "oldest_age_s": 7200,
                                    "last_error": "POST x: TimeoutError: timed out"}}}, ["h"]) \
        == "MES: h down (timeout), depth 2, oldest 2h00m"


@pytest.mark.parametrize("message, short", [
    ("k: POST https://m/x: TLS certificate verification failed: unable to get local issuer certificate (set ca_file"
     " to the CA ...)", "TLS certificate not trusted"),
    ("k: mqtts://b:8883: cannot connect: TLS handshake failed: TLSV13_ALERT_CERTIFICATE_REQUIRED (the server wants a"
     " client certificate: set cert_file)", "TLS client certificate needed"),
    ("k: POST http://m/x: HTTP 503 Service Unavailable", "HTTP 503"),
    ("k: mqtt://b:1883: no PUBACK within 5 s", "no PUBACK"),
    ("k: POST http://mes.local/x: gaierror: [Errno -2] Name or service not known", "host not found"),
    ("k: cannot write /data/out/1.json: [Errno 28] No space left on device", "disk full"),
    ("k: something nobody foresaw happened in a very long sentence indeed", "something nobody foresaw happened in a…"),
    (None, ""),
])
def test_short_error(message, short):
    assert short_error(message) == short


@pytest.mark.parametrize("seconds, text", [(None, "-"), (0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"),
                                           (3600, "1h00m"), (86400 + 7200, "1d02h")])
def test_duration(seconds, text):
    assert duration(seconds) == text
