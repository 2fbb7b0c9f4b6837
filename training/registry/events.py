"""The registry's event log ``events.jsonl``: every change, one hash-chained JSON object a line.

Line format (fixed: the shipped logs were written in it, and changing it would break their hashes):
each line is the strict canonical JSON (``inspector.util.canonical``) of an event carrying
``seq`` (its 1-based line number), ``prev`` (sha256 of the previous line's text, ``GENESIS`` for
the first) and ``hash`` (sha256 of the canonical JSON of the event without ``hash``, ``prev``
included). Lines are appended and fsync'd by writers holding the registry's lock.

The chain is walked with ``inspector.util.hashchain.walk``: a line's stored hash is the sha256 of
its text (what the next line names as ``prev``), and its computed hash the sha256 of the line
rebuilt from its content, so the two agree only when ``hash`` matches the content and the line is
canonical. ``hashchain.link_hash`` (sha256 of prev + content) is not the form these lines were
written with, so it is not used here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.runtime.registry import EVENTS_FILE, RegistryIntegrityError
from inspector.util.canonical import canonical_json, sha256_text
from inspector.util.hashchain import GENESIS, Link, walk


@dataclass(frozen=True)
class EventsCheck:
    """Result of checking ``events.jsonl``: ``bad_line`` is 1-based, None when the chain holds."""

    ok: bool
    lines: int
    bad_line: int | None = None
    problem: str | None = None
    head: str = GENESIS  # sha256 of the last good line


def event_lines(path: Path) -> tuple[list[str], bool]:
    """The log's lines and whether the last one is complete (ends with a newline)."""
    if not path.exists():
        return [], True
    text = path.read_bytes().decode("utf-8", errors="replace")
    if not text:
        return [], True
    complete = text.endswith("\n")
    lines = text.split("\n")
    if complete:
        lines = lines[:-1]
    return lines, complete


def line_head(lines: list[str], count: int) -> str:
    """The chain head after the first ``count`` lines: sha256 of line ``count`` (GENESIS for none)."""
    return sha256_text(lines[count - 1]) if 0 < count <= len(lines) else GENESIS


def _event_line(body: dict[str, Any]) -> str:
    """The canonical line of an event (``seq`` and ``prev`` included) with its own ``hash`` added."""
    return canonical_json({**body, "hash": sha256_text(canonical_json(body, strict=True))}, strict=True)


def _unreadable(line: str) -> str | None:
    """Why a line cannot be a link at all (not JSON, not an event, not canonical-able), else None."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return f"not valid JSON ({e.msg}); the line was edited or corrupted"
    if not isinstance(obj, dict) or not isinstance(obj.get("hash"), str) or not isinstance(obj.get("prev"), str):
        return "not an event (needs 'prev' and 'hash'); the line was edited"
    try:
        canonical_json(obj, strict=True)
    except ValueError as e:
        return f"not canonical JSON ({e}); the line was edited"
    return None


def _broken_link(line: str, head: str) -> str:
    """What is wrong with a line the walk stopped at (``head``: the hash of the line before it)."""
    obj = json.loads(line)
    if obj["prev"] != head:
        return "'prev' does not match the line before it: a line was removed, inserted or reordered"
    body = {k: v for k, v in obj.items() if k != "hash"}
    if sha256_text(canonical_json(body, strict=True)) != obj["hash"]:
        return "its content does not match its hash: the line was edited"
    return "not in canonical form: the line was re-written by hand"


def verify_events(path: Path | str) -> EventsCheck:
    """Check the hash chain of an ``events.jsonl``; the result names the first bad line (1-based)."""
    path = Path(path)
    lines, complete = event_lines(path)
    stopped: list[tuple[int, str]] = []  # the first line that is not a link, and why

    def links() -> Iterator[Link]:
        for i, line in enumerate(lines, start=1):
            problem = ("incomplete last line (an interrupted write, or the file was cut)"
                       if i == len(lines) and not complete else _unreadable(line))
            if problem:
                stopped.append((i, problem))
                return
            obj = json.loads(line)
            rebuilt = _event_line({k: v for k, v in obj.items() if k != "hash"})
            yield Link(obj["prev"], sha256_text(line), sha256_text(rebuilt))
            # resumed only once the walk accepted this line's chaining and content
            if obj.get("seq") != i:
                stopped.append((i, f"sequence number {obj.get('seq')!r} where {i} was expected: lines were "
                                   "removed or inserted"))
                return

    check = walk(links())
    if not check.ok:
        n = check.bad_link
        assert n is not None
        return EventsCheck(False, len(lines), n, f"{path} line {n}: {_broken_link(lines[n - 1], check.head)}",
                           check.head)
    if stopped:
        n, problem = stopped[0]
        return EventsCheck(False, len(lines), n, f"{path} line {n}: {problem}", line_head(lines, n - 1))
    return EventsCheck(True, len(lines), None, None, check.head)


def append_event(root: Path, event: dict[str, Any]) -> tuple[str, int]:
    """Append one chained, fsync'd event; returns (sha256 of the new line, line count). Caller holds the lock."""
    path = root / EVENTS_FILE
    lines, complete = event_lines(path)
    if not complete:
        raise RegistryIntegrityError(f"{path} ends with an incomplete line; check it with "
                                     "`inspector-train models verify` before recording anything else")
    body = {**event, "seq": len(lines) + 1, "prev": line_head(lines, len(lines))}
    line = _event_line(body)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    return sha256_text(line), len(lines) + 1


def read_events(path: Path) -> list[dict[str, Any]]:
    """All events, oldest first (not verified; see ``verify_events``)."""
    lines, _ = event_lines(path)
    return [json.loads(line) for line in lines if line.strip()]
