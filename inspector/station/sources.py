"""Builds frame sources from the station config (the station's only knowledge of capture types)."""

from __future__ import annotations

from inspector.capture.synthetic import SyntheticWaferLine
from inspector.config.schema import StationConfig
from inspector.core.ports import FrameSource
from inspector.station.rules_builder import wafer_layout


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
