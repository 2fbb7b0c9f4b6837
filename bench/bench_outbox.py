"""MES outbox: how fast a backlog drains after an outage, and whether draining slows the store.

1. ``drain``: ``--backlog`` pending outbox rows (an outage's worth of unit results) are delivered
   by one forwarder to a local HTTP server (keep-alive, 200 after reading the body) and/or a file
   drop (write, fsync, rename, folder fsync per batch); messages per second until the outbox is empty.
2. ``store``: decisions per second the StoreWriter commits (realistic records, each with its
   outbox row in the same transaction), first alone, then while a forwarder drains a backlog of
   the same database concurrently. The ratio shows what the drain costs the station.

    python bench/bench_outbox.py [--backlog 100000] [--decisions 5000] [--transport http|filedrop|both] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import subprocess
import tempfile
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_store  # noqa: E402
from inspector.mes import outbox  # noqa: E402
from inspector.mes.filedrop import FileDropTransport  # noqa: E402
from inspector.mes.forwarder import Backoff, Forwarder, ForwarderSettings  # noqa: E402
from inspector.mes.http import HttpTransport  # noqa: E402
from inspector.mes.outbox import Draft  # noqa: E402
from inspector.mes.payload import unit_payload  # noqa: E402
from inspector.store.db import open_db, transaction  # noqa: E402
from inspector.store.writer import DecisionRecord, StoreWriter  # noqa: E402

NAMES = bench_store.NAMES
SETTINGS = ForwarderSettings(backoff=Backoff(0.05, 1.0), batch=500, poll_s=0.05)


def records(n: int, run: str, transports: list[str]) -> list[DecisionRecord]:
    """bench_store's decision records (320 x 320 frames, images not stored), each with its unit
    message for every transport, as the station's outbox hook would add them."""
    out = []
    for rec in bench_store.records(n, run, 320):
        body = unit_payload(rec.frame, rec.decision, station="bench", run_id=run, class_names=NAMES,
                            pixel_size_um=78.125)
        drafts = tuple(Draft(t, body["message_id"], body["stream"], "unit", body) for t in transports)
        out.append(replace(rec, image=False, outbox=drafts))
    return out


def backlog(db: Path, n: int, transport: str) -> None:
    """n pending rows as an outage leaves them (bodies of realistic size, ~1.5 kB)."""
    rec = records(1, "tmpl", [transport])[0]
    body = dict(rec.outbox[0].body)
    conn = open_db(db)
    with transaction(conn):
        for start in range(0, n, 10_000):
            drafts = []
            for i in range(start, min(n, start + 10_000)):
                b = {**body, "message_id": f"bench/backlog/{i}", "stream": f"L0/W{i // 89}"}
                drafts.append(Draft(transport, b["message_id"], b["stream"], "unit", b))
            outbox.enqueue(conn, drafts)
    conn.close()


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a: object) -> None:
        pass


def serve(port_file: str) -> None:
    """The receiver, in its own process: the MES is not part of the station's CPU budget (GIL)."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    srv.daemon_threads = True
    Path(port_file).write_text(str(srv.server_address[1]))
    srv.serve_forever()


def http_server(work: Path) -> tuple[subprocess.Popen, str]:
    port_file = work / "port"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the benchmark's HTTP receiver did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/results"


def make_transport(kind: str, name: str, folder: Path, url: str):
    return HttpTransport(name, url) if kind == "http" else FileDropTransport(name, folder)


def drain(kind: str, n: int, work: Path, url: str) -> dict:
    db = work / f"drain-{kind}.sqlite"
    backlog(db, n, "mes")
    t0 = time.perf_counter()
    fw = Forwarder(db, make_transport(kind, "mes", work / f"drop-{kind}", url), SETTINGS).start()
    ok = fw.wait_empty(3600)
    secs = time.perf_counter() - t0
    fw.stop()
    return {"transport": kind, "backlog": n, "drained": ok, "seconds": round(secs, 2),
            "messages_per_s": round(n / secs, 1)}


def store_rate(n: int, work: Path, kind: str, url: str, concurrent_backlog: int) -> dict:
    db = work / f"store-{kind}-{concurrent_backlog}.sqlite"
    recs = records(n, f"run-{concurrent_backlog}", ["mes"])
    fw = None
    if concurrent_backlog:
        backlog(db, concurrent_backlog, "mes")
        fw = Forwarder(db, make_transport(kind, "mes", work / f"drop-store-{kind}", url), SETTINGS).start()
    with StoreWriter(db, None, outbox_hook=outbox.write_drafts, queue_max=256) as w:
        if fw is not None:
            time.sleep(0.5)  # the drain is in full swing
        t0 = time.perf_counter()
        futures = [w.submit(r) for r in recs]
        for f in futures:
            f.result()
        secs = time.perf_counter() - t0
    out = {"decisions": n, "seconds": round(secs, 2), "decisions_per_s": round(n / secs, 1)}
    if fw is not None:
        delivered = fw.stats()["delivered"]
        fw.stop()
        out["drained_meanwhile"] = delivered
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backlog", type=int, default=100_000, help="pending messages to drain")
    ap.add_argument("--decisions", type=int, default=5000, help="decisions written for the store rate")
    ap.add_argument("--transport", choices=["http", "filedrop", "both"], default="http")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--serve", help=argparse.SUPPRESS)  # internal: run the receiver process
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    kinds = ["http", "filedrop"] if args.transport == "both" else [args.transport]
    result: dict = {"backlog": args.backlog, "drain": [], "store": []}
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        work = Path(tmp)
        srv, url = http_server(work)
        for kind in kinds:
            result["drain"].append(drain(kind, args.backlog, work, url))
            alone = store_rate(args.decisions, work, kind, url, 0)
            busy = store_rate(args.decisions, work, kind, url, args.backlog)
            result["store"].append({"transport": kind, "alone": alone, "while_draining": busy,
                                    "ratio": round(busy["decisions_per_s"] / alone["decisions_per_s"], 3)})
        srv.terminate()
        srv.wait(10)
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
