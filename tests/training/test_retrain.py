"""`inspector-train retrain` (training/retrain.py and training/commands/retrain_cmd.py): a real tiny run
end to end, where it starts from, and cancels that leave the registry untouched."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.retrain_kit import CLASSES, IMGSZ, confirmed_store, production_with_weights, production_without_weights
from helpers.tiny_models import tiny_onnx

from inspector.config import default_config_path
from inspector.util.progress import Progress
from training.commands.retrain_cmd import EXIT_CANCELLED, retrain
from training.registry import Registry
from training.retrain import (
    CancelToken,
    RetrainCancelled,
    RetrainError,
    RetrainSpec,
    starting_point,
)
from training.retrain import retrain as run_retrain


@pytest.fixture(scope="module")
def station(tmp_path_factory) -> dict[str, Path]:
    """A store with 12 confirmed frames in 4 lots and a registry whose production has its own weights."""
    root = tmp_path_factory.mktemp("retrain")
    data = root / "data"
    data.mkdir()
    confirmed_store(data / "inspector.sqlite", data / "images")
    reg = root / "reg"
    pt = production_with_weights(reg, root / "prod")
    return {"root": root, "db": data / "inspector.sqlite", "images": data / "images", "reg": reg, "pt": pt}


def _registry_state(reg: Path) -> tuple[str, str, list[str]]:
    return ((reg / "index.json").read_text(), (reg / "events.jsonl").read_text(),
            sorted(str(p.relative_to(reg)) for p in reg.rglob("*") if ".lock" not in p.name))


def _args(station, work: Path, *extra: str) -> list[str]:
    return ["--from-db", str(station["db"]), "--images", str(station["images"]), "--config",
            str(default_config_path()), "--registry", str(station["reg"]), "--epochs", "1", "--batch", "8",
            "--workers", "0", "--workdir", str(work), *extra]


@pytest.mark.slow
def test_starting_point_is_production_own_weights(station):
    start = starting_point(station["reg"], "wafer-demo")
    assert (start.spec, start.how, start.imgsz, start.class_names) == ("wafer-demo@1", "weights", IMGSZ, CLASSES)
    assert Path(start.model) == station["reg"] / "wafer-demo" / "1" / "weights.pt"
    assert Path(start.model).read_bytes() == station["pt"].read_bytes()
    assert start.card_info["purpose"] == "wafer defects"


def test_starting_point_without_weights_is_the_recorded_architecture_or_an_error(tmp_path):
    production_without_weights(tmp_path / "a", tmp_path / "wa", {"model": "yolo11s.yaml", "epochs": 30})
    start = starting_point(tmp_path / "a", "wafer-demo")
    assert (start.how, start.model) == ("architecture", "yolo11s.yaml") and "yolo11s.yaml" in start.describe()

    # A checkpoint path that is gone names no architecture: refused, never a default model.
    production_without_weights(tmp_path / "b", tmp_path / "wb", {"model": "runs/x/weights/best.pt"})
    with pytest.raises(RetrainError, match="neither its weights .* nor its architecture"):
        starting_point(tmp_path / "b", "wafer-demo")

    # No production version at all: nothing to start from.
    Registry(tmp_path / "c").register(tiny_onnx(tmp_path / "c.onnx", CLASSES, imgsz=96), "wafer-demo", list(CLASSES),
                                      96, dataset_hash="d", train_config={}, parent=None, metrics=None,
                                      author="qe", card=None)
    with pytest.raises(RetrainError, match="no version in production"):
        starting_point(tmp_path / "c", "wafer-demo")


def test_cancel_token_stops_until_the_point_of_no_return():
    token = CancelToken()
    token.check()                                         # nothing asked: runs on
    token.request("SIGTERM")
    with pytest.raises(RetrainCancelled, match="SIGTERM"):
        token.check()
    with pytest.raises(RetrainCancelled):                 # a cancel pending when registering would begin wins
        with token.point_of_no_return():
            pass

    late = CancelToken()
    with late.point_of_no_return():
        late.interrupt("SIGINT")                          # registering: noted, never acted on
    late.check()
    assert late.requested and late.reason == "SIGINT"

    twice = CancelToken()
    with pytest.raises(RetrainCancelled):
        twice.interrupt("SIGTERM")
    twice.interrupt("SIGTERM")                            # a second signal does not raise into the cleanup


@pytest.mark.slow
def test_one_group_of_confirmed_frames_is_refused_before_training(station, tmp_path):
    confirmed_store(tmp_path / "one.sqlite", tmp_path / "images", lots=1)
    before = _registry_state(station["reg"])
    spec = RetrainSpec(db=tmp_path / "one.sqlite", config=default_config_path(), workdir=tmp_path / "work",
                       registry=station["reg"], images=tmp_path / "images", epochs=1)
    with pytest.raises(RetrainError, match="split is empty"):
        run_retrain(spec)
    assert not (tmp_path / "work" / "runs").exists() and _registry_state(station["reg"]) == before


@pytest.mark.slow
def test_retrain_command_registers_a_candidate_with_both_evaluations(station, tmp_path):
    work = tmp_path / "work"
    r = CliRunner().invoke(retrain, _args(station, work, "--progress", "json", "--json", "--user", "qe-bob"))
    assert r.exit_code == 0, r.output + r.stderr
    result = json.loads(r.stdout)                                  # the JSON alone on stdout
    assert result["candidate_spec"] == "wafer-demo@2" and result["parent"] == "wafer-demo@1"
    assert result["author"] == "qe-bob" and result["started_from"]["how"] == "weights"
    cand, prod = result["candidate"], result["production"]
    assert cand["dataset_hash"] == prod["dataset_hash"] == result["dataset_hash"] and cand["split"] == "val"
    assert isinstance(cand["map50"], float) and isinstance(prod["map50"], float) and "per_class" in cand

    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith('{"progress"')]
    stages = [e["progress"] for e in events if e["event"] == "start"]
    assert stages == ["dataset", "train", "export", "evaluate candidate", "evaluate production", "register"]
    epochs = [e for e in events if e["progress"] == "train" and e["event"] == "update"]
    assert epochs and epochs[-1]["done"] == epochs[-1]["total"] == 1 and "map50" in epochs[-1]
    assert [e["event"] for e in events if e["progress"] == "register"] == ["start", "end"]

    reg = Registry(station["reg"])
    info = reg.show("wafer-demo@2")
    assert (info["stage"], info["parent"], info["author"]) == ("candidate", "wafer-demo@1", "qe-bob")
    assert info["dataset_hash"] == cand["dataset_hash"] and info["train_config"]["epochs"] == 1
    key = f"{cand['dataset_hash']}-val"
    assert key in info["evals"] and key in reg.show("wafer-demo@1")["evals"]     # the same held-out set
    assert reg.load_eval("wafer-demo", "1", cand["dataset_hash"], "val")["map50"] == prod["map50"]
    assert (station["reg"] / "wafer-demo" / "2" / "weights.pt").is_file()        # the next retrain's start
    card = (station["reg"] / "wafer-demo" / "2" / "card.md").read_text()
    assert "wafer defects" in card and "demo only" in card and "by qe-bob" in card
    assert "fine-tuned from wafer-demo@1" in card
    assert json.loads((work / "runs" / "candidate" / "train_spec.json").read_text())["model"] == str(
        station["reg"] / "wafer-demo" / "1" / "weights.pt")
    assert reg.verify().ok


class _CancelAt(Progress):
    """Asks for a cancel when a stage starts (as a person pressing Cancel at that moment would)."""

    def __init__(self, token: CancelToken, stage: str) -> None:
        self.token, self.at, self.seen = token, stage, []

    def _start(self, stage) -> None:
        self.seen.append(stage.name)
        if stage.name == self.at:
            self.token.request("test")


@pytest.mark.slow
def test_a_cancel_before_registering_leaves_nothing(station, tmp_path):
    before = _registry_state(station["reg"])
    token = CancelToken()
    progress = _CancelAt(token, "evaluate production")      # the last stage before registering
    work = tmp_path / "work"
    spec = RetrainSpec(db=station["db"], config=default_config_path(), workdir=work, registry=station["reg"],
                       images=station["images"], epochs=1, batch=8, workers=0, user="qe")
    with pytest.raises(RetrainCancelled):
        run_retrain(spec, progress=progress, cancel=token)
    assert progress.seen[-1] == "evaluate production" and "register" not in progress.seen
    assert _registry_state(station["reg"]) == before and not work.exists()


@pytest.mark.slow
def test_sigterm_cancels_the_command_during_training(station, tmp_path):
    """The real signal path: SIGTERM while the trainer runs -> exit 130, nothing registered."""
    before = _registry_state(station["reg"])
    work = tmp_path / "work"
    started = work / "runs" / "candidate" / "train_spec.json"
    sent = []

    def send_when_training() -> None:
        t0 = time.monotonic()
        while not started.exists() and time.monotonic() - t0 < 120:
            time.sleep(0.02)
        sent.append(started.exists())
        os.kill(os.getpid(), signal.SIGTERM)   # the handler runs in the main thread, inside the command

    killer = threading.Thread(target=send_when_training, daemon=True)
    killer.start()
    r = CliRunner().invoke(retrain, _args(station, work, "--progress", "json", "--epochs", "50"))
    killer.join(5)
    assert sent == [True]
    assert r.exit_code == EXIT_CANCELLED, r.output + r.stderr
    assert "cancelled (SIGTERM): nothing was registered" in r.stderr and r.stdout == ""
    assert _registry_state(station["reg"]) == before and not work.exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL      # the command's handlers are gone again
