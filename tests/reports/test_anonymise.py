"""Anonymisation: head regions, redaction (never in place), coverage against the synthetic site's
exact heads (and a too-small head region that the check catches), clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.capture.synthetic_site.camera import SyntheticSiteCamera
from inspector.reports import anonymise as an


def assert_heads_covered(heads: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> None:
    cov = an.head_coverage(heads, boxes, size)
    assert (cov >= 1.0).all(), f"{int((cov < 1).sum())} of {len(cov)} heads not fully covered (worst {cov.min():.3f})"


def test_head_region_is_the_padded_top_of_the_box():
    r = an.head_regions([[100, 200, 140, 300]], head_fraction=0.3, pad=0.1)
    np.testing.assert_allclose(r, [[96, 190, 144, 240]])
    assert an.head_regions(np.zeros((0, 4))).shape == (0, 4)
    clipped = an.head_regions([[0, 0, 40, 100]], image_size=(30, 50))
    assert clipped[0, 0] == 0 and clipped[0, 1] == 0 and clipped[0, 2] == 30
    with pytest.raises(ValueError):
        an.head_regions([[0, 0, 1]])


def test_redact_changes_only_the_boxes_and_never_the_input():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    before = img.copy()
    for method in an.METHODS:
        out = an.redact(img, [[10.5, 5.2, 30.1, 25.0]], method)
        np.testing.assert_array_equal(img, before)  # never in place
        mask = an.covered_mask([[10.5, 5.2, 30.1, 25.0]], (80, 60))
        assert mask[5:25, 10:31].all() and mask.sum() == 20 * 21  # partial pixels count as covered
        np.testing.assert_array_equal(out[~mask], img[~mask])
        assert np.abs(out[mask].astype(int) - img[mask]).mean() > 20  # random noise is gone
    with pytest.raises(ValueError):
        an.redact(img, [[0, 0, 5, 5]], "erase")


def test_pixelation_leaves_blocks_no_finer_than_a_cell():
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = an.redact(img, [[0, 0, 64, 64]], "pixelate", blocks=8)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 64  # 8 x 8 cells of one colour each


def test_head_coverage_counts_pixels_per_head():
    cov = an.head_coverage([[0, 0, 10, 10], [20, 0, 30, 10], [5, 0, 15, 10]], [[0, 0, 10, 10]], (40, 20))
    np.testing.assert_allclose(cov, [1.0, 0.0, 0.5])


def _site_frames(step: int = 15):
    cam = SyntheticSiteCamera("gate", seed=11, duration_s=20, workers=6, occluders=2)
    for i in range(0, cam.n_frames, step):
        yield cam.render_with_truth(i)


def test_every_visible_head_of_the_synthetic_site_is_covered_with_truth_boxes():
    heads_seen = 0
    for image, truth in _site_frames():
        workers = np.array([w.visible_box for w in truth.workers if w.visible_box is not None]).reshape(-1, 4)
        out, boxes = an.anonymise_frame(image, workers)
        heads = truth.visible_heads()
        heads_seen += len(heads)
        assert_heads_covered(heads, boxes, (image.shape[1], image.shape[0]))
        # what leaves is what the boxes say: the covered pixels changed as redact changes them
        np.testing.assert_array_equal(out, an.redact(image, boxes))
    assert heads_seen > 50


def test_a_too_small_head_region_fails_the_check():
    # the same check on the same frames must catch heads left in the clear
    with pytest.raises(AssertionError, match="not fully covered"):
        for image, truth in _site_frames():
            workers = np.array([w.visible_box for w in truth.workers if w.visible_box is not None]).reshape(-1, 4)
            _, boxes = an.anonymise_frame(image, workers, head_fraction=0.05, pad=0.0)
            assert_heads_covered(truth.visible_heads(), boxes, (image.shape[1], image.shape[0]))


def test_hat_boxes_cover_the_head_under_them():
    for image, truth in _site_frames(30):
        hats = [w for w in truth.workers if w.hat is not None and w.visible_box is not None]
        for w in hats:
            region = an.hat_head_regions([w.hat])
            assert an.head_coverage([w.head], region, (image.shape[1], image.shape[0]))[0] == 1.0


def test_face_finder_says_when_no_cascade_ships():
    if an.faces_available():
        assert an.find_faces(np.zeros((40, 40, 3), np.uint8)).shape[1] == 4
    else:
        with pytest.raises(an.FaceFinderUnavailable, match="cascade"):
            an.find_faces(np.zeros((40, 40, 3), np.uint8))


def _clip(path, n=6, size=(96, 64)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    rng = np.random.default_rng(2)
    for _ in range(n):
        w.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    w.release()


def test_clip_frames_are_redacted_with_their_boxes(tmp_path):
    _clip(tmp_path / "in.mp4")
    boxes = [np.array([[10.0 + i, 10, 40 + i, 60]]) for i in range(6)]
    res = an.anonymise_clip(tmp_path / "in.mp4", tmp_path / "out" / "anon.mp4", boxes)
    assert res.frames == 6 and res.size == (96, 64) and (tmp_path / "out" / "anon.mp4").is_file()
    np.testing.assert_allclose(res.boxes[3], an.head_regions(boxes[3], image_size=(96, 64)))
    seen = []
    res2 = an.anonymise_clip(tmp_path / "in.mp4", tmp_path / "cb.mp4", lambda i, img: seen.append(i) or boxes[i])
    assert seen == list(range(6)) and res2.frames == 6
    cap = cv2.VideoCapture(str(tmp_path / "out" / "anon.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 6


def test_a_clip_with_boxes_missing_for_a_frame_is_not_written(tmp_path):
    _clip(tmp_path / "in.mp4")
    for boxes in ([np.zeros((0, 4))] * 5, [np.zeros((0, 4))] * 7):
        with pytest.raises(an.ClipMismatch):
            an.anonymise_clip(tmp_path / "in.mp4", tmp_path / "out.mp4", boxes)
        assert list(tmp_path.iterdir()) == [tmp_path / "in.mp4"]  # nothing left behind
