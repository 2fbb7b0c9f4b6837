#!/usr/bin/env bash
# One command for a fresh machine: set up, then run the whole test suite (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash installers/setup.sh
# The MQTT tests start a real Mosquitto broker on loopback (they skip, saying so, without one).
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
  else
    echo "test: mosquitto is not installed; the MQTT delivery tests will be skipped (apt-get install mosquitto)" >&2
  fi
fi
# The installer tests check the systemd unit with systemd-analyze and the desktop entry with
# desktop-file-validate (they skip, saying so, without them).
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v desktop-file-validate >/dev/null || missing+=(desktop-file-utils)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test: ${missing[*]} not installed; the installer checks that need them will be skipped" >&2
  fi
fi
source installers/env.sh
export QT_QPA_PLATFORM=offscreen
# pytest exits 5 when it collected no tests: that is a failure here too (set -e passes it on).
exec .venv/bin/python -m pytest "$@"
