"""The station in a child process of the GUI: the operator's window never waits for the line.

The GUI process runs only Qt. The station (capture, inference, rules, store writer, MES) runs in
a child started with the ``spawn`` context, at a lower scheduling priority (``os.nice``), so its
Python threads never hold the GUI's GIL and the operator's clicks get a core first.

Between the two:

- the newest frame goes through shared memory (:class:`FrameSlot`): a latest-value slot with a
  sequence number, written by the child, read by the GUI when it wants a frame. Nothing queues:
  a GUI that looks less often simply skips frames, as a live view should;
- everything small and rare goes through a ``Pipe``: commands (pause / resume / stop) one way;
  state changes, model names, metrics snapshots (a few per second), errors and the final run
  summary the other way. The GUI drains it without blocking (``StationProcess.poll``).

Stop is a message: the child stops the station the usual way (every accepted frame judged and
stored, run end recorded), sends the summary, exits 0. If the GUI disappears, the pipe reads EOF
and the child stops the same way. If the child dies, the GUI sees its exit code.

No Qt here: ``inspector.gui.station_controller`` wraps :class:`StationProcess` in a QObject.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
import os
import pickle
import signal
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from inspector.config.schema import StationConfig
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.types import SiteFrame
from inspector.station.bridge import LiveFrame
from inspector.util.logs import add_log_file, current_level, setup_logging

log = logging.getLogger(__name__)

#: Niceness added to the GUI's in the child (clamped at 19 by the OS): the GUI gets the CPU first.
CHILD_NICE = 10
SNAPSHOT_S = 0.25          # metrics snapshot period (the status bar refreshes every 500 ms)
_LOOP_S = 0.05             # the child's command loop: how fast a pause / stop is acted on

# --- the shared-memory frame slot ------------------------------------------------------------
# Layout: a header (magic, newest published seq), then two slots written alternately (seq & 1),
# so a reader copying the newest one is not overwritten by the very next frame. Each slot:
# begin seq, end seq, image shape / dtype / byte counts, preview scale, then image bytes and the
# pickled small things (frame fields, decision, fused boxes, site workers and zones). A reader
# accepts a slot only when begin == end == the seq it wanted (a seqlock): a torn copy is retried
# or skipped, never shown.
_MAGIC = 0x49535031  # "ISP1"
_HEAD = struct.Struct("<IIQ")                 # magic, reserved, newest seq
_SLOT_HEAD = struct.Struct("<QQIIIIIIf4x")    # begin, end, h, w, c, itemsize, image bytes, meta bytes, scale
_HEAD_SIZE = 64
_SLOT_HEAD_SIZE = 64
#: Image bytes per slot: 2048 x 2048 x 3. Bigger frames are previewed strided (boxes scaled to match);
#: the live view shows a window-sized picture anyway. Shared memory pages are only backed once touched.
IMAGE_CAPACITY = 2048 * 2048 * 3
META_CAPACITY = 1 << 20
_DTYPES = {1: np.uint8, 2: np.uint16, 4: np.float32}


def _slot_size(image_capacity: int) -> int:
    return _SLOT_HEAD_SIZE + image_capacity + META_CAPACITY


class FrameSlot:
    """Latest-value frame slot in shared memory: the child writes, the GUI reads; see the layout above.

    The GUI creates (and finally unlinks) the segment and the child only attaches: one owner, so a
    crashed child cannot leak it and Python's resource tracker does not unlink it behind our back.
    """

    def __init__(self, shm: SharedMemory, image_capacity: int, owner: bool) -> None:
        self.shm = shm
        self.image_capacity = int(image_capacity)
        self.owner = owner
        self._buf = shm.buf
        self._cached: LiveFrame | None = None
        self._written = 0
        self.torn = 0      # reads that found the slot being rewritten (retried or skipped)

    @classmethod
    def create(cls, image_capacity: int = IMAGE_CAPACITY) -> FrameSlot:
        shm = SharedMemory(create=True, size=_HEAD_SIZE + 2 * _slot_size(image_capacity))
        _HEAD.pack_into(shm.buf, 0, _MAGIC, 0, 0)
        return cls(shm, image_capacity, owner=True)

    @classmethod
    def attach(cls, name: str, image_capacity: int = IMAGE_CAPACITY) -> FrameSlot:
        shm = SharedMemory(name=name)
        magic = _HEAD.unpack_from(shm.buf, 0)[0]
        if magic != _MAGIC:
            shm.close()
            raise ValueError(f"shared memory {name} is not an Inspector frame slot")
        return cls(shm, image_capacity, owner=False)

    @property
    def name(self) -> str:
        return self.shm.name

    def _offset(self, seq: int) -> int:
        return _HEAD_SIZE + (seq & 1) * _slot_size(self.image_capacity)

    # --- the child: one writer (the bridge subscriber's thread) -----------------------------
    def write(self, lf: LiveFrame) -> None:
        """Publish a live frame; O(image bytes), never waits for the reader."""
        image = np.ascontiguousarray(lf.frame.image)
        if image.dtype.itemsize not in _DTYPES or image.dtype.kind not in "uif":
            image = image.astype(np.uint8)
        scale = 1.0
        if image.nbytes > self.image_capacity:
            step = math.ceil(math.sqrt(image.nbytes / self.image_capacity))
            while image[::step, ::step].nbytes > self.image_capacity:
                step += 1
            image = np.ascontiguousarray(image[::step, ::step])
            scale = 1.0 / step
        meta = _pack_meta(lf, scale)
        h, w = image.shape[:2]
        c = 1 if image.ndim == 2 else image.shape[2]
        self._written += 1
        seq = self._written
        off = self._offset(seq)
        buf = self._buf
        struct.pack_into("<Q", buf, off, seq)                       # begin: the slot is being written
        _SLOT_HEAD.pack_into(buf, off, seq, 0, h, w, c, image.dtype.itemsize, image.nbytes, len(meta), scale)
        start = off + _SLOT_HEAD_SIZE
        buf[start:start + image.nbytes] = image.reshape(-1).view(np.uint8)
        mstart = start + self.image_capacity
        buf[mstart:mstart + len(meta)] = meta
        struct.pack_into("<Q", buf, off + 8, seq)                   # end: complete
        struct.pack_into("<Q", buf, 8, seq)                         # newest published

    # --- the GUI: O(1) when nothing new, one copy of the image otherwise -----------------------
    @property
    def seq(self) -> int:
        return int(struct.unpack_from("<Q", self._buf, 8)[0])

    def read(self) -> LiveFrame | None:
        """The newest complete frame (cached until a newer one is published), or None before the first."""
        for _ in range(3):
            seq = self.seq
            if seq == 0 or (self._cached is not None and self._cached.seq == seq):
                return self._cached
            lf = self._read(seq)
            if lf is not None:
                self._cached = lf
                return lf
            self.torn += 1
        return self._cached

    def _read(self, seq: int) -> LiveFrame | None:
        off = self._offset(seq)
        buf = self._buf
        begin, end, h, w, c, itemsize, nbytes, mlen, scale = _SLOT_HEAD.unpack_from(buf, off)
        if begin != seq or end != seq or nbytes > self.image_capacity or mlen > META_CAPACITY:
            return None
        start = off + _SLOT_HEAD_SIZE
        image = np.frombuffer(buf, _DTYPES[itemsize], nbytes // itemsize, start).copy()
        meta = bytes(buf[start + self.image_capacity:start + self.image_capacity + mlen])
        if struct.unpack_from("<Q", buf, off)[0] != seq:
            return None  # rewritten while we copied
        try:
            fields, decision, fused, site = pickle.loads(meta)
        except Exception:  # noqa: BLE001 - a torn copy that slipped past the seq check
            return None
        image = image.reshape((h, w) if c == 1 and len(fields.get("_shape", ())) == 2 else (h, w, c))
        fields.pop("_shape", None)
        return LiveFrame(seq, Frame(image=image, **fields), decision, fused, site)

    def close(self) -> None:
        """Unmap (and, for the GUI that created it, remove) the segment."""
        self._cached = None
        self._buf = None  # type: ignore[assignment]
        try:
            self.shm.close()
        except BufferError:  # a numpy view still points into it; the mapping goes with the process
            pass
        if self.owner:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


def _scaled(det: Detections | None, scale: float) -> Detections | None:
    if det is None or scale == 1.0 or not len(det):
        return det
    return Detections(det.xyxy * np.float32(scale), det.score, det.class_id, det.model_index, det.support)


def _scaled_site(site: SiteFrame | None, scale: float) -> SiteFrame | None:
    """Worker boxes and zone outlines in the previewed image's pixels (like the boxes)."""
    if site is None or scale == 1.0:
        return site
    workers = tuple(dataclasses.replace(w, xyxy=tuple(v * scale for v in w.xyxy)) for w in site.workers)
    zones = tuple((zid, kind, tuple((x * scale, y * scale) for x, y in poly)) for zid, kind, poly in site.zones)
    return dataclasses.replace(site, workers=workers, zones=zones)


