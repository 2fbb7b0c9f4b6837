"""HTTP(S) transport: POST each JSON result; 2xx is the acknowledgement.

One keep-alive connection (stdlib ``http.client``), re-opened after any error. HTTPS verifies
the server against the system CAs or ``ca_file`` (``verify_tls=False`` only for test benches) and
can present a client certificate (``cert_file`` / ``key_file``); see :mod:`inspector.mes.tls`. Headers:
``Content-Type: application/json``, ``Idempotency-Key: <station/run/frame>``, ``X-Inspector-Stream``
and, with ``token_env``, ``Authorization: Bearer <token>``. 5xx, 408, 429 and network errors back
off the whole transport (the receiver is in trouble); other 4xx hold only the refused message's
stream (retried with back-off, shown by ``inspector mes status``).
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from inspector.mes.forwarder import Delivery, DeliveryError
from inspector.mes.outbox import OutboxRow
from inspector.mes.tls import describe_tls_error, tls_context
from inspector.util.redact import redact_url

_TRANSPORT_STATUSES = {408, 425, 429}


class HttpTransport:
    """POSTs to ``url``; see the module doc."""

    kinds = frozenset({"unit", "wafer", "incident", "report"})

    def __init__(self, name: str, url: str, *, token: str | None = None, verify_tls: bool = True,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None,
                 timeout_s: float = 5.0, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"mes output {name}: url must start with http:// or https:// and name a host, "
                             f"got {redact_url(url)!r}")
        self.name = name
        self.url = url
        self.shown_url = redact_url(url)  # what errors, logs and the outbox say: no user:password, no token=
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = float(timeout_s)
        self._ctx = tls_context(verify_tls, ca_file, cert_file, key_file) if self._https else None
        self._headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                                         context=self._ctx)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._conn

    def deliver(self, rows: Sequence[OutboxRow]) -> Delivery:
        for i, row in enumerate(rows):
            headers = {**self._headers, "Idempotency-Key": row.key, "X-Inspector-Stream": row.stream,
                       "X-Inspector-Kind": row.kind}
            body = row.body.encode("utf-8")
            try:
                conn = self._connection()
                conn.request("POST", self._path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read(2048)  # read it all: the connection is reused
                if resp.will_close:
                    self.close()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                why = describe_tls_error(e) or f"{type(e).__name__}: {e}"
                return Delivery(i, DeliveryError(f"POST {self.shown_url}: {why}", "transport"))
            if 200 <= resp.status < 300:
                continue
            detail = text.decode("utf-8", "replace").strip()[:200]
            scope = "transport" if resp.status >= 500 or resp.status in _TRANSPORT_STATUSES else "message"
            return Delivery(i, DeliveryError(f"POST {self.shown_url}: HTTP {resp.status} {resp.reason}"
                                             + (f": {detail}" if detail else ""), scope))
        return Delivery(len(rows))

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


__all__ = ["HttpTransport", "tls_context"]
