"""An incident's evidence as it may leave: images and clip redacted from the stored boxes; clip
frames mapped back to the stored frames the recorder put in them; no visible head of the synthetic
site left in the clear (against its exact heads)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers.site_evidence_store import build

from inspector.reports.anonymise import head_coverage, redact
from inspector.station import anonymised_evidence as ae
from inspector.store import incidents


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = build(tmp_path_factory.mktemp("site"))
    yield s
    s.conn.close()


def test_stored_boxes_are_the_frames_workers_and_hats(site):
    fid = site.clip_frame_ids[0]
    workers, hats = ae.stored_boxes(site.conn, fid)
    truth = site.camera.truth(site.frame_index[fid])
    # the kept set and the one member: each worker box twice
    assert len(workers) == 2 * sum(w.visible_box is not None for w in truth.workers) > 0
    assert hats.shape[1] == 4


def test_clip_frames_map_to_the_frames_the_recorder_wrote(site):
    inc = incidents.incident(site.conn, site.incident_id)
    ids = ae.clip_frame_ids(site.conn, inc, n_frames=len(site.clip_frame_ids))
    assert ids == site.clip_frame_ids
    # and the pictures agree: each decoded clip frame is closest to the stored frame it maps to
    cap = cv2.VideoCapture(str(site.data_dir / inc["clip_path"]))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img.astype(np.int16))
    assert len(frames) == len(site.clip_frame_ids)
    for k in (0, len(frames) // 2, len(frames) - 1):
        diffs = [np.abs(frames[k] - site.camera.render(site.frame_index[f])).mean() for f in site.clip_frame_ids]
        assert int(np.argmin(diffs)) == k
    with pytest.raises(ae.EvidenceUnavailable):
        ae.clip_frame_ids(site.conn, inc, n_frames=len(ids) + 50)


def test_no_head_leaves_in_the_evidence_images(site):
    shown = ae.anonymised_images(site.conn, site.data_dir, site.incident_id)
    assert [a.role for a in shown] == ["first", "worst", "last"]
    heads = 0
    for a in shown:
        h = site.heads(a.frame_id)
        heads += len(h)
        cov = head_coverage(h, a.boxes, (a.image.shape[1], a.image.shape[0]))
        assert (cov >= 1).all(), cov
        inc = incidents.incident(site.conn, site.incident_id)
        stored = cv2.imread(str(site.data_dir / inc["evidence"][a.role]["path"]))
        np.testing.assert_array_equal(a.image, redact(stored, a.boxes))
    assert heads > 0


def test_no_head_leaves_in_the_clip(site, tmp_path):
    res = ae.anonymised_clip(site.conn, site.data_dir, site.incident_id, tmp_path / "clip.mp4")
    assert res.frames == len(site.clip_frame_ids) and (tmp_path / "clip.mp4").is_file()
    heads = 0
    for fid, boxes in zip(site.clip_frame_ids, res.boxes):
        h = site.heads(fid)
        heads += len(h)
        assert (head_coverage(h, boxes, res.size) >= 1).all()
    assert heads > 10


def test_the_check_fails_on_a_clip_redacted_with_its_neighbours_boxes_only(site, tmp_path):
    # boxes shifted by several frames (a broken mapping) leave heads uncovered: the check sees it
    res = ae.anonymised_clip(site.conn, site.data_dir, site.incident_id, tmp_path / "clip.mp4", neighbours=0)
    shifted = res.boxes[4:] + res.boxes[:4]
    cov = np.concatenate([head_coverage(site.heads(f), b, res.size) for f, b in zip(site.clip_frame_ids, shifted)])
    assert (cov < 1).any()


def test_an_incident_without_a_clip_says_so(site, tmp_path):
    inc = dict(incidents.incident(site.conn, site.incident_id), clip_path=None)
    with pytest.raises(ae.EvidenceUnavailable, match="no clip"):
        ae.anonymised_clip(site.conn, site.data_dir, inc, tmp_path / "x.mp4")


def test_clip_frames_that_cannot_be_matched_are_refused(tmp_path):
    # without its config the replay uses the default evidence settings (pre_s 3 s, not 1 s): the
    # clip's length gives the mismatch away, and no clip is written
    s = build(tmp_path, store_config=False)
    try:
        with pytest.raises(ae.EvidenceUnavailable, match="cannot be matched"):
            ae.anonymised_clip(s.conn, s.data_dir, s.incident_id, tmp_path / "clip.mp4")
        assert not (tmp_path / "clip.mp4").exists()
    finally:
        s.conn.close()
