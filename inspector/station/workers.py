"""The pipeline's threads: setup -> loop -> teardown, with a stop event.

``QueueWorker`` is a stage that takes items from a ``FrameQueue`` (inference: frames in batches;
record: results); the capture worker, which needs the pipeline's reservations, lives with the
pipeline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from inspector.station.frame_queue import FrameQueue, QueueClosed

POLL_S = 0.1  # how often blocked workers look at their stop event

T = TypeVar("T")


class Worker(threading.Thread):
    """A daemon thread (a model stuck forever must not keep the process alive) that runs
    ``setup()``, then ``step()`` until it returns False or ``stop_event`` is set, then
    ``teardown()`` whatever happened. An exception is kept in ``error`` and reported."""

    def __init__(self, name: str, on_error: Callable[[Worker, BaseException], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._on_error = on_error

    def setup(self) -> None:
        pass

    def step(self) -> bool:
        raise NotImplementedError

    def teardown(self) -> None:
        pass

    def run(self) -> None:
        try:
            self.setup()
            while not self.stop_event.is_set() and self.step():
                pass
        except BaseException as e:  # noqa: BLE001 - reported, never swallowed
            self.error = e
            self._on_error(self, e)
        finally:
            try:
                self.teardown()
            except BaseException as e:  # noqa: BLE001
                self._on_error(self, e)


class QueueWorker(Worker, Generic[T]):
    """Hands up to ``max_items`` items at a time from ``queue`` to ``handle``; ends once the queue
    is closed and empty, then calls ``finished`` (also after a failure)."""

    def __init__(self, name: str, queue: FrameQueue[T], max_items: int, handle: Callable[[list[T]], None],
                 finished: Callable[[], None], on_error: Callable[[Worker, BaseException], None]) -> None:
        super().__init__(name, on_error)
        self.queue = queue
        self.max_items = max_items
        self._handle = handle
        self._finished = finished

    def step(self) -> bool:
        try:
            items = self.queue.get_batch(self.max_items, timeout=POLL_S)
        except QueueClosed:
            return False
        if items:
            self._handle(items)
        return True

    def teardown(self) -> None:
        self._finished()
