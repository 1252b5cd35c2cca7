"""Fault injection: make the next N requests of an endpoint class fail the way Binance fails.

Kinds (what ccxt 4.5 raises is listed in the package docs and checked by the tests):

``rate_limit``   HTTP 429, ``Retry-After``, body -1003 "Too much request weight used; ..."
``ip_ban``       HTTP 418, ``Retry-After``, body -1003 "Way too much request weight used;
                 IP banned until ..."
``server_error`` HTTP 500/502/503/504; body an HTML gateway page (default) or Binance JSON
``timeout``      the response is held ``delay`` seconds (longer than the client's timeout)
``drop``         "accept then drop": the request IS executed, then the connection is closed
                 without a response

``apply`` says whether the request reaches the matching engine before the fault hits
(Binance: after a 5xx or a timeout the execution status is UNKNOWN).  It defaults to True
for ``drop`` and False for the others.  Endpoint classes are endpoint names (``order_create``)
or groups (``public``, ``private``, ``market_data``, ``orders``, ``all``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["rate_limit", "ip_ban", "server_error", "timeout", "drop"]
FAULT_KINDS: tuple[str, ...] = ("rate_limit", "ip_ban", "server_error", "timeout", "drop")

# endpoint name -> the groups it belongs to
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "ping": ("public",),
    "time": ("public",),
    "exchange_info": ("public",),
    "ticker": ("public", "market_data"),
    "depth": ("public", "market_data"),
    "klines": ("public", "market_data"),
    "account": ("private",),
    "order_create": ("private", "orders"),
    "order_query": ("private", "orders"),
    "order_cancel": ("private", "orders"),
    "cancel_all": ("private", "orders"),
    "open_orders": ("private", "orders"),
    "all_orders": ("private", "orders"),
    "my_trades": ("private",),
}
GROUPS = frozenset({"public", "private", "market_data", "orders", "all"})
TARGETS = frozenset(ENDPOINTS) | GROUPS

_JSON_5XX = {
    500: (-1001, "Internal error; unable to process your request. Please try again."),
    502: (-1001, "Internal error; unable to process your request. Please try again."),
    503: (
        -1008,
        "Server is currently overloaded with other requests. Please try again in a few minutes.",
    ),
    504: (
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; "
        "execution status unknown.",
    ),
}
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def endpoint_tags(endpoint: str) -> frozenset[str]:
    return frozenset({endpoint, "all", *ENDPOINTS.get(endpoint, ())})


@dataclass
class Fault:
    """One armed fault; ``remaining`` counts down as matching requests hit it."""

    fault_id: int
    target: str
    kind: str
    remaining: int
    status: int = 0
    retry_after: int = 1
    delay: float = 0.0
    apply: bool = False
    body: Literal["html", "json"] = "html"
    hits: list[str] = field(default_factory=list)

    def http_response(self, now_ms: int) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for the HTTP-level kinds."""
        if self.kind == "rate_limit":
            msg = (
                "Too much request weight used; current limit is 6000 request weight per "
                "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling "
                "the API."
            )
            return 429, self._retry_headers(), _json(-1003, msg)
        if self.kind == "ip_ban":
            until = now_ms + self.retry_after * 1000
            msg = (
                f"Way too much request weight used; IP banned until {until}. Please use "
                "WebSocket Streams for live updates to avoid bans."
            )
            return 418, self._retry_headers(), _json(-1003, msg)
        if self.kind == "server_error":
            if self.body == "json":
                code, msg = _JSON_5XX[self.status]
                return (
                    self.status,
                    {"Content-Type": "application/json;charset=UTF-8"},
                    _json(code, msg),
                )
            reason = f"{self.status} {_REASONS[self.status]}"
            page = (
                f"<html><head><title>{reason}</title></head><body><center><h1>{reason}"
                "</h1></center></body></html>"
            )
            return self.status, {"Content-Type": "text/html"}, page.encode()
        raise ValueError(f"{self.kind} has no HTTP response")

    def _retry_headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json;charset=UTF-8",
            "Retry-After": str(self.retry_after),
        }


def _json(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg}).encode()


class FaultInjector:
    """A FIFO of armed faults; the first one whose target matches a request takes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1
        self.fired: list[tuple[int, str, str]] = []  # (fault id, kind, endpoint), for asserts

    def add(
        self,
        target: str,
        kind: str,
        count: int = 1,
        *,
        status: int | None = None,
        retry_after: int = 1,
        delay: float = 3.0,
        apply: bool | None = None,
        body: Literal["html", "json"] = "html",
    ) -> Fault:
        if target not in TARGETS:
            known = sorted(TARGETS)
            raise ValueError(f"unknown endpoint class {target!r}; expected one of {known}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if kind == "server_error":
            status = 503 if status is None else status
            if status not in _REASONS:
                raise ValueError(f"server_error status must be one of {sorted(_REASONS)}")
        if body not in ("html", "json"):
            raise ValueError("body must be 'html' or 'json'")
        with self._lock:
            fault = Fault(
                fault_id=self._next_id,
                target=target,
                kind=kind,
                remaining=count,
                status=status or 0,
                retry_after=retry_after,
                delay=delay,
                apply=(kind == "drop") if apply is None else apply,
                body=body,
            )
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, endpoint: str) -> Fault | None:
        """Consume one hit of the first armed fault matching ``endpoint``."""
        tags = endpoint_tags(endpoint)
        with self._lock:
            for fault in self._faults:
                if fault.target in tags:
                    fault.remaining -= 1
                    fault.hits.append(endpoint)
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    self.fired.append((fault.fault_id, fault.kind, endpoint))
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)
