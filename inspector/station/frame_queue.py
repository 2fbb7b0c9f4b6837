"""A bounded FIFO between pipeline stages that can drop its oldest item and be closed."""

from __future__ import annotations

import threading
import time
from collections import deque
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

    def put_latest(self, item: T) -> T | None:
        """Append without waiting; when full, remove and return the oldest item (the drop)."""
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
