"""HTTP transport: routing, API-key and signature checks, fault injection, admin calls.

A stdlib ``ThreadingHTTPServer`` speaking HTTP/1.0 (one request per connection, which
makes "accept then drop" a plain close).  Signed endpoints follow Binance: ``X-MBX-APIKEY``
names the account, ``signature`` is the hex HMAC-SHA256 of the query string concatenated
with the body (minus the ``signature`` parameter), and ``timestamp``/``recvWindow`` are
checked against the wall clock (``timestamp_check="wall"``, the default), the emulator's
clock (``"clock"``) or not at all (``"off"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from . import errors
from .accounts import Account
from .book import Exchange
from .clock import wall_clock_ms
from .endpoints import ROUTES, Params, Route
from .errors import BinanceError
from .faults import Fault, FaultInjector

TimestampCheck = Literal["wall", "clock", "off"]
AdminDispatch = Callable[[str, str, dict[str, object]], object]
JSON_TYPE = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class Served:
    """One request as the emulator saw it (for assertions): ``endpoint`` is None if unknown."""

    method: str
    path: str
    endpoint: str | None
    status: int  # 0 when the connection was dropped without an answer
    fault: str | None


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        exchange: Exchange,
        faults: FaultInjector,
        admin: AdminDispatch,
        timestamp_check: TimestampCheck = "wall",
        admin_token: str | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(address, EmulatorRequestHandler)
        self.exchange = exchange
        self.faults = faults
        self.admin = admin
        self.timestamp_check = timestamp_check
        self.admin_token = admin_token
        self.verbose = verbose
        self.stopping = threading.Event()
        self.served: deque[Served] = deque(maxlen=10_000)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-answer (timeouts, drops) is normal here, not news.
        if self.verbose:
            super().handle_error(request, client_address)


def _strip_signature(raw: str) -> tuple[str, str | None]:
    kept: list[str] = []
    signature = None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = unquote(part[len("signature=") :])
        else:
            kept.append(part)
    return "&".join(kept), signature


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    server: EmulatorServer
    server_version = "policyctl-emulator"
    sys_version = ""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            sys.stderr.write(f"emulator: {format % args}\n")

    # -- plumbing ----------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path.startswith("/_emulator/"):
            self._admin(method, url.path, body)
            return
        route = ROUTES.get((method, url.path))
        if route is None:
            self._record(method, url.path, None, 404, None)
            self._send(404, {"Content-Type": "text/html"}, b"<html><body>Not Found</body></html>")
            return
        fault = self.server.faults.take(route.name)
        answer = self._execute(route, url.query, body) if fault is None or fault.apply else None
        if fault is None:
            assert answer is not None
            self._record(method, url.path, route.name, answer[0], None)
            self._send(*answer)
            return
        self._fail(method, url.path, route, fault)
        if fault.kind == "timeout" and answer is not None:
            self._send_quietly(*answer)

    def _fail(self, method: str, path: str, route: Route, fault: Fault) -> None:
        if fault.kind in ("rate_limit", "ip_ban", "server_error"):
            status, headers, payload = fault.http_response(self.server.exchange.clock.now_ms())
            self._record(method, path, route.name, status, fault.kind)
            self._send(status, headers, payload)
            return
        self._record(method, path, route.name, 0, fault.kind)
        if fault.kind == "timeout":
            # Hold the connection past the client's timeout; stop() cuts the wait short.
            self.server.stopping.wait(fault.delay)
        self.close_connection = True  # "drop": close without a single byte of response

    def _execute(self, route: Route, query: str, body: str) -> tuple[int, dict[str, str], bytes]:
        params: Params = dict(parse_qsl(body, keep_blank_values=True))
        params.update(parse_qsl(query, keep_blank_values=True))
        try:
            account = self._authenticate(query, body, params) if route.signed else None
            result = route.handler(self.server.exchange, params, account)
        except BinanceError as exc:
            return exc.status, {"Content-Type": JSON_TYPE}, json.dumps(exc.body()).encode()
        return 200, {"Content-Type": JSON_TYPE}, json.dumps(result).encode()

    def _authenticate(self, query: str, body: str, params: Params) -> Account:
        key = self.headers.get("X-MBX-APIKEY")
        if not key:
            raise errors.bad_api_key_format()
        account = self.server.exchange.accounts.get(key)
        if account is None:
            raise errors.rejected_api_key()
        q, sig_q = _strip_signature(query)
        b, sig_b = _strip_signature(body)
        signature = sig_q or sig_b
        if not signature:
            raise errors.mandatory_param("signature")
        expected = hmac.new(account.secret.encode(), (q + b).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise errors.bad_signature()
        self._check_timestamp(params)
        return account

    def _check_timestamp(self, params: Params) -> None:
        raw = params.get("timestamp")
        if not raw:
            raise errors.mandatory_param("timestamp")
        if not raw.isdigit():
            raise errors.illegal_chars("timestamp", "^[0-9]{1,20}$")
        window = int(params.get("recvWindow") or 5000)
        if window > 60_000:
            raise errors.recv_window_too_large()
        mode = self.server.timestamp_check
        if mode == "off":
            return
        now = wall_clock_ms() if mode == "wall" else self.server.exchange.clock.now_ms()
        stamp = int(raw)
        if stamp > now + 1000:
            raise errors.timestamp_ahead()
        if now - stamp > window:
            raise errors.timestamp_outside_window()

    def _admin(self, method: str, path: str, body: str) -> None:
        token = self.server.admin_token
        if token is not None and self.headers.get("X-Emulator-Token") != token:
            self._send(403, {"Content-Type": JSON_TYPE}, b'{"error": "bad admin token"}')
            return
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise ValueError("the admin body must be a JSON object")
            result = self.server.admin(method, path, payload)
            status, out = 200, result
        except KeyError as exc:
            status, out = 404, {"error": str(exc.args[0]) if exc.args else "not found"}
        except (ValueError, TypeError, BinanceError) as exc:
            status, out = 400, {"error": str(exc)}
        self._send(status, {"Content-Type": JSON_TYPE}, json.dumps(out).encode())

    def _record(
        self, method: str, path: str, endpoint: str | None, status: int, fault: str | None
    ) -> None:
        self.server.served.append(Served(method, path, endpoint, status, fault))

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_quietly(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        with contextlib.suppress(OSError):  # the client gave up long ago
            self._send(status, headers, payload)
