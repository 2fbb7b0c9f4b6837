"""inspector/capture/genicam.py against a fake Harvester (harvesters itself is an optional extra)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from inspector.capture.genicam import GenicamSource
from inspector.capture.health import CaptureError
from inspector.core.ports import FrameSource


class FakeBuffer:
    def __init__(self, data: np.ndarray, width: int, height: int, fmt: str) -> None:
        self.component = SimpleNamespace(data=data, width=width, height=height, data_format=fmt)
        self.payload = SimpleNamespace(components=[self.component])

    def __enter__(self) -> "FakeBuffer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.component.data[...] = 0  # the driver reuses the buffer: frames must have copied it


class FakeAcquirer:
    def __init__(self, harvester: "FakeHarvester") -> None:
        self.h = harvester
        self.remote_device = SimpleNamespace(node_map=SimpleNamespace(ExposureTime=SimpleNamespace(value=None)))
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def destroy(self) -> None:
        self.calls.append("destroy")

    def fetch(self, timeout: float) -> FakeBuffer:
        self.h.fetch_timeouts.append(timeout)
        item = self.h.items.pop(0) if self.h.items else TimeoutError("no buffer")
        if isinstance(item, Exception):
            raise item
        return item


class FakeHarvester:
    """The subset of harvesters.core.Harvester the adapter uses; ``log`` records the calls."""

    def __init__(self, serials: list[str], items: list[Any], log: list[tuple[str, Any]]) -> None:
        self.device_info_list = [SimpleNamespace(serial_number=s) for s in serials]
        self.items, self.log, self.fetch_timeouts = items, log, []
        self.acquirers: list[FakeAcquirer] = []

    def add_file(self, path: str) -> None:
        self.log.append(("add_file", path))

    def update(self) -> None:
        self.log.append(("update", None))

    def create(self, key: Any) -> FakeAcquirer:
        self.log.append(("create", key))
        ia = FakeAcquirer(self)
        self.acquirers.append(ia)
        return ia

    def reset(self) -> None:
        self.log.append(("reset", None))


def buf(fmt: str, h: int = 2, w: int = 3, c: int = 1, start: int = 1) -> FakeBuffer:
    return FakeBuffer(np.arange(start, start + h * w * c, dtype=np.uint8), w, h, fmt)


@pytest.fixture
def cti(tmp_path: Path) -> Path:
    p = tmp_path / "vendor.cti"
    p.write_bytes(b"\x7fELF")
    return p


def factory(items: list[Any], serials: list[str] | None = None):
    log: list[tuple[str, Any]] = []
    made: list[FakeHarvester] = []

    def make() -> FakeHarvester:
        h = FakeHarvester(["S100", "S200"] if serials is None else serials, items, log)
        made.append(h)
        return h

    make.log, make.made = log, made  # type: ignore[attr-defined]
    return make


def take(src: GenicamSource, n: int) -> list:
    out = []
    for f in src.frames():
        out.append(f)
        if len(out) == n:
            break
    return out


def test_missing_harvesters_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, cti: Path) -> None:
    monkeypatch.setitem(sys.modules, "harvesters", None)  # import fails even where it is installed
    monkeypatch.setitem(sys.modules, "harvesters.core", None)
    with pytest.raises(CaptureError, match=r"pip install harvesters .*'genicam' extra"):
        GenicamSource(cti, camera="c")


def test_missing_cti_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"cti_file\) '.*nope.cti' does not exist"):
        GenicamSource(tmp_path / "nope.cti", camera="c", harvester_factory=factory([]))


def test_serial_not_found_lists_the_found_ones(cti: Path) -> None:
    make = factory([])
    src = GenicamSource(cti, camera="c", serial="S999", harvester_factory=make)
    with pytest.raises(CaptureError, match=r"serial 'S999' not found through '.*vendor.cti'; found: S100, S200"):
        src.open()
    assert ("reset", None) in make.log and ("add_file", str(cti)) in make.log
    with pytest.raises(CaptureError, match="no camera found"):
        GenicamSource(cti, camera="c", harvester_factory=factory([], serials=[])).open()


def test_mono_bgr_rgb_frames_with_exposure_and_clean_close(cti: Path) -> None:
    make = factory([buf("Mono8"), buf("BGR8", c=3), buf("RGB8", c=3)])
    src = GenicamSource(cti, camera="line1", serial="S200", exposure_us=1500, source_id="g", station_id="st",
                        fetch_timeout_s=0.25, harvester_factory=make)
    assert isinstance(src, FrameSource) and src.name == "g"
    mono, bgr, rgb = take(src, 3)
    ia = make.made[0].acquirers[0]
    assert ("create", {"serial_number": "S200"}) in make.log and ia.calls == ["start"]
    assert ia.remote_device.node_map.ExposureTime.value == 1500.0
    assert make.made[0].fetch_timeouts[0] == 0.25
    assert mono.image.shape == (2, 3) and mono.image.tolist() == [[1, 2, 3], [4, 5, 6]]  # copied, not zeroed
    assert bgr.image.shape == (2, 3, 3) and bgr.image[0, 0].tolist() == [1, 2, 3]
    assert rgb.image[0, 0].tolist() == [3, 2, 1]  # RGB -> BGR
    assert dict(mono.context) == {"camera": "line1", "source": "g"} and mono.station_id == "st"
    assert mono.frame_id.startswith("g:") and mono.frame_id.endswith("-000000") and rgb.frame_id.endswith("-000002")
    src.close()
    assert ia.calls == ["start", "stop", "destroy"] and make.log[-1] == ("reset", None)
    assert src.stats()["frames"] == 3 and src.stats()["state"] == "closed"


def test_first_camera_when_no_serial(cti: Path) -> None:
    make = factory([buf("Mono8")])
    src = GenicamSource(cti, camera="c", harvester_factory=make)
    take(src, 1)
    assert ("create", 0) in make.log
    src.close()


def test_unknown_pixel_format_is_refused(cti: Path) -> None:
    make = factory([FakeBuffer(np.zeros(12, np.uint8), 3, 2, "Mono12")])
    src = GenicamSource(cti, camera="c", harvester_factory=make)
    with pytest.raises(CaptureError, match=r"pixel format 'Mono12' is not supported \(supported: Mono8, BGR8, RGB8\)"):
        take(src, 1)
    assert make.made[0].acquirers[0].calls == ["start", "stop", "destroy"]  # released on the way out


def test_timeouts_corrupt_buffers_and_reconnect(cti: Path) -> None:
    items: list[Any] = [buf("Mono8"), FakeBuffer(np.zeros(5, np.uint8), 3, 2, "Mono8")]
    items += [TimeoutError("t")] * 6 + [buf("Mono8", start=50)]
    make = factory(items)
    src = GenicamSource(cti, camera="c", fetch_timeout_s=0.01, stall_timeout_s=0.0, backoff_initial_s=0.01,
                        backoff_max_s=0.02, harvester_factory=make)
    first, second = take(src, 2)
    st = src.stats()
    assert int(first.image[0, 0]) == 1 and int(second.image[0, 0]) == 50
    assert st["corrupt"] == 1 and st["timeouts"] == 6 and st["stalls"] >= 1 and st["reconnects"] >= 1
    assert "fetch failed: TimeoutError" in st["last_error"] or "corrupt" in st["last_error"]
    assert len(make.made) == st["reconnects"] + 1  # each reconnect builds a fresh Harvester
    assert make.made[0].acquirers[0].calls[-2:] == ["stop", "destroy"]
    src.close()
