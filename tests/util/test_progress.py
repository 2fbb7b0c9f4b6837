import io
import json

import pytest

from inspector.util.progress import NO_PROGRESS, BarProgress, JsonProgress, make_progress


def test_json_lines_first_and_last_always_come():
    buf = io.StringIO()
    p = JsonProgress(buf, interval_s=3600)  # throttled: only start, the completing update and end
    with p.stage("evaluate", total=3, unit="img") as s:
        for _ in range(3):
            s.advance(map50=0.5)
    recs = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["event"] for r in recs] == ["start", "update", "end"]
    assert recs[-1]["done"] == 3 and recs[-1]["total"] == 3 and recs[-1]["unit"] == "img"
    assert recs[-1]["map50"] == 0.5 and recs[-1]["progress"] == "evaluate"


def test_failed_stage_says_so():
    buf = io.StringIO()
    with pytest.raises(RuntimeError):
        with JsonProgress(buf).stage("export") as s:
            s.advance()
            raise RuntimeError("boom")
    assert json.loads(buf.getvalue().splitlines()[-1])["event"] == "failed"


def test_update_sets_count_and_total_and_drops_nan():
    buf = io.StringIO()
    with JsonProgress(buf, interval_s=0).stage("train", unit="epoch") as s:
        s.update(done=2, total=10, loss=float("nan"))
    rec = json.loads(buf.getvalue().splitlines()[1])
    assert rec["done"] == 2 and rec["total"] == 10 and rec["loss"] is None


def test_auto_shows_nothing_when_piped_and_modes_are_checked():
    assert make_progress("auto", io.StringIO()) is NO_PROGRESS
    assert make_progress("none") is NO_PROGRESS
    assert isinstance(make_progress("json"), JsonProgress)
    with pytest.raises(ValueError):
        make_progress("loud")


def test_bar_writes_to_its_stream():
    buf = io.StringIO()
    with BarProgress(buf).stage("import", total=2, unit="img") as s:
        s.advance(2)
    assert "import" in buf.getvalue() and "2/2" in buf.getvalue()


def test_no_progress_accepts_everything_silently():
    with NO_PROGRESS.stage("x", total=1) as s:
        s.advance(1, a=1)
        s.update(done=1)
