"""The demos: a shipped config's synthetic line or site through the station pipeline, summarised.

- ``wafer``: the synthetic wafer line (inspection flow: every die judged).
- ``construction``: two synthetic site cameras (monitoring flow: latest frame wins), tracked
  workers, PPE and danger zones, incidents; its summary scores the tracker against the cameras'
  exact ground truth.

Without a loadable model (the shipped demo model not in the registry) the demo still runs and
every frame is recorded as NOT_INSPECTED, with the reason, so it shows the whole station
(capture, store, wafer maps) and says plainly that nothing was judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspector.config import default_config_path
from inspector.config.schema import StationConfig
from inspector.station.station import Station, stop_on_signals

DEMO_CONFIGS: dict[str, str] = {"wafer": "wafer-demo.yaml", "construction": "construction-demo.yaml"}


def demo_config_path(name: str) -> Path:
    """The shipped config of demo ``name`` (next to the wafer demo's: repo checkout or package copy)."""
    if name not in DEMO_CONFIGS:
        raise ValueError(f"unknown demo {name!r}; expected one of: {', '.join(DEMO_CONFIGS)}")
    return default_config_path().with_name(DEMO_CONFIGS[name])


def run_demo(cfg: StationConfig, cfg_hash: str, *, max_frames: int | None = None,
             registry_root: Path | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """Run the demo station to the end of its sources (or ``max_frames``); returns the run summary."""
    station = Station.from_config(cfg, cfg_hash, registry_root=registry_root, data_dir=data_dir,
                                  allow_no_model=True)
    with stop_on_signals(station):
        return station.run(max_frames)
