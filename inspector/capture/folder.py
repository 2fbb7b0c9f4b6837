"""Folder replay: images on disk as a ``FrameSource`` (re-inspection, demos, offline line data).

Decisions (kept here because the tests pin them):

- Files are listed once, when the source is built, and sorted naturally (``die_2`` before
  ``die_10``); a ``loop`` replays that same list. Files added later are not seen.
- Frame ids are ``<source id>:<relative posix path>``; a looped replay appends ``#<pass>`` from
  the second pass on, so ids are stable across runs and unique within one.
- Context comes from ``context_regex`` (named groups matched with ``re.search`` against the
  relative posix path) and/or a sidecar CSV (a ``file`` column plus context columns; the CSV wins
  where both give a key). ``die_x``, ``die_y``, ``wafer`` and ``wafer_slot`` become ints when they
  are integers. Every frame also gets ``source`` (the source id) and ``file`` (the relative path).
- Context problems (a CSV row naming a file that is not there, an image without a row, a path the
  regex does not match) are all collected when the source is built; with ``strict`` (the default)
  they raise one ``CaptureError`` listing each (file, CSV line), otherwise each is logged.
- Every file is a unit and gets one record. A file that cannot be decoded (zero bytes, truncated
  PNG / JPEG, not an image, a pixel type the station does not process) is counted (``corrupt`` /
  ``unsupported``), logged with its name, and yielded as an ``UnreadableFrame`` (NOT_INSPECTED with
  the reason); the replay goes on.
- Image size is checked from the file header before decoding (:mod:`inspector.capture.image_header`):
  above ``max_megapixels`` the file is not decoded and its unit is ERROR with the size and the limit
  (counted ``too_large``). A format whose header is not read there (not PNG, JPEG, TIFF, BMP, WebP
  or PNM) cannot be bounded before decoding and is refused like an unreadable file.
- Pixels are read unchanged: grey stays HxW, colour stays BGR (or BGRA). 16-bit images are scaled
  to 8 bits by dropping the low byte (``v >> 8``): the same mapping for every image, so thresholds
  mean the same on every frame (a per-image stretch would not). Data with fewer significant bits
  (10/12-bit in a 16-bit container) comes out dark: convert such files beforehand. Other pixel
  types (float, 32-bit) are refused per file, counted as ``unsupported``.
"""

from __future__ import annotations

import csv
import logging
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.capture.health import CaptureError, SourceStats, UnreadableFrame
from inspector.capture.image_header import HeaderError, image_size
from inspector.core.decision import Verdict
from inspector.core.frame import Frame

log = logging.getLogger(__name__)

# Context keys that identify positions / slots: numeric text becomes int so rules can compute.
INT_KEYS = frozenset({"die_x", "die_y", "wafer", "wafer_slot"})
_INT = re.compile(r"^[+-]?\d+$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_LISTED = 20  # issues shown in one error message
# Default decode limit per image. 100 MP covers every area-scan sensor in common line use (up to
# ~65 MP, and the 100 MP class) with room; it bounds one decode at 300 MB for 8-bit BGR (600 MB
# at 16 bits) and about a second of decoding, where a 20000 x 20000 PNG would take 1.2 GB and
# 15 s. Stitched line-scan wafer images beyond that need an explicit, larger limit.
DEFAULT_MAX_MEGAPIXELS = 100.0


class ImageDecodeError(ValueError):
    """The bytes of one file are not a usable image (reason in the message)."""


class UnsupportedImageError(ImageDecodeError):
    """A valid image of a pixel type the station does not process."""


class ImageTooLargeError(ImageDecodeError):
    """The header announces more pixels than the source's limit; the file was not decoded."""


def check_image_size(path: Path, max_megapixels: float | None) -> tuple[int, int]:
    """(width, height) from the header of ``path``; raises ``ImageTooLargeError`` above the limit
    and ``ImageDecodeError`` when the header is unknown or broken (nothing is decoded)."""
    with path.open("rb") as fh:
        if not fh.read(1):
            raise ImageDecodeError("empty file (0 bytes)")
        fh.seek(0)
        try:
            size = image_size(fh)
        except HeaderError as e:
            raise ImageDecodeError(str(e)) from None
    if size is None:
        raise ImageDecodeError("not a decodable image (format not recognised from its header, so its size "
                               "cannot be checked before decoding)")
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageDecodeError(f"header gives an empty image ({w} x {h})")
    if max_megapixels is not None and w * h > max_megapixels * 1e6:
        raise ImageTooLargeError(f"image too large: {w} x {h} = {w * h / 1e6:.1f} MP is above this source's "
                                 f"limit of {max_megapixels:g} MP (max_megapixels); not decoded")
    return w, h


def natural_key(text: str) -> tuple[list[Any], str]:
    """Sort key where digit runs compare as numbers: 'die_2' < 'die_10'."""
    parts = re.split(r"(\d+)", text)
    # Even positions are text, odd positions digit runs, so lists compare type by type.
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], text


