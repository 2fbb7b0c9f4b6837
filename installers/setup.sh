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
# Hash-pinned locks (installers/locks/, made by installers/locks/compile.sh for Linux x86_64 and
# Python 3.11): every package and its sha256; pip refuses any file whose hash differs.
LOCKS=installers/locks
WANT="$(cat pyproject.toml installers/constraints.txt installers/setup.sh $LOCKS/*.txt | sha256sum | cut -c1-16)-gpu$GPU"

if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  pipq install -q --require-hashes -r $LOCKS/build.txt
  # Everything of .[gui,train,dev,openvino], hash-checked: torch / torchvision are the exact builds that were
  # tested (present on the CI image). --no-deps: the lock is the whole resolved set already, and it
  # holds opencv-python-headless but never the GUI build of OpenCV that ultralytics and trackers
  # declare (its bundled Qt clashes with PySide6), which pip would otherwise go and fetch.
  pipq install -q --require-hashes --no-deps -r $LOCKS/dev.txt
  # An older .venv may still hold the GUI build: remove it, and make sure headless owns cv2.
  if $VPY -m pip show -q opencv-python >/dev/null 2>&1 || $VPY -m pip show -q opencv-contrib-python >/dev/null 2>&1; then
    pipq uninstall -q -y opencv-python opencv-contrib-python
    pipq install -q --require-hashes --force-reinstall --no-deps \
      -r <(awk '/^opencv-python-headless==/{p=1} p{print; if ($0 !~ /\\$/) exit}' $LOCKS/dev.txt)
  fi
  # The project itself: its dependencies are all in the lock, and the build tools are the locked ones.
  pipq install -q --no-deps --no-build-isolation -e .
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
