#!/usr/bin/env bash
# Regenerates the hash-pinned lock files in installers/locks/ from pyproject.toml, pinned to the
# tested versions of installers/constraints.txt (run it after changing either).
# Target: Linux x86_64 (glibc >= 2.36), CPython 3.11. Needs `uv` (pip install uv, in any scratch venv):
#   UV=/path/to/uv bash installers/locks/compile.sh
#
# The locks list only the packages the set-up installs: opencv-python (the GUI build that
# ultralytics and trackers declare) is dropped by overrides.txt, opencv-python-headless stays.
# torch / torchvision resolve to the builds on this machine's disk (pip's extra index in
# /etc/pip.conf: /opt/pypi-more), so their hashes are those exact wheels.
set -euo pipefail
cd "$(dirname "$0")/../.."
UV="${UV:-uv}"
common=(--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_36
        --index-url https://pypi.org/simple
        --extra-index-url file:///opt/pypi-more/simple --extra-index-url file:///opt/pypi/simple
        --find-links /opt/wheels --index-strategy unsafe-best-match
        -c installers/constraints.txt --override installers/locks/overrides.txt
        --custom-compile-command "bash installers/locks/compile.sh" --quiet)
"$UV" pip compile "${common[@]}" pyproject.toml --extra openvino -o installers/locks/station.txt
"$UV" pip compile "${common[@]}" pyproject.toml --extra gui --extra openvino -o installers/locks/gui.txt
"$UV" pip compile "${common[@]}" pyproject.toml --extra train -o installers/locks/train.txt
"$UV" pip compile "${common[@]}" pyproject.toml --extra gui --extra train --extra dev --extra openvino -o installers/locks/dev.txt
# The build tools, installed first (and used without build isolation to install the project itself).
"$UV" pip compile "${common[@]}" --allow-unsafe -c installers/locks/dev.txt installers/locks/build.in \
  -o installers/locks/build.txt
