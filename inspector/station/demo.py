"""The wafer demo: the demo config's synthetic line through the station pipeline, summarised.

Without a loadable model (the shipped ``wafer-demo`` model is not in the registry yet) the line
still runs and every die is recorded as NOT_INSPECTED, with the reason, so the demo shows the
whole station (capture, store, wafer maps) and says plainly that nothing was judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspector.config.schema import StationConfig
from inspector.station.station import Station, stop_on_signals


def run_demo(cfg: StationConfig, cfg_hash: str, *, max_frames: int | None = None,
             registry_root: Path | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """Run the demo station to the end of its line (or ``max_frames``); returns the run summary."""
    station = Station.from_config(cfg, cfg_hash, registry_root=registry_root, data_dir=data_dir,
                                  allow_no_model=True)
    with stop_on_signals(station):
        return station.run(max_frames)
