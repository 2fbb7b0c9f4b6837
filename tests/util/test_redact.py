"""URL credentials are masked in what people read; a URL without secrets is left alone."""

from __future__ import annotations

import io
import logging

import pytest

from inspector.util.logs import _drop_ours, add_log_file, setup_logging
from inspector.util.redact import redact_text, redact_url


@pytest.mark.parametrize("url, shown", [
    ("https://ann:hunter2@mes.plant/api/results", "https://ann:***@mes.plant/api/results"),
    ("rtsp://admin:p@ss@10.0.0.7:554/stream1", "rtsp://admin:***@10.0.0.7:554/stream1"),
    ("https://ghp_SECRET@host/x", "https://***@host/x"),
    ("https://host/x?token=abc&lot=L1", "https://host/x?token=***&lot=L1"),
    ("https://host/x?lot=L1&api_key=k1&Password=p#frag", "https://host/x?lot=L1&api_key=***&Password=***#frag"),
    ("https://host:8443/x?access_token=t", "https://host:8443/x?access_token=***"),
    ("https://mes.plant:8443/api?lot=L1", "https://mes.plant:8443/api?lot=L1"),
    ("not a url", "not a url"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_masks_every_url_in_json_yaml_and_messages():
    text = ('{"url": "https://u:pw1@a/x", "source": "rtsp://cam:pw2@b/s"}\n'
            'url: http://u:pw3@c/y?key=pw4\nPOST https://u:pw5@d/z: HTTP 500 (pw5 only in the url)')
    out = redact_text(text)
    for secret in ("pw1", "pw2", "pw3", "pw4"):
        assert secret not in out
    assert '"https://u:***@a/x"' in out and "url: http://u:***@c/y?key=***" in out
    assert "POST https://u:***@d/z: HTTP 500" in out
    assert redact_text("POST http://h/x?token=t0k: refused.") == "POST http://h/x?token=***: refused."
    assert redact_text("nothing to see") == "nothing to see"


def test_log_lines_and_tracebacks_are_masked_on_stderr_and_in_the_file(tmp_path):
    stream = io.StringIO()
    root = logging.getLogger()
    try:
        setup_logging("warning", stream=stream)
        path = add_log_file(tmp_path / "data")
        log = logging.getLogger("inspector.test")
        log.warning("cannot reach %s", "https://ann:hunter2@mes/x?token=t0k")
        try:
            raise ConnectionError("refused by http://bob:s3cret@mes/")
        except ConnectionError:
            log.exception("delivery failed")
        for h in root.handlers:
            h.flush()
        for text in (stream.getvalue(), path.read_text()):
            assert "https://ann:***@mes/x?token=***" in text and "http://bob:***@mes/" in text
            assert "hunter2" not in text and "t0k" not in text and "s3cret" not in text
    finally:
        _drop_ours(root, "file")
        _drop_ours(root, "stderr")
