"""An acknowledged incident survives SIGKILL like its decision: a writer process is killed mid-run;
every event it acknowledged is in the reopened store, which still verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from inspector.store import incidents
from inspector.store.audit import verify
from inspector.store.db import open_db

WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, timedelta, timezone
    import numpy as np
    from inspector.core import Decision, Detections, Frame
    from inspector.core.site.types import IncidentEvent
    from inspector.store.writer import DecisionRecord, StoreWriter

    T0 = datetime(2026, 5, 4, tzinfo=timezone.utc)
    w = StoreWriter(sys.argv[1], None, batch_max=8, batch_wait_s=0.002).start()

    def ack(fut, i, events):
        fut.result()
        for e in events:  # printed only after the COMMIT that holds them
            sys.stdout.write(f"{e.key} {e.seq}\\n")
        sys.stdout.write(f"frame {i}\\n")
        sys.stdout.flush()

    for i in range(100000):
        fid = f"run/cam/{i}"
        track, step = divmod(i, 3)  # every track: new, update, end
        kind = ("new", "update", "end")[step]
        key = f"cam/run/{track}/no_hard_hat/1"
        e = IncidentEvent(kind, key, step, "cam", track, "no_hard_hat", "r", "high", None, T0 + timedelta(seconds=i),
                          fid, f"run/cam/{3 * track}", fid, 0.5, T0, "cleared" if kind == "end" else "")
        frame = Frame(fid, "st", "cam", float(i), T0 + timedelta(seconds=i), np.zeros((2, 2), np.uint8),
                      {"camera": "cam"})
        dec = Decision(fid, "fail", (), Detections.empty(), "ms", "h", T0)
        fut = w.submit(DecisionRecord(frame, dec, None, "run", ("hat",), False, incidents=(e,)))
        fut.add_done_callback(lambda f, i=i, ev=(e,): ack(f, i, ev))
""")


def test_acknowledged_incident_events_survive_sigkill(tmp_path):
    db = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    acked: dict[str, int] = {}
    frames = 0
    deadline = time.monotonic() + 60
    try:
        while frames < 200 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            a, b = line.split()
            if a == "frame":
                frames += 1
            else:
                acked[a] = max(acked.get(a, -1), int(b))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert frames >= 200, "the writer did not get going"
    conn = open_db(db)
    for key, seq in acked.items():
        inc = incidents.incident(conn, key=key)
        assert inc is not None and inc["seq"] >= seq, f"acknowledged incident {key} step {seq} was lost"
    stored = {(r[0]) for r in conn.execute("SELECT key FROM incidents")}
    assert set(acked) <= stored
    ended = conn.execute("SELECT COUNT(*) FROM incidents WHERE ended IS NOT NULL").fetchone()[0]
    assert ended >= sum(1 for s in acked.values() if s == 2)
    assert verify(conn).ok
    conn.close()
