"""The wafer map: die colours equal the die results in the store; a click opens the die."""

from __future__ import annotations

from gui.gui_helpers import fill_store, put_image, save_shot
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from inspector.gui.style import verdict_color
from inspector.station.rules_builder import wafer_layout


def test_map_colours_match_the_store_and_a_click_opens_the_die(ctx, sessions, qtbot, screenshots):
    from inspector.gui.views.wafer_page import WaferPage

    layout = wafer_layout(ctx.cfg)
    dies = layout.dies
    # an edge ring of fails, a few reviews, one error, the rest pass
    edge = set(layout.edge_dies())
    plan = [(x, y, "fail" if (x, y) in edge else "review" if (x + y) % 11 == 0 else "pass") for x, y in dies]
    plan[len(plan) // 2] = (*plan[len(plan) // 2][:2], "error")
    ids = fill_store(ctx.db_path, len(plan), dies=plan, images={0: put_image(ctx.images_root)})
    ctx.session = sessions["operator"]
    page = WaferPage(ctx)
    qtbot.addWidget(page)
    page.resize(1100, 650)
    page.show()
    qtbot.waitExposed(page)
    m = page.map
    assert len(page.results) == len(dies)
    conn = ctx.connect()
    try:
        stored = {(r[0], r[1]): r[2] for r in conn.execute(
            "SELECT f.die_x, f.die_y, d.verdict FROM frames f JOIN decisions d ON d.frame_id = f.id")}
    finally:
        conn.close()
    shot = m.grab().toImage()
    for die, verdict in stored.items():
        assert m.color_of(die) == verdict_color(verdict)
        c = m.die_rect(die).center()
        px = shot.pixelColor(int(c.x() * shot.devicePixelRatio()), int(c.y() * shot.devicePixelRatio()))
        assert px.name() == verdict_color(verdict).name(), (die, verdict, px.name())
    assert page.signature == "edge_ring" and "edge_ring" in page.summary.text()
    save_shot(page, screenshots, "wafer_map")
    x, y = plan[0][:2]
    QTest.mouseClick(m, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, m.die_rect((x, y)).center().toPoint())
    assert page.detail.frame_id == ids[0]
