"""systemd supervision of a headless `inspector run`: READY once the pipeline runs, WATCHDOG only while it works.

Under systemd (``Type=notify``, ``WatchdogSec=``; see ``installers/linux/inspector-station.service``)
a thread of the command reads the station's own counters, like the progress bar does, and:

* sends ``READY=1`` once the pipeline is running (models loaded and warmed up, store open);
* sends ``WATCHDOG=1`` every quarter of the watchdog interval, but only while the pipeline makes
  progress: decisions keep coming for the frames it accepted, or no frame is waiting for one (a
  station waiting for the next wafer is idle, not stuck). Frames waiting with no decision for half
  the interval, or a faulted pipeline, stop the pings, so systemd kills the stuck station and
  ``Restart=on-failure`` starts it again;
* keeps ``STATUS=`` (shown by ``systemctl status``) up to date, and sends ``STOPPING=1`` at the end.

Without ``$NOTIFY_SOCKET`` nothing of this runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from inspector.util.sd_notify import Notifier, watchdog_interval

STATUS_EVERY_S = 5.0  # without a watchdog: how often STATUS is refreshed
READY_POLL_S = 0.1  # until the pipeline runs
ALIVE_STATES = ("running", "paused", "stopping")


@dataclass
class ProgressWatch:
    """Decides, from successive readings of the counters, whether the pipeline is still working."""

    stall_s: float
    _decided: int | None = None
    _progress_t: float | None = None

    def check(self, now: float, *, state: str, accepted: int, decided: int, dropped: int) -> bool:
        """True while the pipeline is alive: new decisions, or nothing waiting, within ``stall_s``."""
        if state not in ALIVE_STATES:
            return False
        pending = accepted - decided - dropped
        if self._decided is None or decided != self._decided or pending <= 0 or state == "paused":
            self._progress_t = now
        self._decided = decided
        assert self._progress_t is not None
        return now - self._progress_t <= self.stall_s


def _reading(station: Any) -> dict[str, Any]:
    m = station.metrics
    return {"state": m.state, "accepted": m.counter("accepted"), "decided": m.counter("decided"),
            "dropped": sum(m.drops.values())}


@contextmanager
def station_watchdog(station: Any, notifier: Notifier | None = None,
                     interval_s: float | None = None) -> Iterator[None]:
    """While the block runs the station: READY, WATCHDOG (only on progress), STATUS; STOPPING at the end.

    ``interval_s`` is systemd's watchdog interval (default: ``$WATCHDOG_USEC``; None: no watchdog).
    """
    notifier = notifier if notifier is not None else Notifier()
    if not notifier.enabled:
        yield
        return
    interval_s = interval_s if interval_s is not None else watchdog_interval()
    tick = interval_s / 4 if interval_s else STATUS_EVERY_S
    watch = ProgressWatch(stall_s=interval_s / 2 if interval_s else float("inf"))
    stop = threading.Event()
    station_id = getattr(getattr(station, "cfg", None), "station", None)
    name = getattr(station_id, "id", "station")

    def loop() -> None:
        ready = stopping = False
        while True:
            r = _reading(station)
            if not ready and r["state"] in ("running", "paused"):
                ready = notifier.ready(f"{name}: running")
            if ready and not stopping and r["state"] == "stopping":
                stopping = notifier.stopping(f"{name}: stopping, recording the frames in flight")
            if ready:
                alive = watch.check(time.monotonic(), **r)
                pending = r["accepted"] - r["decided"] - r["dropped"]
                text = (f"{name}: {r['state']}, {r['decided']} decided, {max(pending, 0)} waiting"
                        + ("" if alive else ", NOT PROGRESSING (watchdog pings withheld)"))
                if alive and interval_s:
                    notifier.notify("WATCHDOG=1", f"STATUS={text}")
                else:
                    notifier.status(text)
            if stop.wait(tick if ready else READY_POLL_S):  # READY as soon as the pipeline runs
                return

    thread = threading.Thread(target=loop, name="inspector-sd-notify", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        notifier.stopping(f"{name}: stopped")
        notifier.close()
