"""StoreSink against a real SQLite store: each result committed with its boxes and acknowledged,
images kept by policy, wafers audited after their dies, MES messages in the decision's transaction."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.config import canonical_json, config_hash, load_config_text
from inspector.core.decision import Decision, Reason, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent, SiteFrame
from inspector.mes import outbox
from inspector.mes.hub import MesHub
from inspector.station.evidence import EvidenceRecorder
from inspector.station.inspection import WaferTracker
from inspector.station.judgement import FrameResult
from inspector.station.metrics import Metrics
from inspector.station.rules_builder import wafer_layout
from inspector.station.store_sink import StoreSink, needs_image, store_counts, wafer_payload
from inspector.store import audit, incidents
from inspector.store.clips import probe
from inspector.store.db import open_db
from inspector.store.images import ImageStore
from inspector.store.writer import StoreWriter

NAMES = ("scratch", "particle")
RUN = "run-20260401T000000Z-abc123"
T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
CONFIG = """
station: {id: fab-1, name: Fab 1, domain: wafer}
sources: [{type: folder, id: cam, path: dies}]
models: [{name: m, registry: m, imgsz: 32, class_names: [scratch, particle]}]
rules: [{id: any, type: any_defect, min_score: 0.5, verdict: fail}]
wafer_rules: [{id: frac, type: defect_die_fraction, max_fraction: 0.9}]
wafer: {diameter_mm: 100, die_pitch_x_mm: 25, die_pitch_y_mm: 25, edge_exclusion_mm: 3}
pixel_size_um: 1000
mes: [{type: filedrop, id: files, folder: mes-out}, {type: klarf, id: klarf, folder: klarf-out}]
"""


@pytest.fixture(scope="module")
def cfg():
    return load_config_text(CONFIG)


def result(fid: str, verdict: Verdict = Verdict.PASS, die=(0, 0), wafer="W1") -> FrameResult:
    """One die's result; a FAIL carries one box from each of two models and the fused box kept."""
    frame = Frame(f"{RUN}/{fid}", "fab-1", "cam", 0.0, T0, np.full((16, 24, 3), 7, np.uint8),
                  {"lot": "L1", "wafer": wafer, "die_x": die[0], "die_y": die[1]})
    if verdict in (Verdict.ERROR, Verdict.NOT_INSPECTED):
        return FrameResult(frame, Decision.unjudged(frame.frame_id, verdict, "model lost", "ms-1", "h", T0))
    if verdict is Verdict.PASS:
        return FrameResult(frame, Decision(frame.frame_id, verdict, (), Detections.empty(), "ms-1", "h", T0),
                           Detections.empty(), (Detections.empty(), Detections.empty()))
    per_model = (Detections([[2, 2, 10, 6]], [0.9], [1]).with_model_index(0),
                 Detections([[3, 2, 10, 7]], [0.8], [1]).with_model_index(1))
    fused = Detections([[2, 2, 10, 6]], [0.85], [1], support=[0b11])
    why = (Reason("any", Verdict.FAIL, "particle 0.85", (0,)),)
    return FrameResult(frame, Decision(frame.frame_id, verdict, why, fused, "ms-1", "h", T0), fused, per_model)


def make_sink(tmp_path, store_images="all", mes=None, metrics=None, images=True):
    image_store = ImageStore(tmp_path / "images") if images else None
    writer = StoreWriter(tmp_path / "s.sqlite", image_store, outbox_hook=outbox.write_drafts if mes else None)
    writer.start()
    return StoreSink(writer, RUN, NAMES, store_images=store_images, metrics=metrics, mes=mes)


def start(sink, cfg):
    sink.start_run("fab-1", config_hash(cfg), canonical_json(cfg), "ms-1",
                   [("a", "1", "a" * 64, "models/a.onnx"), ("b", "2", "b" * 64, None)])


