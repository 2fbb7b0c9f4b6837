"""A synthetic wafer line: die images with labelled defects, laid out on wafers, in lots.

What it renders (see ``datasets/synthetic-wafer.md`` for the dataset card):

- a die: a repeating circuit-like tile (two metal layers, pads, vias) inside a seal ring and a
  scribe street, with per-die misalignment (shift + small rotation), an illumination gradient,
  colour / brightness variation and sensor noise;
- defects of five classes (``CLASS_NAMES``) with exact ground truth: each box is the pixel extent
  of what was drawn for that defect, clipped to the image; a defect whose clipped box would be
  thinner than ``MIN_BOX_PX`` is not drawn at all, so nothing visible is ever unlabelled;
- wafers with one spatial signature each (random, cluster, edge ring, scratch line) and lots of
  wafers, streamed as a ``FrameSource`` with lot / wafer / die context.

Everything is seeded: a die's pixels depend only on ``(seed, lot, wafer, die)``, so any die can be
rendered alone (random access, parallel dataset writing) and the same seed gives the same bytes.

Design note, why the defect pipeline looks the way it does: every random draw of a die (appearance,
then defect placement, each defect's private shape seed) happens *before* anything is drawn, and
``draw_defects=False`` only skips compositing. So the clean and the defective render of a die
differ exactly inside the ground-truth boxes, which is what the tests check.

The package: ``design`` (the circuit tile), ``defects`` (classes, shapes, placement), ``die``
(``render_die``, ``render_field``) and ``line`` (``SyntheticWaferLine``, the ``FrameSource``).
"""

from inspector.capture.synthetic.defects import CLASS_ID, CLASS_NAMES, DEFAULT_CLASS_WEIGHTS, MIN_BOX_PX, DefectSpec
from inspector.capture.synthetic.die import render_die, render_field
from inspector.capture.synthetic.line import SIGNATURES, SyntheticWaferLine, WaferTruth

# Bump when pixels or boxes for a given seed change (written into dataset manifests).
GENERATOR_VERSION = "1.3"  # 1.1: wider scratches, larger pattern defects; 1.2: dashed scratch lines, line opens;
# 1.3: opens have ragged ends and a scorched floor

__all__ = [
    "CLASS_NAMES", "CLASS_ID", "SIGNATURES", "GENERATOR_VERSION", "MIN_BOX_PX", "DEFAULT_CLASS_WEIGHTS",
    "DefectSpec", "WaferTruth", "SyntheticWaferLine", "render_die", "render_field",
]
