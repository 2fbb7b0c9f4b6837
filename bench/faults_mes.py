"""Fault case ``mes``: the MES receiver is down for an hour of simulated time, the station restarts
in the middle; every unit reaches the receiver once the receiver is back, none twice.

The pieces are the real ones: the store's ``StoreWriter`` with the outbox hook (each unit's message
commits in its decision's transaction), the real ``Forwarder`` with its default back-off
(0.5 s doubling to 60 s, jitter) and ``HttpTransport``, and a real HTTP server on 127.0.0.1
(``tests/helpers/mes_testkit.HttpReceiver``: applies each message once by its key, counts arrivals).

Simulated time: the forwarder reads ``time.monotonic()`` / ``time.time()`` and sleeps through its
own ``_sleep``; it has no clock parameter, so this case replaces the forwarder module's ``time``
with a simulated clock while it runs and drives the forwarder's step (``Forwarder._step``, the body
of its thread loop) itself, advancing the clock by whatever the forwarder asks to sleep (or up to
the next unit the line produces). An hour of outage then takes seconds of wall time, with the
back-off, the retry schedule and the link state exactly as the product computes them.
(A product hook, ``Forwarder(clock=..., sleep=...)``, would make this patch unnecessary.)

Timeline (default size; ``small``: a 10-minute outage, 2 minutes around it): a unit every 10 s;
the receiver is up for 5 minutes, then refuses connections for an hour; half-way the station
restarts (writer and forwarder closed, new ones on the same database: back-off state lost, pending
rows resumed from the outbox); then the
receiver is back, and the first message it applies loses its acknowledgement (the connection is
cut after applying), so exactly one redelivery is expected; production goes on 5 more minutes.

Figures: ``offered`` = units committed with their message; ``recorded`` = distinct units the
receiver applied; ``lost`` = offered but never applied; ``doubled`` = units that arrived more than
once other than the one whose acknowledgement was cut (the station sent again what had been
acknowledged); ``time_to_detect_s`` = simulated seconds from the outage to the forwarder reporting
the link ``down``. ``details``: simulated seconds from the receiver's return to the first delivery
(at most the back-off cap) and to the backlog drained; delivery attempts during the outage.

Self-test breakages (``unsafe``): ``ack-on-failure`` (a transport that reports failed deliveries
as delivered: units lost), ``resend-after-restart`` (the restarted station puts every delivered
row back in the queue: units doubled).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Sequence

from bench.faults_common import CaseResult, check_size, check_unsafe

NAME = "mes"
UNSAFE = ("ack-on-failure", "resend-after-restart")
SIZES = {"small": {"outage_s": 600.0, "after_s": 120.0, "every_s": 10.0},
         "default": {"outage_s": 3600.0, "after_s": 300.0, "every_s": 10.0}}


class SimClock:
    """Simulated seconds; ``monotonic`` and ``time`` both advance with ``advance``."""

    EPOCH = 1_775_000_000.0

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def time(self) -> float:
        return self.EPOCH + self.t

    def advance_to(self, t: float) -> None:
        self.t = max(self.t, t)


class _LyingTransport:
    """Self-test: reports every delivery as acknowledged, whatever the receiver did."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.kinds = inner, inner.name, inner.kinds

    def deliver(self, rows: Sequence[Any]) -> Any:
        from inspector.mes.forwarder import Delivery

        self.inner.deliver(rows)
        return Delivery(len(rows))

    def close(self) -> None:
        self.inner.close()


