#!/usr/bin/env bash
# One command for a fresh machine: set up, then run the wafer demo station (the operator app with a display, else headless).
set -euo pipefail
cd "$(dirname "$0")/.."
bash installers/setup.sh >&2  # its lines on stderr: with --json, stdout holds the JSON alone
source installers/env.sh
exec .venv/bin/inspector demo "$@"
