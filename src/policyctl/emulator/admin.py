"""The admin API over HTTP (``/_emulator/...``), so a separate process can drive a test.

Every call takes a JSON object and answers JSON.  Symbols may be ``BTC/USDT`` or
``BTCUSDT``; numbers may be JSON numbers or strings (strings keep exact decimals).

==========================  ====================================================================
``POST /_emulator/fault``   ``{"endpoint": "order_create", "kind": "drop", "count": 1,
                            "status": 503, "retry_after": 1, "delay": 3.0, "apply": true,
                            "body": "html"}`` -> ``{"id": 1}``
``POST /_emulator/faults/clear``  disarm all faults
``POST /_emulator/price``   ``{"symbol", "bid", "ask", "last"?, "volume"?, "bid_qty"?, "ask_qty"?}``
``POST /_emulator/depth``   ``{"symbol", "bids": [[p, q], ...], "asks": [[p, q], ...]}``
``POST /_emulator/advance`` ``{"bars": 1}`` -> ``{"advanced": n}`` (candle replay)
``POST /_emulator/clock``   ``{"advance_ms": 60000}`` -> ``{"now": ms}``
``POST /_emulator/status``  ``{"symbol", "status": "HALT" | "BREAK" | "TRADING" | ...}``
``POST /_emulator/stale``   ``{"symbol", "stale": true}``
``POST /_emulator/late``    ``{"symbol", "bars": 1, "requests": 1}``: the next requests' candles
                            miss the newest bars (not closed at the exchange yet)
``POST /_emulator/bad_tick`` ``{"symbol", "price", "count": 1}``
``POST /_emulator/balance`` ``{"api_key", "asset", "free", "locked"?}``
``POST /_emulator/expire``  ``{"order_id", "status": "EXPIRED" | "REJECTED" | "CANCELED"}``
``GET|POST /_emulator/state``  clock, markets, balances, orders, armed faults
==========================  ====================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .book import Exchange
from .faults import FaultInjector
from .markets import fmt8


def _num(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number, got {value!r}")
    return str(value)


def _opt(payload: dict[str, Any], name: str) -> str | None:
    return _num(payload[name]) if payload.get(name) is not None else None


def _symbol(payload: dict[str, Any]) -> str:
    symbol = payload.get("symbol")
    if not isinstance(symbol, str):
        raise ValueError("'symbol' is required")
    return symbol


class Admin:
    """Dispatches ``/_emulator/...`` calls onto the exchange, its clock and the faults."""

    def __init__(self, exchange: Exchange, faults: FaultInjector) -> None:
        self.exchange = exchange
        self.faults = faults
        self._routes: dict[str, Callable[[dict[str, Any]], object]] = {
            "/_emulator/fault": self.fault,
            "/_emulator/faults/clear": self.clear_faults,
            "/_emulator/price": self.price,
            "/_emulator/depth": self.depth,
            "/_emulator/advance": self.advance,
            "/_emulator/clock": self.clock,
            "/_emulator/status": self.status,
            "/_emulator/stale": self.stale,
            "/_emulator/late": self.late,
            "/_emulator/bad_tick": self.bad_tick,
            "/_emulator/balance": self.balance,
            "/_emulator/expire": self.expire,
            "/_emulator/state": self.state,
        }

    def __call__(self, method: str, path: str, payload: dict[str, object]) -> object:
        handler = self._routes.get(path)
        if handler is None:
            raise KeyError(f"no admin endpoint {path}; known: {sorted(self._routes)}")
        if method != "POST" and path != "/_emulator/state":
            raise ValueError(f"{path} takes POST")
        return handler(payload)

    def fault(self, p: dict[str, Any]) -> object:
        known = {"endpoint", "kind", "count", "status", "retry_after", "delay", "apply", "body"}
        unknown = set(p) - known
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}")
        fault = self.faults.add(
            str(p.get("endpoint", "all")),
            str(p.get("kind", "")),
            int(p.get("count", 1)),
            status=int(p["status"]) if p.get("status") is not None else None,
            retry_after=int(p.get("retry_after", 1)),
            delay=float(p.get("delay", 3.0)),
            apply=bool(p["apply"]) if p.get("apply") is not None else None,
            body=p.get("body", "html"),
        )
        return {"id": fault.fault_id}

    def clear_faults(self, p: dict[str, Any]) -> object:
        self.faults.clear()
        return {"ok": True}

    def price(self, p: dict[str, Any]) -> object:
        self.exchange.set_price(
            _symbol(p),
            _num(p.get("bid")),
            _num(p.get("ask")),
            last=_opt(p, "last"),
            volume=_opt(p, "volume"),
            bid_qty=_opt(p, "bid_qty"),
            ask_qty=_opt(p, "ask_qty"),
        )
        return {"ok": True}

    def depth(self, p: dict[str, Any]) -> object:
        bids = [(_num(a), _num(b)) for a, b in p.get("bids", [])]
        asks = [(_num(a), _num(b)) for a, b in p.get("asks", [])]
        self.exchange.set_depth(_symbol(p), bids, asks)
        return {"ok": True}

    def advance(self, p: dict[str, Any]) -> object:
        return {"advanced": self.exchange.advance(int(p.get("bars", 1)))}

    def clock(self, p: dict[str, Any]) -> object:
        self.exchange.clock.advance(int(p.get("advance_ms", 0)))
        return {"now": self.exchange.clock.now_ms()}

    def status(self, p: dict[str, Any]) -> object:
        self.exchange.set_status(_symbol(p), str(p.get("status")))
        return {"ok": True}

    def stale(self, p: dict[str, Any]) -> object:
        self.exchange.set_stale(_symbol(p), bool(p.get("stale", True)))
        return {"ok": True}

    def late(self, p: dict[str, Any]) -> object:
        self.exchange.set_late(_symbol(p), int(p.get("bars", 1)), int(p.get("requests", 1)))
        return {"ok": True}

    def bad_tick(self, p: dict[str, Any]) -> object:
        self.exchange.bad_tick(_symbol(p), _num(p.get("price")), int(p.get("count", 1)))
        return {"ok": True}

    def balance(self, p: dict[str, Any]) -> object:
        with self.exchange.lock:
            account = self.exchange.accounts[str(p.get("api_key"))]
            account.set_balance(str(p.get("asset")), _num(p.get("free")), _num(p.get("locked", 0)))
        return {"ok": True}

    def expire(self, p: dict[str, Any]) -> object:
        order = self.exchange.expire_order(
            int(p.get("order_id", 0)), str(p.get("status", "EXPIRED"))
        )
        return {"orderId": order.order_id, "status": order.status}

    def state(self, p: dict[str, Any]) -> object:
        ex = self.exchange
        with ex.lock:
            return {
                "now": ex.clock.now_ms(),
                "markets": {sid: spec.status for sid, spec in ex.markets.items()},
                "balances": {
                    key: {a: [fmt8(f), fmt8(lk)] for a, (f, lk) in acct.snapshot().items()}
                    for key, acct in ex.accounts.items()
                },
                "orders": [
                    {
                        "orderId": o.order_id,
                        "clientOrderId": o.client_order_id,
                        "symbol": o.symbol,
                        "side": o.side,
                        "type": o.type,
                        "status": o.status,
                        "price": fmt8(o.price),
                        "origQty": fmt8(o.orig_qty),
                        "executedQty": fmt8(o.executed_qty),
                    }
                    for o in sorted(ex.orders.values(), key=lambda o: o.order_id)
                ],
                "faults": [
                    {
                        "id": f.fault_id,
                        "endpoint": f.target,
                        "kind": f.kind,
                        "remaining": f.remaining,
                    }
                    for f in self.faults.pending()
                ],
            }