def test_every_result_is_committed_with_every_models_boxes_and_acknowledged(tmp_path, cfg):
    metrics = Metrics()
    sink = make_sink(tmp_path, store_images="flagged", metrics=metrics)
    start(sink, cfg)
    futures = [sink.accept_result(result("p", Verdict.PASS)), sink.accept_result(result("f", Verdict.FAIL, (1, 0))),
               sink.accept_result(result("e", Verdict.ERROR, (2, 0)))]
    sink.flush(10)
    assert all(f.done() and f.exception() is None for f in futures)
    assert store_counts(sink) == {"submitted": 3, "acked": 3, "failed": 0, "pending": 0}
    assert metrics.snapshot()["latency_ms"]["ack"]["n"] == 3
    sink.close(10)

    conn = open_db(tmp_path / "s.sqlite")
    verdicts = {r[0]: r[1] for r in conn.execute("SELECT frame_id, verdict FROM decisions")}
    assert verdicts == {f"{RUN}/p": "pass", f"{RUN}/f": "fail", f"{RUN}/e": "error"}
    boxes = conn.execute("SELECT model_index, support FROM detections WHERE frame_id = ? ORDER BY model_index",
                         (f"{RUN}/f",)).fetchall()
    assert [tuple(b) for b in boxes] == [(-1, 0b11), (0, 0b01), (1, 0b10)]  # kept set, then each model's own
    images = {r[0]: r[1] for r in conn.execute("SELECT id, image_sha256 IS NOT NULL FROM frames")}
    assert images == {f"{RUN}/p": 0, f"{RUN}/f": 1, f"{RUN}/e": 1}  # "flagged": the pass keeps no pixels
    assert tuple(conn.execute("SELECT width, height FROM frames WHERE id = ?", (f"{RUN}/p",)).fetchone()) == (24, 16)
    assert audit.verify(conn).ok
    conn.close()


def test_the_run_records_its_config_models_start_and_end(tmp_path, cfg):
    sink = make_sink(tmp_path, images=False, store_images="none")
    start(sink, cfg)
    conn = open_db(tmp_path / "s.sqlite")
    assert tuple(conn.execute("SELECT config_hash, model_set_version, ended FROM runs WHERE id = ?",
                              (RUN,)).fetchone()) == (config_hash(cfg), "ms-1", None)
    assert conn.execute("SELECT hash FROM configs").fetchone()[0] == config_hash(cfg)
    assert sorted(tuple(r) for r in conn.execute("SELECT name, version, path FROM models")) == [
        ("a", "1", "models/a.onnx"), ("b", "2", None)]
    sink.end_run(10)
    assert conn.execute("SELECT ended FROM runs WHERE id = ?", (RUN,)).fetchone()[0] is not None
    conn.close()
    sink.close(10)


def test_a_wafer_is_audited_after_its_dies_and_marked_even_without_mes(tmp_path, cfg):
    sink = make_sink(tmp_path, images=False, store_images="none")
    start(sink, cfg)
    tracker = WaferTracker(cfg)
    dies = wafer_layout(cfg).dies
    for i, d in enumerate(dies):
        r = result(f"d{i}", Verdict.FAIL if i == 0 else Verdict.PASS, d)
        tracker.add(r.frame, r.decision)
        sink.accept_result(r)
    summary = tracker.flush()
    seq = sink.accept_wafer(summary).result(10)
    assert sink.wafer_events == [(summary, sink.wafer_events[0][1])]
    sink.end_run(10)
    sink.close(10)

    conn = open_db(tmp_path / "s.sqlite")
    last_die = conn.execute("SELECT MAX(seq) FROM audit WHERE entity = 'decisions'").fetchone()[0]
    row = conn.execute("SELECT entity, entity_id, action, payload_sha256 FROM audit WHERE seq = ?", (seq,)).fetchone()
    assert seq > last_die  # the wafer follows its dies in the hash chain
    payload = wafer_payload(summary, RUN, config_hash(cfg), "ms-1")
    assert tuple(row) == ("wafer", "L1/W1", "wafer.judged", audit.sha256_text(audit.canonical_json(payload)))
    assert payload["dies_seen"] == len(dies) and payload["die_map"]["%d,%d" % dies[0]] == "fail"
    # Marked live, so that outputs added later never resend it and a restart never recovers it.
    assert [tuple(r) for r in conn.execute("SELECT run_id, lot, wafer, how FROM mes_wafers")] == [
        (RUN, "L1", "W1", "live")]
    assert audit.verify(conn).ok
    conn.close()


