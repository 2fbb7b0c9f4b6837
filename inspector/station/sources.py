"""Builds frame sources from the station config (the station's only knowledge of capture types)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inspector.capture.folder import FolderSource
from inspector.capture.genicam import GenicamSource
from inspector.capture.health import CaptureError
from inspector.capture.synthetic import SyntheticWaferLine
from inspector.capture.synthetic_site import SyntheticSiteCamera
from inspector.capture.video import CaptureLike, VideoSource
from inspector.config import schema
from inspector.config.schema import StationConfig
from inspector.core.ports import FrameSource
from inspector.station.rules_builder import wafer_layout


def build_sources(
    cfg: StationConfig,
    *,
    open_capture: Callable[[str], CaptureLike] | None = None,
    harvester_factory: Callable[[], Any] | None = None,
) -> list[FrameSource]:
    """One FrameSource per configured source, named by its source id (``schema.source_id``).

    Nothing is opened here: folders are listed (and their context checked), cameras and streams
    open on the first ``frames()``. ``open_capture`` / ``harvester_factory`` replace OpenCV and
    harvesters (tests, simulators). Video buffers drop the oldest frame only in monitoring flow.
    """
    out: list[FrameSource] = []
    for i, src in enumerate(cfg.sources):
        try:
            out.append(_build_one(cfg, i, src, open_capture, harvester_factory))
        except CaptureError as e:  # say which config entry it was
            raise CaptureError(f"sources[{i}] ({schema.source_id(src, i)}): {e}") from e
    return out


def _build_one(cfg: StationConfig, i: int, src: Any, open_capture: Callable[[str], CaptureLike] | None,
               harvester_factory: Callable[[], Any] | None) -> FrameSource:
    station = cfg.station.id
    sid = schema.source_id(src, i)
    if isinstance(src, schema.SyntheticWaferSource):
        return SyntheticWaferLine(
            seed=src.seed, lots=src.lots, wafers_per_lot=src.wafers_per_lot, die_px=src.die_px,
            defect_rate=src.defect_rate, signatures=tuple(src.signatures), layout=wafer_layout(cfg),
            station_id=station, rate_hz=src.rate_hz,
        )
    if isinstance(src, schema.SyntheticSiteSource):
        return SyntheticSiteCamera.from_config(src, source_id=sid, station_id=station)
    if isinstance(src, schema.FolderSource):
        return FolderSource(
            src.path, pattern=src.pattern, recursive=src.recursive, context_regex=src.context_regex,
            sidecar_csv=src.sidecar_csv, loop=src.loop, source_id=sid, station_id=station,
            max_megapixels=src.max_megapixels,
        )
    if isinstance(src, schema.VideoSource):
        r = src.reconnect
        return VideoSource(
            src.uri, camera=src.camera, source_id=sid, station_id=station, fps_limit=src.fps_limit,
            stall_timeout_s=r.stall_timeout_s, backoff_initial_s=r.backoff_initial_s,
            backoff_max_s=r.backoff_max_s, drop_oldest=cfg.flow.mode == "monitoring",
            open_capture=open_capture, freeze_frames=src.freeze_frames,
        )
    if isinstance(src, schema.GenicamSource):
        return GenicamSource(
            src.cti_file, camera=src.camera, serial=src.serial, exposure_us=src.exposure_us,
            source_id=sid, station_id=station, harvester_factory=harvester_factory,
        )
    # a new schema type without an adapter yet
    raise NotImplementedError(f"sources[{i}]: source type {src.type!r} is not available in this build yet")
