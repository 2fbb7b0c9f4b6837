"""The label editor: drag to draw / move / resize, delete, class keys, undo / redo, save to the store."""

from __future__ import annotations

from gui.gui_helpers import fill_store, put_image, save_shot
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from inspector.store import queries


def _view_pt(editor, x, y) -> QPoint:
    return editor.mapFromScene(x, y)


def drag(editor, a, b) -> None:
    vp = editor.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _view_pt(editor, *a))
    QTest.mouseMove(vp, _view_pt(editor, *b))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _view_pt(editor, *b))


def test_edits_round_trip_to_the_store_and_undo_redo(ctx, sessions, qtbot, screenshots):
    from inspector.gui.views.label_page import LabelPage

    ids = fill_store(ctx.db_path, 3, verdicts=("fail",), images={i: put_image(ctx.images_root, i) for i in range(3)})
    ctx.session = sessions["engineer"]
    page = LabelPage(ctx)
    qtbot.addWidget(page)
    page.resize(1100, 650)
    page.show()
    qtbot.waitExposed(page)
    ed = page.editor
    assert page.frame_id == ids[-1] and len(ed.boxes) == 1  # the stored kept box to start from
    assert ed.boxes[0]["xyxy"] == [100.0, 120.0, 140.0, 150.0]
    drag(ed, (20, 20), (80, 60))                       # draw
    assert len(ed.boxes) == 2 and ed.selected == 1
    x0, y0, x1, y1 = ed.boxes[1]["xyxy"]
    assert abs(x0 - 20) < 2 and abs(y1 - 60) < 2
    drag(ed, (50, 40), (60, 50))                       # move it by (10, 10)
    assert abs(ed.boxes[1]["xyxy"][0] - (x0 + 10)) < 2 and abs(ed.boxes[1]["xyxy"][3] - (y1 + 10)) < 2
    moved = list(ed.boxes[1]["xyxy"])
    drag(ed, (moved[2], moved[3]), (moved[2] + 30, moved[3] + 20))   # resize by the bottom-right corner
    assert abs(ed.boxes[1]["xyxy"][2] - (moved[2] + 30)) < 2 and abs(ed.boxes[1]["xyxy"][0] - moved[0]) < 1e-6
    ed.setFocus()
    QTest.keyClick(ed, Qt.Key.Key_3)                   # class 3 = residue
    assert ed.boxes[1]["class"] == "residue"
    ed.selected = 0
    QTest.keyClick(ed, Qt.Key.Key_Delete)
    assert len(ed.boxes) == 1 and ed.boxes[0]["class"] == "residue"
    QTest.keyClick(ed, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)       # undo the delete
    assert len(ed.boxes) == 2
    QTest.keyClick(ed, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(ed.boxes) == 1                                                    # redo it
    for _ in range(3):
        ed.undo_stack.undo()
    assert ed.boxes[1]["xyxy"] == moved                   # back before the resize
    ed.undo_stack.redo()
    expected = ed.labels()
    save_shot(page, screenshots, "label_editor")
    rid = page.save()
    assert rid is not None
    conn = ctx.connect()
    try:
        (rev,) = queries.reviews(conn, ids[-1])
        assert rev["action"] == "relabel" and rev["user"] == "eng" and rev["labels"] == expected
        assert all(len(x["xyxy"]) == 4 for x in rev["labels"])
    finally:
        conn.close()
    page.open_frame(ids[-1])      # reopening starts from the saved labels
    assert page.editor.labels() == expected


def test_an_operator_may_not_save_labels(ctx, sessions, qtbot, actions_mod):
    from inspector.gui.views.label_page import LabelPage

    fill_store(ctx.db_path, 1, verdicts=("fail",))
    ctx.session = sessions["operator"]
    page = LabelPage(ctx)
    qtbot.addWidget(page)
    assert not page.save_btn.isEnabled()
    assert page.save() is None and "refused" in page.status.text()   # the function refuses too
    conn = ctx.connect()
    try:
        assert queries.reviews(conn) == []
    finally:
        conn.close()
