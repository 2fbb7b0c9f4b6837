"""Builds frame sources from the station config (the station's only knowledge of capture types)."""

from __future__ import annotations

from inspector.capture.synthetic import SyntheticWaferLine
from inspector.config.schema import StationConfig
from inspector.core.ports import FrameSource
from inspector.core.wafer import WaferLayout


def wafer_layout(cfg: StationConfig) -> WaferLayout | None:
    if cfg.wafer is None:
        return None
    w = cfg.wafer
    return WaferLayout(w.diameter_mm, w.die_pitch_x_mm, w.die_pitch_y_mm, w.edge_exclusion_mm)


def build_sources(cfg: StationConfig) -> list[FrameSource]:
    """One FrameSource per configured source; types not built yet raise a clear error."""
    out: list[FrameSource] = []
    for i, src in enumerate(cfg.sources):
        if src.type == "synthetic_wafer":
            out.append(SyntheticWaferLine(
                seed=src.seed, lots=src.lots, wafers_per_lot=src.wafers_per_lot, die_px=src.die_px,
                defect_rate=src.defect_rate, signatures=tuple(src.signatures), layout=wafer_layout(cfg),
                station_id=cfg.station.id, rate_hz=src.rate_hz,
            ))
        else:
            raise NotImplementedError(f"sources[{i}]: source type {src.type!r} is not available in this build yet")
    return out
