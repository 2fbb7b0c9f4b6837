"""A small construction-site store with real evidence, for the anonymisation and export tests.

The synthetic ``gate`` camera of the construction demo (960x540) is judged with its exact truth as
the detections (workers at their visible extent, worn hats), every ``STRIDE``-th frame (as a busy
station drops frames); one incident on one track, its frames written by the store writer, its clip
and images made by the station's own ``EvidenceRecorder`` (clip_fps above the stored frame rate, so
the clip holds every stored frame of its span). Also gives the truth's visible heads per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from inspector.capture.synthetic_site.camera import CLASS_NAMES, SyntheticSiteCamera
from inspector.config.schema.site import EvidenceConfig
from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.core.site.types import IncidentEvent, SiteFrame
from inspector.station.evidence import EvidenceRecorder
from inspector.station.judgement import FrameResult
from inspector.store import incidents
from inspector.config import config_hash, load_config
from inspector.config.loader import canonical_json
from inspector.store.db import insert_config, open_db, transaction
from inspector.store.images import ImageStore
from inspector.store.writer import DecisionRecord, write_record

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)
RUN = "run-r2"
STRIDE = 3
EVIDENCE = EvidenceConfig(pre_s=1.0, post_s=0.5, max_clip_s=30, clip_fps=5)




@dataclass
class SiteStore:
    data_dir: Path
    conn: object
    camera: SyntheticSiteCamera
    incident_id: int
    frame_index: dict[str, int]      # stored frame id -> camera frame index
    clip_frame_ids: list[str]        # the frames the recorder put in the clip, in order

    def heads(self, frame_id: str) -> np.ndarray:
        return self.camera.truth(self.frame_index[frame_id]).visible_heads()


def build(tmp: Path, frames: int = 60, store_config: bool = True) -> SiteStore:
    """``store_config=False``: the decisions name a config the store does not hold."""
    cam = SyntheticSiteCamera("gate", seed=11, duration_s=frames / 10, workers=5, occluders=2)
    data = tmp / "data"
    conn = open_db(data / "inspector.sqlite")
    cfg = load_config(REPO / "station_configs" / "construction-demo.yaml")
    cfg = cfg.model_copy(update={"site": cfg.site.model_copy(update={"evidence": EVIDENCE})})
    chash = config_hash(cfg)
    if store_config:
        with transaction(conn):
            insert_config(conn, chash, canonical_json(cfg))
    images = ImageStore(data / "images", fmt="jpeg")
    rec = EvidenceRecorder(EVIDENCE, data, images)
    idx = list(range(0, cam.n_frames, STRIDE))
    track = next(w.track_id for w in cam.truth(idx[len(idx) // 3]).workers if w.visible_box is not None)
    key = f"gate/{RUN}/{track}/no_hard_hat/1"
    fid = {i: f"{RUN}/gate-{i:06d}" for i in idx}
    opened, ended = idx[len(idx) // 3], idx[2 * len(idx) // 3]

    def ev(kind: str, seq: int, i: int) -> IncidentEvent:
        return IncidentEvent(kind, key, seq, "gate", track, "no_hard_hat", "no-hard-hat", "high", None,
                             T0 + timedelta(seconds=i / 10), fid[i], fid[idx[len(idx) // 4]], fid[i], 0.9,
                             T0, "cleared" if kind == "end" else "", fid[i] if kind == "end" else "")

    done = []
    for i in idx:
        image, truth = cam.render_with_truth(i)
        frame = Frame(fid[i], "site-r2", "gate", 100.0 + i / 10, T0 + timedelta(seconds=i / 10), image,
                      cam.context(i))
        det = truth.detections()
        events = (ev("new", 0, i),) if i == opened else (ev("end", 1, i),) if i == ended else ()
        reasons = (Reason("no-hard-hat", Verdict.FAIL, "no hard hat"),) if events else ()
        dec = Decision(fid[i], "fail" if events else "pass", reasons, det, "ms-r2", chash, frame.t_utc)
        with transaction(conn):
            write_record(conn, DecisionRecord(frame, dec, [det], RUN, CLASS_NAMES, False, incidents=events))
        done += rec.observe(FrameResult(frame, dec, site=SiteFrame("gate", (), events)))
    done += rec.finish()
    evidence = [f.result(60) for f in done]
    rec.close()
    assert len(evidence) == 1 and evidence[0].error is None, evidence
    e = evidence[0]
    with transaction(conn):
        incident_id = incidents.record_evidence(conn, key, clip_path=e.clip_path, clip_sha256=e.clip_sha256,
                                                images=e.images)
    # The recorder's clip: the pre-roll (stored frames of the last pre_s) then every stored frame up
    # to end + post_s (clip_fps is above the stored rate, so each stored frame is sampled).
    clip = []
    for i in idx:
        if i / 10 >= opened / 10 - EVIDENCE.pre_s:
            clip.append(fid[i])
            if i / 10 >= ended / 10 + EVIDENCE.post_s:
                break
    return SiteStore(data, conn, cam, incident_id, {v: k for k, v in fid.items()}, clip)
