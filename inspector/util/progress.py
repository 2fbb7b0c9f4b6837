"""Progress of long work, reported the way users of good command-line tools expect.

Library code takes a :class:`Progress` argument (default :data:`NO_PROGRESS`) and reports through
it; the command decides how it shows, with :func:`make_progress`:

- ``auto``: a tqdm bar on stderr when stderr is a terminal, nothing when it is piped;
- ``bar``: always a bar; ``none``: nothing;
- ``json``: one JSON object per line on stderr, for programs (the operator app reads these):
  ``{"progress": "train", "done": 3, "total": 30, "unit": "epoch", "elapsed_s": 12.5, ...metrics}``.
  Lines are throttled to a few per second; the first and the last line of a stage always come.

Progress is reporting only: results still travel as return values.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, Literal, TextIO

Mode = Literal["auto", "bar", "json", "none"]
MODES: tuple[str, ...] = ("auto", "bar", "json", "none")
_JSON_INTERVAL_S = 0.25


class Stage:
    """One stage of work (``with progress.stage("evaluate", total=n) as s: ... s.advance()``)."""

    def __init__(self, owner: "Progress", name: str, total: int | None, unit: str) -> None:
        self.owner, self.name, self.total, self.unit = owner, name, total, unit
        self.done = 0
        self.metrics: dict[str, Any] = {}
        self.t0 = time.monotonic()

    def advance(self, n: int = 1, **metrics: Any) -> None:
        """``n`` more units done; ``metrics`` (e.g. ``loss=0.3``) travel with the report."""
        self.done += n
        self.metrics.update(metrics)
        self.owner._update(self, final=False)

    def update(self, *, done: int | None = None, total: int | None = None, **metrics: Any) -> None:
        """Set the count or total outright (e.g. an epoch reported by a trainer) and/or metrics."""
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        self.metrics.update(metrics)
        self.owner._update(self, final=False)

    def __enter__(self) -> "Stage":
        self.owner._start(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.owner._finish(self, failed=exc_type is not None)


class Progress:
    """Reports nothing: the base for the real reporters, and what library code gets by default."""

    def stage(self, name: str, total: int | None = None, unit: str = "it") -> Stage:
        return Stage(self, name, total, unit)

    def _start(self, stage: Stage) -> None: ...

    def _update(self, stage: Stage, final: bool) -> None: ...

    def _finish(self, stage: Stage, failed: bool) -> None: ...


NO_PROGRESS = Progress()


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else None
    if hasattr(v, "item") and callable(v.item):  # numpy scalar
        return _clean(v.item())
    return v


class JsonProgress(Progress):
    """One JSON object per line (throttled), for programs that draw progress themselves."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = _JSON_INTERVAL_S) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self._last: dict[int, float] = {}

    def _emit(self, stage: Stage, event: str) -> None:
        rec: dict[str, Any] = {"progress": stage.name, "event": event, "done": stage.done, "total": stage.total,
                               "unit": stage.unit, "elapsed_s": round(time.monotonic() - stage.t0, 3)}
        rec.update({k: _clean(v) for k, v in stage.metrics.items() if k not in rec})
        stream = self.stream or sys.stderr
        stream.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
        stream.flush()

    def _start(self, stage: Stage) -> None:
        self._last[id(stage)] = time.monotonic()
        self._emit(stage, "start")

    def _update(self, stage: Stage, final: bool) -> None:
        now = time.monotonic()
        if now - self._last.get(id(stage), 0.0) >= self.interval_s or (stage.total and stage.done >= stage.total):
            self._last[id(stage)] = now
            self._emit(stage, "update")

    def _finish(self, stage: Stage, failed: bool) -> None:
        self._last.pop(id(stage), None)
        self._emit(stage, "failed" if failed else "end")


class BarProgress(Progress):
    """A tqdm bar per stage on stderr."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._bars: dict[int, Any] = {}

    def _start(self, stage: Stage) -> None:
        from tqdm import tqdm  # lazy: a piped command never pays for it

        self._bars[id(stage)] = tqdm(total=stage.total, desc=stage.name, unit=stage.unit, leave=True,
                                     file=self.stream or sys.stderr, dynamic_ncols=True)

    def _update(self, stage: Stage, final: bool) -> None:
        bar = self._bars.get(id(stage))
        if bar is None:
            return
        if stage.total != bar.total:
            bar.total = stage.total
        bar.n = stage.done
        if stage.metrics:
            bar.set_postfix({k: _clean(v) for k, v in stage.metrics.items()}, refresh=False)
        bar.refresh()

    def _finish(self, stage: Stage, failed: bool) -> None:
        bar = self._bars.pop(id(stage), None)
        if bar is not None:
            bar.n = stage.done
            bar.close()


def make_progress(mode: str = "auto", stream: TextIO | None = None) -> Progress:
    """The reporter for ``mode`` (auto / bar / json / none); ``auto`` shows a bar only on a terminal."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "json":
        return JsonProgress(stream)
    if mode == "bar":
        return BarProgress(stream)
    if mode == "auto":
        s = stream or sys.stderr
        return BarProgress(stream) if getattr(s, "isatty", lambda: False)() else NO_PROGRESS
    return NO_PROGRESS