def test_mes_messages_commit_with_their_decision_and_wafer(tmp_path, cfg):
    hub = MesHub.from_config(cfg, config_hash(cfg), RUN, tmp_path, class_names=NAMES)
    sink = make_sink(tmp_path, mes=hub, images=False, store_images="none")
    start(sink, cfg)
    tracker = WaferTracker(cfg)
    for i, d in enumerate(wafer_layout(cfg).dies[:3]):
        r = result(f"d{i}", Verdict.FAIL, d)
        tracker.add(r.frame, r.decision)
        sink.accept_result(r)
    sink.accept_wafer(tracker.flush()).result(10)
    sink.flush(10)
    sink.close(10)
    conn = open_db(tmp_path / "s.sqlite")
    kinds = sorted(tuple(r) for r in conn.execute("SELECT transport, kind, COUNT(*) FROM outbox GROUP BY 1, 2"))
    assert kinds == [("files", "unit", 3), ("files", "wafer", 1), ("klarf", "klarf", 1)]
    assert outbox.depth(conn, "files")[0] == 4  # pending: nothing forwards in this test
    conn.close()


def test_a_failing_mes_draft_costs_the_message_not_the_decision(tmp_path, cfg):
    hub = MesHub.from_config(cfg, config_hash(cfg), RUN, tmp_path, class_names=NAMES)

    def broken(frame, decision):
        raise KeyError("die_x")

    hub.drafts = broken  # type: ignore[method-assign]
    metrics = Metrics()
    sink = make_sink(tmp_path, mes=hub, metrics=metrics, images=False, store_images="none")
    start(sink, cfg)
    sink.accept_result(result("x", Verdict.PASS)).result(10)
    sink.close(10)
    assert sink.acked == 1 and metrics.counter("mes_errors") == 1
    assert any("no outbox message for frame" in e for e in metrics.snapshot()["errors"])


def test_a_refused_record_is_counted_failed_and_reported(tmp_path, cfg):
    metrics = Metrics()
    sink = make_sink(tmp_path, metrics=metrics, images=False, store_images="none")
    start(sink, cfg)
    ok = sink.accept_result(result("a"))
    dup = sink.accept_result(result("a"))  # the same frame id twice: the store refuses the second
    ok.result(10)
    with pytest.raises(Exception, match="already stored"):
        dup.result(10)
    sink.close(10)
    assert (sink.acked, sink.failed, sink.pending_ids()) == (1, 1, [])
    assert "already stored" in sink.errors[0] and metrics.counter("store_failed") == 1


@pytest.mark.parametrize(
    "policy, verdict, keep",
    [
        ("all", Verdict.PASS, True),
        ("flagged", Verdict.PASS, False),
        ("flagged", Verdict.FAIL, True),
        ("flagged", Verdict.REVIEW, True),
        ("flagged", Verdict.ERROR, True),       # an error is looked at: its evidence is kept
        ("flagged", Verdict.NOT_INSPECTED, False),
        ("none", Verdict.FAIL, False),
    ],
)
def test_image_policy(policy, verdict, keep):
    assert needs_image(policy, verdict) is keep


def test_an_unknown_image_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="store_images must be one of"):
        StoreSink(StoreWriter(tmp_path / "s.sqlite"), RUN, NAMES, store_images="some")


# --------------------------------------------------------------------------------------------
# Construction site: incidents with their decisions, MES incident events, evidence
# --------------------------------------------------------------------------------------------

SITE_CONFIG = """
station: {id: site-1, name: Site, domain: construction}
sources: [{type: synthetic_site, camera: gate}]
models: [{name: m, registry: m, imgsz: 32, class_names: [hat, vest, worker]}]
flow: {mode: monitoring}
site:
  incidents: [{id: hat-rule, kind: no_hard_hat}]
  evidence: {pre_s: 0.5, post_s: 0.25, clip_fps: 8}
mes: [{type: filedrop, id: files, folder: mes-out}]
"""
SITE_KEY = f"gate/{RUN}/4/no_hard_hat/1"


def site_event(kind: str, i: int, seq: int, reason: str = ""):
    return IncidentEvent(kind, SITE_KEY, seq, "gate", 4, "no_hard_hat", "hat-rule", "medium", None,
                         T0 + timedelta(seconds=i / 8), f"{RUN}/gate/{i:04d}", f"{RUN}/gate/{2:04d}",
                         f"{RUN}/gate/{i:04d}", 0.7, T0, reason)


