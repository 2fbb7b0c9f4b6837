"""The wafer tab: pick a wafer, see its die map and spatial signature, click a die to see it.

Die results come from the store (latest decision of each die of that wafer in that run). The
signature is the one the station recorded in its run summary (``<data>/runs/<run_id>.json``)
when there is one, else recomputed here with the config's wafer rules over the same die results.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget

from inspector.core.decision import Verdict
from inspector.core.wafer import Die
from inspector.core.wafer_rules import DieResult
from inspector.gui.context import AppContext
from inspector.gui.widgets.frame_detail import FrameDetail
from inspector.gui.widgets.wafer_map import WaferMap
from inspector.station.rules_builder import build_wafer_rule_set, wafer_layout


def list_wafers(conn: sqlite3.Connection, limit: int = 300) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT run_id, lot, wafer, COUNT(*) AS dies, MAX(t_utc) AS last FROM frames"
                        " WHERE wafer IS NOT NULL AND die_x IS NOT NULL GROUP BY run_id, lot, wafer"
                        " ORDER BY last DESC LIMIT ?", (limit,))
    return [dict(r) for r in rows]


def die_results(conn: sqlite3.Connection, run_id: str, lot: str | None, wafer: str) -> dict[Die, dict[str, Any]]:
    rows = conn.execute(
        "SELECT f.id, f.die_x, f.die_y, d.verdict, f.t_utc, f.lot, f.wafer, d.reasons,"
        " (SELECT group_concat(DISTINCT x.class_name) FROM detections x WHERE x.frame_id = f.id"
        "  AND x.model_index = -1) AS classes"
        " FROM frames f JOIN decisions d ON d.frame_id = f.id"
        " WHERE f.run_id = ? AND f.wafer = ? AND f.lot IS ? AND f.die_x IS NOT NULL ORDER BY f.t_utc, f.id",
        (run_id, wafer, lot))
    out: dict[Die, dict[str, Any]] = {}
    for r in rows:  # later rows win: the newest decision of a die
        out[(int(r["die_x"]), int(r["die_y"]))] = {
            "frame_id": r["id"], "verdict": r["verdict"], "t_utc": r["t_utc"], "lot": r["lot"], "wafer": r["wafer"],
            "die_x": r["die_x"], "die_y": r["die_y"], "classes": sorted(set(r["classes"].split(","))) if r["classes"]
            else [], "rule_ids": [x.get("rule_id") for x in json.loads(r["reasons"] or "[]")]}
    return out


class WaferPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.conn = ctx.connect()
        self.layout_ = wafer_layout(ctx.cfg)
        self.rules = build_wafer_rule_set(ctx.cfg)
        self.pick = QComboBox(self)
        self.pick.currentIndexChanged.connect(self._picked)
        refresh = QPushButton("Refresh", self)
        refresh.clicked.connect(self.refresh)
        self.map = WaferMap(self.layout_, self)
        self.map.dieClicked.connect(self.open_die)
        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.detail = FrameDetail(ctx.images_root, ctx.class_names, self)
        top = QHBoxLayout()
        top.addWidget(QLabel("wafer", self))
        top.addWidget(self.pick, 1)
        top.addWidget(refresh)
        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(top)
        ll.addWidget(self.map, 1)
        ll.addWidget(self.summary)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(left)
        split.addWidget(self.detail)
        split.setSizes([560, 480])
        QVBoxLayout(self).addWidget(split)
        self.wafers: list[dict[str, Any]] = []
        self.results: dict[Die, dict[str, Any]] = {}
        self.signature: str | None = None
        self.refresh()

    def refresh(self) -> None:
        self.wafers = list_wafers(self.conn)
        self.pick.blockSignals(True)
        self.pick.clear()
        for w in self.wafers:
            self.pick.addItem(f"{w['lot'] or '-'} / {w['wafer']}   ({w['dies']} dies, {w['run_id']})")
        self.pick.blockSignals(False)
        if self.wafers:
            self.show_wafer(0)

    def _picked(self, i: int) -> None:
        if 0 <= i < len(self.wafers):
            self.show_wafer(i)

    def recorded(self, run_id: str, wafer: str) -> dict[str, Any] | None:
        """The wafer's entry in the run summary file, when the run wrote one."""
        path = self.ctx.data_dir / "runs" / f"{run_id}.json"
        try:
            return (json.loads(path.read_text(encoding="utf-8")).get("wafers") or {}).get(wafer)
        except (OSError, ValueError):
            return None

    def show_wafer(self, i: int) -> None:
        w = self.wafers[i]
        self.pick.setCurrentIndex(i)
        self.results = die_results(self.conn, w["run_id"], w["lot"], w["wafer"])
        names = list(self.ctx.class_names)
        dies = {d: DieResult(Verdict(r["verdict"]), frozenset(names.index(c) for c in r["classes"] if c in names))
                for d, r in self.results.items()}
        res = self.rules.evaluate(dies, self.layout_)
        rec = self.recorded(w["run_id"], w["wafer"])
        self.signature = (rec or {}).get("signature") or res.signature
        verdict = (rec or {}).get("verdict") or res.verdict.value
        highlight = set(res.signature_dies.get(self.signature or "", ()))
        self.map.set_results(self.results, highlight)
        counts: dict[str, int] = {}
        for r in self.results.values():
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        src = "run summary" if rec and rec.get("signature") else "recomputed from the die results"
        self.summary.setText(f"lot {w['lot']}  wafer {w['wafer']}: wafer verdict {verdict}, signature "
                             f"{self.signature or '-'} ({src}); dies " + ", ".join(f"{k} {n}" for k, n in
                                                                                 sorted(counts.items())))

    def open_die(self, x: int, y: int) -> None:
        r = self.results.get((x, y))
        if r is not None:
            self.detail.show_frame(self.conn, r)
