"""inspector/station/sources.py: every configured source type becomes a working FrameSource."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.capture.folder import FolderSource
from inspector.capture.genicam import GenicamSource
from inspector.capture.health import CaptureError
from inspector.capture.synthetic import SyntheticWaferLine
from inspector.capture.video import VideoSource
from inspector.config import load_config_text
from inspector.core.ports import FrameSource
from inspector.station.sources import build_sources


def config(sources: str, mode: str = "monitoring") -> str:
    return f"""
version: 1
station: {{id: st-1, name: t, domain: generic}}
sources:
{sources}
models: [{{name: m, registry: m, class_names: [a]}}]
flow: {{mode: {mode}}}
"""


class OneFrameCapture:
    def __init__(self) -> None:
        self.n = 0

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self):
        self.n += 1
        return (True, np.full((4, 4, 3), self.n, np.uint8)) if self.n < 1000 else (False, None)

    def release(self) -> None:
        pass


class Component:
    data, width, height, data_format = np.full(6, 9, np.uint8), 3, 2, "Mono8"


class Buffer:
    payload = type("P", (), {"components": [Component()]})

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class Acquirer:
    remote_device = None

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def destroy(self) -> None: ...

    def fetch(self, timeout: float) -> Buffer:
        return Buffer()


class Harvester:
    device_info_list = [type("D", (), {"serial_number": "SN1"})()]

    def add_file(self, path: str) -> None: ...
    def update(self) -> None: ...
    def reset(self) -> None: ...

    def create(self, key) -> Acquirer:
        return Acquirer()


def test_all_four_types_build_and_deliver_frames_with_context(tmp_path: Path) -> None:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    cv2.imwrite(str(imgs / "w2_1_-3.png"), np.zeros((8, 8), np.uint8))
    cti = tmp_path / "v.cti"
    cti.write_bytes(b"x")
    cfg = load_config_text(config(f"""
  - {{type: synthetic_wafer, die_px: 64}}
  - {{type: folder, id: replay, path: '{imgs}', context_regex: 'w(?P<wafer>\\d+)_(?P<die_x>-?\\d+)_(?P<die_y>-?\\d+)'}}
  - {{type: video, uri: 'rtsp://cam/1', camera: gate, reconnect: {{stall_timeout_s: 0.5}}}}
  - {{type: genicam, cti_file: '{cti}', camera: line, serial: SN1}}
"""))
    sources = build_sources(cfg, open_capture=lambda uri: OneFrameCapture(), harvester_factory=Harvester)
    try:
        syn, folder, video, gen = sources
        assert all(isinstance(s, FrameSource) for s in sources)
        assert isinstance(syn, SyntheticWaferLine) and isinstance(folder, FolderSource)
        assert isinstance(video, VideoSource) and isinstance(gen, GenicamSource)
        assert [s.name for s in sources[1:]] == ["replay", "gate", "line"]
        assert video.stall_timeout_s == 0.5 and video.drop_oldest  # monitoring flow: latest wins
        firsts = [next(iter(s.frames())) for s in sources]
        assert {f.station_id for f in firsts} == {"st-1"}
        assert dict(firsts[1].context) == {"wafer": 2, "die_x": 1, "die_y": -3, "source": "replay",
                                           "file": "w2_1_-3.png"}
        assert firsts[1].frame_id == "replay:w2_1_-3.png"
        assert dict(firsts[2].context) == {"camera": "gate", "source": "gate"}
        assert dict(firsts[3].context) == {"camera": "line", "source": "line"} and firsts[3].image.shape == (2, 3)
        assert "die_x" in firsts[0].context
        assert all(isinstance(s.stats(), dict) for s in sources[1:])
    finally:
        for s in sources:
            s.close()


def test_inspection_flow_keeps_every_video_frame() -> None:
    cfg = load_config_text(config("  - {type: video, uri: 'usb:0', camera: c}", mode="inspection"))
    (video,) = build_sources(cfg, open_capture=lambda uri: OneFrameCapture())
    assert not video.drop_oldest and video.live
    video.close()


def test_errors_name_the_config_entry(tmp_path: Path) -> None:
    cfg = load_config_text(config(f"  - {{type: folder, path: '{tmp_path / 'missing'}'}}"))
    msg = r"sources\[0\] \(folder-0\): folder source 'folder-0': folder .* does not exist"
    with pytest.raises(CaptureError, match=msg):
        build_sources(cfg)
    cfg = load_config_text(config(f"  - {{type: genicam, cti_file: '{tmp_path / 'x.cti'}', camera: cam}}"))
    with pytest.raises(CaptureError, match=r"sources\[0\] \(cam\): .*x.cti' does not exist"):
        build_sources(cfg, harvester_factory=Harvester)


def test_synthetic_site_source_builds_a_camera_with_zones_and_context() -> None:
    from inspector.capture.synthetic_site import SyntheticSiteCamera

    cfg = load_config_text(config("""
  - type: synthetic_site
    camera: gate-cam
    seed: 4
    width: 320
    height: 180
    fps: 5
    duration_s: 1
    workers: 3
    zones: [{id: pit, kind: restricted, polygon: [[0, 100], [320, 100], [320, 180], [0, 180]]}]
"""))
    (src,) = build_sources(cfg)
    assert isinstance(src, SyntheticSiteCamera) and isinstance(src, FrameSource)
    assert src.name == "gate-cam" and src.zones == (("pit", "restricted", ((0.0, 100.0), (320.0, 100.0),
                                                                          (320.0, 180.0), (0.0, 180.0))),)
    frames = list(src.frames())
    assert len(frames) == 5
    assert frames[2].image.shape == (180, 320, 3)
    assert dict(frames[2].context) == {"camera": "gate-cam", "frame_index": 2, "t_video_s": 0.4}
    assert frames[0].station_id == "st-1"