def site_result(i: int, events=()) -> FrameResult:
    img = np.zeros((32, 48, 3), np.uint8)
    img[:, i % 48] = 200
    frame = Frame(f"{RUN}/gate/{i:04d}", "site-1", "gate", float(i), T0 + timedelta(seconds=i / 8), img,
                  {"camera": "gate", "frame_index": i, "t_video_s": i / 8})
    verdict = Verdict.FAIL if events else Verdict.PASS
    why = (Reason("hat-rule", Verdict.FAIL, "no hard hat"),) if events else ()
    dec = Decision(frame.frame_id, verdict, why, Detections.empty(), "ms-1", "h", T0)
    return FrameResult(frame, dec, Detections.empty(), (Detections.empty(),), SiteFrame("gate", (), tuple(events)))


def test_incidents_commit_with_their_decisions_and_leave_with_their_mes_events(tmp_path):
    cfg = load_config_text(SITE_CONFIG)
    hub = MesHub.from_config(cfg, config_hash(cfg), RUN, tmp_path, class_names=("hat", "vest", "worker"),
                             model_set_version="ms-1")
    images = ImageStore(tmp_path / "images")
    writer = StoreWriter(tmp_path / "s.sqlite", images, outbox_hook=outbox.write_drafts).start()
    sink = StoreSink(writer, RUN, ("hat", "vest", "worker"), store_images="flagged", mes=hub,
                     evidence=EvidenceRecorder(cfg.site.evidence, tmp_path, images))
    sink.start_run("site-1", config_hash(cfg), canonical_json(cfg), "ms-1")
    events = {8: [site_event("new", 8, 0)], 12: [site_event("update", 12, 1)]}
    for i in range(20):
        sink.accept_result(site_result(i, events.get(i, ())))
    sink.flush(10)
    conn = open_db(tmp_path / "s.sqlite")
    (inc,) = incidents.incidents(conn)
    assert (inc["key"], inc["frame_id"], inc["worst_frame_id"], inc["ended"]) == (
        SITE_KEY, f"{RUN}/gate/0008", f"{RUN}/gate/0012", None)
    sink.accept_events([site_event("end", 19, 2, "run ended")]).result(10)
    sink.end_run(10)
    sink.close(10)

    inc = incidents.incident(conn, key=SITE_KEY)
    assert inc["end_reason"] == "run ended" and inc["clip_sha256"] and inc["status"] == "open"
    assert probe(tmp_path / inc["clip_path"])[0] == 16  # 0.5 s pre-roll at 8 fps (5) + frames 9..19
    assert set(inc["evidence"]) == {"first", "worst", "last"}
    assert (tmp_path / inc["evidence"]["worst"]["path"]).is_file()
    rows = conn.execute("SELECT kind, key, stream, body FROM outbox WHERE kind LIKE 'incident.%' ORDER BY id").fetchall()
    steps = (("new", 0), ("update", 1), ("end", 2))
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (f"incident.{k}", f"site-1/{SITE_KEY}/{n}", "gate/incidents") for k, n in steps]
    body = json.loads(rows[2][3])
    assert body["schema"] == "inspector.incident-event/1" and body["end_reason"] == "run ended"
    assert body["incident"]["rule_id"] == "hat-rule" and body["model_set_version"] == "ms-1"
    # The run end is the last audit row of the run: the evidence was recorded before it.
    last = conn.execute("SELECT action FROM audit ORDER BY seq DESC LIMIT 2").fetchall()
    assert [r[0] for r in last] == ["run.end", "incident.evidence"]
    assert audit.verify(conn).ok
    conn.close()


# --- a store that stops accepting ------------------------------------------------------------


def big_result(fid: str, t: datetime) -> FrameResult:
    """A unit whose record needs fresh pages (20 KB of context): a full store refuses it."""
    frame = Frame(f"{RUN}/{fid}", "site-1", "gate", 0.0, t, np.zeros((4, 4, 3), np.uint8),
                  {"camera": "gate", "pad": "x" * 20000})
    return FrameResult(frame, Decision(frame.frame_id, Verdict.PASS, (), Detections.empty(), "ms-1", "h", t))


