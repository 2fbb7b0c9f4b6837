"""gui/widgets/clip_player.py: an MP4 decoded off the GUI thread, played at its rate, looped, paused."""

from __future__ import annotations

import threading

from gui.incident_helpers import write_clip

from inspector.gui.widgets.clip_player import ClipPlayer


def _player(qtbot, **kw):
    p = ClipPlayer(**kw)
    qtbot.addWidget(p)
    p.resize(400, 260)
    p.show()
    return p


def test_load_shows_a_poster_then_plays_loops_and_pauses(tmp_path, qtbot):
    clip = write_clip(tmp_path / "c.mp4", frames=6, fps=25.0)
    p = _player(qtbot)
    p.load(clip)
    assert p.state == "paused"
    qtbot.waitUntil(lambda: p.frames_shown == 1, timeout=3000)  # the poster only: not playing
    qtbot.wait(150)
    assert p.frames_shown == 1 and p.last_image is not None and p.last_image.width() > 320  # fitted to the view
    p.play()
    qtbot.waitUntil(lambda: p.loops >= 1 and p.frames_shown >= 8, timeout=5000)  # past the end: looped
    assert p.timer.interval() == 40  # the file's own 25 fps
    p.toggle()
    assert p.state == "paused"
    n = p.frames_shown
    qtbot.wait(200)
    assert p.frames_shown == n


def test_without_loop_it_stops_at_the_end(tmp_path, qtbot):
    clip = write_clip(tmp_path / "c.mp4", frames=4, fps=50.0)
    p = _player(qtbot, loop=False)
    p.load(clip, autoplay=True)
    assert p.state == "playing"
    qtbot.waitUntil(lambda: p.state == "paused", timeout=5000)
    assert p.frames_shown == 4 and p.loops == 0


def test_a_missing_or_broken_clip_is_said_not_raised(tmp_path, qtbot):
    p = _player(qtbot)
    p.load(None)
    assert p.state == "empty" and p.picture.text() == "no clip"
    p.play()
    assert p.state == "empty"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    p.load(bad, autoplay=True)
    qtbot.waitUntil(lambda: p.state == "error", timeout=5000)
    assert "unreadable" in p.picture.text()


def test_stop_ends_the_decoder_thread(tmp_path, qtbot):
    clip = write_clip(tmp_path / "c.mp4", frames=60, fps=10.0)
    p = _player(qtbot)
    p.load(clip, autoplay=True)
    qtbot.waitUntil(lambda: p.frames_shown >= 1, timeout=3000)
    decoders = [t for t in threading.enumerate() if t.name == "clip-c.mp4"]
    assert decoders
    p.stop()
    for t in decoders:
        t.join(2.0)
        assert not t.is_alive()  # it was blocked on a full buffer and noticed the stop
