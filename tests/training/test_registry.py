"""The model registry's write side: register, gate, promote, roll back, events chain, CLI.

The gate, the model card and the event log on their own: tests/training/registry/.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import click
import pytest
from helpers.tiny_models import tiny_onnx as _tiny_onnx
from click.testing import CliRunner

from inspector.runtime.registry import NoProductionModelError, RegistryReader, UnknownModelError
from training.commands.registry_cmds import add_registry_commands, models, promote, rollback
from training.registry import (
    GateConfig,
    GateRefused,
    Registry,
    RegistryError,
    RegistryIntegrityError,
    verify_events,
)

CLASSES = ["scratch", "particle"]
IMGSZ = 32


def tiny_onnx(path: Path, class_names=CLASSES, imgsz: int = IMGSZ, bias: float = 0.0) -> Path:
    return _tiny_onnx(path, class_names, imgsz, bias)


def ev(map50: float, map50_95: float | None = None, recalls=(0.8, 0.7), dataset_hash="ds1", split="val") -> dict:
    """An evaluation in the shape the evaluation module writes."""
    return {"dataset_hash": dataset_hash, "split": split, "map50": map50,
            "map50_95": map50 - 0.3 if map50_95 is None else map50_95, "precision": 0.8, "recall": 0.75,
            "f1": 0.77, "ece": 0.05,
            "per_class": {c: {"ap50": map50, "recall": r, "precision": 0.8} for c, r in zip(CLASSES, recalls)}}


@pytest.fixture
def onnx_files(tmp_path: Path) -> list[Path]:
    out = tmp_path / "exports"
    out.mkdir()
    return [tiny_onnx(out / f"m{i}.onnx", bias=float(i)) for i in range(4)]


@pytest.fixture
def reg(tmp_path: Path, monkeypatch) -> Registry:
    monkeypatch.setenv("INSPECTOR_USER", "tester")
    return Registry(tmp_path / "models")


def register(reg: Registry, onnx: Path, metrics=None, **kw) -> dict:
    args = dict(dataset_hash="train-ds-1", train_config={"epochs": 5, "imgsz": IMGSZ}, parent=None,
                metrics=metrics, author="ann", card={"purpose": "find wafer defects",
                                                     "limits": ["dies only"], "failure_modes": "glare"})
    args.update(kw)
    return reg.register(onnx, "wafer", CLASSES, IMGSZ, **args)


@pytest.fixture
def three(reg: Registry, onnx_files) -> Registry:
    """Versions 1..3, each with a stored evaluation on ds1/val (1 < 2 < 3 in mAP)."""
    for i, m in enumerate((0.5, 0.6, 0.7), start=1):
        register(reg, onnx_files[i - 1], metrics=ev(m))
        reg.add_eval("wafer", str(i), ev(m))
    return reg


def stages(reg: Registry) -> dict[str, str]:
    return {r["version"]: r["stage"] for r in reg.list("wafer")}


# --- register, list, show -------------------------------------------------------------------------
def test_register_writes_the_version_folder_and_the_record(reg, onnx_files, tmp_path):
    pt = tmp_path / "best.pt"
    pt.write_bytes(b"not really a checkpoint")
    rec = register(reg, onnx_files[0], metrics=ev(0.5), weights_pt=pt)
    folder = reg.root / "wafer" / "1"
    assert rec["version"] == "1" and rec["stage"] == "candidate" and rec["author"] == "ann"
    for f in ("model.onnx", "model.manifest.json", "registry.json", "card.md", "weights.pt"):
        assert (folder / f).is_file(), f
    manifest = json.loads((folder / "model.manifest.json").read_text())
    assert manifest["sha256"] == rec["sha256"] and manifest["onnx"] == "model.onnx"
    assert manifest["name"] == "wafer" and manifest["version"] == "1" and manifest["class_names"] == CLASSES
    on_disk = json.loads((folder / "registry.json").read_text())
    assert on_disk == rec
    assert rec["metrics"]["overall"]["map50"] == 0.5 and rec["metrics"]["per_class"]["scratch"]["recall"] == 0.8
    assert rec["dataset_hash"] == "train-ds-1" and rec["train_config"]["epochs"] == 5 and rec["parent"] is None
    assert len(rec["weights"]["sha256"]) == 64
    card = (folder / "card.md").read_text()
    for section in ("## Purpose", "## Data", "## Training", "## Metrics", "## Limits", "## Known failure modes",
                    "## Provenance"):
        assert section in card
    assert "find wafer defects" in card and "- glare" in card and rec["sha256"] in card and "| scratch |" in card
    assert register(reg, onnx_files[1], parent="wafer@1")["version"] == "2"


def test_list_and_show(reg, onnx_files):
    register(reg, onnx_files[0], metrics=ev(0.5))
    register(reg, onnx_files[1])
    rows = reg.list()
    assert [(r["name"], r["version"], r["stage"], r["author"], r["map50"]) for r in rows] == [
        ("wafer", "1", "candidate", "ann", 0.5), ("wafer", "2", "candidate", "ann", None)]
    info = reg.show("wafer@1")
    for key in ("name", "version", "stage", "sha256", "path", "classes", "imgsz", "metrics"):
        assert key in info, key
    assert Path(info["path"]).is_file() and info["classes"] == CLASSES and info["imgsz"] == [IMGSZ, IMGSZ]
    with pytest.raises(NoProductionModelError, match=r"1 \(candidate\), 2 \(candidate\)"):
        reg.show("wafer")
    with pytest.raises(UnknownModelError):
        reg.show("wafer@7")


@pytest.mark.parametrize(
    "change, match",
    [
        ({"name": "Wafer Model"}, "lowercase"),
        ({"stage": "production"}, "only through `promote`"),
        ({"class_names": ["particle", "scratch"]}, "class names"),  # disagrees with the ONNX metadata
        ({"class_names": ["a", "a"]}, "unique"),
        ({"parent": "wafer@9"}, "not in the registry"),
        ({"parent": "wafer"}, "must name a version"),
        ({"dataset_hash": ""}, "dataset_hash is required"),
        ({"card": {"purpose": "x", "colour": "red"}}, "unknown field"),
    ],
)
def test_register_refuses_bad_input(reg, onnx_files, change, match):
    args = dict(name="wafer", class_names=CLASSES, dataset_hash="d", train_config={}, parent=None, metrics=None,
                author="ann", card=None)
    args.update(change)
    with pytest.raises(RegistryError, match=match):
        reg.register(onnx_files[0], args.pop("name"), args.pop("class_names"), IMGSZ, **args)
    assert not (reg.root / "wafer" / "1").exists()


# --- promotion and the gate --------------------------------------------------------------------------
def test_first_promotion_passes_trivially_and_is_recorded(reg, onnx_files):
    register(reg, onnx_files[0])
    result = reg.promote("wafer", "1", "qe-ann", reason="first model")
    assert result.passed and result.first_model and not result.checks
    assert stages(reg) == {"1": "production"}
    last = reg.events()[-1]
    assert (last["action"], last["user"], last["version"], last["from_stage"], last["to_stage"]) == (
        "promote", "qe-ann", "1", "candidate", "production")
    assert last["reason"] == "first model" and last["gate"]["passed"] and last["time"].endswith("+00:00")


def test_name_resolves_to_production_only(three):
    three.promote("wafer", "1", "qe")
    assert RegistryReader(three.root).resolve("wafer").version == "1"  # 2 and 3 are candidates
    assert RegistryReader(three.root).resolve("wafer@3").stage == "candidate"


def test_a_better_candidate_is_promoted_and_the_old_one_archived(three):
    three.promote("wafer", "1", "qe")
    result = three.promote("wafer", "2", "qe")  # stored evals: 0.6 vs 0.5 on ds1/val
    assert result.passed and result.production == "wafer@1" and result.dataset_hash == "ds1"
    assert stages(three) == {"1": "archived", "2": "production", "3": "candidate"}
    assert three.show("wafer")["version"] == "2"
    assert three.show("wafer")["production_history"] == ["1", "2"]
    assert three.record("wafer", "1")["history"][-1]["to_stage"] == "archived"


def test_a_worse_candidate_is_refused_with_a_table_and_nothing_changes(three):
    three.promote("wafer", "1", "qe")
    three.promote("wafer", "3", "qe")
    index_before = json.loads((three.root / "index.json").read_text())["models"]
    with pytest.raises(GateRefused) as e:
        three.promote("wafer", "2", "qe")  # 0.6 < 0.7
    msg = str(e.value)
    assert "refused to promote wafer@2" in msg and "against production wafer@3" in msg
    assert "candidate" in msg and "production" in msg and "required" in msg
    assert any(line.strip().startswith("map50 ") and line.rstrip().endswith("NO") for line in msg.splitlines())
    assert not e.value.result.passed
    assert json.loads((three.root / "index.json").read_text())["models"] == index_before
    assert stages(three) == {"1": "archived", "2": "candidate", "3": "production"}
    refused = three.events()[-1]
    assert refused["action"] == "promote_refused" and refused["user"] == "qe" and not refused["gate"]["passed"]


def test_equal_metrics_do_not_beat_production(reg, onnx_files):
    register(reg, onnx_files[0])
    register(reg, onnx_files[1])
    reg.promote("wafer", "1", "qe")
    with pytest.raises(GateRefused, match="must beat it on at least one"):
        reg.promote("wafer", "2", "qe", candidate_eval=ev(0.5), production_eval=ev(0.5))


def test_a_reexport_of_production_weights_need_not_beat_it_and_only_a_reexport(reg, onnx_files, tmp_path):
    import dataclasses

    pt, other = tmp_path / "best.pt", tmp_path / "other.pt"
    pt.write_bytes(b"the trained weights")
    other.write_bytes(b"retrained weights")
    register(reg, onnx_files[0], weights_pt=pt)
    register(reg, onnx_files[1], weights_pt=pt)   # the same weights exported again (another input size)
    register(reg, onnx_files[2], weights_pt=other)   # a retrain
    reg.promote("wafer", "1", "qe")
    reexport = dataclasses.replace(GateConfig.with_overrides({"map50": -0.01, "map50_95": -0.01}),
                                   require_improvement=False)
    slightly_worse, prod = ev(0.495, 0.195), ev(0.5, 0.2)
    with pytest.raises(GateRefused, match="must beat it on at least one"):   # without the flag: refused
        reg.promote("wafer", "2", "qe", gate=GateConfig.with_overrides({"map50": -0.01, "map50_95": -0.01}),
                    candidate_eval=slightly_worse, production_eval=prod)
    with pytest.raises(GateRefused, match="a re-export must hold production's own weights"):
        reg.promote("wafer", "3", "qe", gate=reexport, candidate_eval=slightly_worse, production_eval=prod)
    with pytest.raises(GateRefused, match=r"map50 0\.4800 does not reach"):  # margins still hold
        reg.promote("wafer", "2", "qe", gate=reexport, candidate_eval=ev(0.48, 0.195), production_eval=prod)
    result = reg.promote("wafer", "2", "qe", gate=reexport, candidate_eval=slightly_worse, production_eval=prod)
    assert result.passed and any("re-export of wafer@1's weights" in n for n in result.notes)
    assert result.config["require_improvement"] is False and stages(reg)["2"] == "production"


def test_margins_are_per_metric_and_configurable(reg, onnx_files):
    register(reg, onnx_files[0])
    register(reg, onnx_files[1])
    reg.promote("wafer", "1", "qe")
    cand, prod = ev(0.505, 0.2), ev(0.5, 0.2)
    with pytest.raises(GateRefused, match=r"map50 0\.5050 does not reach >= 0\.5100"):
        reg.promote("wafer", "2", "qe", gate=GateConfig.with_overrides({"map50": 0.01}),
                    candidate_eval=cand, production_eval=prod)
    assert stages(reg)["2"] == "candidate"
    result = reg.promote("wafer", "2", "qe", candidate_eval=cand, production_eval=prod)  # default margins: 0
    assert result.passed and [c.metric for c in result.checks][:2] == ["map50", "map50_95"]


def test_a_per_class_recall_drop_beyond_tolerance_is_refused(reg, onnx_files):
    register(reg, onnx_files[0])
    register(reg, onnx_files[1])
    reg.promote("wafer", "1", "qe")
    with pytest.raises(GateRefused, match=r"recall of class 'particle' drops 0\.0500") as e:
        reg.promote("wafer", "2", "qe", candidate_eval=ev(0.6, recalls=(0.9, 0.65)),
                    production_eval=ev(0.5, recalls=(0.8, 0.7)))
    assert "recall[particle]" in str(e.value)
    assert stages(reg)["2"] == "candidate"
    # Within the tolerance (a 0.01 drop) the better model goes through; a looser tolerance also works.
    assert reg.check_gate("wafer@2", candidate_eval=ev(0.6, recalls=(0.9, 0.69)), production_eval=ev(0.5)).passed
    assert reg.check_gate("wafer@2", gate=GateConfig.with_overrides(recall_tolerance=0.06),
                          candidate_eval=ev(0.6, recalls=(0.9, 0.65)), production_eval=ev(0.5)).passed


@pytest.mark.parametrize("prod_kw", [{"dataset_hash": "ds2"}, {"split": "test"}])
def test_evaluations_on_different_held_out_sets_are_refused(reg, onnx_files, prod_kw):
    register(reg, onnx_files[0])
    register(reg, onnx_files[1])
    reg.promote("wafer", "1", "qe")
    with pytest.raises(GateRefused, match="not on the same held-out set"):
        reg.promote("wafer", "2", "qe", candidate_eval=ev(0.9), production_eval=ev(0.5, **prod_kw))
    assert stages(reg)["2"] == "candidate"


def test_an_evaluation_of_another_model_file_is_refused(three):
    three.promote("wafer", "1", "qe")
    other = three.show("wafer@3")["sha256"]
    with pytest.raises(GateRefused, match=f"candidate evaluation is of the model with sha256 {other}"):
        three.promote("wafer", "2", "qe", candidate_eval={**ev(0.9), "onnx_sha256": other}, production_eval=ev(0.5))
    own = three.show("wafer@2")["sha256"]
    with pytest.raises(RegistryError, match="store it with the version it belongs to"):
        three.add_eval("wafer", "2", {**ev(0.9), "onnx_sha256": other})
    assert three.promote("wafer", "2", "qe", candidate_eval={**ev(0.9), "onnx_sha256": own},
                         production_eval={**ev(0.5), "onnx_sha256": None}).passed


def test_stored_evaluations_must_share_a_held_out_set(reg, onnx_files):
    register(reg, onnx_files[0])
    register(reg, onnx_files[1])
    reg.promote("wafer", "1", "qe")
    reg.add_eval("wafer", "1", ev(0.5, dataset_hash="old"))
    reg.add_eval("wafer", "2", ev(0.9, dataset_hash="new"))
    with pytest.raises(GateRefused, match="no held-out set on which both"):
        reg.promote("wafer", "2", "qe")
    # A file for the candidate finds production's stored evaluation on the same set.
    assert reg.promote("wafer", "2", "qe", candidate_eval=ev(0.9, dataset_hash="old")).passed


def test_a_changed_stored_evaluation_is_detected(three):
    three.promote("wafer", "1", "qe")
    path = three.root / "wafer" / "1" / "evals" / "ds1-val.json"
    path.write_text(path.read_text().replace('"map50": 0.5', '"map50": 0.1'))
    with pytest.raises(RegistryIntegrityError, match="changed after it was recorded"):
        three.promote("wafer", "2", "qe")
    assert any("stored evaluation" in p for p in three.verify().problems)


# --- rollback -------------------------------------------------------------------------------------------
def test_rollback_restores_the_previous_production_and_is_recorded(three):
    three.promote("wafer", "1", "qe")
    three.promote("wafer", "2", "qe")
    r = three.rollback("wafer", "shift-lead", reason="false rejects on lot 7")
    assert (r.restored, r.replaced, r.user) == ("1", "2", "shift-lead") and r.time.endswith("+00:00")
    assert stages(three) == {"1": "production", "2": "archived", "3": "candidate"}
    assert RegistryReader(three.root).resolve("wafer").version == "1"
    last = three.events()[-1]
    assert (last["action"], last["user"], last["version"], last["replaced"], last["to_stage"]) == (
        "rollback", "shift-lead", "1", "2", "production")
    assert last["reason"] == "false rejects on lot 7" and last["time"] == r.time


def test_repeated_rollback_walks_back_then_stops(three):
    for v in ("1", "2", "3"):
        three.promote("wafer", v, "qe")
    assert three.rollback("wafer", "qe").restored == "2"
    assert three.rollback("wafer", "qe").restored == "1"
    assert stages(three) == {"1": "production", "2": "archived", "3": "archived"}
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        three.rollback("wafer", "qe")
    # After rolling back, the rolled-back version can be promoted again through the gate.
    assert three.promote("wafer", "3", "qe").passed
    assert three.rollback("wafer", "qe").restored == "1"


def test_rollback_with_nothing_in_production_is_an_error(reg, onnx_files):
    register(reg, onnx_files[0])
    with pytest.raises(RegistryError, match="no version in production, nothing to roll back"):
        reg.rollback("wafer", "qe")
    with pytest.raises(UnknownModelError):
        reg.rollback("ghost", "qe")


def test_rollback_refuses_a_tampered_target(three):
    three.promote("wafer", "1", "qe")
    three.promote("wafer", "2", "qe")
    onnx = three.root / "wafer" / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(RegistryIntegrityError, match="cannot go to production"):
        three.rollback("wafer", "qe")
    assert stages(three)["2"] == "production"


def test_stages_other_than_production_are_set_directly(three):
    three.promote("wafer", "1", "qe")
    assert three.set_stage("wafer", "2", "shadow", "qe")["stage"] == "shadow"
    assert three.events()[-1]["action"] == "stage"
    with pytest.raises(RegistryError, match="use `promote"):
        three.set_stage("wafer", "2", "production", "qe")
    with pytest.raises(RegistryError, match="is in production"):
        three.set_stage("wafer", "1", "archived", "qe")
    with pytest.raises(RegistryError, match="unknown stage"):
        three.set_stage("wafer", "2", "retired", "qe")


# --- events and verification -----------------------------------------------------------------------------
def test_events_chain_verifies_and_an_edited_line_is_named(three):
    three.promote("wafer", "1", "qe")
    three.promote("wafer", "2", "qe")
    path = three.root / "events.jsonl"
    check = verify_events(path)
    n = len(path.read_text().splitlines())
    assert check.ok and check.lines == n and check.bad_line is None
    assert three.verify().ok
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"user":"ann"', '"user":"mallory"')
    assert "mallory" in lines[2]
    path.write_text("\n".join(lines) + "\n")
    check = verify_events(path)
    assert not check.ok and check.bad_line == 3 and "line 3" in check.problem and "edited" in check.problem
    report = three.verify()
    assert not report.ok and any("line 3" in p for p in report.problems)


def test_removed_and_cut_off_events_are_detected(three):
    three.promote("wafer", "1", "qe")
    path = three.root / "events.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # line 3 removed
    assert verify_events(path).bad_line == 3
    path.write_text("\n".join(lines[:-1]) + "\n")  # the last line cut: the chain holds, the index knows
    assert verify_events(path).ok
    assert any("cut from the end" in p for p in three.verify().problems)


def test_verify_finds_a_tampered_model_file(three):
    assert three.verify().ok and three.verify().versions == 3
    onnx = three.root / "wafer" / "2" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1])
    problems = three.verify().problems
    assert len(problems) == 1 and "wafer@2" in problems[0] and "integrity" in problems[0]


def test_leftovers_of_an_interrupted_write_are_warnings_not_problems(three):
    (three.root / "wafer" / "9").mkdir()  # a version folder that never reached the index
    index = json.loads((three.root / "index.json").read_text())
    index["events_count"] -= 1  # the event was written, the index after it was not
    lines = (three.root / "events.jsonl").read_text().splitlines()
    index["events_head"] = hashlib.sha256(lines[-2].encode()).hexdigest()
    (three.root / "index.json").write_text(json.dumps(index))
    report = three.verify()
    assert report.ok, report.problems
    assert any("9 are not in the index" in w for w in report.warnings)
    assert any("1 event(s) after" in w for w in report.warnings)
    assert register(three, three.root / "wafer" / "1" / "model.onnx")["version"] == "10"


def test_concurrent_writers_get_distinct_versions_and_an_intact_chain(reg, onnx_files):
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(2):
                register(reg, onnx_files[i])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(int(r["version"]) for r in reg.list()) == list(range(1, 9))
    report = reg.verify()
    assert report.ok and report.events.lines == 8 and not report.warnings


# --- CLI ------------------------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path, monkeypatch):
    group = click.Group("inspector-train")
    add_registry_commands(group)
    monkeypatch.setenv("INSPECTOR_REGISTRY", str(tmp_path / "models"))
    monkeypatch.setenv("INSPECTOR_USER", "cli-user")
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        r = runner.invoke(group, [str(a) for a in args])
        if ok:
            assert r.exit_code == 0, r.output
        else:
            assert r.exit_code == 1, r.output
        return r

    return run


def test_cli_register_list_show_promote_rollback(cli, onnx_files, tmp_path):
    evals = {}
    for name, value in (("e1", ev(0.5)), ("e2", ev(0.6)), ("bad", ev(0.4))):
        evals[name] = tmp_path / f"{name}.json"
        evals[name].write_text(json.dumps(value))
    card = tmp_path / "card.yaml"
    card.write_text("purpose: wafer defects\nlimits:\n  - dies only\n")
    data = tmp_path / "data.yaml"
    data.write_text("names:\n  0: scratch\n  1: particle\n")
    r = cli("models", "register", onnx_files[0], "--name", "wafer", "--classes", "scratch,particle",
            "--imgsz", str(IMGSZ), "--metrics", evals["e1"], "--card", card)
    assert "registered wafer@1 [candidate]" in r.output
    cli("models", "register", onnx_files[1], "--name", "wafer", "--data", data, "--metrics", evals["e2"],
        "--parent", "wafer@1")  # imgsz from the ONNX metadata
    cli("models", "register", onnx_files[2], "--name", "wafer", "--dataset-hash", "ds1")  # classes from metadata

    listing = cli("models", "list").output.splitlines()
    assert listing[0].split() == ["NAME", "VERSION", "STAGE", "CREATED", "AUTHOR", "MAP50"]
    assert listing[1].split()[:3] == ["wafer", "1", "candidate"] and listing[1].split()[4:] == ["cli-user", "0.500"]

    info = json.loads(cli("models", "show", "wafer@2", "--json").output)
    assert {"name", "version", "stage", "sha256", "path", "classes", "imgsz", "metrics"} <= set(info)
    assert info["classes"] == CLASSES and info["imgsz"] == [IMGSZ, IMGSZ] and info["parent"] == "wafer@1"
    assert info["metrics"]["overall"]["map50"] == 0.6 and "ds1-val" in info["evals"]

    r = cli("promote", "wafer@1", "--reason", "first")
    assert "first promotion" in r.output and "promoted wafer@1 to production" in r.output
    r = cli("promote", "wafer@2")  # stored evaluations from --metrics
    assert "map50" in r.output and "promoted wafer@2 to production (wafer@1 archived)" in r.output
    assert "wafer@2  [production]" in cli("models", "show", "wafer").output

    r = cli("promote", "wafer@3", "--candidate-eval", evals["bad"], ok=False)
    assert "refused to promote wafer@3" in r.output and "NO" in r.output and "required" in r.output
    r = cli("promote", "wafer@3", "--candidate-eval", evals["bad"], "--production-eval", evals["e2"],
            "--margin", "map50=-0.5", "--margin", "map50_95=off", "--dry-run", ok=False)
    assert ">= 0.1000  yes" in r.output and "map50_95" not in r.output  # margins parsed
    assert "must beat it on at least one" in r.output and "dry run: nothing was changed" in r.output
    r = cli("promote", "wafer@3", "--candidate-eval", evals["bad"], "--production-eval", evals["e2"],
            "--margin", "map50=-0.5", "--margin", "map50_95=off", "--reexport", "--dry-run", ok=False)
    assert "a re-export must hold production's own weights" in r.output  # wafer@3 keeps no weights at all

    r = cli("rollback", "wafer", "--user", "lead", "--reason", "bad lot")
    assert "production is now wafer@1" in r.output and "by lead" in r.output
    assert "nothing to roll back to" in cli("rollback", "wafer", ok=False).output
    events = cli("models", "events", "--json").output.splitlines()
    assert json.loads(events[-1])["action"] == "rollback" and json.loads(events[-1])["user"] == "lead"
    assert "chain intact" in cli("models", "verify").output


def test_cli_errors_are_one_line(cli, tmp_path):
    r = cli("models", "show", "ghost", ok=False)
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: model 'ghost' is not in the registry")
    assert "not in the registry" in cli("rollback", "ghost", "--registry", tmp_path / "other", ok=False).output
    r = cli("promote", "wafer", ok=False)
    assert r.exit_code == 1


def test_cli_promote_dry_run_changes_nothing(cli, onnx_files, tmp_path):
    cli("models", "register", onnx_files[0], "--name", "wafer", "--dataset-hash", "d")
    r = cli("promote", "wafer@1", "--dry-run")
    assert "gate PASSED" in r.output and "promoted" not in r.output
    assert "candidate" in cli("models", "list").output


def test_cli_verify_fails_on_tampering(cli, onnx_files, tmp_path):
    cli("models", "register", onnx_files[0], "--name", "wafer", "--dataset-hash", "d")
    onnx = tmp_path / "models" / "wafer" / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"x")
    r = cli("models", "verify", ok=False)
    assert "problem: wafer@1" in r.output and "1 problem(s)" in r.output


def test_cli_json_is_alone_on_stdout_and_failures_still_fail(cli, onnx_files, tmp_path):
    for i in range(3):
        cli("models", "register", onnx_files[i], "--name", "wafer", "--dataset-hash", "d")
    e_good, e_bad, e_prod = (tmp_path / f"{n}.json" for n in ("good", "bad", "prod"))
    e_good.write_text(json.dumps(ev(0.6)))
    e_bad.write_text(json.dumps(ev(0.4)))
    e_prod.write_text(json.dumps(ev(0.5)))

    first = json.loads(cli("promote", "wafer@1", "--json").stdout)
    assert first["promoted"] and first["candidate"] == "wafer@1" and first["gate"]["production"] is None
    second = json.loads(cli("promote", "wafer@2", "--candidate-eval", e_good, "--production-eval", e_prod,
                            "--json").stdout)
    assert second["promoted"] and second["replaced"] == "wafer@1" and second["gate"]["passed"]
    assert second["gate"]["checks"][0]["metric"] == "map50"

    dry = cli("promote", "wafer@3", "--candidate-eval", e_bad, "--production-eval", e_good, "--dry-run", "--json",
              ok=False)
    assert json.loads(dry.stdout)["dry_run"] and not json.loads(dry.stdout)["gate"]["passed"]
    refused = cli("promote", "wafer@3", "--candidate-eval", e_bad, "--production-eval", e_good, "--json", ok=False)
    out = json.loads(refused.stdout)  # the JSON alone: the verdict goes to stderr
    assert not out["promoted"] and not out["gate"]["passed"] and out["gate"]["reasons"]
    assert "refused to promote wafer@3" in refused.stderr
    assert stages_of(tmp_path / "models") == {"1": "archived", "2": "production", "3": "candidate"}

    back = json.loads(cli("rollback", "wafer", "--user", "lead", "--json").stdout)
    assert (back["restored"], back["replaced"], back["user"]) == ("1", "2", "lead")
    assert "nothing to roll back to" in cli("rollback", "wafer", "--json", ok=False).stderr

    report = json.loads(cli("models", "verify", "--json").stdout)
    assert report["ok"] and report["versions"] == 3 and report["chain"]["ok"] and report["events"] > 5
    assert [r["version"] for r in json.loads(cli("models", "list", "--json").stdout)] == ["1", "2", "3"]
    assert json.loads(cli("models", "show", "wafer", "--json").stdout)["version"] == "1"

    onnx = tmp_path / "models" / "wafer" / "2" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"x")
    bad = cli("models", "verify", "--json", ok=False)
    report = json.loads(bad.stdout)
    assert not report["ok"] and any("wafer@2" in p for p in report["problems"]) and "1 problem(s)" in bad.stderr


def stages_of(root: Path) -> dict[str, str]:
    return {v: e["stage"] for v, e in RegistryReader(root).versions("wafer").items()}


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_registry_command_explains_itself_and_takes_registry():
    group = click.Group("inspector-train")
    add_registry_commands(group)
    assert set(group.commands) == {"models", "promote", "rollback"}
    for path, cmd in _commands(group):
        assert CliRunner().invoke(group, [*path, "--help"]).exit_code == 0
        assert cmd.help and len(cmd.help.strip()) > 20, path
        assert all(p.help for p in cmd.params if isinstance(p, click.Option)), path
        if not isinstance(cmd, click.Group):
            assert any("--registry" in p.opts for p in cmd.params), path
    assert models.name == "models" and promote.name == "promote" and rollback.name == "rollback"
