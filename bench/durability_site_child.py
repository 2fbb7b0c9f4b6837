"""The construction station that ``bench/durability.py --domain construction`` kills.

    python bench/durability_site_child.py --config site.yaml --data-dir DATA [--duration-s S]

A real ``Station`` on the config's synthetic site cameras (not paced: frames come as fast as the
station takes them, latest wins), judged by a detector that returns each frame's exact truth
(``tests/helpers/site_fakes.py``: no model to train or load, so the kill lands in the station,
not in inference), its scores varied from frame to frame so that open incidents also send
``update`` events (worst evidence improved). Lines on stdout, each one unbuffered ``write`` (atomic on a pipe):

- ``RUN <run_id>`` once started;
- per acknowledged decision, i.e. only after the transaction holding it COMMITTED
  (``Station(on_ack=...)``): first one ``EVT <frame_id> <event> <key> <seq>`` per incident event
  of that frame (they commit in the decision's transaction), then ``ACK <frame_id> <submitted>
  <events_submitted>`` (records and incident events handed to the store by then), in one write;
- per committed run-end batch (``accept_events``, the incidents a graceful end closes):
  ``EVT - end <key> <seq>`` lines;
- ``SUMMARY <json>`` and ``END`` when the run ends by itself (``--duration-s``: the restart check).

``--unsafe-ack-before-submit`` (hidden; the harness's self-test) writes a frame's lines *before*
the record is handed to the store: the promise a station must never make.

The events of a frame are noted when the record is handed to the store and read back in
``on_ack``: a ``StoreSink`` subclass swapped into the station module, the same seam as the wafer
child's negative control (the station has no per-event acknowledgement hook).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from helpers.site_fakes import truth_station_parts  # noqa: E402

from inspector.config import config_hash, load_config  # noqa: E402
from inspector.core.detections import Detections  # noqa: E402
from inspector.runtime.ensemble import Ensemble, Member  # noqa: E402
from inspector.station import station as station_module  # noqa: E402
from inspector.station.station import Station  # noqa: E402
from inspector.station.store_sink import StoreSink  # noqa: E402

_OUT = sys.stdout.fileno()
_write_lock = threading.Lock()


def emit(lines: list[str]) -> None:
    """One unbuffered write for all ``lines`` (a pipe write under PIPE_BUF bytes is atomic)."""
    data = "".join(line + "\n" for line in lines).encode()
    with _write_lock:
        os.write(_OUT, data)


def event_lines(frame_id: str, events) -> list[str]:
    return [f"EVT {frame_id} {e.event} {e.key} {int(e.seq)}" for e in events]


class VaryingScores:
    """The truth detector with each image's scores on a slow saw-tooth (0.55 rising to 0.95 over
    30 images, then again): the evidence of an open incident keeps improving for a while, so
    ``update`` events are exercised (a constant score would only ever open and end incidents)."""

    def __init__(self, inner) -> None:
        self.inner, self.class_names, self.n = inner, inner.class_names, 0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for d in self.inner.detect(images):
            self.n += 1
            score = 0.55 + 0.4 * (self.n % 30) / 29
            out.append(Detections(d.xyxy, np.full(len(d), score, np.float32), d.class_id))
        return out


def noting_sink(unsafe: bool) -> type[StoreSink]:
    """A ``StoreSink`` that notes each record's incident events for ``on_ack`` (and, ``unsafe``,
    promises them before the store has them)."""

    class NotingSink(StoreSink):
        events_submitted = 0
        _noted: dict[str, tuple] = {}
        _noted_lock = threading.Lock()

        def accept_result(self, result):  # type: ignore[override]
            events = result.site.events if result.site is not None else ()
            fid = result.frame.frame_id
            with self._noted_lock:
                type(self).events_submitted += len(events)
                if not unsafe:
                    type(self)._noted[fid] = events
            if unsafe:
                emit(event_lines(fid, events) + [f"ACK {fid} {self.submitted + 1} {type(self).events_submitted}"])
            return super().accept_result(result)

        def accept_events(self, events):  # type: ignore[override]
            with self._noted_lock:
                type(self).events_submitted += len(events)
            fut = super().accept_events(events)
            if fut is not None and events:
                lines = event_lines("-", events)
                fut.add_done_callback(lambda f: f.exception() is None and emit(lines))
            return fut

        @classmethod
        def take(cls, frame_id: str) -> tuple:
            with cls._noted_lock:
                return cls._noted.pop(frame_id, ())

    return NotingSink


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A construction station logging decisions and incidents until killed.")
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--duration-s", type=float, default=None,
                    help="video seconds per camera (default: the config's); the run then ends by itself")
    ap.add_argument("--unsafe-ack-before-submit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    if args.duration_s is not None:
        cfg = cfg.model_copy(update={"sources": [s.model_copy(update={"duration_s": args.duration_s})
                                                 for s in cfg.sources]})
    sink = noting_sink(args.unsafe_ack_before_submit)
    station_module.StoreSink = sink  # type: ignore[misc]
    holder: dict[str, Station] = {}

    def on_ack(frame_id: str) -> None:  # the writer thread, after COMMIT
        st = holder.get("station")
        submitted = st.store.submitted if st is not None and st.store is not None else -1
        emit(event_lines(frame_id, sink.take(frame_id)) + [f"ACK {frame_id} {submitted} {sink.events_submitted}"])

    cams, truth, _ = truth_station_parts(cfg)
    m = truth.members[0]
    ensemble = Ensemble([Member(m.name, m.version, m.sha256, VaryingScores(m.detector))])
    st = Station.from_config(cfg, config_hash(cfg), data_dir=args.data_dir, sources=cams, ensemble=ensemble,
                             on_ack=None if args.unsafe_ack_before_submit else on_ack)
    holder["station"] = st
    st.start()
    emit([f"RUN {st.run_id}"])
    assert st.pipeline is not None
    while not st.pipeline.wait(0.5):
        pass
    st.stop()
    s = st.summary()
    emit(["SUMMARY " + json.dumps({"complete": s["complete"], "errors": s["errors"], "decisions": s["decisions"],
                                   "stored": s["stored"], "store_failed": s["store_failed"]}), "END"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
