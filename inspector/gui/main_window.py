"""The operator window: live view, review queue, wafer map, incidents, history, and the engineer's tabs.

Tabs a role may not use are not built at all (the window shows only what the role may do);
``actions`` refuses the same things again underneath.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QTabWidget, QWidget

from inspector.gui.context import AppContext
from inspector.gui.permissions import can
from inspector.gui.station_controller import StationController
from inspector.gui.status import status_fields
from inspector.gui.views.live_page import LivePage

log = logging.getLogger(__name__)
STATUS_MS = 500


def default_station_factory(ctx: AppContext) -> Callable[[], Any]:
    """What the station process is built from at each start (the config as it is then: a settings
    change applies from the next start). The station runs in its own process, never in the GUI's."""
    def build() -> Any:
        from inspector.station.child_process import StationSpec

        return StationSpec(ctx.cfg, ctx.cfg_hash, ctx.data_dir, registry_root=ctx.registry_root,
                           allow_no_model=bool(ctx.extra.get("allow_no_model")),
                           max_frames=ctx.extra.get("max_frames"))
    return build


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext, station_factory: Callable[[], Any] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle(f"Inspector: {ctx.cfg.station.name or ctx.cfg.station.id}"
                            f"  [{ctx.user or 'nobody'} / {ctx.role or '-'}]")
        self.controller = StationController(station_factory or default_station_factory(ctx), self)
        self.tabs = QTabWidget(self)
        self.setCentralWidget(self.tabs)
        self.pages: dict[str, QWidget] = {}
        self.live = LivePage(self.controller, ctx.class_names, self)
        self._add("live", "Live", self.live)
        if not can(ctx.session, "station"):
            self.live.set_may_control(False, f"role {ctx.role}: watching only (start / stop need operator or engineer)")
        self._build_tabs()
        self._install_session_menu()
        self.status_ms_max = 0.0  # CPU ms of the slowest status refresh (diagnostics)
        self.status_labels: dict[str, QLabel] = {}
        for key in ("state", "fps", "latency", "queue", "drops", "models", "mes"):
            lab = QLabel("", self)
            self.status_labels[key] = lab
            self.statusBar().addPermanentWidget(lab)
        self.controller.stateChanged.connect(lambda _s: self.update_status())
        self.status_timer = QTimer(self)
        self.status_timer.timeout.connect(self.update_status)
        self.status_timer.start(STATUS_MS)
        self.update_status()
        self.resize(1200, 800)

    def _add(self, key: str, title: str, page: QWidget) -> None:
        self.pages[key] = page
        self.tabs.addTab(page, title)

    def _build_tabs(self) -> None:
        s = self.ctx.session
        # Imported here: each tab is optional and a failing one must not take the window down.
        builders: list[tuple[str, str, str, Callable[[], QWidget]]] = []
        from inspector.gui.views.review_view import ReviewView

        builders.append(("review", "Review queue", "review", lambda: ReviewView(self.ctx, self)))
        try:
            from inspector.gui.views.wafer_page import WaferPage

            if self.ctx.cfg.wafer is not None:
                builders.append(("wafer", "Wafer map", "wafer", lambda: WaferPage(self.ctx, self)))
        except ImportError:
            pass
        try:
            from inspector.gui.views.history_view import HistoryView

            builders.append(("history", "History", "history", lambda: HistoryView(self.ctx, self)))
        except ImportError:
            pass
        try:
            from inspector.gui.views.incidents_view import IncidentsView

            cfg = self.ctx.cfg
            if cfg.station.domain == "construction" or cfg.site is not None or self.ctx.extra.get("incidents_tab"):
                builders.append(("incidents", "Incidents", "incidents_view", lambda: IncidentsView(self.ctx, self)))
        except ImportError:
            pass
        try:
            from inspector.gui.views.label_page import LabelPage

            builders.append(("labels", "Label editor", "relabel", lambda: LabelPage(self.ctx, self)))
        except ImportError:
            pass
        try:
            from inspector.gui.views.settings_view import SettingsView

            builders.append(("settings", "Settings", "settings",
                             lambda: SettingsView(self.ctx, self.controller, self)))
        except ImportError:
            pass
        try:
            from inspector.gui.views.models_view import ModelsView

            builders.append(("models", "Models", "models", lambda: ModelsView(self.ctx, self)))
        except ImportError:
            pass
        for key, title, capability, build in builders:
            if can(s, capability):
                self._add(key, title, build())

    # --- log-in / log-out: the role's tabs are rebuilt, the station keeps running ------------------
    def _install_session_menu(self) -> None:
        menu = self.menuBar().addMenu("&Session")
        self.logout_action = QAction("Log &out", self)
        self.logout_action.setShortcut(QKeySequence("Ctrl+L"))
        self.logout_action.triggered.connect(lambda: self.log_out())
        self.login_action = QAction("Log &in...", self)
        self.login_action.triggered.connect(lambda: self.log_in())
        menu.addAction(self.logout_action)
        menu.addAction(self.login_action)
        self._session_ui()

    def log_out(self, ask_login: bool = True) -> bool:
        """Forget the user, drop the tabs of their role, then ask for the next log-in."""
        if self.ctx.session is None:
            return False
        who = self.ctx.user
        self.ctx.end_session()  # the token stops working, not only the window's copy
        self.set_session(None)
        log.info("user %s logged out", who)
        if ask_login:
            self.log_in(note=f"{who} logged out.")
        return True

    def log_in(self, note: str = "") -> bool:
        session = self.ask_login(note)
        if session is None:  # cancelled: the window stays, watching only
            return False
        self.set_session(session)
        return True

    def ask_login(self, note: str = "") -> Any:
        """The log-in dialog (tests replace this); the new session or None."""
        from inspector.gui.dialogs import ask_login

        return ask_login(self.ctx.connect, self, note)

    def set_session(self, session: Any) -> None:
        """Switch user: every tab but Live is rebuilt for the new role (views read the role when built)."""
        for key in [k for k in self.pages if k != "live"]:
            page = self.pages.pop(key)
            stop = getattr(page, "shutdown", None)
            if callable(stop):  # e.g. a retrain under way in the models tab
                stop()
            self.tabs.removeTab(self.tabs.indexOf(page))
            page.close()
            page.deleteLater()
        self.ctx.session = session
        may = can(session, "station")
        why = "nobody logged in: watching only" if session is None else \
            f"role {self.ctx.role}: watching only (start / stop need operator or engineer)"
        self.live.set_may_control(may, why)
        if may:
            self.live.note.setText("")
        self._build_tabs()
        self._session_ui()

    def _session_ui(self) -> None:
        self.setWindowTitle(f"Inspector: {self.ctx.cfg.station.name or self.ctx.cfg.station.id}"
                            f"  [{self.ctx.user or 'nobody'} / {self.ctx.role or '-'}]")
        self.logout_action.setEnabled(self.ctx.session is not None)
        self.login_action.setEnabled(self.ctx.session is None)

    def update_status(self) -> None:
        t0 = time.thread_time()
        mes = [m.id for m in self.ctx.cfg.mes] if self.ctx.cfg.mes else []
        f = status_fields(self.controller.snapshot(), state=self.controller.state,
                          models=self.controller.model_names() or [m.registry or m.name for m in self.ctx.cfg.models],
                          mes=mes)
        for key, text in f.items():
            self.status_labels[key].setText(text)
        self.status_ms_max = max(self.status_ms_max, (time.thread_time() - t0) * 1e3)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        # Stop the line cleanly: every accepted frame is still judged and stored.
        self.status_timer.stop()
        self.live.timer.stop()
        self.controller.shutdown(60)
        super().closeEvent(event)
