"""inspector/cli/run_summary.py: a faulted run says so in the text, the JSON and the exit status."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from inspector.cli.run_summary import EXIT_FAULTED, finish


def summary(**over):
    s = {"station": "fab-1", "run_id": "run-1", "config_hash": "ab" * 32, "model_set_version": "ms-1",
         "inspected": True, "note": None, "state": "stopped", "complete": True, "frames": 12, "decisions": 12,
         "stored": 12, "store_failed": 0, "dies": 12, "lots": 1, "wafers": {}, "seconds": 1.0, "throughput_fps": 12.0,
         "verdicts": {"pass": 12, "fail": 0, "review": 0, "error": 0, "not_inspected": 0}, "dropped": 0, "corrupt": 0,
         "latency_ms": {"p50": 1.0, "p99": 2.0}, "stages_ms": {"inference": {"p50": 1.0}, "rules": {"p50": 0.1}},
         "errors": [], "db": "x.sqlite", "summary_file": "runs/run-1.json", "site": None, "fault": None,
         "unrecorded": {"count": 0, "frames": []}, "events": {"counts": {}, "open": []}}
    s.update(over)
    return s


def run_finish(s, as_json=False):
    @click.command()
    def cmd():
        finish(s, as_json)

    return CliRunner().invoke(cmd, [])


FAULTED = summary(state="faulted", complete=False, stored=8, store_failed=4, fault="the store refused 4 record(s)",
                  unrecorded={"count": 4, "frames": ["run-1/cam:a", "run-1/cam:b", "run-1/cam:c", "run-1/cam:d"]},
                  events={"counts": {"store_gap": 1}, "open": []})


def test_a_faulted_run_exits_with_its_own_status_and_names_the_units_not_recorded():
    r = run_finish(FAULTED)
    assert r.exit_code == EXIT_FAULTED == 3
    assert "FAULTED: the store refused 4 record(s)" in r.output
    assert "NOT RECORDED: 4 unit(s) the store refused: run-1/cam:a, run-1/cam:b" in r.output
    assert "station events: store_gap 1" in r.output
    assert "4 unit(s) not recorded" in r.output


def test_json_says_faulted_and_still_exits_non_zero():
    r = run_finish(FAULTED, as_json=True)
    assert r.exit_code == EXIT_FAULTED
    assert json.loads(r.output.splitlines()[0])["state"] == "faulted"


@pytest.mark.parametrize("s, code", [(summary(), 0), (summary(complete=False), 1)])
def test_complete_and_incomplete_runs_keep_their_status(s, code):
    assert run_finish(s).exit_code == code