def typed_context(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop empty values; integer text of the position keys (``INT_KEYS``) becomes int."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        if key in INT_KEYS and isinstance(value, str) and _INT.match(value.strip()):
            value = int(value.strip())
        out[key] = value
    return out


def read_image(data: bytes) -> np.ndarray:
    """Bytes of a PNG / JPEG / TIFF / BMP ... -> uint8 or uint16 HxW or HxWxC (C in 3, 4).

    Raises ``ImageDecodeError`` (or ``UnsupportedImageError``) with the reason.
    """
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    # Some decoders return a partly grey image for a truncated file instead of failing, so the
    # end markers are checked first (cheap, and catches files still being written).
    if data.startswith(_PNG_SIGNATURE) and b"IEND" not in data[-32:]:
        raise ImageDecodeError("truncated PNG (no IEND chunk at the end)")
    if data.startswith(b"\xff\xd8") and b"\xff\xd9" not in data[-64:]:
        raise ImageDecodeError("truncated JPEG (no end-of-image marker)")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise ImageDecodeError(f"OpenCV could not decode it ({str(e).strip().splitlines()[-1]})") from None
    if img is None:
        raise ImageDecodeError("not a decodable image")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)) or img.size == 0:
        raise UnsupportedImageError(f"unsupported image shape {img.shape}")
    if img.dtype not in (np.uint8, np.uint16):
        raise UnsupportedImageError(f"unsupported pixel type {img.dtype} (expected 8- or 16-bit integers)")
    return img


