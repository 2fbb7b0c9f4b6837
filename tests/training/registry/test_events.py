"""The registry's event log: the line format is pinned, and every kind of tampering names its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.runtime.registry import RegistryIntegrityError, default_registry_root
from inspector.util.canonical import canonical_json, sha256_text
from inspector.util.hashchain import GENESIS
from training.registry.events import append_event, read_events, verify_events


@pytest.fixture
def log(tmp_path: Path) -> Path:
    for i in range(5):
        append_event(tmp_path, {"action": "register", "user": "ann", "version": str(i + 1), "score": 0.1 * i})
    return tmp_path / "events.jsonl"


def rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_the_line_format_is_the_one_on_disk(tmp_path):
    """seq, prev (sha256 of the previous line's text) and hash (sha256 of the canonical body): pinned."""
    head, count = append_event(tmp_path, {"action": "register", "user": "ü"})
    line = (tmp_path / "events.jsonl").read_text(encoding="utf-8")
    body = {"action": "register", "user": "ü", "seq": 1, "prev": GENESIS}
    assert line == canonical_json({**body, "hash": sha256_text(canonical_json(body))}) + "\n"
    assert (head, count) == (sha256_text(line[:-1]), 1)
    append_event(tmp_path, {"action": "eval"})
    second = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[1])
    assert second["prev"] == head and second["seq"] == 2


def test_the_shipped_log_verifies():
    path = default_registry_root() / "events.jsonl"
    check = verify_events(path)
    assert check.ok and check.lines == len(path.read_text().splitlines()) and check.bad_line is None
    assert check.head == sha256_text(path.read_text().splitlines()[-1])


def test_an_intact_log_holds_and_reads_back(log):
    check = verify_events(log)
    assert check.ok and check.lines == 5 and check.head == sha256_text(log.read_text().splitlines()[-1])
    assert [e["version"] for e in read_events(log)] == ["1", "2", "3", "4", "5"]
    assert verify_events(log.parent / "none.jsonl").ok  # no log yet: an empty chain


@pytest.mark.parametrize(
    "tamper, bad_line, words",
    [
        (lambda ls: ls[:2] + [ls[2].replace('"user":"ann"', '"user":"eve"')] + ls[3:], 3, "edited"),
        (lambda ls: ls[:1] + ls[2:], 2, "removed, inserted or reordered"),
        (lambda ls: ls[:1] + [ls[2], ls[1]] + ls[3:], 2, "removed, inserted or reordered"),
        (lambda ls: ls[:3] + [ls[3].replace(",", ", ", 1)] + ls[4:], 4, "re-written by hand"),
        (lambda ls: ls[:1] + ["{not json"] + ls[2:], 2, "not valid JSON"),
        (lambda ls: ls[:1] + ['{"seq": 2}'] + ls[2:], 2, "not an event"),
    ],
    ids=["edited", "removed", "reordered", "not-canonical", "not-json", "not-an-event"],
)
def test_tampering_names_the_first_bad_line(log, tamper, bad_line, words):
    rewrite(log, tamper(log.read_text().splitlines()))
    check = verify_events(log)
    assert not check.ok and check.bad_line == bad_line
    assert f"line {bad_line}:" in check.problem and words in check.problem
    lines = log.read_text().splitlines()
    assert check.head == (sha256_text(lines[bad_line - 2]) if bad_line > 1 else GENESIS)  # the last good line


def test_a_rehashed_line_with_a_wrong_sequence_number_is_caught(log):
    lines = log.read_text().splitlines()
    obj = json.loads(lines[1])
    body = {k: v for k, v in obj.items() if k != "hash"} | {"seq": 7}
    lines[1] = canonical_json({**body, "hash": sha256_text(canonical_json(body))})
    rewrite(log, lines[:2])  # the next line would name the old text; keep the forged one last
    check = verify_events(log)
    assert check.bad_line == 2 and "sequence number 7" in check.problem and check.head == sha256_text(lines[0])


def test_an_incomplete_last_line_stops_the_writers(log):
    log.write_text(log.read_text()[:-10])
    check = verify_events(log)
    assert check.bad_line == 5 and "incomplete last line" in check.problem
    with pytest.raises(RegistryIntegrityError, match="incomplete line"):
        append_event(log.parent, {"action": "eval"})
