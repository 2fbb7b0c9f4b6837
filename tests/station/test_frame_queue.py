"""The bounded queue between pipeline stages: back-pressure, drop-oldest, close."""

from __future__ import annotations

import threading
import time

import pytest

from inspector.station.frame_queue import FrameQueue, QueueClosed


def test_queue_blocks_drops_oldest_and_closes():
    q = FrameQueue(2, "q")
    q.put(1)
    q.put(2)
    assert q.put_latest(3) == 1 and q.get_batch(5) == [2, 3]
    q.put(4)
    q.put(5)
    t = threading.Thread(target=q.put, args=(6,))
    t.start()
    time.sleep(0.05)
    assert t.is_alive()  # full: the producer waits
    assert q.get_batch(1) == [4]
    t.join(1)
    assert not t.is_alive() and len(q) == 2 and q.high_water == 2
    q.close()
    with pytest.raises(QueueClosed):
        q.put(7)
    assert q.get_batch(5) == [5, 6]  # what was accepted is still handed out
    with pytest.raises(QueueClosed):
        q.get_batch(1)
