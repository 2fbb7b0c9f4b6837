"""Imported before ultralytics anywhere in training/: offline settings and a project-owned config dir.

ultralytics reads these at import time; without them it may try to fetch fonts, check for updates
or write settings into the user's home.
"""

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", str(_REPO / ".yolo"))