def to_8bit(img: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by dropping the low byte (one fixed mapping for all images); uint8 as is."""
    return (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img


def decode_image(data: bytes) -> np.ndarray:
    """``read_image`` then ``to_8bit``: what a folder frame carries."""
    return to_8bit(read_image(data))


def _raise_or_log(name: str, issues: list[str], strict: bool) -> None:
    if not issues:
        return
    if strict:
        shown = issues[:_MAX_LISTED]
        more = f"\n  ... and {len(issues) - len(shown)} more" if len(issues) > len(shown) else ""
        raise CaptureError(f"folder source {name!r}: {len(issues)} context problem(s):\n  "
                           + "\n  ".join(shown) + more)
    for issue in issues:
        log.warning("folder source %r: %s", name, issue)


def _clean_rel(text: str) -> str:
    rel = text.strip().replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def read_sidecar(csv_path: Path, known: set[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Context per relative file from a sidecar CSV, plus the problems found (with line numbers)."""
    if not csv_path.is_file():
        raise CaptureError(f"sidecar CSV '{csv_path}' does not exist")
    rows: dict[str, dict[str, Any]] = {}
    issues: list[str] = []
    lines: dict[str, int] = {}
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: Excel writes a BOM
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise CaptureError(f"sidecar CSV '{csv_path}' is empty; expected a header with a 'file' column")
        if "file" not in reader.fieldnames:
            raise CaptureError(f"sidecar CSV '{csv_path}' line 1: no 'file' column (columns: "
                               f"{', '.join(reader.fieldnames)})")
        for row in reader:
            line = reader.line_num
            if None in row:
                issues.append(f"{csv_path} line {line}: more cells than header columns")
                row.pop(None)
            rel = _clean_rel(row.pop("file") or "")
            if not rel:
                issues.append(f"{csv_path} line {line}: empty 'file' cell")
                continue
            if rel in lines:
                issues.append(f"{csv_path} line {line}: file '{rel}' already listed on line {lines[rel]}")
                continue
            lines[rel] = line
            if rel not in known:
                issues.append(f"{csv_path} line {line}: file '{rel}' not found in the folder "
                              "(or not matched by the pattern)")
                continue
            rows[rel] = typed_context(row)
    return rows, issues


class FolderSource:
    """Images of a folder, in natural order, with context from the path and/or a sidecar CSV."""

    COUNTERS = ("files", "frames", "corrupt", "unsupported", "too_large", "passes")

    def __init__(
        self,
        path: str | Path,
        *,
        pattern: str = "*.png",
        recursive: bool = False,
        context_regex: str | None = None,
        sidecar_csv: str | Path | None = None,
        loop: bool = False,
        source_id: str = "folder",
        station_id: str = "station",
        strict: bool = True,
        max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS,
    ) -> None:
        if max_megapixels is not None and max_megapixels <= 0:
            raise ValueError(f"folder source {source_id!r}: max_megapixels must be > 0, got {max_megapixels}")
        self.name = source_id
        self.max_megapixels = max_megapixels
        self.station_id = station_id
        self.root = Path(path)
        self.pattern = pattern
        self.loop = loop
        self._stats = SourceStats(self.COUNTERS)
        self._closed = False
        if not self.root.is_dir():
            raise CaptureError(f"folder source {self.name!r}: folder '{self.root}' does not exist "
                               f"(relative paths resolve against {Path.cwd()})")
        found = self.root.rglob(pattern) if recursive else self.root.glob(pattern)
        rels = [p.relative_to(self.root).as_posix() for p in found if p.is_file()]
        if not rels:
            raise CaptureError(f"folder source {self.name!r}: no file in '{self.root}' matches pattern "
                               f"{pattern!r}{' (recursive)' if recursive else ''}")
        self.files: list[str] = sorted(rels, key=natural_key)
        self._stats.inc("files", len(self.files))
        self._context, issues = self._build_context(context_regex, sidecar_csv)
        _raise_or_log(self.name, issues, strict)

    def _build_context(self, regex: str | None, sidecar: str | Path | None
                       ) -> tuple[dict[str, dict[str, Any]], list[str]]:
        ctx: dict[str, dict[str, Any]] = {rel: {} for rel in self.files}
        issues: list[str] = []
        if regex is not None:
            rx = re.compile(regex)
            for rel in self.files:
                m = rx.search(rel)
                if m is None:
                    issues.append(f"file '{rel}': path does not match context_regex {regex!r}")
                else:
                    ctx[rel].update(typed_context(m.groupdict()))
        if sidecar is not None:
            rows, csv_issues = read_sidecar(Path(sidecar), set(self.files))
            issues += csv_issues
            for rel in self.files:
                if rel in rows:
                    ctx[rel].update(rows[rel])
                else:
                    issues.append(f"file '{rel}': no row in sidecar CSV '{sidecar}'")
        return ctx, issues

    def context(self, rel: str) -> dict[str, Any]:
        """The context a frame of file ``rel`` carries."""
        return {**self._context[rel], "source": self.name, "file": rel}

    def frames(self) -> Iterator[Frame]:
        """Every file in order (again and again with ``loop``); an unreadable or oversized one as an
        ``UnreadableFrame`` carrying its verdict and reason."""
        warned_16 = False
        n_pass = 0
        while not self._closed:
            n_pass += 1
            self._stats.inc("passes")
            self._stats.set_state("running")
            yielded = 0
            for rel in self.files:
                if self._closed:
                    break
                path = self.root / rel
                fid = f"{self.name}:{rel}" + ("" if n_pass == 1 else f"#{n_pass}")
                try:
                    check_image_size(path, self.max_megapixels)
                    raw = read_image(path.read_bytes())
                except ImageTooLargeError as e:
                    yield self._unreadable("too_large", fid, rel, str(e), Verdict.ERROR)
                    continue
                except UnsupportedImageError as e:
                    yield self._unreadable("unsupported", fid, rel, str(e))
                    continue
                except (ImageDecodeError, OSError) as e:
                    yield self._unreadable("corrupt", fid, rel, str(e))
                    continue
                if raw.dtype == np.uint16 and not warned_16:
                    log.info("folder source %r: 16-bit images are scaled to 8 bits (value >> 8)", self.name)
                    warned_16 = True
                image = to_8bit(raw)
                frame = Frame(fid, self.station_id, self.name, time.monotonic(), Frame.utc_now(), image,
                              self.context(rel))
                self._stats.inc("frames")
                yielded += 1
                yield frame
            if not self.loop or self._closed:
                break
            if yielded == 0:  # looping over nothing readable would spin forever
                self._stats.error(f"no readable image in '{self.root}'; loop stopped")
                log.error("folder source %r: no readable image in '%s'; loop stopped", self.name, self.root)
                break
        self._stats.set_state("closed" if self._closed else "ended")

    def _unreadable(self, counter: str, fid: str, rel: str, reason: str,
                    verdict: Verdict = Verdict.NOT_INSPECTED) -> UnreadableFrame:
        self._stats.inc(counter)
        msg = f"'{self.root / rel}': {reason}"
        self._stats.error(msg)
        log.warning("folder source %r: %s (recorded as %s)", self.name, msg, verdict.value)
        return UnreadableFrame(fid, self.station_id, self.name, time.monotonic(), Frame.utc_now(),
                               UnreadableFrame.placeholder(), self.context(rel), verdict=verdict,
                               reason=f"{verdict.value.replace('_', ' ')}: file '{rel}': {reason}")

    def stats(self) -> dict[str, Any]:
        """Counters: files, frames (decoded), corrupt, unsupported, too_large, passes; state; last_error."""
        return self._stats.snapshot()

    def close(self) -> None:
        """A running ``frames()`` ends before its next file."""
        self._closed = True
        self._stats.set_state("closed")

    def __repr__(self) -> str:
        return f"FolderSource({self.name!r}, root='{self.root}', files={len(self.files)}, loop={self.loop})"


__all__ = ["DEFAULT_MAX_MEGAPIXELS", "FolderSource", "ImageDecodeError", "ImageTooLargeError",
           "UnsupportedImageError", "check_image_size", "decode_image", "natural_key",
           "read_image", "read_sidecar", "to_8bit", "typed_context", "INT_KEYS"]
