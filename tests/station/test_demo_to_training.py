"""The loop the product exists for: the demo station decides -> operators review through the
store's API -> the confirmed labels export as a dataset -> one tiny training epoch runs on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inspector.cli import main as inspector
from inspector.config import default_config_path
from inspector.store import queries
from inspector.store.db import open_db
from training.cli import main as inspector_train

from helpers.sessions import logged_in

pytestmark = pytest.mark.slow


def invoke(cli, *args: str) -> str:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_demo_reviews_export_train(tmp_path: Path) -> None:
    summary = json.loads(invoke(inspector, "demo", "--max-frames", "120", "--json", "--data-dir", str(tmp_path / "data")))
    assert summary["decisions"] == summary["frames"] == 120
    db = Path(summary["db"])

    conn = open_db(db)
    queue = queries.review_queue(conn, newest_first=False)
    wafers = sorted({row["wafer"] for row in queue})
    assert len(wafers) == 2, "120 dies span two wafers: one per split when splitting by wafer"
    # Operators review a few dies of each wafer, so both splits get confirmed labels.
    flagged = [row for w in wafers for row in [r for r in queue if r["wafer"] == w][:5]]
    assert len(flagged) >= 6, "the demo lot has defects for operators to review"
    reviewed = {}
    op1, qe1 = logged_in(conn, "operator", "op1"), logged_in(conn, "engineer", "qe1")
    for i, row in enumerate(flagged):
        fid = row["frame_id"]
        if i % 3 == 0:
            queries.add_review(conn, fid, op1, "accept", verdict="fail")
        elif i % 3 == 1:
            queries.add_review(conn, fid, op1, "reject_false_alarm", verdict="pass")
        else:  # the label editor's answer: one corrected box, a missed defect added by hand
            queries.add_review(conn, fid, qe1, "relabel", verdict="fail",
                               labels=[{"class": "particle", "xyxy": [10, 10, 30, 30]},
                                       {"class": "scratch", "xyxy": [100, 40, 180, 60]}])
        reviewed[fid] = i % 3
    passed = [d for w in wafers for d in queries.decisions(conn, verdict="pass", wafer=w)[:6]]
    for d in passed:  # clean dies confirmed as such: negatives
        queries.add_review(conn, d["frame_id"], op1, "accept", verdict="pass")
    conn.close()

    out = tmp_path / "confirmed"
    invoke(inspector_train, "dataset", str(out), "--from-db", str(db), "--config", str(default_config_path()),
           "--group-by", "wafer")
    prov = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    assert len(prov) == len(reviewed) + len(passed)
    by_frame = {p["frame_id"]: p for p in prov}
    for fid, kind in reviewed.items():
        label = (out / by_frame[fid]["label"]).read_text().split("\n")
        rows = [r for r in label if r.strip()]
        if kind == 1:
            assert rows == []                                   # a false alarm is a confirmed negative
        elif kind == 2:
            assert sorted(int(r.split()[0]) for r in rows) == [0, 1]   # particle + scratch, as drawn
        assert by_frame[fid]["review_id"] is not None

    invoke(inspector_train, "train", "--data", str(out / "data.yaml"), "--imgsz", "160", "--epochs", "1",
           "--batch", "8", "--workers", "0", "--project", str(tmp_path / "runs"), "--name", "confirmed")
    assert (tmp_path / "runs" / "confirmed" / "weights" / "best.pt").is_file()
