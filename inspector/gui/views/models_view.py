"""Models (engineer): the registry's versions and cards, retraining from confirmed labels, promote / roll back.

The registry is only read here (``RegistryReader``: ``index.json``, each version's
``registry.json`` and ``card.md``). Everything that trains, evaluates or changes the registry runs
in a child process, never in the GUI process (which imports neither ``training`` nor torch):

* "Retrain from confirmed labels" runs ONE command, ``inspector-train retrain --progress json --json``
  (dataset from the store's confirmed labels, training from production's own weights, ONNX export,
  evaluation of the candidate and production on the same held-out set, registration of the candidate
  with parent = production and author = the logged-in user) with a :class:`ProcessRunner`, which
  draws its JSON progress (stage, epoch bar, latest mAP50) and its log. Cancel sends SIGTERM: the
  command stops and registers nothing, unless it is already registering, which it completes. The
  result (stdout JSON) names the candidate, selected in the table with its figures beside production's;
  Promote runs the gate on it.
* Promote / Roll back call ``actions.models_promote`` / ``models_rollback`` (which check the role
  and run ``inspector-train promote|rollback`` through the registry's gate) on a worker thread, then
  show the gate's output and reload the table.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from inspector.gui.context import AppContext
from inspector.gui.permissions import can
from inspector.gui.widgets.process_runner import ProcessRunner, Step
from inspector.runtime.registry import (
    CARD_FILE,
    PRODUCTION,
    RECORD_FILE,
    RegistryError,
    RegistryReader,
    default_registry_root,
    parse_spec,
    version_sort_key,
)
from inspector.station import actions

COLUMNS = ("model", "version", "stage", "sha256", "mAP50", "mAP50-95", "recall", "created", "author")
COMPARED = ("map50", "map50_95", "precision", "recall", "f1", "ece")
LOWER_IS_BETTER = {"ece"}
STAGE_COLORS = {"production": "#2e9d3a", "candidate": "#0072B2", "shadow": "#E69F00", "archived": "#808080"}
RETRAIN_TITLE = "retrain from confirmed labels"
DEFAULT_EPOCHS = 30
PROTECTED_STAGES = frozenset({"register"})   # the command completes these even when cancelled


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _fmt(v: Any) -> str:
    n = _num(v)
    return "" if n is None else f"{n:.3f}"


def parse_json_output(text: str) -> dict[str, Any] | None:
    """The JSON object a ``--json`` command printed (the whole stdout, or its last JSON line)."""
    text = text.strip()
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return None


def compare_rows(candidate: Mapping[str, Any], production: Mapping[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """(metric, candidate value, production value): the headline metrics, then each class's recall."""
    prod = production or {}
    rows: list[tuple[str, Any, Any]] = [(m, candidate.get(m), prod.get(m)) for m in COMPARED
                                        if _num(candidate.get(m)) is not None or _num(prod.get(m)) is not None]
    cpc, ppc = candidate.get("per_class") or {}, prod.get("per_class") or {}
    for cls in list(cpc) + [c for c in ppc if c not in cpc]:
        c = (cpc.get(cls) or {}).get("recall")
        p = (ppc.get(cls) or {}).get("recall")
        if _num(c) is not None or _num(p) is not None:
            rows.append((f"recall {cls}", c, p))
    return rows


