#!/usr/bin/env bash
# Installs an Inspector station into a prefix: a virtual environment (hash-locked packages), the
# systemd unit of the headless station, the operator app's desktop entry and icon, the station
# config, the models, and an environment file for secrets.
#
#   installers/linux/install.sh --prefix DIR [--user NAME] [--config FILE] [--data-dir DIR]
#                               [--headless] [--venv DIR] [--no-systemctl]
#
#   --prefix DIR      where everything goes (e.g. /opt/inspector); no root needed for a prefix you own
#   --user NAME       the service's own user (default: inspector); created when root and missing
#   --config FILE     station config to install as PREFIX/etc/inspector/station.yaml
#                     (default: station_configs/wafer-demo.yaml)
#   --data-dir DIR    the station's data folder (default: /var/lib/inspector, systemd's StateDirectory)
#   --headless        station packages only (installers/locks/station.txt); no GUI, no desktop entry
#   --venv DIR        use this existing environment (it must have Inspector installed) instead of
#                     making PREFIX/lib/inspector/venv
#   --no-systemctl    never call systemctl or useradd (packaging, tests, images)
#
# Layout: PREFIX/lib/inspector/venv, PREFIX/lib/systemd/system/inspector-station.service,
# PREFIX/share/applications/inspector.desktop, PREFIX/share/icons/hicolor/scalable/apps/inspector.svg,
# PREFIX/share/inspector/models, PREFIX/etc/inspector/{station.yaml,inspector.env}.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

PREFIX="" USER_NAME=inspector CONFIG="$REPO/station_configs/wafer-demo.yaml" DATA_DIR=/var/lib/inspector
HEADLESS=0 VENV="" SYSTEMCTL=1
die() { echo "install: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
    --user) USER_NAME="${2:?--user needs a name}"; shift 2 ;;
    --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
    --data-dir) DATA_DIR="${2:?--data-dir needs a folder}"; shift 2 ;;
    --headless) HEADLESS=1; shift ;;
    --venv) VENV="${2:?--venv needs a folder}"; shift 2 ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ -n "$PREFIX" ] || die "give --prefix DIR (see --help)"
[[ "$USER_NAME" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "--user $USER_NAME is not a valid user name"
[ -f "$CONFIG" ] || die "station config $CONFIG does not exist"
case "$DATA_DIR" in /*) ;; *) die "--data-dir must be an absolute path, got $DATA_DIR" ;; esac
mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"
ETC="$PREFIX/etc/inspector" SHARE="$PREFIX/share" UNIT_DIR="$PREFIX/lib/systemd/system"

# --- the environment --------------------------------------------------------------------------
LOCK="$REPO/installers/locks/gui.txt"; [ $HEADLESS = 1 ] && LOCK="$REPO/installers/locks/station.txt"
if [ -n "$VENV" ]; then
  VENV="$(cd "$VENV" && pwd)"
  [ -x "$VENV/bin/inspector" ] || die "--venv $VENV has no bin/inspector (install Inspector into it first)"
else
  VENV="$PREFIX/lib/inspector/venv"
  PY="${PYTHON:-python3.11}"
  command -v "$PY" >/dev/null || die "Python 3.11 is required ($PY not found; apt-get install python3.11 python3.11-venv)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  pip() { "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
  echo "install: packages into $VENV (hash-checked: $(basename "$LOCK"))"
  pip install --require-hashes -r "$REPO/installers/locks/build.txt"
  pip install --require-hashes --no-deps -r "$LOCK"
  # Inspector itself: a regular (not editable) install, built with the locked build tools.
  pip install --no-deps --no-build-isolation "$REPO"
fi

# --- files ------------------------------------------------------------------------------------
install -d -m 0755 "$ETC" "$UNIT_DIR" "$SHARE/inspector"
install -m 0644 "$CONFIG" "$ETC/station.yaml"
[ -f "$ETC/inspector.env" ] || install -m 0600 "$HERE/inspector.env.example" "$ETC/inspector.env"  # secrets: kept
rm -rf "$SHARE/inspector/models.new" && cp -r "$REPO/models" "$SHARE/inspector/models.new"
rm -rf "$SHARE/inspector/models" && mv "$SHARE/inspector/models.new" "$SHARE/inspector/models"

fill() {  # template -> file, every @FIELD@ replaced (paths are used literally)
  local esc; esc() { printf '%s' "$1" | sed -e 's/[\/&|]/\\&/g'; }
  sed -e "s|@PREFIX@|$(esc "$PREFIX")|g" -e "s|@VENV@|$(esc "$VENV")|g" -e "s|@USER@|$(esc "$USER_NAME")|g" \
      -e "s|@CONFIG@|$(esc "$ETC/station.yaml")|g" -e "s|@DATA_DIR@|$(esc "$DATA_DIR")|g" \
      -e "s|@REGISTRY@|$(esc "$SHARE/inspector/models")|g" -e "s|@ENV_FILE@|$(esc "$ETC/inspector.env")|g" \
      -e "s|@ICON@|$(esc "$2")|g" "$1"
}
UNIT="$UNIT_DIR/inspector-station.service"
fill "$HERE/inspector-station.service.in" "" > "$UNIT"
chmod 0644 "$UNIT"
if [ $HEADLESS = 0 ]; then
  install -d -m 0755 "$SHARE/applications" "$SHARE/icons/hicolor/scalable/apps"
  install -m 0644 "$HERE/inspector.svg" "$SHARE/icons/hicolor/scalable/apps/inspector.svg"
  # The icon by name when the prefix's share/ is on the icon theme path, else by its full path.
  ICON=inspector
  case "$PREFIX" in /usr|/usr/local) ;; *) ICON="$SHARE/icons/hicolor/scalable/apps/inspector.svg" ;; esac
  fill "$HERE/inspector.desktop.in" "$ICON" > "$SHARE/applications/inspector.desktop"
  chmod 0644 "$SHARE/applications/inspector.desktop"
fi
echo "install: unit $UNIT"
if [ $HEADLESS = 0 ]; then echo "install: desktop entry $SHARE/applications/inspector.desktop"; fi

# --- the service user and systemd ---------------------------------------------------------------
if [ $SYSTEMCTL = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install: not root: create the user '$USER_NAME' and link the unit as root (or pass --no-systemctl)" >&2
    exit 1
  fi
  id -u "$USER_NAME" >/dev/null 2>&1 || useradd --system --home-dir "$DATA_DIR" --no-create-home \
    --shell /usr/sbin/nologin "$USER_NAME"
  chown root:"$USER_NAME" "$ETC/inspector.env" && chmod 0640 "$ETC/inspector.env"
  systemctl link "$UNIT"
  systemctl daemon-reload
  echo "install: start it with: systemctl enable --now inspector-station"
fi
