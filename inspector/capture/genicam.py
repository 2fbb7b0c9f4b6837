"""Industrial GenICam cameras through ``harvesters`` (a GenTL consumer) as a ``FrameSource``.

``harvesters`` is an optional dependency (``pip install harvesters``, the ``genicam`` extra): it is
imported only when a GenICam source is built, and its absence is a clear error then. The Harvester
class is injectable (``harvester_factory``) so the adapter is tested against a fake.

Decisions:

- The camera is opened lazily, on the first ``frames()`` (or an explicit ``open()``), so building a
  station's sources touches no hardware. A missing ``.cti`` file fails at construction.
- ``fetch(timeout=...)`` is bounded, so it runs in the caller's thread (no reader thread needed);
  ``close()`` from another thread takes effect after the current fetch (at most
  ``fetch_timeout_s``). A fetch that fails or times out is counted; failures for longer than
  ``stall_timeout_s`` count as a stall and the camera is reopened with exponential back-off.
- Pixel formats: Mono8 -> HxW, BGR8 -> HxWx3, RGB8 -> converted to BGR (the station's convention).
  Any other format is refused with a clear error (set ``PixelFormat`` on the camera): scaling
  10/12/16-bit or debayering silently would change what the models see.
- The image is copied out of the buffer inside the ``with fetch()`` block: the buffer goes back
  to the driver's queue afterwards and would be overwritten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.capture.health import CaptureError, SourceStats
from inspector.core.frame import Frame

log = logging.getLogger(__name__)

# Supported GenICam PixelFormat names -> channels.
PIXEL_FORMATS: dict[str, int] = {"Mono8": 1, "BGR8": 3, "RGB8": 3}
INSTALL_HINT = "pip install harvesters (or the 'genicam' extra of inspector-station)"


class CorruptBufferError(ValueError):
    """A delivered buffer whose size does not match its width x height x channels."""


def load_harvester() -> Callable[[], Any]:
    """The ``harvesters.core.Harvester`` class, or a ``CaptureError`` saying how to install it."""
    try:
        from harvesters.core import Harvester
    except ImportError as e:
        raise CaptureError(f"GenICam sources need the optional 'harvesters' package, which is not installed: "
                           f"{INSTALL_HINT}") from e
    return Harvester


def component_to_image(component: Any) -> np.ndarray:
    """A harvesters payload component -> a uint8 image the station owns (Mono8 / BGR8 / RGB8)."""
    fmt = str(component.data_format)
    if fmt not in PIXEL_FORMATS:
        raise CaptureError(f"pixel format {fmt!r} is not supported (supported: {', '.join(PIXEL_FORMATS)}); "
                           "set the camera's PixelFormat to one of them")
    channels = PIXEL_FORMATS[fmt]
    h, w = int(component.height), int(component.width)
    data = np.asarray(component.data)
    if data.dtype != np.uint8:
        raise CorruptBufferError(f"{fmt} buffer of dtype {data.dtype}, expected uint8")
    if h <= 0 or w <= 0 or data.size != h * w * channels:
        raise CorruptBufferError(f"{fmt} buffer of {data.size} bytes does not hold {w}x{h}x{channels}")
    img = data.reshape((h, w) if channels == 1 else (h, w, channels))
    if fmt == "RGB8":
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # a new array: owns its pixels
    return img.copy()


class GenicamSource:
    """Frames from one GenICam camera (by serial, or the first one found)."""

    COUNTERS = ("frames", "corrupt", "timeouts", "stalls", "reconnects")

    def __init__(
        self,
        cti_file: str | Path,
        *,
        camera: str,
        serial: str | None = None,
        exposure_us: float | None = None,
        source_id: str | None = None,
        station_id: str = "station",
        fetch_timeout_s: float = 1.0,
        stall_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        harvester_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.name = source_id or camera
        self.camera = camera
        self.serial = serial
        self.exposure_us = exposure_us
        self.station_id = station_id
        self.fetch_timeout_s = fetch_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._factory = harvester_factory or load_harvester()
        self.cti_file = Path(cti_file)
        if not self.cti_file.is_file():
            raise CaptureError(f"genicam source {self.name!r}: GenTL producer (cti_file) '{self.cti_file}' does not "
                               f"exist (relative paths resolve against {Path.cwd()})")
        self._stats = SourceStats(self.COUNTERS)
        self._lock = threading.Lock()
        self._closed = False
        self._fetching = False
        self._harvester: Any = None
        self._acquirer: Any = None
        self._seq = 0
        self._session = Frame.utc_now().strftime("%Y%m%dT%H%M%SZ")

    # --- device --------------------------------------------------------------------------------
    def open(self) -> None:
        """Find the camera, apply the exposure, start acquisition (no-op when already open)."""
        if self._acquirer is not None:
            return
        where = f"genicam source {self.name!r}"
        h = self._factory()
        try:
            h.add_file(str(self.cti_file))
            h.update()
            serials = [str(getattr(d, "serial_number", "?")) for d in h.device_info_list]
            if not serials:
                raise CaptureError(f"{where}: no camera found through '{self.cti_file}'")
            if self.serial is not None and self.serial not in serials:
                raise CaptureError(f"{where}: camera serial {self.serial!r} not found through '{self.cti_file}'; "
                                   f"found: {', '.join(serials)}")
            ia = h.create({"serial_number": self.serial} if self.serial is not None else 0)
            try:
                if self.exposure_us is not None:
                    self._set_exposure(ia, where)
                ia.start()
            except BaseException:
                ia.destroy()
                raise
        except BaseException:
            h.reset()
            raise
        self._harvester, self._acquirer = h, ia
        self._stats.set_state("running")
        log.info("%s: camera %s opened", where, self.serial or serials[0])

    def _set_exposure(self, ia: Any, where: str) -> None:
        node_map = ia.remote_device.node_map
        for node in ("ExposureTime", "ExposureTimeAbs"):  # SFNC name, then the older GigE name
            try:
                feature = getattr(node_map, node)
            except Exception:
                continue
            try:
                feature.value = float(self.exposure_us)  # type: ignore[arg-type]
            except Exception as e:
                raise CaptureError(f"{where}: cannot set {node} to {self.exposure_us:g} us ({e})") from e
            return
        raise CaptureError(f"{where}: the camera has no ExposureTime node; remove exposure_us from the config")

    def _teardown(self) -> None:
        ia, h = self._acquirer, self._harvester
        self._acquirer = self._harvester = None
        for step in (lambda: ia and ia.stop(), lambda: ia and ia.destroy(), lambda: h and h.reset()):
            try:
                step()
            except Exception as e:  # a dead camera must not stop the rest of the clean-up
                log.debug("genicam source %r: clean-up step failed: %s", self.name, e)

    # --- frames --------------------------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        """Frames until ``close()``; errors that no reconnect can fix (format, serial) raise."""
        if self._closed:
            return
        self.open()
        last_ok = time.monotonic()
        backoff = self.backoff_initial_s
        while True:
            if self._acquirer is None:  # a reopen failed: try again after the back-off
                backoff = self._reconnect(backoff, stalled=False)
                last_ok = time.monotonic()
                continue
            with self._lock:
                if self._closed:
                    break
                self._fetching = True
            try:
                img, t_read, problem = self._fetch_one()
            finally:
                with self._lock:
                    self._fetching = False
                    if self._closed:
                        self._teardown()
            if self._closed:
                break
            if img is not None:
                last_ok, backoff = t_read, self.backoff_initial_s
                fid = f"{self.name}:{self._session}-{self._seq:06d}"
                self._seq += 1
                self._stats.inc("frames")
                yield Frame(fid, self.station_id, self.name, t_read, Frame.utc_now(), img,
                            {"camera": self.camera, "source": self.name})
                continue
            self._stats.error(f"genicam source {self.name!r}: {problem}")
            if time.monotonic() - last_ok > self.stall_timeout_s:
                backoff = self._reconnect(backoff, stalled=True)
                last_ok = time.monotonic()

    def _fetch_one(self) -> tuple[np.ndarray | None, float, str]:
        try:
            with self._acquirer.fetch(timeout=self.fetch_timeout_s) as buffer:
                t_read = time.monotonic()
                img = component_to_image(buffer.payload.components[0])
            return img, t_read, ""
        except CaptureError:
            self._teardown()
            raise
        except CorruptBufferError as e:
            self._stats.inc("corrupt")
            return None, 0.0, f"corrupt buffer: {e}"
        except Exception as e:  # timeouts and driver errors: counted, the stall logic decides
            self._stats.inc("timeouts")
            return None, 0.0, f"fetch failed: {type(e).__name__}: {e}"

    def _reconnect(self, backoff: float, *, stalled: bool) -> float:
        if stalled:
            self._stats.inc("stalls")
            log.warning("genicam source %r: no frame for %.3g s; reconnecting in %.3g s", self.name,
                        self.stall_timeout_s, backoff)
        self._stats.set_state("reconnecting")
        with self._lock:
            self._teardown()
        deadline = time.monotonic() + backoff
        while not self._closed and time.monotonic() < deadline:
            time.sleep(min(0.05, backoff))
        if self._closed:
            return backoff
        self._stats.inc("reconnects")
        try:
            self.open()
        except Exception as e:
            self._stats.error(f"genicam source {self.name!r}: reopen failed: {e}")
            log.warning("genicam source %r: reopen failed: %s", self.name, e)
        return min(backoff * 2, self.backoff_max_s)

    def stats(self) -> dict[str, Any]:
        """frames, corrupt, timeouts, stalls, reconnects, state, last_error."""
        return self._stats.snapshot()

    def close(self) -> None:
        """Stop acquisition and release the camera (after the current fetch, if one is running)."""
        with self._lock:
            self._closed = True
            if not self._fetching:
                self._teardown()
        self._stats.set_state("closed")

    def __repr__(self) -> str:
        return f"GenicamSource({self.name!r}, cti='{self.cti_file}', serial={self.serial!r})"


__all__ = ["GenicamSource", "PIXEL_FORMATS", "component_to_image", "load_harvester", "INSTALL_HINT",
           "CorruptBufferError"]
