"""How the store commands (`db`, `mes`, `users`) find and open a station's database."""

from __future__ import annotations

from pathlib import Path

import click

from inspector.cli.common import load_station_config, log_to_data_dir

_DB_HELP = "SQLite database of the store (default: the database of --config)."
_CONFIG_HELP = "Station config whose data folder holds the database (INSPECTOR_DATA overrides its data_dir)."


def resolve_db_path(db_path: str | None, config_path: str | None) -> Path:
    """--db wins; else <data folder of --config>/<storage.db_name>. Neither: say so."""
    if db_path:
        return Path(db_path)
    if not config_path:
        raise click.UsageError("give the database with --db PATH, or the station config with --config FILE")
    from inspector.config import resolve_data_dir

    cfg = load_station_config(config_path)
    return resolve_data_dir(cfg) / cfg.storage.db_name


def open_store(db_path: str | None, config_path: str | None):
    """Open an existing store; never create an empty one on a read command. The data folder (the
    database's folder) gets the command's log file."""
    import sqlite3

    from inspector.store.db import SchemaTooNewError, open_db

    path = resolve_db_path(db_path, config_path)
    if not path.is_file():
        raise click.ClickException(f"no Inspector database at {path}")
    log_to_data_dir(path.parent)
    try:
        return open_db(path, create=False)
    except SchemaTooNewError as e:
        raise click.ClickException(f"{path}: {e}") from None
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"{path}: not a readable Inspector database ({e})") from None


def db_options(f):
    """``--db PATH`` and ``--config FILE``: the two ways to name a store."""
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False), help=_CONFIG_HELP)(f)
    return click.option("--db", "db_path", type=click.Path(dir_okay=False), help=_DB_HELP)(f)
