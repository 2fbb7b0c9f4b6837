"""Entry point of the operator app: ``inspector gui --config FILE`` (and ``inspector demo`` with a display)."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication

from inspector.config.loader import resolve_data_dir
from inspector.gui.context import AppContext


NO_USERS_NOTE = ("No users yet: watching only. Create the first with `inspector users add NAME --role admin` "
                 "(there is no default account), then log in from the Session menu.")


def _has_users(ctx: AppContext) -> bool:
    from inspector.store.users import count_users

    conn = ctx.connect()
    try:
        return count_users(conn, active_only=True) > 0
    finally:
        conn.close()


def make_context(cfg: Any, cfg_hash: str, *, data_dir: Path | None = None, registry: Path | None = None,
                 config_path: Path | None = None, allow_no_model: bool = False) -> AppContext:
    ctx = AppContext(cfg, cfg_hash, Path(data_dir) if data_dir is not None else resolve_data_dir(cfg),
                     registry_root=registry, config_path=config_path)
    ctx.extra["allow_no_model"] = allow_no_model
    return ctx


def run_gui(cfg: Any, cfg_hash: str, *, data_dir: Path | None = None, registry: Path | None = None,
            config_path: Path | None = None, allow_no_model: bool = False, autostart: bool = False) -> int:
    """Log in, open the window, run the Qt event loop; returns the exit code."""
    return run_station_gui(cfg, cfg_hash, data_dir=data_dir, registry=registry, config_path=config_path,
                           allow_no_model=allow_no_model, autostart=autostart)[0]


def run_station_gui(cfg: Any, cfg_hash: str, *, data_dir: Path | None = None, registry: Path | None = None,
                    config_path: Path | None = None, allow_no_model: bool = False, autostart: bool = False,
                    max_frames: int | None = None) -> tuple[int, dict[str, Any] | None]:
    """``run_gui``, for `inspector run` / `inspector demo`: with ``max_frames`` every start runs that
    many frames and the app quits once the first run has ended (a bounded run, like the headless one).
    Returns the exit code and the summary of the last run (None when none ended cleanly)."""
    from inspector.gui.dialogs import LoginDialog
    from inspector.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    ctx = make_context(cfg, cfg_hash, data_dir=data_dir, registry=registry, config_path=config_path,
                       allow_no_model=allow_no_model)
    ctx.extra["max_frames"] = max_frames
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    if _has_users(ctx):
        login = LoginDialog(ctx.connect)
        if login.exec() != LoginDialog.DialogCode.Accepted or login.session is None:
            return 1, None
        ctx.session = login.session
    # else: a new station has no account to log in with (none is ever made by default): the window
    # opens watching only, and says how to create the first one. Whoever may run this command may
    # run the line headless too, so an autostart still starts it.
    window = MainWindow(ctx)
    if ctx.session is None:
        window.live.set_may_control(False, NO_USERS_NOTE)
    controller = window.controller
    if max_frames is not None:
        def ended(state: str) -> None:
            if state in ("stopped", "faulted") and controller.station is not None:
                # exit() leaves the loop now; quit() (and closing the last window) would post a
                # Quit event that a later loop, such as the next log-in dialog, would receive.
                app.exit(0)
        controller.stateChanged.connect(ended)
    window.show()
    # What exists now (modules, widgets) lives as long as the app: keep it out of the cyclic GC's
    # full collections, which otherwise scan it all on the GUI thread (measured ~20 ms per pass).
    gc.freeze()
    if autostart:
        controller.start()
    code = int(app.exec())
    if controller.state == "faulted":
        code = code or 1  # the operator saw why in the window; the caller gets a failing status
    window.close()  # closeEvent makes sure no station process outlives the window
    st = controller.station
    summary = st.summary() if st is not None and callable(getattr(st, "summary", None)) else None
    window.deleteLater()
    return code, summary
