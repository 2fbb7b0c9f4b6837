# Sourced by the installer scripts: offline settings for ultralytics and a project-owned config dir.
# (training/ also sets these defaults itself before importing ultralytics.)
INSPECTOR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export YOLO_OFFLINE=1
export YOLO_AUTOINSTALL=False
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$INSPECTOR_ROOT/.yolo}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Qt: use a real display when there is one, otherwise render offscreen.
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"; fi
