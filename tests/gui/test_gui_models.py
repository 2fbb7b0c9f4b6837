"""The models tab: registry table and cards, the retrain runner (progress, log, cancel), promote / roll back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from gui.gui_helpers import save_shot
from PySide6.QtCore import QElapsedTimer, QTimer

from inspector.gui.widgets.process_runner import Step, event_metrics, parse_progress

PY = sys.executable
SHA1, SHA2 = "a1" * 32, "b2" * 32
CLASSES = ["particle", "scratch", "residue", "pattern", "edge_chip"]


def build_registry(root: Path) -> Path:
    """wafer-demo 1 (production, with weights.pt and a stored evaluation) and 2 (candidate), cards included."""
    versions = {}
    for v, stage, sha, m50, rec in (("1", "production", SHA1, 0.91, 0.82), ("2", "candidate", SHA2, 0.93, 0.86)):
        folder = root / "wafer-demo" / v
        folder.mkdir(parents=True)
        created = f"2025-01-0{v}T10:00:00Z"
        record = {"schema": 1, "name": "wafer-demo", "version": v, "stage": stage, "sha256": sha,
                  "class_names": CLASSES, "imgsz": [320, 320], "created": created, "author": "qe-anna",
                  "metrics": {"overall": {"map50": m50, "map50_95": m50 - 0.3, "recall": rec, "precision": 0.9},
                              "per_class": {}}, "evals": {}}
        if v == "1":
            (folder / "weights.pt").write_bytes(b"not a real checkpoint")
            (folder / "evals").mkdir()
            stored = {"dataset_hash": "ds-stored", "split": "val", "map50": 0.8, "recall": 0.7,
                      "per_class": {"scratch": {"recall": 0.6}}}
            (folder / "evals" / "ds-stored-val.json").write_text(json.dumps(stored))
            record["evals"]["ds-stored-val"] = {"file": "evals/ds-stored-val.json", "dataset_hash": "ds-stored",
                                                "split": "val", "map50": 0.8}
        (folder / "registry.json").write_text(json.dumps(record))
        (folder / "card.md").write_text(f"# Model card: wafer-demo {v}\n\n**Stage:** {stage}\n\n"
                                        f"| metric | value |\n| --- | --- |\n| mAP50 | {m50} |\n")
        versions[v] = {"stage": stage, "sha256": sha, "path": f"wafer-demo/{v}", "created": created,
                       "author": "qe-anna", "class_names": CLASSES, "imgsz": [320, 320], "map50": m50,
                       "map50_95": m50 - 0.3, "parent": None, "dataset_hash": "ds0"}
    (root / "index.json").write_text(json.dumps({"schema": 1, "models": {"wafer-demo": {
        "versions": versions, "production_history": ["1"]}}}))
    return root


@pytest.fixture
def view(ctx, sessions, qtbot, tmp_path):
    from inspector.gui.views.models_view import ModelsView

    build_registry(tmp_path / "reg")
    ctx.registry_root = tmp_path / "reg"
    ctx.session = sessions["engineer"]
    v = ModelsView(ctx)
    qtbot.addWidget(v)
    v.resize(1200, 820)
    v.show()
    return v


def _eval_json(map50, recall, scratch_recall, ds="ds-new"):
    return json.dumps({"dataset_hash": ds, "split": "val", "map50": map50, "map50_95": map50 - 0.3,
                       "precision": 0.9, "recall": recall, "f1": 0.88, "ece": 0.05,
                       "per_class": {"scratch": {"recall": scratch_recall}}})


def _event(stage, event, done=0, total=None, **metrics):
    return json.dumps({"progress": stage, "event": event, "done": done, "total": total,
                       "unit": "epoch" if stage == "train" else "it", "elapsed_s": 0.1, **metrics})


def _script(*stderr_lines: str, stdout: str = "", sleep: float = 0.0, exit_code: int = 0) -> tuple[str, ...]:
    """A stand-in for the retrain command: JSON progress on stderr, then its result on stdout."""
    code = ("import sys, time\n"
            f"for line in {list(stderr_lines)!r}:\n"
            "    print(line, file=sys.stderr, flush=True); time.sleep(0.02)\n"
            f"time.sleep({sleep})\n"
            f"sys.stdout.write({stdout!r})\n"
            f"sys.exit({exit_code})\n")
    return (PY, "-c", code)


def test_parse_progress():
    ev = parse_progress(_event("train", "update", 3, 30, map50=0.41, box_loss=1.2))
    assert ev["progress"] == "train" and (ev["done"], ev["total"]) == (3, 30)
    assert event_metrics(ev) == {"map50": 0.41, "box_loss": 1.2}      # the counters are not figures
    assert parse_progress("  " + _event("export", "start") + "  ")["event"] == "start"
    assert parse_progress("      3/30         0G      1.234      2.1") is None   # console text is only logged
    assert parse_progress('{"not": "progress"}') is None and parse_progress("{broken") is None
    assert parse_progress("[1, 2]") is None


def test_lists_versions_and_shows_the_card(view):
    t = view.table
    assert t.rowCount() == 2
    cols = {t.horizontalHeaderItem(c).text(): c for c in range(t.columnCount())}
    row = [t.item(0, c).text() for c in range(t.columnCount())]
    assert row[cols["model"]] == "wafer-demo" and row[cols["version"]] == "1"
    assert row[cols["stage"]] == "production" and row[cols["sha256"]] == SHA1[:12]
    assert row[cols["mAP50"]] == "0.910" and row[cols["recall"]] == "0.820"
    assert row[cols["created"]].startswith("2025-01-01") and row[cols["author"]] == "qe-anna"
    assert view.selected() == ("wafer-demo", "1")           # the station model's production version
    assert "Model card: wafer-demo 1" in view.card.toPlainText()
    t.setCurrentCell(1, 0)
    assert view.selected() == ("wafer-demo", "2")
    text = view.card.toPlainText()
    assert "Model card: wafer-demo 2" in text and "#" not in text and "**" not in text   # rendered Markdown
    assert "<table" in view.card.toHtml()


def test_retrain_runs_one_command_with_json_progress(view, ctx, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    step = view.retrain_step("wafer-demo", work, 3)
    cfg = work / "station.yaml"                            # no config file: the current settings written out
    assert cfg.is_file()
    assert list(step.args) == [PY, "-m", "training.cli", "retrain", "--from-db", str(ctx.db_path), "--images",
                               str(ctx.images_root), "--config", str(cfg), "--registry", str(ctx.registry_root),
                               "--name", "wafer-demo", "--epochs", "3", "--workdir", str(work), "--progress",
                               "json", "--json", "--user=eng",
                               "--reason=retrained from confirmed labels (station GUI)"]
    assert step.cancellable and step.protected_stages == {"register"} and step.result_on_stdout
    assert not any(a.endswith((".yaml", ".pt")) for a in step.args if a != str(cfg))   # no model named here


def _result(version="2", cand=(0.93, 0.86, 0.8), prod=(0.91, 0.82, 0.79)):
    def ev(m50, rec, scratch):
        return {"dataset_hash": "ds-new", "split": "val", "map50": m50, "map50_95": m50 - 0.3, "precision": 0.9,
                "recall": rec, "f1": 0.88, "ece": 0.05, "per_class": {"scratch": {"recall": scratch}}}
    return json.dumps({"candidate_spec": f"wafer-demo@{version}", "name": "wafer-demo", "version": version,
                       "parent": "wafer-demo@1", "candidate": ev(*cand), "production": ev(*prod)})


def test_retrain_draws_json_progress_and_compares(view, qtbot, screenshots):
    lines = [_event("dataset", "start"), _event("dataset", "end", 12, None), "Ultralytics 8.4 console line",
             _event("train", "start", 0, 2), _event("train", "update", 1, 2, map50=0.312),
             _event("train", "update", 2, 2, map50=0.455, map50_95=0.2), _event("train", "end", 2, 2),
             _event("register", "start"), _event("register", "end")]
    events = []
    view.runner.progressChanged.connect(events.append)
    assert view.start_retrain(Step("retrain", _script(*lines, stdout=_result())))
    assert not view.retrain_btn.isEnabled()
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=30_000)
    assert view.runner.result == "ok", view.runner.log.toPlainText()
    epochs = [(e["done"], e["total"]) for e in events if e["progress"] == "train" and e["event"] == "update"]
    assert epochs == [(1, 2), (2, 2)]
    assert "mAP50 0.455" in view.runner.metrics.text() and "train" in view.runner.metrics.text()
    log = view.runner.log.toPlainText()
    assert "Ultralytics 8.4 console line" in log and "[train: done" in log
    assert not any(line.startswith('{"progress"') for line in log.splitlines())   # drawn, not logged
    assert view.retrain_btn.isEnabled() and view.workdir.is_dir()
    assert view.registered == ("wafer-demo", "2") and view.selected() == ("wafer-demo", "2")
    cmp = {view.compare.item(r, 0).text(): [view.compare.item(r, c).text() for c in (1, 2, 3)]
           for r in range(view.compare.rowCount())}
    assert cmp["map50"] == ["0.930", "0.910", "+0.020"]
    assert cmp["recall scratch"] == ["0.800", "0.790", "+0.010"]
    assert "same held-out set" in view.production_source and "wafer-demo@2 registered" in view.compare_note.text()
    save_shot(view, screenshots, "models_view")


def test_the_epoch_bar_follows_the_train_stage(qtbot):
    from inspector.gui.widgets.process_runner import ProcessRunner

    runner = ProcessRunner()
    qtbot.addWidget(runner)
    lines = [_event("train", "start", 0, 5), _event("train", "update", 3, 5, map50=0.5)]
    assert runner.run([Step("retrain", _script(*lines, sleep=60))])
    qtbot.waitUntil(lambda: runner.stage is not None and runner.stage["done"] == 3, timeout=30_000)
    assert (runner.bar.minimum(), runner.bar.maximum(), runner.bar.value()) == (0, 5, 3)
    assert runner.bar.format() == "train: 3/5 epoch" and "train" in runner.status.text()
    runner.cancel()
    qtbot.waitUntil(lambda: runner.result is not None, timeout=30_000)
    assert runner.result == "cancelled"


def test_a_failing_step_stops_the_run(view, qtbot):
    assert view.start_retrain(Step("retrain", _script(_event("train", "start", 0, 3), "bad things",
                                                      _event("train", "failed", 0, 3), exit_code=3)))
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=30_000)
    log = view.runner.log.toPlainText()
    assert view.runner.result == "failed" and "bad things" in log and "exit code 3" in log
    assert "[train: failed" in log and view.workdir.is_dir()           # kept for a look
    assert view.registered is None and "failed" in view.compare_note.text()


# Stand-ins for the retrain command's signal handling: stop cleanly, ignore the signal, or complete a
# protected stage (registering) and exit 0.
_ON_TERM_STOP = ("import signal, sys, time\n"
                 "def stop(*_):\n"
                 "    print('cancelled: nothing was registered', file=sys.stderr, flush=True); sys.exit(130)\n"
                 "signal.signal(signal.SIGTERM, stop)\n")
_ON_TERM_IGNORE = "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
_ON_TERM_NOTE = ("import signal, sys, time\n"
                 "signal.signal(signal.SIGTERM, lambda *_: print('cancel noted', file=sys.stderr, flush=True))\n")


def _announce(*lines: str) -> str:
    return "".join(f"print({line!r}, file=sys.stderr, flush=True)\n" for line in lines)


def test_cancel_sends_sigterm_and_the_ui_keeps_ticking(view, qtbot):
    code = _ON_TERM_STOP + _announce(_event("train", "start", 0, 5), _event("train", "update", 1, 5)) + \
        "time.sleep(120)\n"
    clock = QElapsedTimer()
    clock.start()
    beats: list[int] = []
    heart = QTimer()
    heart.timeout.connect(lambda: beats.append(clock.elapsed()))
    heart.start(10)
    assert view.start_retrain(Step("retrain", (PY, "-c", code)))
    qtbot.waitUntil(lambda: view.runner.stage is not None and view.runner.stage["done"] == 1, timeout=30_000)
    assert view.runner.bar.maximum() == 5 and view.runner.bar.value() == 1
    pid = view.runner.proc.processId()
    assert pid > 0
    n = len(beats)
    qtbot.wait(300)
    assert len(beats) > n + 5                     # the event loop runs while the process runs
    work = view.workdir
    view.runner.cancel_btn.click()
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=10_000)
    heart.stop()
    assert view.runner.result == "cancelled" and not view.runner.running
    assert "nothing was registered" in view.runner.log.toPlainText()   # the command's own clean stop
    assert not work.exists() and "nothing registered" in view.compare_note.text()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    assert max(gaps) < (1000 if busy else 250), max(gaps)
    assert view.retrain_btn.isEnabled()


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(qtbot, monkeypatch):
    from inspector.gui.widgets import process_runner

    monkeypatch.setattr(process_runner, "CANCEL_GRACE_MS", 300)
    runner = process_runner.ProcessRunner()
    qtbot.addWidget(runner)
    code = _ON_TERM_IGNORE + _announce(_event("train", "start", 0, 5)) + "time.sleep(120)"
    assert runner.run([Step("stubborn", (PY, "-c", code))])
    qtbot.waitUntil(lambda: runner.stage is not None, timeout=30_000)          # its handler is in place
    pid = runner.proc.processId()
    runner.cancel()
    qtbot.wait(100)
    assert runner.running                                     # SIGTERM ignored: still within the grace
    qtbot.waitUntil(lambda: runner.result is not None, timeout=10_000)
    assert runner.result == "cancelled" and "killing the process group" in runner.log.toPlainText()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_cancel_while_registering_lets_it_complete(view, qtbot, monkeypatch):
    from inspector.gui.widgets import process_runner

    monkeypatch.setattr(process_runner, "CANCEL_GRACE_MS", 200)   # never applied during a protected stage
    code = (_ON_TERM_NOTE + _announce(_event("register", "start")) + "time.sleep(1.5)\n"
            + _announce(_event("register", "end")) + f"print({_result()!r})\n")
    step = Step("retrain", (PY, "-c", code), protected_stages=frozenset({"register"}))
    assert view.start_retrain(step)
    qtbot.waitUntil(lambda: view.runner.protected, timeout=30_000)
    assert not view.runner.cancel_btn.isEnabled() and "cannot be interrupted" in view.runner.status.text()
    view.runner.cancel()                                  # e.g. the app closing: the command finishes it
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=30_000)
    log = view.runner.log.toPlainText()
    assert view.runner.result == "ok" and "cancel noted" in log and "it completed" in log
    assert view.registered == ("wafer-demo", "2")


def test_kill_now_on_shutdown(qtbot):
    from inspector.gui.widgets.process_runner import ProcessRunner

    runner = ProcessRunner()
    qtbot.addWidget(runner)
    ends = []
    assert runner.run([Step("sleep", (PY, "-c", "import time; time.sleep(120)"))], cleanup=ends.append)
    qtbot.waitUntil(lambda: runner.proc is not None and runner.proc.processId() > 0, timeout=10_000)
    pid = runner.proc.processId()
    runner.kill_now()
    assert runner.result == "cancelled" and ends == ["cancelled"] and not runner.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_promote_and_rollback_call_the_actions_with_the_session(view, ctx, qtbot):
    from inspector.station import actions

    calls = []
    index_path = ctx.registry_root / "index.json"

    def fake_runner(args, env):
        calls.append((list(args), dict(env)))
        if "promote" in args:  # what the gate would do on success: 2 -> production, 1 -> archived
            idx = json.loads(index_path.read_text())
            vs = idx["models"]["wafer-demo"]["versions"]
            vs["1"]["stage"], vs["2"]["stage"] = "archived", "production"
            index_path.write_text(json.dumps(idx))
            return 0, "gate: PASS (map50 0.930 >= 0.910)\npromoted wafer-demo@2"
        return 1, "rollback refused: no earlier production version"

    view.tool_runner = fake_runner
    view.table.setCurrentCell(1, 0)
    view.reason.setText("better recall")
    view.promote_btn.click()
    qtbot.waitUntil(lambda: isinstance(view.last_tool, actions.ToolResult), timeout=10_000)
    args, env = calls[0]
    assert args[:5] == [sys.executable, "-m", "training.cli", "promote", "--user=eng"]
    assert "--reason=better recall" in args and f"--registry={ctx.registry_root}" in args
    assert args[-2:] == ["--", "wafer-demo@2"] and env == {"INSPECTOR_USER": "eng"}
    out = view.tool_output.toPlainText()
    assert "gate: PASS" in out and "promoted wafer-demo@2" in out
    stages = {view.table.item(r, 1).text(): view.table.item(r, 2).text() for r in range(view.table.rowCount())}
    assert stages == {"1": "archived", "2": "production"}            # refreshed
    assert view.selected() == ("wafer-demo", "2") and view.promote_btn.isEnabled()

    view.last_tool = None
    view.rollback_btn.click()
    qtbot.waitUntil(lambda: isinstance(view.last_tool, actions.ToolResult), timeout=10_000)
    assert calls[1][0][3] == "rollback" and calls[1][0][-2:] == ["--", "wafer-demo"]
    assert "exit code 1" in view.tool_output.toPlainText() and "rollback refused" in view.tool_output.toPlainText()
    conn = ctx.connect()
    try:
        rows = conn.execute("SELECT actor, action, entity_id FROM audit WHERE action LIKE 'models.%' ORDER BY seq")
        assert [tuple(r) for r in rows] == [("eng", "models.promote", "wafer-demo@2"),
                                            ("eng", "models.rollback", "wafer-demo")]
    finally:
        conn.close()


def test_operator_never_sees_the_panel_and_the_actions_refuse(ctx, sessions, qtbot, tmp_path):
    from inspector.gui.main_window import MainWindow
    from inspector.station import actions

    build_registry(tmp_path / "reg")
    ctx.registry_root = tmp_path / "reg"
    ctx.session = sessions["operator"]
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    assert "models" not in win.pages and "Models" not in [win.tabs.tabText(i) for i in range(win.tabs.count())]
    ran = []
    for call in (lambda: actions.models_promote(sessions["operator"], "wafer-demo@2", ctx.registry_root,
                                                runner=lambda a, e: ran.append(a) or (0, "")),
                 lambda: actions.models_rollback(sessions["operator"], "wafer-demo", ctx.registry_root,
                                                 runner=lambda a, e: ran.append(a) or (0, ""))):
        with pytest.raises(actions.PermissionDenied):
            call()
    assert ran == []
    win.close()
    ctx.session = sessions["engineer"]
    eng = MainWindow(ctx)
    qtbot.addWidget(eng)
    assert eng.pages["models"].table.rowCount() == 2
    eng.close()


def test_an_uninterruptible_step_finishes_and_the_run_stops_after_it(qtbot):
    from inspector.gui.widgets.process_runner import ProcessRunner

    runner = ProcessRunner()
    qtbot.addWidget(runner)
    work = ("import time; print('step started', flush=True); time.sleep(1.0); "
            "print('registered wafer-demo@2 [candidate] sha256 ab')")
    steps = [Step("register", (PY, "-c", work), cancellable=False), Step("after", (PY, "-c", "print('should not run')"))]
    assert runner.run(steps)
    qtbot.waitUntil(lambda: "step started" in runner.log.toPlainText(), timeout=20_000)
    assert not runner.cancel_btn.isEnabled() and "cannot be interrupted" in runner.status.text()
    runner.cancel()
    assert runner.running                                    # not killed
    qtbot.waitUntil(lambda: runner.result is not None, timeout=20_000)
    log = runner.log.toPlainText()
    assert runner.result == "cancelled" and "registered wafer-demo@2" in runner.outputs[0]
    assert "should not run" not in log and "could not be interrupted" in log

    # The last step: it completes, and the run is what it did (ok).
    assert runner.run([Step("ok", (PY, "-c", "print('x')")), Step("register", (PY, "-c", work), cancellable=False)])
    qtbot.waitUntil(lambda: runner.index == 1 and "step started" in runner.log.toPlainText(), timeout=20_000)
    runner.cancel()
    qtbot.waitUntil(lambda: runner.result is not None, timeout=20_000)
    assert runner.result == "ok" and "it completed" in runner.log.toPlainText()

    # Shutdown waits for such a step instead of killing it half-way.
    assert runner.run([Step("register", (PY, "-c", work), cancellable=False), Step("after", (PY, "-c", "pass"))])
    qtbot.waitUntil(lambda: "step started" in runner.log.toPlainText(), timeout=20_000)
    runner.kill_now()
    assert runner.result == "cancelled" and "registered wafer-demo@2" in runner.outputs[0]


def test_the_gui_process_never_imports_training_or_torch(tmp_path):
    """Build the engineer's window (models tab included) and the retrain commands in a fresh process."""
    import subprocess

    build_registry(tmp_path / "reg")
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from inspector.config import config_hash, default_config_path, load_config\n"
        "import inspector.gui.app, inspector.gui.dialogs\n"
        "from inspector.gui.context import AppContext\n"
        "from inspector.gui.main_window import MainWindow\n"
        "from inspector.station.actions import Session\n"
        "tmp = Path(sys.argv[1])\n"
        "cfg = load_config(default_config_path())\n"
        "ctx = AppContext(cfg, config_hash(cfg), tmp / 'data', registry_root=tmp / 'reg',"
        " session=Session('eng', 'engineer'))\n"
        "ctx.data_dir.mkdir(parents=True, exist_ok=True)\n"
        "win = MainWindow(ctx, station_factory=lambda: None)\n"
        "step = win.pages['models'].retrain_step('wafer-demo', tmp, 1)\n"
        "assert step.args[1:4] == ('-m', 'training.cli', 'retrain')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics', 'training'))\n"
        "print('LOADED', bad)\n"
        "sys.exit(1 if bad else 0)\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([PY, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and "LOADED []" in r.stdout, r.stdout + r.stderr


