"""gui/views/filter_bar.py: what is typed or chosen becomes a DecisionFilter; every change is signalled."""

from __future__ import annotations

import pytest
from gui.gui_helpers import DEMO_CLASSES, save_shot
from PySide6.QtCore import Qt

from inspector.gui.models.decision_query import DecisionFilter
from inspector.gui.views.filter_bar import ALL, FilterBar

NEEDS_HUMAN = ("fail", "review", "error")


@pytest.fixture
def queue_bar(qtbot):
    bar = FilterBar(DEMO_CLASSES, ["(fail, review, error)", *NEEDS_HUMAN])
    qtbot.addWidget(bar)
    bar.resize(1100, 40)
    bar.show()
    return bar


def test_an_untouched_bar_keeps_the_base_filter(queue_bar):
    base = DecisionFilter(verdicts=NEEDS_HUMAN, unreviewed=True)
    assert set(queue_bar.fields) == {"lot", "wafer"}                   # the queue's bar: no history fields
    assert queue_bar.apply(base) == base


def test_typed_and_chosen_values_become_the_filter(queue_bar, qtbot, screenshots):
    base = DecisionFilter(verdicts=NEEDS_HUMAN, unreviewed=True)
    seen = []
    queue_bar.changed.connect(lambda: seen.append(1))
    lot = queue_bar.fields["lot"]
    lot.setFocus()
    qtbot.keyClicks(lot, "  L42 ")
    qtbot.keyClick(lot, Qt.Key.Key_Return)                              # editing finished: one change
    assert len(seen) == 1
    queue_bar.klass.setCurrentText("scratch")
    queue_bar.verdict.setCurrentText("review")
    queue_bar.order.setCurrentText("oldest first")
    queue_bar.since.setText("2025-01-01T00:00:00Z")
    assert len(seen) == 4                                               # each combo change is signalled
    flt = queue_bar.apply(base)
    assert (flt.lot, flt.wafer, flt.class_name, flt.verdicts) == ("L42", None, "scratch", ("review",))
    assert (flt.since, flt.until, flt.newest_first, flt.unreviewed) == ("2025-01-01T00:00:00Z", None, False, True)
    save_shot(queue_bar, screenshots, "filter_bar")

    # Back to "(all)" and the "(...)" verdict choice: the base's verdicts and no class again.
    queue_bar.klass.setCurrentText(ALL)
    queue_bar.verdict.setCurrentIndex(0)
    flt = queue_bar.apply(base)
    assert flt.class_name is None and flt.verdicts == NEEDS_HUMAN


def test_the_history_bar_has_camera_zone_and_reviewer(qtbot):
    bar = FilterBar(DEMO_CLASSES, ["(any verdict)", "pass", "fail"], history=True)
    qtbot.addWidget(bar)
    assert list(bar.fields) == ["lot", "wafer", "camera", "zone", "reviewer"]
    assert [bar.klass.itemText(i) for i in range(bar.klass.count())] == [ALL, *DEMO_CLASSES]
    bar.fields["zone"].setText("crane-east")
    bar.fields["reviewer"].setText("op1")
    bar.until.setText("2025-02-01T00:00:00Z")
    bar.verdict.setCurrentText("pass")
    flt = bar.apply(DecisionFilter())
    assert (flt.zone, flt.reviewer, flt.camera, flt.until) == ("crane-east", "op1", None, "2025-02-01T00:00:00Z")
    assert flt.verdicts == ("pass",) and flt.newest_first
