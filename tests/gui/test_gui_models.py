"""The models tab: registry table and cards, the retrain runner (progress, log, cancel), promote / roll back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from gui.gui_helpers import save_shot
from PySide6.QtCore import QElapsedTimer, QTimer

from inspector.gui.widgets.process_runner import Step, parse_epoch

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


def test_parse_epoch():
    assert parse_epoch("Epoch 3/30") == (3, 30)
    assert parse_epoch("      3/30         0G      1.234      2.1", total=30) == (3, 30)
    assert parse_epoch("      3/30         0G      1.234      2.1", total=50) is None  # a batch counter
    assert parse_epoch("100%|####| 12/50 [00:05<00:00]", total=50) is None
    assert parse_epoch("\x1b[34mEpoch 2/5\x1b[0m") == (2, 5)
    assert parse_epoch("nothing here") is None


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


def test_retrain_commands_use_the_cli_options(view, ctx, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    steps = view.retrain_steps("wafer-demo", work, 3)
    cli = [PY, "-m", "training.cli"]
    ds = work / "confirmed"
    cfg = str(work / "station.yaml")                        # no config file: the current settings written out
    assert Path(cfg).is_file()
    assert list(steps[0].args) == [*cli, "dataset", str(ds), "--from-db", str(ctx.db_path), "--images",
                                   str(ctx.images_root), "--config", cfg, "--overwrite"]
    weights = str(ctx.registry_root / "wafer-demo" / "1" / "weights.pt")
    assert list(steps[1].args) == [*cli, "train", "--data", str(ds / "data.yaml"), "--model", weights, "--imgsz",
                                   "320", "--epochs", "3", "--project", str(work / "runs"), "--name", "candidate"]
    assert steps[1].epochs == 3
    best = work / "runs" / "candidate" / "weights" / "best.pt"
    onnx = work / "onnx" / "best.onnx"
    assert list(steps[2].args) == [*cli, "export", str(best), "--out", str(onnx.parent), "--name", "wafer-demo",
                                   "--json"]
    assert list(steps[3].args) == [*cli, "evaluate", str(onnx), str(ds), "--json", "--config", cfg, "--out",
                                   str(work / "eval-candidate")]
    assert steps[4].args[3:6] == ("evaluate", "wafer-demo@1", str(ds))
    assert "--registry" in steps[4].args and "--store-in-registry" in steps[4].args
    reg = steps[5]
    assert reg.args[3:6] == ("models", "register", str(onnx)) and not reg.cancellable and reg is steps[-1]
    assert {"--user=eng", "--parent=wafer-demo@1", f"--registry={ctx.registry_root}"} <= set(reg.args)
    assert reg.args[reg.args.index("--metrics") + 1] == str(work / "eval-candidate" / "report.json")
    assert reg.args[reg.args.index("--stage") + 1] == "candidate"
    assert all(s.cancellable for s in steps[:-1])
    (ctx.registry_root / "wafer-demo" / "1" / "weights.pt").unlink()
    assert view.retrain_steps("wafer-demo", work, 3)[1].args[7] == "yolo11n.yaml"


def test_retrain_runs_steps_with_progress_and_compares(view, qtbot, screenshots):
    from inspector.gui.views.models_view import CAND_STEP, PROD_STEP

    train = ("import sys, time\n"
             "for i in (1, 2):\n"
             "    print(f'Epoch {i}/2', flush=True); time.sleep(0.05)\n"
             "print('      2/2         0G      1.0', file=sys.stderr)\n")
    steps = [Step("build the dataset", (PY, "-c", "print('dataset ok: 12 images')")),
             Step("train", (PY, "-c", train), epochs=2),
             Step(CAND_STEP, (PY, "-c", f"print({_eval_json(0.93, 0.86, 0.8)!r})")),
             Step(f"{PROD_STEP} wafer-demo@1", (PY, "-c", f"print({_eval_json(0.91, 0.82, 0.79)!r})"))]
    progress = []
    view.runner.progressChanged.connect(lambda x, n: progress.append((x, n)))
    assert view.start_retrain(steps)
    assert not view.retrain_btn.isEnabled()
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=30_000)
    assert view.runner.result == "ok", view.runner.log.toPlainText()
    assert progress == [(1, 2), (2, 2)]
    log = view.runner.log.toPlainText()
    assert "dataset ok: 12 images" in log and "Epoch 2/2" in log
    assert view.retrain_btn.isEnabled() and view.workdir.is_dir()
    cmp = {view.compare.item(r, 0).text(): [view.compare.item(r, c).text() for c in (1, 2, 3)]
           for r in range(view.compare.rowCount())}
    assert cmp["map50"] == ["0.930", "0.910", "+0.020"]
    assert cmp["recall scratch"] == ["0.800", "0.790", "+0.010"]
    assert "same held-out set" in view.production_source
    save_shot(view, screenshots, "models_view")

    # Without a production evaluation step: production's evaluation stored in the registry on that set.
    steps = [Step(CAND_STEP, (PY, "-c", f"print({_eval_json(0.85, 0.8, 0.65, ds='ds-stored')!r})"))]
    assert view.start_retrain(steps)
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=30_000)
    assert view.runner.result == "ok"
    assert view.production_eval["map50"] == 0.8 and "stored evaluation" in view.production_source
    assert view.compare.item(0, 0).text() == "map50" and view.compare.item(0, 3).text() == "+0.050"


def test_a_failing_step_stops_the_run(view, qtbot):
    steps = [Step("one", (PY, "-c", "import sys; print('bad things', file=sys.stderr); sys.exit(3)")),
             Step("two", (PY, "-c", "print('should not run')"))]
    assert view.start_retrain(steps)
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=30_000)
    log = view.runner.log.toPlainText()
    assert view.runner.result == "failed" and "bad things" in log and "exit code 3" in log
    assert "should not run" not in log and view.workdir.is_dir()   # kept for a look


def test_cancel_kills_the_process_and_the_ui_keeps_ticking(view, qtbot):
    steps = [Step("train", (PY, "-c", "import time; print('Epoch 1/5', flush=True); time.sleep(120)"), epochs=5),
             Step("after", (PY, "-c", "print('should not run')"))]
    clock = QElapsedTimer()
    clock.start()
    beats: list[int] = []
    heart = QTimer()
    heart.timeout.connect(lambda: beats.append(clock.elapsed()))
    heart.start(10)
    assert view.start_retrain(steps)
    qtbot.waitUntil(lambda: view.runner.epoch == (1, 5), timeout=30_000)
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
    assert not work.exists()                      # cleaned up
    assert "should not run" not in view.runner.log.toPlainText()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    assert max(gaps) < (1000 if busy else 250), max(gaps)
    assert view.retrain_btn.isEnabled()


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
        "steps = win.pages['models'].retrain_steps('wafer-demo', tmp, 1)\n"
        "assert steps[-1].args[3:5] == ('models', 'register')\n"
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
def test_retrain_registers_a_candidate_and_promote_goes_through_the_gate(ctx, sessions, qtbot, tmp_path):
    """The real commands on a tiny store: 12 confirmed frames, 1 epoch at imgsz 96, a tiny production model."""
    from helpers.tiny_models import tiny_onnx
    from training.registry import GateConfig, Registry, evaluate_gate  # test-side only: set-up and the check

    from inspector.gui.views.models_view import ModelsView
    from inspector.runtime.registry import RegistryReader
    from inspector.station import actions

    _confirmed_store(ctx, sessions["operator"])
    reg_root = tmp_path / "reg"
    reg = Registry(reg_root)
    reg.register(tiny_onnx(tmp_path / "prod.onnx", CLASSES, imgsz=96), "wafer-demo", CLASSES, 96,
                 dataset_hash="ds-factory", train_config={}, parent=None, metrics=None, author="qe-anna",
                 card={"purpose": "wafer defects", "limits": ["demo only"]})
    reg.promote("wafer-demo", "1", "qe-anna")
    events_before = (reg_root / "events.jsonl").read_text()
    ctx.registry_root = reg_root
    ctx.session = sessions["engineer"]
    view = ModelsView(ctx)
    qtbot.addWidget(view)
    view.epochs.setValue(1)

    # Cancel during training: nothing registered, nothing left half-way, the work folder removed.
    assert view.start_retrain()
    qtbot.waitUntil(lambda: view.runner.index >= 1, timeout=120_000)
    assert view.runner.result is None, view.runner.log.toPlainText()
    work = view.workdir
    view.runner.cancel_btn.click()
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=30_000)
    assert view.runner.result == "cancelled" and not work.exists()
    assert [r["version"] for r in Registry(reg_root).list()] == ["1"]
    assert sorted(p.name for p in (reg_root / "wafer-demo").iterdir()) == ["1"]
    assert (reg_root / "events.jsonl").read_text() == events_before

    # The whole run: dataset, train, export, evaluate both, register.
    assert view.start_retrain()
    qtbot.waitUntil(lambda: view.runner.result is not None, timeout=600_000)
    log = view.runner.log.toPlainText()
    assert view.runner.result == "ok", log
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
