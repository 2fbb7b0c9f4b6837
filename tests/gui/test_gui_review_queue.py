"""The review queue: lazy pages over 100,000 flagged frames, keyboard actions that reach the store."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from gui.gui_helpers import fill_store, put_image, save_shot
from PySide6.QtCore import Qt

from inspector.gui.models.decision_query import REVIEW_QUEUE, count
from inspector.gui.models.decision_table import DecisionTableModel
from inspector.store import queries
from inspector.store.db import open_db


def test_queue_of_100k_opens_with_one_page_and_grows_by_pages(tmp_path, qtbot):
    db = tmp_path / "big.sqlite"
    fill_store(db, 100_000, verdicts=("fail", "review"), boxes=False)
    conn = open_db(db)
    model = DecisionTableModel(conn, REVIEW_QUEUE)
    t0 = time.perf_counter()
    model.fetchMore()
    first = time.perf_counter() - t0
    assert first < 0.2, f"first page took {first * 1e3:.0f} ms"
    assert model.rowCount() == 200 and model.canFetchMore()
    assert model.row(0)["t_utc"] > model.row(199)["t_utc"]  # newest first
    t0 = time.perf_counter()
    model.fetchMore()
    assert time.perf_counter() - t0 < 0.2 and model.rowCount() == 400
    keys = [(model.row(i)["t_utc"], model.row(i)["frame_id"]) for i in range(400)]
    assert len(set(keys)) == 400 and keys == sorted(keys, reverse=True)  # keyset pages neither skip nor repeat
    assert count(conn, REVIEW_QUEUE) == 100_000
    conn.close()


def test_keys_accept_reject_change_class_reach_the_store(ctx, qtbot, sessions, screenshots):
    imgs = {i: put_image(ctx.images_root, i) for i in range(6)}
    ids = fill_store(ctx.db_path, 12, verdicts=("fail", "review", "pass"), images=imgs)
    from inspector.gui.views.review_view import ReviewView

    ctx.session = sessions["operator"]
    view = ReviewView(ctx, auto_refresh_ms=0)
    qtbot.addWidget(view)
    view.resize(1100, 600)
    view.show()
    qtbot.waitExposed(view)
    flagged = [f for i, f in enumerate(ids) if i % 3 != 2]
    assert view.model.rowCount() == 8
    first = view.current()["frame_id"]
    assert first == flagged[-1] and view.detail.frame_id == first  # newest first, image shown
    save_shot(view, screenshots, "review_queue")
    qtbot.keyClick(view.table, Qt.Key.Key_A)
    second = view.current()["frame_id"]
    assert second == flagged[-2] and view.model.rowCount() == 7  # reviewed frame left, next selected
    qtbot.keyClick(view.table, Qt.Key.Key_R)
    qtbot.keyClick(view.table, Qt.Key.Key_N)
    qtbot.keyClick(view.table, Qt.Key.Key_P)
    third = view.current()["frame_id"]
    qtbot.keyClick(view.table, Qt.Key.Key_C)
    assert view.picking
    qtbot.keyClick(view.table, Qt.Key.Key_2)
    assert not view.picking
    qtbot.keyClick(view.table, Qt.Key.Key_Z)
    assert view.detail.zoomed
    conn = open_db(ctx.db_path)
    try:
        got = {r["frame_id"]: r for r in queries.reviews(conn)}
        assert got[first]["action"] == "accept" and got[first]["user"] == "op"
        assert got[second]["action"] == "reject_false_alarm" and got[second]["verdict"] == "pass"
        assert got[third]["action"] == "change_class"
        assert got[third]["labels"] and {x["class"] for x in got[third]["labels"]} == {"scratch"}
        assert len(queries.review_queue(conn)) == 5 == view.model.rowCount()
        assert conn.execute("SELECT COUNT(*) FROM audit WHERE action LIKE 'review.%'").fetchone()[0] == 3
    finally:
        conn.close()


def test_a_role_that_may_not_review_is_refused(ctx, qtbot, actions_mod, sessions):
    fill_store(ctx.db_path, 3, verdicts=("fail",))
    from inspector.gui.views.review_view import ReviewView

    ctx.session = sessions["safety_manager"]
    view = ReviewView(ctx, auto_refresh_ms=0)
    qtbot.addWidget(view)
    qtbot.keyClick(view.table, Qt.Key.Key_A)
    assert "may not" in view.status.text() and view.model.rowCount() == 3
    # and the function underneath refuses too, whatever the GUI shows
    conn = open_db(ctx.db_path)
    try:
        import pytest

        with pytest.raises(actions_mod.PermissionDenied):
            actions_mod.review(conn, ctx.session, view.current()["frame_id"], "accept")
    finally:
        conn.close()


def test_filters_and_new_arrivals(ctx, qtbot, sessions):
    fill_store(ctx.db_path, 30, verdicts=("fail", "review"))
    from inspector.gui.views.review_view import ReviewView

    ctx.session = sessions["operator"]
    view = ReviewView(ctx, auto_refresh_ms=0)
    qtbot.addWidget(view)
    view.filters.verdict.setCurrentText("review")
    assert view.model.rowCount() == 15 and {view.model.row(i)["verdict"] for i in range(15)} == {"review"}
    view.filters.verdict.setCurrentIndex(0)
    view.filters.klass.setCurrentText("scratch")
    assert view.model.rowCount() and all("scratch" in view.model.row(i)["classes"]
                                         for i in range(view.model.rowCount()))
    view.filters.klass.setCurrentIndex(0)
    assert view.model.rowCount() == 30
    fill_store(ctx.db_path, 4, verdicts=("fail",), run_id="run-later", t0=datetime(2025, 2, 1, tzinfo=timezone.utc))
    assert view.model.prepend_new() == 4 and view.model.rowCount() == 34
