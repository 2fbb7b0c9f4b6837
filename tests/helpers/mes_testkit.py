"""Shared pieces of the MES tests (tests/mes): decision records, a producer (writer + forwarders), receivers."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.mes import outbox
from inspector.mes.forwarder import Backoff, Forwarder, ForwarderSettings
from inspector.mes.outbox import Draft
from inspector.mes.payload import unit_payload
from inspector.store.writer import DecisionRecord, StoreWriter

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
NAMES = ("particle", "scratch", "residue")
FAST = ForwarderSettings(backoff=Backoff(0.02, 0.2), batch=50, poll_s=0.02, stats_every_s=0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_record(run: str, i: int, stream: int, transports: list[str], *, station: str = "st-1",
                topic: str | None = None, verdict: str = "fail") -> DecisionRecord:
    fid = f"{run}/f{i:05d}"
    frame = Frame(fid, station, "cam0", float(i), T0 + timedelta(seconds=i), np.zeros((100, 100), np.uint8),
                  {"lot": "L1", "wafer": f"W{stream}", "die_x": i, "die_y": stream})
    kept = Detections([[10, 20, 30, 60]], [0.8], [1], -1)
    reasons = () if verdict == "pass" else (Reason("any-defect", Verdict(verdict), "scratch 0.80"),)
    dec = Decision(fid, verdict, reasons, kept, "ms-1", "cfg-1", T0 + timedelta(seconds=i, milliseconds=5))
    body = unit_payload(frame, dec, station=station, run_id=run, class_names=NAMES, pixel_size_um=2.0)
    body["seq"] = i  # the tests check order per stream with it
    drafts = tuple(Draft(t, body["message_id"], body["stream"], "unit", body,
                         {"topic": topic.format(stream=body["stream"])} if topic else {}) for t in transports)
    return DecisionRecord(frame, dec, None, run, NAMES, image=False, outbox=drafts)


class Producer:
    """What a station does for the MES: a StoreWriter with the outbox hook, one forwarder per transport."""

    def __init__(self, db, transports, settings: ForwarderSettings = FAST) -> None:
        self.writer = StoreWriter(db, None, outbox_hook=outbox.write_drafts).start()
        self.forwarders = [Forwarder(db, t, settings).start() for t in transports]

    def write(self, records) -> None:
        futures = [self.writer.submit(r) for r in records]
        for f in futures:
            f.result(10)
        for fw in self.forwarders:
            fw.notify()

    def close(self) -> None:
        for fw in self.forwarders:
            fw.stop(5)
        self.writer.close(10)


class Receiver:
    """What a MES does: applies each message once (de-duplicates on its key), remembers the order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.applied: list[dict] = []
        self.keys: set[str] = set()
        self.arrivals: Counter = Counter()

    def receive(self, key: str, body: bytes) -> None:
        msg = json.loads(body)
        assert msg["message_id"] == key
        with self.lock:
            self.arrivals[key] += 1
            if key not in self.keys:
                self.keys.add(key)
                self.applied.append(msg)

    def wait_for(self, n: int, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.applied) >= n:
                    return True
            time.sleep(0.02)
        return False

    def check_order(self) -> None:
        """Within every stream, messages were applied in production order."""
        per: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for m in self.applied:
            per[m["stream"]].append((m["run_id"], m["seq"]))
        for stream, seqs in per.items():
            assert seqs == sorted(seqs, key=lambda x: (RUN_ORDER.get(x[0], x[0]), x[1])), f"stream {stream} out of order"


RUN_ORDER: dict[str, int] = {"run-a": 0, "run-b": 1}


class HttpReceiver(Receiver):
    """A real HTTP server on 127.0.0.1 (random port, kept across restarts); 200 after applying."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.tls = tls  # a server-side context: HTTPS (see tests/helpers/mes_tls.py)
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.conns: list[socket.socket] = []
        self.lose_ack_once: set[str] = set()  # apply, then drop the connection without answering
        self.reject: dict[str, int] = {}      # key -> HTTP status to answer instead (until removed)
        self.headers: list[dict] = []

    def start(self) -> HttpReceiver:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with rec.lock:
                    rec.conns.append(self.connection)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                with rec.lock:
                    rec.headers.append(dict(self.headers))
                    status = rec.reject.get(key)
                if status:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                rec.receive(key, body)
                with rec.lock:
                    lose = key in rec.lose_ack_once
                    rec.lose_ack_once.discard(key)
                if lose:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:  # handshake in the handler's thread, so a failing client never stalls accept()
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
            self.server.handle_error = lambda request, address: None  # refused handshakes are the point
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """An outage: refuse new connections and cut the open keep-alive ones."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.port}/results"


MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    import shutil

    found = shutil.which("mosquitto")
    if found:
        return found
    import os

    return next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


class Broker:
    """A real Mosquitto broker on 127.0.0.1 (free port, kept across restarts), persistent sessions."""

    def __init__(self, binary: str, folder, tls=None) -> None:
        """``tls``: a tests/helpers/mes_tls.Pki: the listener speaks TLS only, with its server certificate."""
        import os

        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.proc = None
        self.conf = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true",
                 f"persistence_location {folder}/", "log_dest none"]
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}",
                      "require_certificate false"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot write the test's folder
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> Broker:
        import subprocess

        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file on the way out
            try:
                self.proc.wait(10)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class MqttReceiver(Receiver):
    """A QoS 1 subscriber with a persistent session (messages published while it is away are kept)."""

    def __init__(self, port: int, topic: str = "inspector/#", ca_file=None) -> None:
        super().__init__()
        import paho.mqtt.client as mqtt

        self.topics: list[str] = []
        self.connected = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mes-test-subscriber", clean_session=False)
        c.reconnect_delay_set(0.05, 0.2)

        def on_connect(client, userdata, flags, rc, props=None):
            client.subscribe(topic, qos=1)
            self.connected.set()

        def on_disconnect(*args):
            self.connected.clear()

        def on_message(client, userdata, msg):
            with self.lock:
                self.topics.append(msg.topic)
            self.receive(json.loads(msg.payload)["message_id"], msg.payload)

        c.on_connect, c.on_disconnect, c.on_message = on_connect, on_disconnect, on_message
        if ca_file is not None:
            c.tls_set(ca_certs=str(ca_file))
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        if not self.connected.wait(10):
            raise RuntimeError("subscriber did not connect")
        time.sleep(0.1)  # let the SUBACK arrive

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
