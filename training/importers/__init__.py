"""Readers of labelled folders: YOLO, COCO JSON, Pascal VOC XML, DeepPCB and Pictor-PPE (one module
per source format, ``from_<format>.py``; the shared checks in ``validate.py``, groups in ``groups.py``).

Every reader returns a :class:`training.datasets.DatasetBuild` and validates the same way:

- images: missing, empty (0 bytes), unreadable (``cv2.imread`` returns None or an empty array),
  not an image format ultralytics trains on, or a size that differs from the one the label file
  states -> a :class:`LabelIssue` naming the file; the image is excluded.
- labels: malformed lines (wrong number of fields, not a number), unknown class ids or names,
  zero or negative width / height, coordinates outside the image by more than ``TOLERANCE_PX``
  (1 px; within it the box is clipped to the image) -> a LabelIssue with the file and the 1-based
  line. With ``bad_labels="image"`` (default) an image with any bad label is excluded as a whole:
  dropping only the bad box would leave an unlabelled object in the image, which trains the
  model that it is background. With ``bad_labels="box"`` only the bad boxes are dropped.
- exact duplicate boxes (same class, same coordinates) -> a LabelIssue; the copy is dropped and
  the image kept.

Nothing is dropped silently: each exclusion is a LabelIssue, each deliberate skip (COCO crowd
annotations, images listed twice) a note.

Groups (the split unit, see ``split_by_group``) come from ``group_by``:

- ``auto``: the reader's natural unit: DeepPCB the board group folder (``groupNNNNN``), Pictor
  ``similar``, YOLO / COCO / VOC ``none``.
- ``none``: each image is its own group.
- ``parent``: the name of the folder holding the image.
- ``regex:<pattern>``: ``re.search`` on the image path relative to the source root, '/' separated;
  the pattern needs a named group ``g`` (e.g. ``regex:(?P<g>LOT\\d+)``).
- ``column:<name>``: column ``<name>`` of a CSV sidecar (``group_csv``, default ``groups.csv`` in
  the source folder) with a ``file`` column (also ``image``, ``path`` or ``file_name``) holding the
  relative path or the file name. For COCO without a CSV, the image record's field ``<name>``.
- ``similar``: clusters of near-duplicate images (see :func:`near_duplicate_groups`).

An image without a group (no regex match, no CSV row) is a LabelIssue and is excluded.

``limit`` keeps the first N groups in ``sha256(group)`` order (independent of the split seed), so a
tiny build for CI has whole groups and is the same every time.

Every reader takes ``progress`` (:mod:`inspector.util.progress`): checking the images is the slow part.
"""

from training.importers.from_coco import read_coco
from training.importers.from_deeppcb import DEEPPCB_CLASSES, DEEPPCB_MODES, DeepPCBPair, read_deeppcb
from training.importers.from_pictor import PICTOR_CLASSES, read_pictor
from training.importers.from_voc import read_voc
from training.importers.from_yolo import read_yolo
from training.importers.groups import GROUP_HELP, near_duplicate_groups, parse_group_by
from training.importers.validate import BAD_LABEL_POLICIES, TOLERANCE_PX, probe_image

__all__ = [
    "TOLERANCE_PX", "BAD_LABEL_POLICIES", "DEEPPCB_CLASSES", "DEEPPCB_MODES", "PICTOR_CLASSES", "GROUP_HELP",
    "DeepPCBPair", "probe_image", "near_duplicate_groups", "parse_group_by", "read_yolo", "read_coco", "read_voc",
    "read_deeppcb", "read_pictor",
]
