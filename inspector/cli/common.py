"""What every `inspector` command shares: loading a station config as a clean CLI error, and the
log file in the station's data folder."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from inspector.util.clickopts import current_log_level
from inspector.util.logs import add_log_file

log = logging.getLogger(__name__)


def load_station_config(path: str | Path):
    """The validated station config at ``path``; a config error becomes one clear CLI error."""
    from inspector.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        raise click.ClickException(f"invalid station config ({len(e.errors)} error(s)):\n{e}") from None


def log_to_data_dir(data_dir: str | Path) -> Path | None:
    """Also log to ``<data_dir>/logs/inspector.log``: INFO at least (the record of what the station
    chose, e.g. a GPU provider it fell back from), DEBUG when ``--log-level debug`` asked for it.
    A folder that cannot hold the file costs a warning, not the command (None)."""
    level = "debug" if current_log_level() == "debug" else "info"
    try:
        return add_log_file(data_dir, level)
    except OSError as e:
        log.warning("no log file in %s: %s", data_dir, e)
        return None
