"""Content-addressed evidence clips (MP4, OpenCV's 'mp4v' codec).

A clip is written frame by frame into a hidden temporary file under ``root``, then hashed and
renamed to ``root/ab/cd/<sha256>.mp4`` (the sha256 of the file bytes, so ``sha256sum`` checks it
against the incident that cites it), file and folder fsynced. The same bytes are stored once.
Encoding is the caller's thread's business: the station does it off its record thread
(:mod:`inspector.station.evidence`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.util.atomic import PRIVATE_FILE, fsync_dir, make_private_dirs

FOURCC = "mp4v"


@dataclass(frozen=True)
class Clip:
    sha256: str
    path: str          # relative to the clip root
    frames: int
    fps: float
    size: tuple[int, int]  # width, height


class ClipError(Exception):
    """A clip could not be written; the message says which and why."""


def _bgr(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def clip_size(width: int, height: int, max_side: int | None = None) -> tuple[int, int]:
    """The clip's (width, height) for frames of this size: at most ``max_side`` on the longer side
    (aspect kept), both even as the codec wants."""
    scale = 1.0 if not max_side or max(width, height) <= max_side else max_side / max(width, height)
    w, h = round(width * scale), round(height * scale)
    return max(2, w - w % 2), max(2, h - h % 2)


def scale_for_clip(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` at its clip size (bilinear: 4x cheaper than area averaging at 1080p -> 720p, and a
    clip is for watching; evidence frames keep full size)."""
    import cv2

    h, w = image.shape[:2]
    size = clip_size(w, h, max_side)
    return image if size == (w, h) else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


class ClipWriter:
    """One clip being written. ``add`` frames (any size: resized to the first frame's clip size,
    at most ``max_side`` on the longer side, even dimensions as the codec wants), then ``finish``
    (or ``abort``)."""

    def __init__(self, root: str | Path, fps: float, max_side: int | None = None) -> None:
        if fps <= 0:
            raise ValueError(f"clip fps must be positive, got {fps}")
        self.root = Path(root)
        self.fps = float(fps)
        self.max_side = max_side
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._writer = None
        self._tmp = self.root / f".clip-{uuid.uuid4().hex}.mp4"

    def add(self, image: np.ndarray) -> None:
        import cv2

        img = _bgr(np.ascontiguousarray(image))
        if img.dtype != np.uint8:
            raise ClipError(f"clips take uint8 images, got {img.dtype}")
        if self._writer is None:
            h, w = img.shape[:2]
            self._size = clip_size(w, h, self.max_side)
            make_private_dirs(self.root)  # clips show people: the station user's only (0700 / 0600)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*FOURCC), self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise ClipError(f"OpenCV cannot open an {FOURCC} writer for {self._tmp}")
        assert self._size is not None
        if (img.shape[1], img.shape[0]) != self._size:
            img = cv2.resize(img, self._size, interpolation=cv2.INTER_LINEAR)
        self._writer.write(img)
        self.frames += 1

    def finish(self) -> Clip:
        """Close, hash and move the clip into place; returns where it is."""
        if self._writer is None:
            raise ClipError("a clip needs at least one frame")
        self._writer.release()
        self._writer = None
        try:
            h = hashlib.sha256()
            with open(self._tmp, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
                os.fsync(fh.fileno())
            sha = h.hexdigest()
            rel = f"{sha[:2]}/{sha[2:4]}/{sha}.mp4"
            target = self.root / rel
            make_private_dirs(target.parent)
            if target.exists():  # content-addressed: the same bytes are already there
                self._tmp.unlink()
            else:
                os.chmod(self._tmp, PRIVATE_FILE)  # OpenCV created it with the umask's mode
                os.replace(self._tmp, target)
                fsync_dir(target.parent)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        assert self._size is not None
        return Clip(sha, rel, self.frames, self.fps, self._size)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._tmp.unlink(missing_ok=True)


def probe(path: str | Path) -> tuple[int, float, int, int]:
    """(frames, fps, width, height) of a clip, read back with OpenCV (frames counted by decoding)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ClipError(f"{path}: OpenCV cannot open it")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = 0
        while cap.grab():
            n += 1
        return n, fps, w, h
    finally:
        cap.release()


__all__ = ["FOURCC", "Clip", "ClipError", "ClipWriter", "probe"]
