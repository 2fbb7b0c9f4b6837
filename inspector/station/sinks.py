"""The one interface of the record stage's sinks (store, GUI bridge, run tally).

The pipeline calls every method of ``ResultSink`` on every sink, in order, on its record thread;
nothing is probed. A sink that has nothing to do for a call implements it as a no-op. A plain
``DecisionSink`` (``accept(frame, decision)``, :mod:`inspector.core.ports`) is adapted once,
where the pipeline is wired, with :class:`DecisionSinkAdapter`.

The MES hub is no sink of its own: its messages must commit in the same transaction as the
decision they report (the transactional outbox), so the store sink asks it for them
(:class:`inspector.station.store_sink.StoreSink`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from inspector.core.ports import DecisionSink
from inspector.core.site.types import IncidentEvent
from inspector.station.inspection import WaferSummary
from inspector.station.judgement import FrameResult


class ResultSink(Protocol):
    """Receives each judged frame and each judged wafer; flushed once when the pipeline stops.

    ``critical``: when this sink fails, the station stops taking new units (frames already taken
    still go to every sink): decisions nobody can trace must not pile up. ``name`` names it in
    errors. Return values of ``accept_*`` are the sink's own business (the store's is a future);
    the pipeline ignores them.
    """

    name: str
    critical: bool

    def accept_result(self, result: FrameResult) -> object:
        """One frame with its decision and boxes, in capture order."""
        ...

    def accept_wafer(self, summary: WaferSummary) -> object:
        """A completed wafer's summary, after the results of all its dies."""
        ...

    def accept_events(self, events: Sequence[IncidentEvent]) -> object:
        """Incident events tied to no frame (those the run's end closes), after every result; called
        only when there are some."""
        ...

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything accepted so far is delivered (or ``timeout`` seconds passed)."""
        ...


class DecisionSinkAdapter:
    """A ``DecisionSink`` as a ``ResultSink``: frames go to ``accept(frame, decision)``; wafers,
    run-end incident events and flushes have nowhere to go."""

    def __init__(self, sink: DecisionSink, name: str | None = None, *, critical: bool = False) -> None:
        self.sink = sink
        self.name = name or type(sink).__name__
        self.critical = critical

    def accept_result(self, result: FrameResult) -> None:
        self.sink.accept(result.frame, result.decision)

    def accept_wafer(self, summary: WaferSummary) -> None:
        pass

    def accept_events(self, events: Sequence[IncidentEvent]) -> None:
        pass

    def flush(self, timeout: float | None = None) -> None:
        pass


__all__ = ["DecisionSinkAdapter", "ResultSink"]
