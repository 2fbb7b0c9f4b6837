"""Evidence clips: MP4 ('mp4v') that OpenCV reads back with every frame, stored by content hash."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from inspector.store.clips import ClipError, ClipWriter, probe


def frames(n: int, h: int = 90, w: int = 160) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, (i * 7) % w:(i * 7) % w + 10] = (0, 200, 255)  # a moving bar
        out.append(img)
    return out


def write(root, images, fps=10.0):
    w = ClipWriter(root, fps)
    for img in images:
        w.add(img)
    return w.finish()


def test_a_clip_reads_back_with_its_frame_count_and_is_content_addressed(tmp_path):
    clip = write(tmp_path, frames(23))
    path = tmp_path / clip.path
    assert clip.path == f"{clip.sha256[:2]}/{clip.sha256[2:4]}/{clip.sha256}.mp4"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == clip.sha256
    n, fps, w, h = probe(path)
    assert (n, w, h) == (23, 160, 90) and fps == pytest.approx(10.0)
    again = write(tmp_path, frames(23))
    assert again.path == clip.path  # same frames, same bytes, one file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_odd_sizes_grey_and_changing_frames_are_made_to_fit(tmp_path):
    imgs = [np.full((31, 41), 100, np.uint8), np.zeros((60, 80, 3), np.uint8), np.zeros((31, 41, 4), np.uint8)]
    clip = write(tmp_path, imgs)
    assert clip.size == (40, 30) and probe(tmp_path / clip.path)[0] == 3


def test_an_empty_or_aborted_clip_leaves_nothing(tmp_path):
    with pytest.raises(ClipError, match="at least one frame"):
        ClipWriter(tmp_path, 10).finish()
    w = ClipWriter(tmp_path, 10)
    w.add(frames(1)[0])
    w.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ClipError, match="uint8"):
        ClipWriter(tmp_path, 10).add(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ClipError, match="cannot open"):
        probe(tmp_path / "missing.mp4")


def test_a_clip_is_scaled_to_its_longest_side_keeping_the_aspect(tmp_path):
    from inspector.store.clips import clip_size, scale_for_clip

    assert clip_size(1920, 1080, 1280) == (1280, 720) and clip_size(960, 540, 1280) == (960, 540)
    assert clip_size(1080, 1920, 1280) == (720, 1280) and clip_size(1001, 333, None) == (1000, 332)
    assert scale_for_clip(np.zeros((1080, 1920, 3), np.uint8), 1280).shape == (720, 1280, 3)
    small = np.zeros((90, 160, 3), np.uint8)
    assert scale_for_clip(small, 1280) is small  # nothing to do: no copy
    w = ClipWriter(tmp_path, 10, max_side=80)
    for img in frames(4):                          # 160x90 frames into an 80-pixel clip
        w.add(img)
    clip = w.finish()
    assert clip.size == (80, 44) and probe(tmp_path / clip.path)[1:] [1:] == (80, 44)