def _pack_meta(lf: LiveFrame, scale: float) -> bytes:
    f = lf.frame
    fields = {k.name: getattr(f, k.name) for k in dataclasses.fields(Frame) if k.name != "image"}
    fields["context"] = dict(f.context)
    fields["_shape"] = f.image.shape
    decision = lf.decision
    if scale != 1.0:
        decision = dataclasses.replace(decision, detections=_scaled(decision.detections, scale))
    site = _scaled_site(lf.site, scale)
    meta = pickle.dumps((fields, decision, _scaled(lf.fused, scale), site), protocol=pickle.HIGHEST_PROTOCOL)
    if len(meta) > META_CAPACITY:  # thousands of boxes: show the frame, verdict and workers without them
        decision = dataclasses.replace(decision, detections=Detections.empty())
        meta = pickle.dumps((fields, decision, None, site), protocol=pickle.HIGHEST_PROTOCOL)
        if len(meta) > META_CAPACITY:
            meta = pickle.dumps((fields, decision, None, None), protocol=pickle.HIGHEST_PROTOCOL)
    return meta


# --- what the child needs to build its station ---------------------------------------------------
@dataclass(frozen=True)
class StationSpec:
    """Everything the child needs to build the station the GUI would have built (picklable).

    ``ensemble_factory``: ``"module:callable"`` returning an ``Ensemble`` used instead of the
    registry's models (simulators, tests); it is imported in the child.
    """

    cfg: StationConfig
    cfg_hash: str
    data_dir: Path
    registry_root: Path | None = None
    allow_no_model: bool = False
    max_frames: int | None = None
    nice: int = CHILD_NICE
    ensemble_factory: str | None = None
    # A spawned child starts with no logging: it takes the parent's stderr level and logs to the
    # data folder's file like `inspector run`, so what the station chose (providers) is on record.
    log_level: str = field(default_factory=current_level)

    def build(self) -> Any:
        """The station (in the child)."""
        from inspector.station.station import Station

        ensemble = None
        if self.ensemble_factory:
            import importlib

            module, _, name = self.ensemble_factory.partition(":")
            ensemble = getattr(importlib.import_module(module), name)()
        return Station.from_config(self.cfg, self.cfg_hash, registry_root=self.registry_root, data_dir=self.data_dir,
                                   headless=False, allow_no_model=self.allow_no_model, ensemble=ensemble)


