#!/usr/bin/env bash
# One command for a fresh machine: set up, then run the whole test suite (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash installers/setup.sh
source installers/env.sh
export QT_QPA_PLATFORM=offscreen
# pytest exits 5 when it collected no tests: that is a failure here too (set -e passes it on).
exec .venv/bin/python -m pytest "$@"
