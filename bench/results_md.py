"""Sections of bench/RESULTS.md that a benchmark script owns and rewrites between its own markers."""

from __future__ import annotations

from pathlib import Path


def write_section(md: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (appended when absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = md.read_text(encoding="utf-8") if md.exists() else "# Benchmark results\n"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    if start in body and end in body:
        head, rest = body.split(start, 1)
        body = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        body = body.rstrip("\n") + "\n\n" + block
    md.write_text(body, encoding="utf-8")