class ModelsView(QWidget):
    toolDone = Signal(str, object)   # noqa: N815 - what ("promote" / "rollback"), ToolResult or error text

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.reader = RegistryReader(ctx.registry_root if ctx.registry_root is not None else default_registry_root())
        self.tool_runner: actions.Runner | None = None  # None: a real subprocess (tests inject a fake)
        self.rows: list[tuple[str, str, dict[str, Any]]] = []   # (name, version, index entry + record)
        self.workdir: Path | None = None
        self.retrain_model: str | None = None
        self.candidate_eval: dict[str, Any] | None = None
        self.production_eval: dict[str, Any] | None = None
        self.production_source = ""
        self.registered: tuple[str, str] | None = None   # (name, version) the last retrain registered
        self.last_tool: Any = None
        self._tool_busy = False

        # --- registry table and card -----------------------------------------------------------
        self.where = QLabel("", self)
        self.where.setWordWrap(True)
        self.refresh_btn = QPushButton("Refresh", self)
        self.refresh_btn.clicked.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.currentCellChanged.connect(lambda row, _c, _pr, _pc: self.show_card(row))
        self.card = QTextBrowser(self)
        self.card.setOpenLinks(False)

        # --- promote / roll back ---------------------------------------------------------------
        self.reason = QLineEdit(self)
        self.reason.setPlaceholderText("reason (kept in the registry's event log)")
        self.promote_btn = QPushButton("Promote selected", self)
        self.promote_btn.setToolTip("inspector-train promote NAME@VERSION: the registry's gate decides")
        self.promote_btn.clicked.connect(self.promote)
        self.rollback_btn = QPushButton("Roll back model", self)
        self.rollback_btn.setToolTip("inspector-train rollback NAME: the previous production version returns")
        self.rollback_btn.clicked.connect(self.rollback)
        self.tool_output = QPlainTextEdit(self)
        self.tool_output.setReadOnly(True)
        self.tool_output.setStyleSheet("font-family: monospace")
        self.tool_output.setPlaceholderText("the gate's output appears here")
        self.toolDone.connect(self._tool_done)
        may = can(ctx.session, "models")
        for b in (self.promote_btn, self.rollback_btn):
            b.setEnabled(may)

        # --- retrain ---------------------------------------------------------------------------
        self.model_box = QComboBox(self)
        self.epochs = QSpinBox(self)
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(DEFAULT_EPOCHS)
        self.epochs.setPrefix("epochs ")
        self.retrain_btn = QPushButton("Retrain from confirmed labels", self)
        self.retrain_btn.setToolTip("inspector-train retrain, in a child process: dataset from the store's confirmed "
                                    "labels, training from production's own weights, ONNX export, evaluation of it "
                                    "and production on the same held-out set, registration as a candidate (author: "
                                    "you; parent: production)")
        self.retrain_btn.setEnabled(may)
        self.retrain_btn.clicked.connect(lambda: self.start_retrain())
        self.runner = ProcessRunner(self)
        self.runner.finished.connect(self._retrain_done)
        self.compare = QTableWidget(0, 4, self)
        self.compare.setHorizontalHeaderLabels(["metric", "candidate", "production", "delta"])
        self.compare.verticalHeader().setVisible(False)
        self.compare.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.compare.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.compare.horizontalHeader().setStretchLastSection(True)
        self.compare_note = QLabel("", self)
        self.compare_note.setWordWrap(True)
        self.compare_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top_bar = QHBoxLayout()
        top_bar.addWidget(self.where, 1)
        top_bar.addWidget(self.refresh_btn)
        upper = QSplitter(Qt.Orientation.Horizontal, self)
        upper.addWidget(self.table)
        upper.addWidget(self.card)
        upper.setSizes([700, 400])

        retrain = QGroupBox("Retrain from confirmed labels", self)
        rl = QVBoxLayout(retrain)
        rbar = QHBoxLayout()
        rbar.addWidget(QLabel("model", retrain))
        rbar.addWidget(self.model_box, 1)
        rbar.addWidget(self.epochs)
        rbar.addWidget(self.retrain_btn)
        rl.addLayout(rbar)
        rsplit = QSplitter(Qt.Orientation.Horizontal, retrain)
        rsplit.addWidget(self.runner)
        cmp_box = QWidget(rsplit)
        cl = QVBoxLayout(cmp_box)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.compare, 1)
        cl.addWidget(self.compare_note)
        rsplit.addWidget(cmp_box)
        rsplit.setSizes([380, 420])
        rl.addWidget(rsplit, 1)

        gate = QGroupBox("Promote / roll back (through the registry's gate)", self)
        gl = QVBoxLayout(gate)
        gbar = QHBoxLayout()
        gbar.addWidget(self.reason, 1)
        gbar.addWidget(self.promote_btn)
        gbar.addWidget(self.rollback_btn)
        gl.addLayout(gbar)
        gl.addWidget(self.tool_output, 1)

        lower = QSplitter(Qt.Orientation.Horizontal, self)
        lower.addWidget(retrain)
        lower.addWidget(gate)
        lower.setSizes([650, 450])
        outer = QSplitter(Qt.Orientation.Vertical, self)
        upper_w = QWidget(outer)
        ul = QVBoxLayout(upper_w)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addLayout(top_bar)
        ul.addWidget(upper, 1)
        outer.addWidget(upper_w)
        outer.addWidget(lower)
        outer.setSizes([300, 500])
        lay = QVBoxLayout(self)
        lay.addWidget(outer)
        self.refresh()

    # --- registry -------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.reader.root

    def _record(self, name: str, version: str) -> dict[str, Any]:
        try:
            data = json.loads((self.reader.version_dir(name, version) / RECORD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def load_rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        rows = []
        for name in self.reader.names():
            versions = self.reader.versions(name)
            for v in sorted(versions, key=version_sort_key):
                rec = self._record(name, v)
                entry = {**versions[v]}
                metrics = rec.get("metrics") if isinstance(rec.get("metrics"), dict) else {}
                overall = metrics.get("overall") or {}
                for k in ("map50", "map50_95", "recall", "precision"):
                    if entry.get(k) is None and overall.get(k) is not None:
                        entry[k] = overall[k]
                for k in ("created", "author", "imgsz"):
                    entry.setdefault(k, rec.get(k))
                entry["record"] = rec
                rows.append((name, v, entry))
        return rows

    def refresh(self) -> None:
        keep = self.selected()
        try:
            self.rows = self.load_rows()
            self.where.setText(f"Registry {self.root}: {len(self.rows)} version(s) of "
                               f"{len({r[0] for r in self.rows})} model(s) (read-only here)")
            self.where.setStyleSheet("")
        except RegistryError as e:
            self.rows = []
            self.where.setText(f"Registry {self.root}: {e}")
            self.where.setStyleSheet("color: #d62f2f")
        self.table.setRowCount(len(self.rows))
        for r, (name, v, e) in enumerate(self.rows):
            sha = str(e.get("sha256") or "").removeprefix("sha256:")
            vals = [name, v, str(e.get("stage") or ""), sha[:12], _fmt(e.get("map50")), _fmt(e.get("map50_95")),
                    _fmt(e.get("recall")), str(e.get("created") or ""), str(e.get("author") or "")]
            for c, text in enumerate(vals):
                item = QTableWidgetItem(text)
                if c == 3:
                    item.setToolTip(sha)
                if c == 2 and text in STAGE_COLORS:
                    item.setForeground(QColor(STAGE_COLORS[text]))
                self.table.setItem(r, c, item)
        names = sorted({r[0] for r in self.rows})
        current = self.model_box.currentText()
        self.model_box.clear()
        self.model_box.addItems(names)
        want = current or self._config_model()
        if want in names:
            self.model_box.setCurrentText(want)
        row = next((i for i, (n, v, _e) in enumerate(self.rows) if (n, v) == keep), None)
        if row is None:  # else the production version of the station's model, else the first
            row = next((i for i, (n, _v, e) in enumerate(self.rows)
                        if n == self._config_model() and e.get("stage") == PRODUCTION), 0 if self.rows else None)
        if row is not None:
            self.table.selectRow(row)
            self.table.setCurrentCell(row, 0)
            self.show_card(row)
        else:
            self.card.setMarkdown("*The registry holds no model yet.*")

    def _config_model(self) -> str:
        for m in self.ctx.cfg.models:
            try:
                return parse_spec(m.registry or m.name)[0]
            except ValueError:
                continue
        return ""

    def selected(self) -> tuple[str, str] | None:
        row = self.table.currentRow()
        if 0 <= row < len(self.rows):
            return self.rows[row][0], self.rows[row][1]
        return None

    def show_card(self, row: int) -> None:
        if not 0 <= row < len(self.rows):
            return
        name, v, _e = self.rows[row]
        path = self.reader.version_dir(name, v) / CARD_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = f"*{name}@{v} has no model card ({path} is missing).*"
        self.card.setMarkdown(text)
        if self.model_box.findText(name) >= 0 and not self.runner.running:
            self.model_box.setCurrentText(name)

    # --- promote / roll back --------------------------------------------------------------------
    def promote(self) -> bool:
        sel = self.selected()
        if sel is None:
            self._tool_say("Select a version to promote.")
            return False
        spec = f"{sel[0]}@{sel[1]}"
        return self._run_tool("promote", spec, lambda conn, reason: actions.models_promote(
            self.ctx.session, spec, self.root, reason=reason, conn=conn, runner=self.tool_runner))

    def rollback(self) -> bool:
        sel = self.selected()
        if sel is None:
            self._tool_say("Select a version of the model to roll back.")
            return False
        name = sel[0]
        return self._run_tool("rollback", name, lambda conn, reason: actions.models_rollback(
            self.ctx.session, name, self.root, reason=reason, conn=conn, runner=self.tool_runner))

    def _tool_say(self, text: str) -> None:
        self.tool_output.setPlainText(text)

    def _run_tool(self, what: str, target: str, call: Any) -> bool:
        """Run an action on a worker thread (it waits for a subprocess); the result comes back as a signal."""
        if self._tool_busy:
            return False
        if self.ctx.session is None:
            self._tool_say(f"{what} {target}: refused, nobody is logged in")
            return False
        self._tool_busy = True
        for b in (self.promote_btn, self.rollback_btn):
            b.setEnabled(False)
        reason = self.reason.text().strip()
        self._tool_say(f"{what} {target}: running inspector-train {what} (the registry's gate decides)...")

        def work() -> None:
            conn = None
            try:
                conn = self.ctx.connect()  # this thread's own connection
                result: Any = call(conn, reason)
            except actions.PermissionDenied as e:
                result = f"{what} {target}: refused: {e}"
            except Exception as e:  # noqa: BLE001 - shown to the engineer, never raised into Qt
                result = f"{what} {target} failed: {type(e).__name__}: {e}"
            finally:
                if conn is not None:
                    conn.close()
            self.toolDone.emit(what, result)

        threading.Thread(target=work, name=f"gui-models-{what}", daemon=True).start()
        return True

    @Slot(str, object)
    def _tool_done(self, what: str, result: Any) -> None:
        self._tool_busy = False
        may = can(self.ctx.session, "models")
        for b in (self.promote_btn, self.rollback_btn):
            b.setEnabled(may)
        self.last_tool = result
        if isinstance(result, actions.ToolResult):
            head = "done" if result.ok else f"refused or failed (exit code {result.returncode})"
            self._tool_say(f"{what}: {head}\n$ {' '.join(result.args)}\n\n{result.output}")
        else:
            self._tool_say(str(result))
        self.refresh()

    # --- retrain --------------------------------------------------------------------------------
    def tool_config(self, workdir: Path) -> Path:
        """The station config for the training tools: the file, or the run-time settings written out."""
        path = self.ctx.config_path
        if path is not None and Path(path).is_file() and self.ctx.cfg_hash == self.ctx.extra.get(
                "baseline_hash", self.ctx.cfg_hash):
            return Path(path)
        out = workdir / "station.yaml"
        out.write_text(yaml.safe_dump(self.ctx.cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
        return out

    def retrain_step(self, name: str, workdir: Path, epochs: int) -> Step:
        """The one command that retrains ``name``: ``inspector-train retrain`` with JSON progress and a
        JSON result. It picks production's weights, input size and held-out evaluation itself."""
        args = (sys.executable, "-m", "training.cli", "retrain", "--from-db", str(self.ctx.db_path),
                "--images", str(self.ctx.images_root), "--config", str(self.tool_config(workdir)),
                "--registry", str(self.root), "--name", name, "--epochs", str(epochs), "--workdir", str(workdir),
                "--progress", "json", "--json", f"--user={self.ctx.user or ''}",
                "--reason=retrained from confirmed labels (station GUI)")
        return Step(RETRAIN_TITLE, args, protected_stages=PROTECTED_STAGES, result_on_stdout=True)

    def start_retrain(self, step: Step | None = None, name: str | None = None) -> bool:
        """Start the retrain command (``step`` replaces the real one: tests). Never blocks."""
        if self.runner.running:
            return False
        if not can(self.ctx.session, "models"):
            self.runner.status.setText("refused: retraining needs role engineer")
            return False
        name = name or self.model_box.currentText() or self._config_model()
        if not name:
            self.runner.status.setText("no model to retrain: the registry and the station config name none")
            return False
        base = self.ctx.data_dir / "retrain"
        base.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=base))
        self.retrain_model = name
        self.registered = None
        self.candidate_eval = self.production_eval = None
        self.compare.setRowCount(0)
        self.compare_note.setText(f"working in {self.workdir}")
        if step is None:
            step = self.retrain_step(name, self.workdir, self.epochs.value())
        self.retrain_btn.setEnabled(False)
        # The registry takes the author from --user, else from INSPECTOR_USER: both name the session's user.
        env = {"INSPECTOR_USER": self.ctx.user} if self.ctx.user else {}
        return self.runner.run([step], cwd=self.workdir, env=env, cleanup=self._cleanup)

    def cancel_retrain(self) -> None:
        self.runner.cancel()

    def shutdown(self) -> None:
        """The view is going away (log-out): stop a retrain now (a registration under way completes)."""
        self.runner.kill_now()

    def _cleanup(self, outcome: str) -> None:
        if outcome == "cancelled" and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @Slot(str)
    def _retrain_done(self, outcome: str) -> None:
        self.retrain_btn.setEnabled(can(self.ctx.session, "models"))
        if outcome == "cancelled":
            self.compare_note.setText(f"cancelled: nothing registered; {self.workdir} removed")
            return
        if outcome != "ok":
            self.refresh()  # whatever the registry holds now (a failed run registers nothing)
            self.compare_note.setText(f"{outcome}: see the log; files kept in {self.workdir}")
            return
        result = parse_json_output(self.runner.outputs[-1]) if self.runner.outputs else None
        if result is None or not isinstance(result.get("candidate"), dict):
            self.compare_note.setText("the retrain command printed no result: see the log")
            return
        self.registered = (str(result["name"]), str(result["version"]))
        self.runner.log.appendPlainText(f"[registered {result.get('candidate_spec')} as a candidate, parent "
                                        f"{result.get('parent')}; files in {self.workdir}]")
        self.refresh()
        self.select_version(*self.registered)
        self.show_comparison(result["candidate"], result.get("production"),
                             f"{result.get('parent')} evaluated on the same held-out set")

    def select_version(self, name: str, version: str) -> bool:
        """Select ``name@version`` in the table (and show its card)."""
        row = next((i for i, (n, v, _e) in enumerate(self.rows) if (n, v) == (name, version)), None)
        if row is None:
            return False
        self.table.selectRow(row)
        self.table.setCurrentCell(row, 0)
        self.show_card(row)
        return True

    def show_comparison(self, cand: Mapping[str, Any], prod: Mapping[str, Any] | None, source: str = "") -> None:
        self.candidate_eval, self.production_eval, self.production_source = dict(cand), prod, source
        rows = compare_rows(cand, prod)
        self.compare.setRowCount(len(rows))
        for r, (metric, c, p) in enumerate(rows):
            cn, pn = _num(c), _num(p)
            delta = None if cn is None or pn is None else cn - pn
            items = [QTableWidgetItem(metric), QTableWidgetItem(_fmt(c)), QTableWidgetItem(_fmt(p)),
                     QTableWidgetItem("" if delta is None else f"{delta:+.3f}")]
            if delta is not None and abs(delta) > 1e-12:
                better = (delta < 0) if metric in LOWER_IS_BETTER else (delta > 0)
                items[3].setForeground(QColor("#2e9d3a" if better else "#d62f2f"))
            for col, item in enumerate(items):
                self.compare.setItem(r, col, item)
        where = f"{cand.get('dataset_hash', '?')} [{cand.get('split', '?')}]"
        if self.registered is not None:
            name, version = self.registered
            entry = next((e for n, v, e in self.rows if (n, v) == self.registered), {})
            parent = entry.get("parent") or (entry.get("record") or {}).get("parent")
            what = (f"candidate {name}@{version} registered (stage {entry.get('stage', '?')}, parent "
                    f"{parent or 'none'}, author {entry.get('author') or '?'}) and selected: Promote runs the "
                    "registry's gate on it.")
        else:
            what = "candidate not registered"
        self.compare_note.setText(f"held-out set {where}; production: {source or 'none'}.\n{what}")
        self.compare_note.setToolTip(f"files of this run: {self.workdir}")