def run(size: str = "default", *, seed: int = 0, unsafe: str | None = None) -> CaseResult:
    check_size(size)
    check_unsafe(unsafe, UNSAFE, NAME)
    from helpers.mes_testkit import HttpReceiver, make_record
    from inspector.mes import forwarder as fwd_module
    from inspector.mes import outbox
    from inspector.mes.forwarder import Forwarder, ForwarderSettings
    from inspector.mes.http import HttpTransport
    from inspector.store.db import open_db
    from inspector.store.writer import StoreWriter

    p = SIZES[size]
    outage_s, every = p["outage_s"], p["every_s"]
    down_at_s = p["after_s"]                 # the line runs with the receiver up first
    up_at_s = down_at_s + outage_s
    end_s = up_at_s + p["after_s"]
    restart_at = down_at_s + outage_s / 2
    res = CaseResult(NAME)
    t0 = time.monotonic()
    clock = SimClock()
    receiver = HttpReceiver().start()
    # tmpfs where there is one: this case is about delivery, not fsync (the kill case covers that)
    shm = Path("/dev/shm")
    tmp = tempfile.TemporaryDirectory(prefix="inspector-faults-mes-", dir=shm if shm.is_dir() else None)
    quiet = logging.getLogger("inspector.mes")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # one warning per refused attempt otherwise
    db = Path(tmp.name) / "mes.sqlite"
    settings = ForwarderSettings(retention=None)  # the product's default back-off
    real_time = fwd_module.time
    sim_time = types.SimpleNamespace(monotonic=clock.monotonic, time=clock.time, sleep=time.sleep)
    fwd_module.time = sim_time  # type: ignore[assignment]
    state: dict[str, Any] = {"n": 0, "run": "run-a", "next_unit": 0.0}
    offered: list[str] = []
    link_log: list[tuple[float, str]] = []
    attempts = {"outage": 0}
    cut_key: list[str] = []
    writer = conn = fw = None

    def new_station(run_id: str) -> tuple[Any, Any, Any]:
        w = StoreWriter(db, None, batch_wait_s=0.0, outbox_hook=outbox.write_drafts).start()
        transport: Any = HttpTransport("http", receiver.url, timeout_s=2.0)
        if unsafe == "ack-on-failure":
            transport = _LyingTransport(transport)
        f = Forwarder(db, transport, settings)  # driven step by step below, never started as a thread
        real_deliver = transport.deliver

        def counting(rows: Sequence[Any]) -> Any:
            if down_at_s <= clock.t < up_at_s:
                attempts["outage"] += 1
            return real_deliver(rows)

        transport.deliver = counting
        c = open_db(db)
        return w, f, c

    def produce_until(t: float) -> None:
        """The line makes a unit every ``every`` s up to sim time ``t`` (committed with its message)."""
        nonlocal writer
        while state["next_unit"] <= min(t, end_s):
            clock.advance_to(state["next_unit"])
            i = state["n"]
            rec = make_record(state["run"], i, i % 5, ["http"])
            writer.submit(rec).result(30)
            offered.append(rec.outbox[0].key)
            state["n"] += 1
            state["next_unit"] += every
            if fw is not None:
                fw.notify()

    try:
        writer, fw, conn = new_station("run-a")
        restarted = receiver_up = receiver_down = False
        drained_at: float | None = None
        steps = 0
        while True:
            now = clock.t
            if not restarted and now >= restart_at:
                # Station restart mid-outage: everything in memory (back-off, link state) is gone.
                fw.transport.close()
                conn.close()
                writer.close(30)
                state["run"] = "run-b"
                writer, fw, conn = new_station("run-b")
                restarted = True
                if unsafe == "resend-after-restart":
                    conn.execute("UPDATE outbox SET delivered = NULL")
            if not receiver_down and now >= down_at_s:
                receiver.stop()
                receiver_down = True
            if not receiver_up and now >= up_at_s:
                receiver.start()
                receiver_up = True
                with receiver.lock:  # the first message applied after the outage loses its answer
                    nxt = outbox.pending(conn, "http", 1)
                    if nxt:
                        receiver.lose_ack_once.add(nxt[0].key)
                        cut_key.append(nxt[0].key)
            empty = not outbox.pending(conn, "http", 1)
            if receiver_up and empty and drained_at is None:
                drained_at = clock.t
            if now >= end_s and empty:
                break
            if now > end_s + 3600 or steps > 1_000_000:
                res.fail(f"the outbox did not drain within an hour after the line stopped (sim t={now:.0f} s)")
                break

            def sleep(seconds: float) -> None:
                # The forwarder waits; the line goes on meanwhile (its notify would wake the real thread).
                target = clock.t + max(0.0, seconds)
                for edge in (down_at_s, restart_at, up_at_s):
                    if clock.t < edge < target:
                        target = edge
                if state["next_unit"] <= min(target, end_s):
                    produce_until(state["next_unit"])
                else:
                    clock.advance_to(target if target > clock.t else clock.t + 0.001)

            fw._sleep = sleep  # type: ignore[method-assign]
            produce_until(clock.t)
            fw._step(conn)
            steps += 1
            link = fw.stats()["link"]
            if not link_log or link_log[-1][1] != link:
                link_log.append((clock.t, link))
    finally:
        fwd_module.time = real_time  # type: ignore[assignment]
        quiet.setLevel(level)
        for closer in (lambda: fw.transport.close() if fw else None, lambda: conn.close() if conn else None,
                       lambda: writer.close(30) if writer else None, receiver.stop):
            try:
                closer()
            except Exception:  # noqa: BLE001
                pass

    with receiver.lock:
        arrivals = dict(receiver.arrivals)
        applied = [m["message_id"] for m in receiver.applied]
    tmp.cleanup()
    res.offered = len(offered)
    applied_set = set(applied)
    res.recorded = len(applied_set & set(offered))
    res.lost = sum(1 for k in offered if k not in applied_set)
    again = [k for k, n in arrivals.items() if n > 1]
    res.doubled = (sum(1 for k in again if k not in cut_key)
                   + sum(max(0, arrivals[k] - 2) for k in again if k in cut_key))
    down_at = next((t - down_at_s for t, s in link_log if s == "down" and t >= down_at_s), None)
    up_at = next((t - up_at_s for t, s in link_log if s == "up" and t >= up_at_s), None)
    res.time_to_detect_s = down_at
    res.details = {
        "simulated_outage_s": outage_s, "outage_from_s": down_at_s, "station_restart_at_s": restart_at,
        "units": res.offered,
        "retries_during_outage": attempts["outage"], "redelivered_after_cut_ack": sum(arrivals.get(k, 0) - 1
                                                                                       for k in cut_key),
        "first_delivery_after_return_s": None if up_at is None else round(up_at, 1),
        "backlog_drained_after_return_s": None if drained_at is None else round(drained_at - up_at_s, 1),
        "link_changes": [(round(t, 1), s) for t, s in link_log][:12],
        "backoff": {"initial_s": settings.backoff.initial_s, "max_s": settings.backoff.max_s},
    }
    if down_at is None or down_at > 5.0:
        res.fail(f"the forwarder did not report the link down within 5 s of the outage (at {down_at})")
    if res.details["retries_during_outage"] > outage_s / 10:
        res.fail(f"{attempts['outage']} attempts in {outage_s:.0f} s: the back-off does not back off")
    if cut_key and arrivals.get(cut_key[0], 0) < 2:
        res.fail("the message whose acknowledgement was cut was not delivered again")
    res.notes = (f"receiver refused connections for {outage_s / 60:.0f} simulated minutes, station restarted "
                 f"at {restart_at / 60:.0f} min; real StoreWriter + Forwarder + HttpTransport + HTTP server, "
                 "simulated clock patched into inspector.mes.forwarder (no clock hook in the product)")
    return res.finish(t0)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small").as_dict(), indent=1))