# --- the child ---------------------------------------------------------------------------------
def _lower_priority(increment: int) -> None:
    """Put this process ``increment`` nice levels below its parent (the GUI). Called first thing:
    on Linux niceness is per thread and the station's threads inherit it when they start.

    When the GUI itself already runs at the lowest niceness (``nice -n 19``), the increment is
    clamped away and the two would compete as equals (measured: the GUI thread then waits tens of
    ms on the run queue behind the station's threads); the idle scheduling policy keeps the station
    below the GUI there too. It still gets every cycle nobody else wants.
    """
    if increment <= 0 or not hasattr(os, "nice"):
        return
    try:
        before = os.nice(0)
        after = os.nice(increment)
        if after <= before and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError as e:  # pragma: no cover - e.g. a sandbox refusing setpriority
        log.warning("station process: cannot lower its priority: %s", e)


def child_main(spec: StationSpec, conn: Connection, slot_name: str) -> None:
    """Entry point of the station process (``spawn``): build, run, obey commands, stop, report."""
    _lower_priority(spec.nice)
    setup_logging(spec.log_level)
    try:
        add_log_file(spec.data_dir, "debug" if spec.log_level == "debug" else "info")
    except OSError as e:
        log.warning("station process: no log file in %s: %s", spec.data_dir, e)
    # Ctrl-C in the terminal reaches the whole process group: the GUI decides, and sends "stop".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminate = threading.Event()
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda *_: terminate.set())
    send = _Sender(conn)
    try:
        station = spec.build()
        send("models", [f"{m.name}@{m.version}" for m in station.ensemble.members] if station.ensemble else [])
        send("info", {"run_id": station.run_id, "note": station.note, "db": str(station.db_path)})
        station.start(spec.max_frames)
    except Exception as e:  # noqa: BLE001 - reported to the GUI, which shows it to the operator
        log.exception("station process: start failed")
        send("failed", f"start: {e}")
        conn.close()
        raise SystemExit(3) from None
    slot = FrameSlot.attach(slot_name)
    sub = station.bridge.subscribe(on_frame=slot.write, name="gui-frame-slot")
    send("state", "running")
    _Child(station, conn, send, terminate).loop()
    sub.stop(2.0)
    slot.close()
    send("summary", station.summary())
    send("state", "stopped")
    conn.close()