def _confirmed_store(ctx, operator, lots=4, per_lot=3):
    """Frames whose kept box (drawn in the image) an operator accepted: confirmed labels, one lot per group."""
    from gui.gui_helpers import fill_store, put_image

    from inspector.station import actions

    ids = []
    for lot in range(lots):
        images = {i: put_image(ctx.images_root, seed=10 * lot + i) for i in range(per_lot)}
        ids += fill_store(ctx.db_path, per_lot, verdicts=("fail",), lot=f"L{lot}", wafer=f"W{lot}",
                          run_id=f"run-{lot}", images=images)
    conn = ctx.connect()
    try:
        for fid in ids:
            actions.review(conn, operator, fid, "accept", verdict="fail")
    finally:
        conn.close()
    return ids


@pytest.mark.slow
def test_retrain_registers_a_candidate_and_promote_goes_through_the_gate(ctx, sessions, qtbot, tmp_path,
                                                                         screenshots):
    """The real command on a tiny store: 12 confirmed frames, a tiny production yolo11n with its own weights.pt
    (64 px); a cancel during training registers nothing, then a 1-epoch run registers a candidate."""
    from helpers.retrain_kit import production_with_weights
    from training.registry import GateConfig, Registry, evaluate_gate  # test-side only: set-up and the check

    from inspector.gui.views.models_view import ModelsView
    from inspector.runtime.registry import RegistryReader
    from inspector.station import actions

    _confirmed_store(ctx, sessions["operator"])
    reg_root = tmp_path / "reg"
    production_with_weights(reg_root, tmp_path / "prod")
    events_before = (reg_root / "events.jsonl").read_text()
    ctx.registry_root = reg_root
    ctx.session = sessions["engineer"]
    view = ModelsView(ctx)
    qtbot.addWidget(view)
    view.resize(1200, 820)
    view.show()

    # Cancel during training: nothing registered, nothing left half-way, the work folder removed.
    view.epochs.setValue(50)
    assert view.start_retrain()
    qtbot.waitUntil(lambda: (view.runner.stage or {}).get("progress") == "train" or view.runner.result is not None,
                    timeout=180_000)
    assert view.runner.result is None, view.runner.log.toPlainText()
    work = view.workdir
    view.runner.cancel_btn.click()
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=60_000)
    log = view.runner.log.toPlainText()
    assert view.runner.result == "cancelled" and "cancelled (SIGTERM): nothing was registered" in log, log
    assert not work.exists()
    assert [r["version"] for r in Registry(reg_root).list()] == ["1"]
    assert sorted(p.name for p in (reg_root / "wafer-demo").iterdir()) == ["1"]
    assert (reg_root / "events.jsonl").read_text() == events_before

    # The whole run, one command: dataset, train, export, evaluate both, register.
    view.epochs.setValue(1)
    assert view.start_retrain()
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=600_000)
    log = view.runner.log.toPlainText()
    assert view.runner.result == "ok", log
    stages = [e["progress"] for e in view.runner.events if e["event"] == "start"]
    assert stages == ["dataset", "train", "export", "evaluate candidate", "evaluate production", "register"]
    assert any(e["progress"] == "train" and "map50" in e for e in view.runner.events)   # mAP50 per epoch
    assert view.registered == ("wafer-demo", "2") and view.selected() == ("wafer-demo", "2")
    info = Registry(reg_root).show("wafer-demo@2")
    assert info["stage"] == "candidate" and info["parent"] == "wafer-demo@1" and info["author"] == "eng"
    assert info["dataset_hash"] == view.candidate_eval["dataset_hash"]
    key = f"{info['dataset_hash']}-val"
    assert key in info["evals"] and key in Registry(reg_root).show("wafer-demo@1")["evals"]   # the same held-out set
    assert (reg_root / "wafer-demo" / "2" / "weights.pt").is_file()       # the next retrain fine-tunes it
    assert Registry(reg_root).verify().ok
    card = (reg_root / "wafer-demo" / "2" / "card.md").read_text()
    assert "wafer defects" in card and "demo only" in card and "by eng" in card   # production's purpose kept
    stages = {view.table.item(r, 1).text(): view.table.item(r, 2).text() for r in range(view.table.rowCount())}
    assert stages == {"1": "production", "2": "candidate"}
    assert "same held-out set" in view.production_source and view.compare.rowCount() >= 2
    assert "wafer-demo@2 registered" in view.compare_note.text()
    save_shot(view, screenshots, "models_view_retrained")

    # Promote: the registry's gate decides on the stored evaluations of the two versions.
    cand = Registry(reg_root).load_eval("wafer-demo", "2", info["dataset_hash"], "val")
    prod = Registry(reg_root).load_eval("wafer-demo", "1", info["dataset_hash"], "val")
    passes = evaluate_gate(cand, prod, GateConfig()).passed
    if all(cand[m] <= prod[m] for m in ("map50", "map50_95")):
        assert not passes                                   # nothing strictly better: refused
    view.promote_btn.click()
    qtbot.waitUntil(lambda: isinstance(view.last_tool, actions.ToolResult), timeout=120_000)
    assert view.last_tool.ok == passes, view.last_tool.output
    event = [json.loads(line) for line in (reg_root / "events.jsonl").read_text().splitlines()][-1]
    assert event["action"] == ("promote" if passes else "promote_refused") and event["user"] == "eng"
    assert event["version"] == "2" and event["gate"]["passed"] == passes
    assert Registry(reg_root).show("wafer-demo@2")["stage"] == ("production" if passes else "candidate")
    assert RegistryReader(reg_root).resolve("wafer-demo").version == ("2" if passes else "1")
