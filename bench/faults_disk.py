"""Fault case ``disk``: the disk fills up under a running station, in inspection and in monitoring flow.

Disk full is real SQLite ``SQLITE_FULL`` ("database or disk is full"): once the station is
recording, ``PRAGMA max_page_count`` is set on the store writer's own connection (through
``StoreWriter.submit_job``) to a few pages above the current size, so the next commits fail exactly
as on a full disk (the pager cannot grow the file). Works without root and without a small file
system; it does not model a full disk for image files (images are not stored here) or for the
WAL's own growth beyond the database size.

- ``inspection``: the station must fault on the first refused commit and stop taking units; every
  unit it acknowledged is in the database; every unit it took is either recorded or reported
  refused (the open store gap); after the fault the source is not read any more (at most what the
  queues hold).
  The database stays full, so the run's ``store_gap`` event may not fit in it; the refused units
  then count as reported when the run summary file names them (``unrecorded.frames``).
- ``monitoring``: the station goes on through the outage; a while after it noticed (5 s; small:
  0.5 s) the limit is lifted (space freed) and recording must resume; the gap must be stored as a
  ``store_gap`` station event whose count equals the units not recorded (#15 point 1).

Noticing takes about 2 s: the writer retries a refused batch (0.1 + 0.5 + 1.5 s) before it reports
the failure; in inspection flow the frames taken meanwhile are refused too and counted in the gap
(``details.inspection.taken_while_full_before_detect``), none after the fault.

The frames come from an endless in-process source (64 px random images, 200 fps cap) into a real
``Station`` built from a config with the tests' tiny ONNX model.

Figures (both flows summed): ``offered`` = judged units handed to the store (monitoring's
latest-wins drops are by design and reported apart); ``recorded`` = decisions in the
database; ``lost`` = acknowledged but missing, plus units neither recorded nor counted in a stored
gap nor named in the summary file (unaccounted); ``doubled`` = 0 unless a frame id appears twice (primary key: impossible) or a gap
counts a recorded unit; ``time_to_detect_s`` = worst time from the limit's first effect (taken
inside the writer's job: the job may share a batch with records it refuses) to the store telling
the station (``on_failure``: the fault in inspection flow, the gap opening in monitoring).

Self-test breakage (``unsafe``): ``ack-refused`` (the station also acknowledges the records the
store refused: lost).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bench.faults_common import (CaseResult, build_station, check_size, check_unsafe, events_of, ro_db,
                                 station_events, station_files)

NAME = "disk"
UNSAFE = ("ack-refused",)
SIZES = {"small": {"before": 10, "full_s": 0.5, "after": 8}, "default": {"before": 200, "full_s": 5.0, "after": 200}}


class EndlessSource:
    """Random 64 px frames, at most ``fps`` per second, until closed; counts what it handed out."""

    def __init__(self, name: str = "line", fps: float = 200.0) -> None:
        self.name = name
        self.fps = fps
        self.taken = 0
        self._closed = threading.Event()

    def frames(self) -> Iterator[Any]:
        from inspector.core.frame import Frame

        rng = np.random.default_rng(0)
        while not self._closed.is_set():
            img = rng.integers(0, 255, (64, 64, 3), np.uint8)
            self.taken += 1
            yield Frame(f"{self.name}:{self.taken}", "faults", self.name, time.monotonic(), Frame.utc_now(), img,
                        {"camera": self.name})
            self._closed.wait(1.0 / self.fps)

    def close(self) -> None:
        self._closed.set()


def _limit(st: Any, extra_pages: int | None, src: EndlessSource) -> tuple[float, int]:
    """Cap the writer connection's database size (None: lift the cap); when and after how many
    frames taken the cap first applied. The job may share a batch with records the cap refuses,
    and then returns only after their retries: the time is taken inside it, not after it."""
    first: dict[str, Any] = {}

    def job(conn: Any) -> None:
        first.setdefault("t", (time.monotonic(), src.taken))
        if extra_pages is None:
            conn.execute("PRAGMA max_page_count = 1073741823").fetchall()
        else:
            n = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {n + extra_pages}").fetchall()

    st.store.writer.submit_job(job, "fault injection: disk size").result(30)
    return first["t"]


def _one_flow(mode: str, p: dict[str, Any], work: Path, unsafe: str | None, extra_pages: int) -> dict[str, Any]:
    import logging

    cfg, reg, data = station_files(work / mode, "  - {type: folder, path: '.', pattern: 'unused'}", mode=mode,
                                   batch=2, queue=4)
    acked: list[str] = []
    lock = threading.Lock()

    def on_ack(fid: str) -> None:
        with lock:
            acked.append(fid)

    src = EndlessSource()
    st = build_station(cfg, reg, data, sources=[src], on_ack=on_ack)
    out: dict[str, Any] = {"mode": mode}
    quiet = logging.getLogger("inspector")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        st.start()
        if unsafe == "ack-refused":  # a station that promises what the store refused
            real = st.store.accept_result

            def accept(result: Any) -> Any:
                fut = real(result)
                fut.add_done_callback(lambda f: f.exception() is not None and on_ack(result.frame.frame_id))
                return fut

            st.store.accept_result = accept  # type: ignore[method-assign]
        deadline = time.monotonic() + 60
        while len(acked) < p["before"] and time.monotonic() < deadline:
            time.sleep(0.02)
        noticed: dict[str, Any] = {}  # when the store told the station (fault or gap), and frames taken by then
        told = st.store.on_failure

        def notice(msg: str) -> None:
            noticed.setdefault("t", (time.monotonic(), src.taken))
            if told is not None:
                told(msg)

        st.store.on_failure = notice
        t_full, taken_at_full = _limit(st, extra_pages, src)
        detect = None
        t_detect = t_full + 30.0
        while time.monotonic() < min(t_full + 30.0, t_detect + p["full_s"]):
            if detect is None and "t" in noticed:
                t_detect, taken_at_detect = noticed["t"]
                detect = t_detect - t_full
            time.sleep(0.01)
        out["time_to_detect_s"] = detect
        out["state_while_full"] = st.state
        if mode == "monitoring":
            _limit(st, None, src)
            n0 = len(acked)
            deadline = time.monotonic() + 60
            while len(acked) < n0 + p["after"] and time.monotonic() < deadline and st.state == "running":
                time.sleep(0.02)
            out["recorded_after_space_returned"] = len(acked) - n0
        st.request_stop()
        out["clean_stop"] = st.stop(30)
    finally:
        quiet.setLevel(level)
    out["taken"] = src.taken
    out["taken_after_detect"] = None if detect is None else src.taken - taken_at_detect
    out["taken_while_full_before_detect"] = None if detect is None else taken_at_detect - taken_at_full
    with ro_db(st.db_path) as conn:
        in_db = {r[0] for r in conn.execute("SELECT frame_id FROM decisions d JOIN frames f ON f.id = d.frame_id"
                                            " WHERE f.run_id = ?", (st.run_id,))}
        gaps = events_of([e for e in station_events(conn) if e.get("run_id") == st.run_id], '"store_gap"')
        out["integrity_ok"] = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    summary = st.summary()
    # The station's own account of what the store refused, from the summary file it wrote: in
    # inspection flow the disk stays full, so the store_gap event itself may not fit in the database.
    written = json.loads(Path(st.summary_file).read_text(encoding="utf-8")) if st.summary_file else {}
    named = set((written.get("unrecorded") or {}).get("frames") or ())
    out["offered"] = st.store.submitted  # judged units handed to the store (monitoring drops are counted apart)
    out["frames_taken"] = summary["frames"]
    out["dropped_latest_wins"] = summary["dropped"]
    out["recorded"] = len(in_db)
    out["lost_acked"] = sorted(set(acked) - in_db)[:20]
    out["lost_acked_n"] = len(set(acked) - in_db)
    by_first: dict[str, int] = {}  # a gap may be written again at the run's end: count each once
    for g in gaps:
        detail = g.get("detail")
        d = json.loads(detail) if isinstance(detail, str) else (detail or {})
        key = str(d.get("first_frame", g.get("id")))
        by_first[key] = max(by_first.get(key, 0), int(d.get("frames_not_recorded", 0) or 0))
    gap_n = sum(by_first.values())
    out["store_gaps"] = len(by_first)
    out["gap_units"] = gap_n
    out["refused_reported"] = getattr(st.store, "failed", None)
    out["refused_named_in_summary"] = len(named)
    out["named_but_recorded"] = len(named & in_db)
    # A refused unit is accounted for when a stored gap counts it or the summary file names it.
    out["unaccounted"] = max(0, out["offered"] - out["recorded"] - max(gap_n, len(named - in_db)))
    out["state_after"] = st.state
    return out


def run(size: str = "default", *, seed: int = 0, unsafe: str | None = None,
        flows: tuple[str, ...] = ("inspection", "monitoring"), extra_pages: int = 3) -> CaseResult:
    """``extra_pages``: how far the database may still grow once "full" (0: not even the gap
    event fits, so inspection flow's account of the refused units is its summary file alone)."""
    check_size(size)
    check_unsafe(unsafe, UNSAFE, NAME)
    p = SIZES[size]
    res = CaseResult(NAME)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="inspector-faults-disk-") as tmp:
        done = [_one_flow(mode, p, Path(tmp), unsafe, extra_pages) for mode in flows]
    by = {f["mode"]: f for f in done}
    insp, mon = by.get("inspection"), by.get("monitoring")
    for f in done:
        res.offered += f["offered"]
        res.recorded += f["recorded"]
        res.lost += f["lost_acked_n"] + f["unaccounted"]
        if not f["integrity_ok"]:
            res.fail(f"{f['mode']}: integrity check failed after the disk filled")
        if f["time_to_detect_s"] is None:
            res.fail(f"{f['mode']}: the station never noticed the full disk")
        if f["gap_units"] > f["offered"] - f["recorded"]:
            res.doubled += f["gap_units"] - (f["offered"] - f["recorded"])
        res.doubled += f["named_but_recorded"]  # named as refused, yet on record
    if insp is not None:
        if insp["state_while_full"] != "faulted" and insp["state_after"] != "faulted":
            res.fail(f"inspection: the station did not fault on the full disk (state {insp['state_while_full']})")
        if insp["taken_after_detect"] is not None and insp["taken_after_detect"] > 2:
            res.fail(f"inspection: {insp['taken_after_detect']} frames taken from the source after the fault")
    if mon is not None:
        if mon["state_while_full"] != "running":
            res.fail(f"monitoring: the station stopped on the full disk (state {mon['state_while_full']})")
        if not mon.get("recorded_after_space_returned"):
            res.fail("monitoring: recording did not resume once space returned")
        if mon["store_gaps"] == 0:
            res.fail("monitoring: no store_gap event stored")
        elif mon["gap_units"] < (mon["refused_reported"] or 0):
            res.fail(f"monitoring: the stored gaps count {mon['gap_units']} units, the store refused "
                     f"{mon['refused_reported']}")
    times = [f["time_to_detect_s"] for f in done if f["time_to_detect_s"] is not None]
    res.time_to_detect_s = max(times) if times else None
    res.details = by
    res.notes = ("SQLITE_FULL via PRAGMA max_page_count on the store writer's connection, a real station per flow; "
                 "inspection must fault and stop reading, monitoring must go on and store the gap")
    return res.finish(t0)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small").as_dict(), indent=1, default=str))