class _Sender:
    """Sends to the GUI; once the GUI is gone, sending is a no-op (the run still ends cleanly)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.broken = False

    def __call__(self, kind: str, value: Any = None) -> None:
        if self.broken:
            return
        try:
            self.conn.send((kind, value))
        except (OSError, ValueError):
            self.broken = True


class _Child:
    def __init__(self, station: Any, conn: Connection, send: _Sender, terminate: threading.Event) -> None:
        self.station = station
        self.conn = conn
        self.send = send
        self.terminate = terminate
        self.stopper: threading.Thread | None = None
        self.faulted_told = False

    def stop(self) -> None:
        if self.stopper is not None:
            self.station.request_stop()  # the second stop: give up waiting for inference
            return
        self.send("state", "stopping")
        self.station.request_stop()
        # Draining can take seconds: a thread, so that this loop keeps reading commands meanwhile.
        self.stopper = threading.Thread(target=self.station.stop, name="station-stop", daemon=True)
        self.stopper.start()

    def command(self, msg: Any) -> None:
        kind = msg[0] if isinstance(msg, tuple) and msg else msg
        if kind == "stop":
            self.stop()
        elif kind == "pause" and self.stopper is None:
            self.station.pause()
            self.send("state", "paused")
        elif kind == "resume" and self.stopper is None:
            self.station.resume()
            self.send("state", "running")
        else:
            log.warning("station process: unknown command %r", msg)

    def loop(self) -> None:
        last_snap = 0.0
        gui_gone = False
        while True:
            if not gui_gone:
                try:
                    if self.conn.poll(_LOOP_S):
                        self.command(self.conn.recv())
                except (EOFError, OSError):
                    gui_gone = True  # the GUI closed or died: finish the run the way a stop does
                    self.send.broken = True
                    self.stop()
            else:
                time.sleep(_LOOP_S)
            if self.terminate.is_set():
                self.terminate.clear()
                self.stop()
            now = time.monotonic()
            if now - last_snap >= SNAPSHOT_S:
                last_snap = now
                self.send("snapshot", self.station.snapshot())
            st = self.station
            if st.state == "faulted" and not self.faulted_told:
                self.faulted_told = True
                errors = st.snapshot().get("errors") or ["the pipeline faulted"]
                self.send("state", "faulted")
                self.send("error", str(errors[-1]))
            if self.stopper is None and st.pipeline is not None and st.pipeline.done and st.state != "faulted":
                self.stop()  # the sources ended (or max_frames): record the run end, report, exit
            if self.stopper is not None and not self.stopper.is_alive():
                return


# --- the GUI side (no Qt) ------------------------------------------------------------------------
def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class StationProcess:
    """The GUI's handle on one station child process (single use, like a ``Station``).

    Not thread-safe: create it anywhere, then call everything else from one thread (the GUI's).
    ``poll()`` drains the pipe without blocking and returns what changed: ``("state", s)`` and
    ``("failed", message)`` events for the controller to emit.
    """

    def __init__(self, spec: StationSpec, *, image_capacity: int = IMAGE_CAPACITY) -> None:
        self.spec = spec
        self.state = "starting"
        self.models: list[str] = []
        self.info: dict[str, Any] = {}
        self.errors: list[str] = []
        self.exitcode: int | None = None
        self._snapshot: dict[str, Any] | None = None
        self._summary: dict[str, Any] | None = None
        self._slot = FrameSlot.create(image_capacity)
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self._child_conn: Connection | None = child_conn
        self._proc = ctx.Process(target=child_main, args=(spec, child_conn, self._slot.name),
                                 name=f"inspector-station-{spec.cfg.station.id}", daemon=True)
        self._pid: int | None = None
        self._eof = False
        self._closed = False

    # --- Station-like surface (what the GUI reads) ------------------------------------------
    @property
    def cfg_hash(self) -> str:
        return self.spec.cfg_hash

    config_hash = cfg_hash

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def alive(self) -> bool:
        """Started and not known to have ended."""
        return self._pid is not None and self.exitcode is None

    def latest(self) -> LiveFrame | None:
        return None if self._closed else self._slot.read()

    def snapshot(self) -> dict[str, Any] | None:
        return self._snapshot

    def summary(self) -> dict[str, Any] | None:
        """The run summary the child sent after its clean stop (None before, or if it died)."""
        return self._summary

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> StationProcess:
        self._proc.start()
        self._pid = self._proc.pid
        assert self._child_conn is not None
        self._child_conn.close()  # ours closed: the pipe reads EOF as soon as the child is gone
        self._child_conn = None
        return self

    def _send(self, *msg: Any) -> bool:
        if self._eof or self.exitcode is not None:
            return False
        try:
            self._conn.send(msg)
            return True
        except (OSError, ValueError):
            return False

    def pause(self) -> bool:
        return self._send("pause")

    def resume(self) -> bool:
        return self._send("resume")

    def request_stop(self) -> bool:
        """Ask the child to stop (it drains every accepted frame); again: give up on inference."""
        return self._send("stop")

    def poll(self, timeout: float = 0.0) -> list[tuple[str, Any]]:
        """Drain pending messages (waiting at most ``timeout`` for the first); reap an ended child."""
        events: list[tuple[str, Any]] = []
        if self.exitcode is not None:
            return events
        wait = timeout
        while not self._eof:
            try:
                if not self._conn.poll(wait):
                    break
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                self._eof = True
                break
            wait = 0.0
            self._on_message(kind, value, events)
        code = self._proc.exitcode  # waitpid(WNOHANG): reaps the child once it is gone (no zombie)
        if code is None and self._eof:
            self._proc.join(0.05 if timeout else 0.0)  # pipe closed: the exit is a moment away
            code = self._proc.exitcode
        if code is not None:
            self._finish(code, events)
        return events

    def _on_message(self, kind: str, value: Any, events: list[tuple[str, Any]]) -> None:
        if kind == "snapshot":
            self._snapshot = value
        elif kind == "state":
            if value == "stopped":
                return  # "stopped" is said once the child has exited and been reaped (_finish)
            self.state = value
            events.append(("state", value))
        elif kind == "models":
            self.models = list(value)
        elif kind == "info":
            self.info = dict(value)
        elif kind == "summary":
            self._summary = value
        elif kind in ("failed", "error"):
            self.errors.append(str(value))
            if kind == "failed":
                self.state = "faulted"
                events.append(("state", "faulted"))
            events.append(("failed", str(value)))

    def _finish(self, code: int, events: list[tuple[str, Any]]) -> None:
        self.exitcode = code
        if code == 0 and self._summary is not None:
            if self.state != "stopped":
                self.state = "stopped"
                events.append(("state", "stopped"))
        else:
            msg = f"station process ended ({_exit_text(code)})"
            if self.errors:
                msg += f": {self.errors[-1]}"
            self.errors.append(msg)
            if self.state != "faulted":
                self.state = "faulted"
                events.append(("state", "faulted"))
            events.append(("failed", msg))
        self.close()

    def wait(self, timeout: float | None = None, until: Callable[[], bool] | None = None) -> list[tuple[str, Any]]:
        """Poll until the child exits (or ``until()``), at most ``timeout`` s; the events seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events: list[tuple[str, Any]] = []
        while self.exitcode is None and not (until is not None and until()):
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                break
            events += self.poll(left)
        return events

    def kill(self, timeout: float = 5.0) -> None:
        """SIGTERM (the child still stops cleanly), then SIGKILL after ``timeout``; reaps it."""
        if self._pid is None or self.exitcode is not None:
            self.close()
            return
        self._proc.terminate()
        self.wait(timeout)
        if self.exitcode is None:
            self._proc.kill()
            self._proc.join(5.0)
            self.poll()
        self.close()

    def close(self) -> None:
        """Release the pipe and the shared memory (after the child ended)."""
        if self._closed:
            return
        if self._pid is not None and self.exitcode is None:
            return  # still running: the child keeps its mapping; called again once it ended
        self._closed = True
        self._slot.close()
        self._conn.close()
        if self._child_conn is not None:
            self._child_conn.close()
        try:
            self._proc.close()
        except ValueError:
            pass
