#!/usr/bin/env bash
# Sets up everything Inspector needs in ./.venv (idempotent; re-runs are fast).
# Downloads nothing but packages. Usage: installers/setup.sh [--gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
source installers/env.sh
GPU=0; [ "${1:-}" = "--gpu" ] && GPU=1

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY="$c"; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (apt-get install python3.11 python3.11-venv)" >&2; exit 1; }

apt_install() {  # only as root and only when something is missing: Debian/Ubuntu packages
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup: please install: $*" >&2; return 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || { apt_install python3.11-venv || apt_install python3-venv; rm -rf .venv; "$PY" -m venv .venv; }
fi
VPY=.venv/bin/python
pipq() {  # pip, quiet, without the machine-level "location is ignored" index warnings
  $VPY -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
STAMP=.venv/.setup-stamp
WANT="$(cat pyproject.toml installers/constraints.txt installers/setup.sh | sha256sum | cut -c1-16)-gpu$GPU"

if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  pipq install -q --upgrade "pip>=24" setuptools wheel
  # torch first and pinned: these exact builds are the ones tested (and present on the CI image).
  pipq install -q -c installers/constraints.txt "torch==2.14.1" "torchvision==0.29.1"
  pipq install -q -c installers/constraints.txt -e ".[gui,train,dev]"
  # ultralytics pulls the GUI build of OpenCV, whose bundled Qt clashes with PySide6: keep only headless.
  pipq uninstall -q -y opencv-python opencv-contrib-python >/dev/null 2>&1 || true
  pipq install -q -c installers/constraints.txt --force-reinstall --no-deps opencv-python-headless
  if [ $GPU = 1 ]; then
    # onnxruntime-gpu owns the same module as onnxruntime: remove one before adding the other.
    pipq uninstall -q -y onnxruntime
    pipq install -q --force-reinstall --no-deps onnxruntime-gpu
  fi
  echo "$WANT" > "$STAMP"
fi

# Checks that catch a broken environment early, with a message that says what to do.
if $VPY -m pip list 2>/dev/null | grep -Eiq '^opencv-(contrib-)?python '; then
  echo "setup: the GUI build of opencv-python is installed beside PySide6; remove it (pip uninstall opencv-python)" >&2; exit 1
fi
$VPY -c 'import cv2, onnxruntime, numpy, pydantic' || { echo "setup: core packages failed to import" >&2; exit 1; }
if ! $VPY -c 'from PySide6 import QtGui' 2>/dev/null; then
  # PySide6 wheels need a few system libraries that minimal images lack.
  apt_install libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0 || true
  $VPY -c 'from PySide6 import QtGui' || { echo "setup: PySide6 cannot load its system libraries" >&2; exit 1; }
fi

# ultralytics must never fetch fonts or settings: give it a project-owned config dir with a
# local font under the names it looks for (DejaVu Sans ships inside matplotlib).
mkdir -p "$YOLO_CONFIG_DIR"
FONT="$($VPY -c 'import matplotlib, pathlib; print(pathlib.Path(matplotlib.get_data_path(), "fonts/ttf/DejaVuSans.ttf"))')"
for name in Arial.ttf Arial.Unicode.ttf; do [ -f "$YOLO_CONFIG_DIR/$name" ] || cp "$FONT" "$YOLO_CONFIG_DIR/$name"; done
$VPY - <<'PY'
import os
os.environ.setdefault("YOLO_OFFLINE", "1")
from ultralytics.utils import SETTINGS  # writes settings.json into YOLO_CONFIG_DIR on first import
# No telemetry, no integrations that phone out; only keys this ultralytics version knows.
off = {k: False for k in ("sync", "hub", "clearml", "comet", "dvc", "mlflow", "neptune", "raytune",
                          "tensorboard", "wandb", "vscode_msg", "openvino_msg") if k in SETTINGS}
SETTINGS.update(off)
PY
echo "setup: ready (.venv, YOLO_CONFIG_DIR=$YOLO_CONFIG_DIR)"
