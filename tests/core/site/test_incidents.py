"""The incident engine: persistence, one incident per track and kind, clearing, lost tracks, the
run's end, worst-frame updates and keys."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from inspector.core.site.incidents import IncidentEngine
from inspector.core.site.types import TrackedWorker
from inspector.core.site.violations import SiteRule
from inspector.core.site.zones import SiteZone

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)
FPS = 10
ZONES = (SiteZone("pit", "restricted", ((0, 0), (10, 0), (10, 10), (0, 10))),
         SiteZone("yard", "ppe_required", ((0, 0), (100, 0), (100, 100), (0, 100))))
HAT = SiteRule("hat", "no_hard_hat", persist_s=2.0, clear_s=2.0, severity="high")
VEST = SiteRule("vest", "no_vest", persist_s=1.0, clear_s=1.0)
PIT = SiteRule("pit", "in_danger_zone", persist_s=0.5, clear_s=1.0, severity="high")


def W(tid: int, hat: bool = True, vest: bool = True, zones: tuple[str, ...] = (), score: float = 0.9,
      hat_score: float = 0.0) -> TrackedWorker:
    return TrackedWorker(tid, (0.0, 0.0, 10.0, 30.0), score, hat, vest, hat_score if hat else hat_score, 0.0, zones)


def run(frames, rules=(HAT,), lost_s=1.5, engine=None):
    """Feed frames at 10 fps; returns the engine and [(frame index, event)]."""
    eng = engine or IncidentEngine(rules, "cam-1", "run-1", ZONES, lost_s=lost_s)
    out = []
    for i, workers in enumerate(frames):
        for ev in eng.update(i / FPS, T0 + timedelta(seconds=i / FPS), f"f{i}", workers):
            out.append((i, ev))
    return eng, out


def kinds(events):
    return [(i, e.event) for i, e in events]


@pytest.mark.parametrize("persist_s, violating_frames, opens_at", [
    (2.0, 19, None),   # 1.8 s of violation: not yet
    (2.0, 21, 20),     # opens on the frame where 2.0 s have passed
    (0.0, 1, 0),       # no persistence: the first frame opens it
    (0.5, 10, 5),
])
def test_persistence_threshold(persist_s, violating_frames, opens_at):
    rule = SiteRule("hat", "no_hard_hat", persist_s=persist_s, clear_s=2.0)
    _, events = run([[W(1, hat=False)]] * violating_frames, rules=(rule,))
    news = [i for i, e in events if e.event == "new"]
    assert news == ([] if opens_at is None else [opens_at])


def test_one_incident_per_track_and_kind_while_it_lasts():
    frames = [[W(1, hat=False, vest=False, zones=("yard",)), W(2, hat=False)]] * 100  # 10 s
    eng, events = run(frames, rules=(HAT, VEST))
    new = [(e.track_id, e.kind) for _, e in events if e.event == "new"]
    assert sorted(new) == [(1, "no_hard_hat"), (1, "no_vest"), (2, "no_hard_hat")]
    assert [e for _, e in events if e.event != "new"] == []  # steady evidence: no updates, no ends
    assert len(eng.status().open) == 3


def test_gap_shorter_than_clear_s_keeps_the_incident():
    frames = [[W(1, hat=False)]] * 30 + [[W(1, hat=True)]] * 15 + [[W(1, hat=False)]] * 30  # 1.5 s gap < 2 s
    _, events = run(frames)
    assert kinds(events) == [(20, "new")]


def test_gap_of_clear_s_ends_it_and_a_new_violation_is_a_new_incident():
    frames = [[W(1, hat=False)]] * 30 + [[W(1, hat=True)]] * 25 + [[W(1, hat=False)]] * 30
    _, events = run(frames)
    assert kinds(events) == [(20, "new"), (49, "end"), (75, "new")]
    (_, first), (_, end), (_, second) = events
    assert end.key == first.key and end.reason == "cleared" and end.seq == 1
    assert end.last_frame_id == "f29" and end.frame_id == "f49"
    assert second.key != first.key and second.first_frame_id == "f55"


def test_pending_violation_that_clears_never_opens():
    frames = [[W(1, hat=False)]] * 15 + [[W(1)]] * 30 + [[W(1, hat=False)]] * 15
    eng, events = run(frames)
    assert events == []
    assert [a.track_id for a in eng.status().pending] == [1] and eng.status().open == ()


@pytest.mark.parametrize("absent_frames, ends", [(10, False), (16, True)])
def test_lost_track_closes_and_a_short_occlusion_does_not(absent_frames, ends):
    # clear_s longer than the occlusion, so only track loss can end it
    rule = SiteRule("hat", "no_hard_hat", persist_s=1.0, clear_s=5.0)
    frames = [[W(1, hat=False)]] * 20 + [[]] * absent_frames + [[W(1, hat=False)]] * 5
    _, events = run(frames, rules=(rule,), lost_s=1.5)
    got = [(e.event, e.reason) for _, e in events]
    assert got == ([("new", ""), ("end", "track lost")] if ends else [("new", "")])


def test_finish_ends_every_open_incident_and_drops_pending_ones():
    frames = [[W(1, hat=False), W(2, hat=False, zones=("pit",))]] * 25 + [[W(1, hat=False), W(2, hat=False),
                                                                          W(3, hat=False)]]
    eng, events = run(frames, rules=(HAT, PIT))
    assert len([e for _, e in events if e.event == "new"]) == 3  # hat 1, hat 2, pit 2 (3 is pending)
    ends = eng.finish(T0 + timedelta(seconds=9), "f-last")
    assert sorted((e.track_id, e.kind) for e in ends) == [(1, "no_hard_hat"), (2, "in_danger_zone"),
                                                           (2, "no_hard_hat")]
    assert all(e.event == "end" and e.reason == "run ended" and e.frame_id == "f-last" for e in ends)
    assert eng.finish(T0, "again") == () and eng.status().open == () and eng.status().pending == ()


def test_worst_frame_updates_only_when_evidence_improves_enough():
    # evidence = score x (1 - hat score): a hat detection too weak to count still lowers it
    scores = [0.5] * 25 + [0.52] * 5 + [0.8] * 5 + [0.7] * 5 + [0.95] * 5
    frames = [[W(1, hat=False, score=s)] for s in scores]
    _, events = run(frames)
    assert kinds(events) == [(20, "new"), (30, "update"), (40, "update")]
    assert [e.seq for _, e in events] == [0, 1, 2]
    assert events[0][1].worst_frame_id == "f0" and events[0][1].worst_score == pytest.approx(0.5)
    assert events[1][1].worst_frame_id == "f30" and events[1][1].worst_score == pytest.approx(0.8)
    assert events[2][1].worst_frame_id == "f40"
    assert len({e.key for _, e in events}) == 1


def test_worst_during_persistence_is_carried_into_the_new_event():
    frames = [[W(1, hat=False, score=s)] for s in [0.5] * 5 + [0.9] + [0.6] * 20]
    _, events = run(frames)
    assert events[0][1].event == "new" and events[0][1].worst_frame_id == "f5"
    assert events[0][1].first_frame_id == "f0" and events[0][1].started_utc == T0


def test_keys_are_unique_and_stable():
    frames = ([[W(1, hat=False), W(2, hat=False)]] * 30 + [[W(1), W(2)]] * 25 + [[W(1, hat=False)]] * 30)
    _, a = run(frames)
    _, b = run(frames)
    keys_a = [e.key for _, e in a if e.event == "new"]
    assert keys_a == [e.key for _, e in b if e.event == "new"]          # same input, same keys
    assert len(keys_a) == 3 and len(set(keys_a)) == 3                   # every incident its own
    assert all(k.startswith("run-1:cam-1:") for k in keys_a)
    other = IncidentEngine((HAT,), "cam-2", "run-1", ZONES)
    _, c = run(frames, engine=other)
    assert not set(keys_a) & {e.key for _, e in c}                      # cameras never collide
    seq_by_key: dict[str, list[int]] = {}
    for _, e in a:
        seq_by_key.setdefault(e.key, []).append(e.seq)
    assert all(s == list(range(len(s))) for s in seq_by_key.values())


def test_unconfirmed_tracks_never_open_incidents():
    _, events = run([[W(-1, hat=False)]] * 50)
    assert events == []


def test_event_fields():
    _, events = run([[W(7, zones=("pit",), score=0.8)]] * 6, rules=(PIT,))
    (i, e), = events
    assert (i, e.event, e.camera, e.track_id, e.kind, e.rule_id, e.severity, e.zone) == \
        (5, "new", "cam-1", 7, "in_danger_zone", "pit", "high", "pit")
    assert e.t_utc == T0 + timedelta(seconds=0.5) and e.frame_id == "f5" and e.last_frame_id == "f5"
