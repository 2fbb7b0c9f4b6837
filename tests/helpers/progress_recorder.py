"""A ``Progress`` that remembers what library code reported, for tests to check."""

from __future__ import annotations

from inspector.util.progress import Progress


class RecordingProgress(Progress):
    """Keeps the last (done, total) of every stage it is given."""

    def __init__(self) -> None:
        self.stages: dict[str, tuple[int, int | None]] = {}

    def _update(self, stage, final: bool) -> None:
        self.stages[stage.name] = (stage.done, stage.total)

    def _finish(self, stage, failed: bool) -> None:
        self._update(stage, True)