def set_max_pages(writer: StoreWriter, pages: int | None) -> None:
    """Pin the writer connection's database size (``None``: to what it holds now): SQLITE_FULL beyond."""
    def pin(conn):
        n = conn.execute("PRAGMA page_count").fetchone()[0] if pages is None else pages
        conn.execute(f"PRAGMA max_page_count = {n}")

    writer.submit_job(pin, "pin the database size").result(10)


def test_a_gap_in_the_record_is_stored_as_an_event_once_the_store_accepts_again(tmp_path, cfg):
    from inspector.store import events

    metrics = Metrics()
    failures = []
    sink = make_sink(tmp_path, metrics=metrics, images=False, store_images="none")
    sink.writer.retry_delays = (0.01,)
    sink.on_failure = failures.append
    start(sink, cfg)
    sink.accept_result(big_result("a", T0)).result(10)
    set_max_pages(sink.writer, None)  # the disk is full
    refused = [sink.accept_result(big_result(f"b{i}", T0 + timedelta(seconds=i))) for i in range(1, 4)]
    for f in refused:
        with pytest.raises(Exception, match="database or disk is full"):
            f.result(10)
    since = (T0 + timedelta(seconds=1)).isoformat(timespec="seconds")
    assert metrics.snapshot()["events"]["open"] == [{"kind": "store_gap", "source": None, "since": since}]
    set_max_pages(sink.writer, 1_000_000)  # space again
    sink.accept_result(big_result("c", T0 + timedelta(seconds=9))).result(10)
    sink.end_run(10)
    sink.close(10)
    assert len(failures) == 1 and "database or disk is full" in failures[0]  # once, with the reason
    assert sink.unrecorded == [f"{RUN}/b{i}" for i in range(1, 4)] and sink.gaps == 1
    conn = open_db(tmp_path / "s.sqlite")
    try:
        (gap,) = events.list_events(conn, RUN, "store_gap")
    finally:
        conn.close()
    assert gap["t"].startswith("2026-04-01T00:00:01") and gap["t_end"].startswith("2026-04-01T00:00:03")
    assert gap["detail"]["frames_not_recorded"] == 3 and gap["detail"]["first_frame"] == f"{RUN}/b1"
    assert gap["detail"]["store_accepted_again"] is True and "disk is full" in gap["detail"]["error"]
    assert metrics.snapshot()["events"]["counts"] == {"store_gap": 1} and not metrics.snapshot()["events"]["open"]


def test_a_wafer_with_refused_dies_is_reported_over_the_recorded_dies_only(tmp_path, cfg):
    hub = MesHub.from_config(cfg, config_hash(cfg), RUN, tmp_path, class_names=NAMES)
    sink = make_sink(tmp_path, mes=hub, images=False, store_images="none")
    start(sink, cfg)
    first, second, third = wafer_layout(cfg).dies[:3]
    sink.accept_result(result("taken", Verdict.PASS, first, wafer="W0")).result(10)
    tracker = WaferTracker(cfg)
    futures = []
    for fid, d in (("d0", first), ("taken", second), ("d2", third)):  # the store refuses the second die
        r = result(fid, Verdict.FAIL, d)
        tracker.add(r.frame, r.decision)
        futures.append(sink.accept_result(r))
    summary = tracker.flush()
    assert summary.dies_seen == 3
    sink.accept_wafer(summary).result(10)
    sink.flush(10)
    sink.close(10)
    assert sink.failed == 1
    conn = open_db(tmp_path / "s.sqlite")
    try:
        (body,) = conn.execute("SELECT body FROM outbox WHERE kind = 'wafer'").fetchone()
        how = conn.execute("SELECT how FROM mes_wafers WHERE wafer = 'W1'").fetchone()[0]
    finally:
        conn.close()
    msg = json.loads(body)
    assert msg["dies_seen"] == 2 and how == "recovered"
    # The refused die is reported as what the store knows of it: nothing (not inspected), never FAIL.
    assert msg["die_map"][f"{first[0]},{first[1]}"] == "fail"
    missing = f"{second[0]},{second[1]}"
    assert msg["die_map"].get(missing, "not_inspected") == "not_inspected"
