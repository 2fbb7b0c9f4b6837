"""The README's two commands: the set-up's own lines never reach stdout, so `installers/demo.sh --json`
prints the summary JSON alone there (found by running it from a fresh clone: setup lines came first)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_sends_the_setup_s_output_to_stderr() -> None:
    script = (ROOT / "installers" / "demo.sh").read_text()
    setup = [line for line in script.splitlines() if re.match(r"\s*bash installers/setup\.sh", line)]
    assert setup and all(re.search(r">&2(\s|$)", line) for line in setup), setup
    assert script.rstrip().splitlines()[-1].startswith('exec .venv/bin/inspector demo "$@"')
