"""station_progress: the command's own thread reads the station's counters; nothing when unwatched."""

from __future__ import annotations

import io
import json
import threading
import time
from types import SimpleNamespace

from inspector.cli.run_progress import station_progress
from inspector.station.metrics import Metrics
from inspector.util.progress import NO_PROGRESS, JsonProgress


def _station():
    return SimpleNamespace(metrics=Metrics(), store=SimpleNamespace(acked=0))


def test_reports_while_running_and_once_more_at_the_end():
    st, out = _station(), io.StringIO()
    with station_progress(st, JsonProgress(out, interval_s=0), total=3, poll_s=0.01):
        for _ in range(3):
            st.metrics.accepted()
            st.metrics.decided("pass")
            st.store.acked += 1
            time.sleep(0.05)  # the poller reads in between
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "end"
    assert lines[-1] | {"elapsed_s": 0} == {"progress": "run", "event": "end", "done": 3, "total": 3, "unit": "frame",
                                            "elapsed_s": 0, "captured": 3, "recorded": 3}
    assert any(0 < x["done"] < 3 for x in lines[1:-1])  # seen while running, not only at the end


def test_no_thread_when_nobody_watches():
    before = threading.active_count()
    with station_progress(_station(), NO_PROGRESS, poll_s=0.01):
        assert threading.active_count() == before


def test_a_failed_run_ends_the_stage_as_failed():
    st, out = _station(), io.StringIO()
    try:
        with station_progress(st, JsonProgress(out), poll_s=0.01):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert json.loads(out.getvalue().splitlines()[-1])["event"] == "failed"
