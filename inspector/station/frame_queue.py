"""The queues between pipeline stages.

``FrameQueue``: a bounded FIFO that can drop its oldest item and be closed (inspection flow's
inference queue, every record queue). ``LatestPerSource``: monitoring flow's inference queue,
where each source keeps only its own latest frames and the sources are served in turn, so a
camera cannot crowd out another by the phase of its frames against the judge's.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """The queue was closed: no more puts; gets fail once it is empty."""


class FrameQueue(Generic[T]):
    """Bounded FIFO. ``put`` blocks while full (back-pressure); ``put_latest`` drops the oldest.

    ``close()`` wakes every waiter: later puts raise ``QueueClosed``, gets drain what is left
    and then raise it.
    """

    def __init__(self, maxsize: int, name: str = "queue") -> None:
        if maxsize < 1:
            raise ValueError(f"{name}: maxsize must be at least 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self.name = name
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)  # a deque's len is atomic; a gauge needs no lock

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> float:
        """Append, waiting while full; returns the seconds spent waiting."""
        t0 = time.monotonic()
        with self._cond:
            while len(self._items) >= self.maxsize and not self._closed:
                self._cond.wait()
            if self._closed:
                raise QueueClosed(f"{self.name} is closed")
            self._append(item)
        return time.monotonic() - t0

    def put_latest(self, item: T, key: Hashable = None) -> T | None:
        """Append without waiting; when full, remove and return the oldest item (the drop).
        ``key`` (the source) is not used here: see :class:`LatestPerSource`."""
        with self._cond:
            if self._closed:
                raise QueueClosed(f"{self.name} is closed")
            dropped = self._items.popleft() if len(self._items) >= self.maxsize else None
            self._append(item)
        return dropped

    def _append(self, item: T) -> None:
        self._items.append(item)
        self.high_water = max(self.high_water, len(self._items))
        self._cond.notify_all()

    def get_batch(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Wait for at least one item (up to ``timeout``), then take what is there, up to
        ``max_items``. ``[]`` on timeout; ``QueueClosed`` once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait_for(lambda: self._items or self._closed, timeout)
            if not self._items:
                if self._closed:
                    raise QueueClosed(f"{self.name} is closed")
                return []
            out = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
            self._cond.notify_all()  # room for a waiting put
        return out

    def drain(self) -> list[T]:
        """Take everything now, without waiting."""
        with self._cond:
            out = list(self._items)
            self._items.clear()
            self._cond.notify_all()
        return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class LatestPerSource(FrameQueue[T]):
    """Monitoring flow's inference queue: every source (``key``) keeps its latest ``per_source``
    items (``maxsize`` shared out among ``sources``, at least one each); ``put_latest`` drops
    that source's own oldest, never another's; ``get_batch`` serves the sources round-robin,
    each in its own order. ``put`` waits while the source's slots are full. ``close`` as for
    :class:`FrameQueue`."""

    def __init__(self, maxsize: int, name: str = "queue", sources: int = 1) -> None:
        super().__init__(maxsize, name)
        self.per_source = max(1, self.maxsize // max(1, int(sources)))
        self._slots: dict[Hashable, deque[T]] = {}
        self._turn: deque[Hashable] = deque()  # sources holding items, in serving order
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def put(self, item: T, key: Hashable = None) -> float:
        t0 = time.monotonic()
        with self._cond:
            slot = self._slot(key)
            while len(slot) >= self.per_source and not self._closed:
                self._cond.wait()
            if self._closed:
                raise QueueClosed(f"{self.name} is closed")
            self._add(key, slot, item)
        return time.monotonic() - t0

    def put_latest(self, item: T, key: Hashable = None) -> T | None:
        with self._cond:
            if self._closed:
                raise QueueClosed(f"{self.name} is closed")
            slot = self._slot(key)
            if len(slot) >= self.per_source:
                dropped = slot.popleft()  # this source's oldest: it stays in its turn
                slot.append(item)
                return dropped
            self._add(key, slot, item)
        return None

    def _slot(self, key: Hashable) -> deque[T]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = deque()
        return slot

    def _add(self, key: Hashable, slot: deque[T], item: T) -> None:
        if not slot:
            self._turn.append(key)
        slot.append(item)
        self._n += 1
        if self._n > self.high_water:
            self.high_water = self._n
        self._cond.notify_all()

    def get_batch(self, max_items: int, timeout: float | None = None) -> list[T]:
        with self._cond:
            if not self._n and not self._closed:
                self._cond.wait_for(lambda: self._n or self._closed, timeout)
            if not self._n:
                if self._closed:
                    raise QueueClosed(f"{self.name} is closed")
                return []
            out = self._take(max_items)
            self._cond.notify_all()  # room for a waiting put
        return out

    def drain(self) -> list[T]:
        with self._cond:
            out = self._take(self._n)
            self._cond.notify_all()
        return out

    def _take(self, n: int) -> list[T]:
        out: list[T] = []
        turn, slots = self._turn, self._slots
        while turn and len(out) < n:
            key = turn.popleft()
            slot = slots[key]
            out.append(slot.popleft())
            if slot:
                turn.append(key)  # served: to the back of the turn
        self._n -= len(out)
        return out
