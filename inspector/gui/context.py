"""What every view needs: the station config, where the data and the registry are, who is logged in."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.config.schema import StationConfig
from inspector.store.db import open_db


@dataclass
class AppContext:
    cfg: StationConfig
    cfg_hash: str
    data_dir: Path
    registry_root: Path | None = None
    config_path: Path | None = None
    session: Any = None  # actions.Session from actions.login (None: nobody yet); checked on every action
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.data_dir / self.cfg.storage.db_name

    @property
    def images_root(self) -> Path:
        return self.data_dir / "images"

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.cfg.models[0].class_names) if self.cfg.models else ()

    def connect(self) -> sqlite3.Connection:
        """A new connection (one per view / thread: sqlite connections are not shared across threads)."""
        return open_db(self.db_path)

    def end_session(self) -> None:
        """Log the current user out: their session's token stops working (not just forgotten here)."""
        if self.session is None:
            return
        from inspector.station import actions

        conn = self.connect()
        try:
            actions.logout(conn, self.session)
        finally:
            conn.close()
        self.session = None

    @property
    def role(self) -> str | None:
        return None if self.session is None else getattr(self.session, "role", None)

    @property
    def user(self) -> str | None:
        return None if self.session is None else getattr(self.session, "user", None)
