"""Progress of a headless `inspector run` / `demo`, read from the station's metrics while it runs.

The pipeline's threads are never asked to report: a thread of the command polls the counters
the station keeps anyway (a few reads per second), so the per-frame path does no extra work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from inspector.util.progress import NO_PROGRESS, Progress, Stage

POLL_S = 0.25  # how often the counters are read: often enough for a bar, rare enough to cost nothing


def _report(station: Any, stage: Stage) -> None:
    store = station.store
    stage.update(done=station.metrics.counter("decided"), captured=station.metrics.counter("accepted"),
                 recorded=0 if store is None else store.acked)


@contextmanager
def station_progress(station: Any, progress: Progress, total: int | None = None,
                     poll_s: float = POLL_S) -> Iterator[None]:
    """While the block runs the station, report stage ``run``: frames decided (``done``), frames
    captured and decisions recorded in the store; a last report once the block ends."""
    if progress is NO_PROGRESS:
        yield
        return
    stop = threading.Event()
    with progress.stage("run", total=total, unit="frame") as stage:
        def poll() -> None:
            while not stop.wait(poll_s):
                _report(station, stage)

        poller = threading.Thread(target=poll, name="inspector-run-progress", daemon=True)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()
            _report(station, stage)
