"""Entry point of the operator app: ``inspector gui --config FILE`` (and ``inspector demo`` with a display)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication

from inspector.config.loader import resolve_data_dir
from inspector.gui.context import AppContext


def make_context(cfg: Any, cfg_hash: str, *, data_dir: Path | None = None, registry: Path | None = None,
                 config_path: Path | None = None, allow_no_model: bool = False) -> AppContext:
    ctx = AppContext(cfg, cfg_hash, Path(data_dir) if data_dir is not None else resolve_data_dir(cfg),
                     registry_root=registry, config_path=config_path)
    ctx.extra["allow_no_model"] = allow_no_model
    return ctx


def run_gui(cfg: Any, cfg_hash: str, *, data_dir: Path | None = None, registry: Path | None = None,
            config_path: Path | None = None, allow_no_model: bool = False, autostart: bool = False) -> int:
    """Log in, open the window, run the Qt event loop; returns the exit code."""
    from inspector.gui.dialogs import LoginDialog
    from inspector.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    ctx = make_context(cfg, cfg_hash, data_dir=data_dir, registry=registry, config_path=config_path,
                       allow_no_model=allow_no_model)
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    login = LoginDialog(ctx.connect)
    if login.exec() != LoginDialog.DialogCode.Accepted or login.session is None:
        return 1
    ctx.session = login.session
    window = MainWindow(ctx)
    window.show()
    if autostart:
        window.controller.start()
    return int(app.exec())
