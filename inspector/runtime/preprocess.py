"""Letterbox pre-processing into one reusable NCHW float32 batch, and its exact inverse.

The geometry matches ultralytics' ``LetterBox`` (centered, pad 114, INTER_LINEAR, each resized side
rounded, top/left pad ``round(d / 2 - 0.1)``), so a model sees the same pixels it was validated on.
Boxes map back with *per-axis* scales ``new_w / orig_w`` and ``new_h / orig_h``: the resized content
spans exactly ``new_w`` x ``new_h`` pixels, so this inverse is exact where a single ratio ``r`` would
be off by up to half an input pixel on the far edge.

Copies: one ``cv2.resize`` into a reused uint8 buffer, one ``cv2.split`` into reused planes, and one
multiply per channel straight into the batch array (which does BGR->RGB, HWC->CHW and /255 in the
same pass). Pad strips are written directly as 114/255. Nothing is allocated per call once buffers
have grown to the largest batch and image shapes seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114
_SCALE = np.float32(1.0 / 255.0)
_MAX_CACHED_SHAPES = 8  # resize/plane buffers kept per distinct resized shape


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How one image was placed in the model input: content scaled per axis, then offset by the pad."""

    scale_x: float  # new_w / orig_w
    scale_y: float  # new_h / orig_h
    pad_x: int  # left pad (input pixels)
    pad_y: int  # top pad (input pixels)
    orig_w: int
    orig_h: int
    new_w: int
    new_h: int
    in_w: int  # model input width (imgsz, or the stride-rounded rectangle in rect mode)
    in_h: int

    @property
    def scale(self) -> float:
        """The single aspect-preserving ratio (per-axis scales differ from it only by rounding)."""
        return min(self.scale_x, self.scale_y)

    def to_input(self, xyxy: np.ndarray) -> np.ndarray:
        """Original-image boxes -> model-input boxes."""
        b = np.array(xyxy, dtype=np.float64).reshape(-1, 4)
        b[:, 0::2] = b[:, 0::2] * self.scale_x + self.pad_x
        b[:, 1::2] = b[:, 1::2] * self.scale_y + self.pad_y
        return b

    def to_original(self, xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Model-input boxes -> original-image boxes (float32), clipped to the image by default."""
        b = np.array(xyxy, dtype=np.float32).reshape(-1, 4)
        b[:, 0::2] -= self.pad_x
        b[:, 1::2] -= self.pad_y
        b[:, 0::2] /= self.scale_x
        b[:, 1::2] /= self.scale_y
        if clip:
            np.clip(b[:, 0::2], 0, self.orig_w, out=b[:, 0::2])
            np.clip(b[:, 1::2], 0, self.orig_h, out=b[:, 1::2])
        return b


def letterbox_params(orig_h: int, orig_w: int, imgsz: tuple[int, int], stride: int | None = None) -> Letterbox:
    """Placement of an ``orig_h`` x ``orig_w`` image in an ``imgsz`` = (height, width) input.

    With ``stride`` (rect mode, for models with a dynamic input size) the input is the smallest
    stride-multiple rectangle around the resized image instead of the full ``imgsz``, as
    ultralytics does for ``.pt`` and dynamic ONNX models: a 4:3 frame costs 3/4 of a square one.
    """
    H, W = imgsz
    r = min(H / orig_h, W / orig_w)
    new_w, new_h = max(round(orig_w * r), 1), max(round(orig_h * r), 1)  # thin images keep 1 px
    dw, dh = W - new_w, H - new_h
    if stride:
        dw, dh = dw % stride, dh % stride
    pad_x, pad_y = round(dw / 2 - 0.1), round(dh / 2 - 0.1)
    return Letterbox(new_w / orig_w, new_h / orig_h, pad_x, pad_y, orig_w, orig_h, new_w, new_h,
                     new_w + dw, new_h + dh)


def as_bgr_or_grey(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1) -> (H, W) grey view; (H, W, 3) BGR as is; (H, W, 4) BGRA -> BGR. uint8 only."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        # 16-bit or float camera data needs a deliberate mapping to 8 bits (the capture adapter's job).
        raise TypeError(f"expected a uint8 image, got {image.dtype}; convert it to 8 bits in the capture stage")
    if image.ndim == 2:
        out = image
    elif image.ndim == 3 and image.shape[2] == 1:
        out = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 3:
        out = image
    elif image.ndim == 3 and image.shape[2] == 4:
        out = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    else:
        raise ValueError(f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    if out.shape[0] < 1 or out.shape[1] < 1:
        raise ValueError(f"empty image of shape {image.shape}")
    return out


class Preprocessor:
    """Letterboxes a list of images into one (B, 3, H, W) float32 RGB array scaled to [0, 1].

    The returned array is a view of an internal buffer reused by the next call: consume it (run the
    model) before calling again. Not thread-safe; one per detector.
    """

    def __init__(self, imgsz: int | tuple[int, int], pad_value: int = PAD_VALUE, stride: int | None = None) -> None:
        self.imgsz: tuple[int, int] = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
        self.pad = np.float32(pad_value / 255.0)
        self.stride = stride  # set: rect mode (see letterbox_params)
        self._storage = np.empty(0, np.float32)  # one flat buffer, viewed as (n, 3, H, W) for any H, W
        self._buffers: dict[tuple[int, ...], list[np.ndarray]] = {}

    def _buffer(self, shape: tuple[int, ...], count: int) -> list[np.ndarray]:
        key = (*shape, count)
        bufs = self._buffers.get(key)
        if bufs is None:
            if len(self._buffers) >= _MAX_CACHED_SHAPES:
                self._buffers.clear()  # many distinct shapes: start over rather than grow without bound
            bufs = [np.empty(shape, np.uint8) for _ in range(count)]
            self._buffers[key] = bufs
        return bufs

    def batch_array(self, n: int, shape: tuple[int, int] | None = None) -> np.ndarray:
        """A contiguous (n, 3, H, W) view of the reused buffer (grown when needed); H, W default to imgsz."""
        h, w = shape or self.imgsz
        size = n * 3 * h * w
        if self._storage.size < size:
            self._storage = np.empty(size, np.float32)
        return self._storage[:size].reshape(n, 3, h, w)

    def input_shape(self, images: Sequence[np.ndarray]) -> tuple[int, int]:
        """The batch's input (H, W): imgsz, or in rect mode the shared rectangle of equal-sized images."""
        shapes = {im.shape[:2] for im in images}
        if self.stride and len(shapes) == 1:
            lb = letterbox_params(*shapes.pop(), self.imgsz, self.stride)
            return lb.in_h, lb.in_w
        return self.imgsz

    def __call__(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        out = self.batch_array(len(images), self.input_shape(images))
        infos = [self.fill(out[i], img) for i, img in enumerate(images)]
        return out, infos

    def fill(self, dst: np.ndarray, image: np.ndarray) -> Letterbox:
        """Letterbox one image into ``dst`` (3, H, W) float32 (imgsz, or its rect shape); return its placement."""
        img = as_bgr_or_grey(image)
        h, w = img.shape[:2]
        lb = letterbox_params(h, w, self.imgsz)
        if (lb.in_h, lb.in_w) != dst.shape[1:] and self.stride:
            lb = letterbox_params(h, w, self.imgsz, self.stride)
        if (lb.in_h, lb.in_w) != dst.shape[1:]:
            raise ValueError(f"destination {dst.shape[1:]} is not the input shape {(lb.in_h, lb.in_w)} "
                             f"of a {h}x{w} image")
        nh, nw, top, left = lb.new_h, lb.new_w, lb.pad_y, lb.pad_x
        if (nh, nw) != (h, w):
            resized = self._buffer((nh, nw, 3) if img.ndim == 3 else (nh, nw), 1)[0]
            cv2.resize(img, (nw, nh), dst=resized, interpolation=cv2.INTER_LINEAR)
            img = resized
        region = dst[:, top : top + nh, left : left + nw]
        if img.ndim == 2:  # grey: scale once, replicate (the model takes 3 channels)
            np.multiply(img, _SCALE, out=region[0])
            region[1] = region[0]
            region[2] = region[0]
        else:
            planes = self._buffer((nh, nw), 3)
            cv2.split(img, planes)  # into the reused planes, B, G, R
            for c_out, c_in in ((0, 2), (1, 1), (2, 0)):  # BGR -> RGB
                np.multiply(planes[c_in], _SCALE, out=region[c_out])
        H, W = lb.in_h, lb.in_w
        if top:
            dst[:, :top] = self.pad
        if top + nh < H:
            dst[:, top + nh :] = self.pad
        if left:
            dst[:, top : top + nh, :left] = self.pad
        if left + nw < W:
            dst[:, top : top + nh, left + nw :] = self.pad
        return lb


def letterbox(images: Sequence[np.ndarray], imgsz: int | tuple[int, int]) -> tuple[np.ndarray, list[Letterbox]]:
    """One-shot convenience (allocates); detectors keep a ``Preprocessor`` instead."""
    return Preprocessor(imgsz)(images)  # a fresh preprocessor: its buffer is the caller's
