"""The Binance spot REST endpoints: request parameters in, JSON-able answer out.

Each handler gets the :class:`~policyctl.emulator.book.Exchange`, the request parameters
(query and body merged, strings) and, for signed endpoints, the authenticated account.
Transport concerns (signatures, faults, HTTP) live in ``server.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import payloads
from .accounts import Account
from .book import Exchange
from .errors import BinanceError, illegal_chars, mandatory_param
from .marketdata import interval_ms
from .orders import parse_new_order

Params = dict[str, str]
Handler = Callable[[Exchange, Params, Account | None], object]
_INT_RULE = r"^[0-9]{1,20}$"
_INT_RE = re.compile(_INT_RULE)
_SYMBOLS_RULE = r'^\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\]$'


@dataclass(frozen=True)
class Route:
    name: str  # endpoint class for fault injection
    handler: Handler
    signed: bool


def _int(params: Params, name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT_RE.match(raw):
        raise illegal_chars(name, _INT_RULE)
    return int(raw)


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise mandatory_param(name)
    return value


def _symbols(ex: Exchange, params: Params) -> list[str] | None:
    """``symbol=X`` or ``symbols=["X","Y"]``; None when neither was sent."""
    if params.get("symbol"):
        return [params["symbol"]]
    raw = params.get("symbols")
    if not raw:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        raise illegal_chars("symbols", _SYMBOLS_RULE) from None
    return [str(n) for n in names]


def _limit(params: Params, default: int, maximum: int) -> int:
    value = _int(params, "limit", default)
    assert value is not None
    if value <= 0:
        raise illegal_chars("limit", _INT_RULE)
    return min(value, maximum)


def _account(account: Account | None) -> Account:
    assert account is not None, "signed endpoints always carry an account"
    return account


def _order_ref(params: Params) -> tuple[int | None, str | None]:
    order_id = _int(params, "orderId")
    client_id = params.get("origClientOrderId") or None
    if order_id is None and client_id is None:
        raise BinanceError(
            -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )
    return order_id, client_id


# -- public ----------------------------------------------------------------------------


def ping(ex: Exchange, params: Params, account: Account | None) -> object:
    return {}


def server_time(ex: Exchange, params: Params, account: Account | None) -> object:
    return {"serverTime": ex.clock.now_ms()}


def exchange_info(ex: Exchange, params: Params, account: Account | None) -> object:
    with ex.lock:
        wanted = _symbols(ex, params)
        specs = [ex.listed(s) for s in wanted] if wanted else list(ex.markets.values())
        return payloads.exchange_info(specs, ex.clock.now_ms())


def ticker_24hr(ex: Exchange, params: Params, account: Account | None) -> object:
    with ex.lock:
        wanted = _symbols(ex, params)
        if params.get("symbol"):
            return ex.ticker(params["symbol"])
        return [ex.ticker(s) for s in (wanted or list(ex.markets))]


def depth(ex: Exchange, params: Params, account: Account | None) -> object:
    sid = _required(params, "symbol")
    limit = _limit(params, 100, 5000)
    with ex.lock:
        ex.listed(sid)
        bids, asks = ex.depth(sid)
        quote = ex.feeds[sid].quote
        return payloads.depth(bids, asks, limit, quote.updates if quote else 0)


def klines(ex: Exchange, params: Params, account: Account | None) -> object:
    sid = _required(params, "symbol")
    interval = _required(params, "interval")
    limit = _limit(params, 500, 1000)
    with ex.lock:
        ex.listed(sid)
        feed = ex.feeds[sid]
        bars = feed.klines(interval, _int(params, "startTime"), _int(params, "endTime"), limit)
        step = interval_ms(interval)
        return [payloads.kline(b, step) for b in bars]


# -- signed ----------------------------------------------------------------------------


def account_info(ex: Exchange, params: Params, account: Account | None) -> object:
    with ex.lock:
        omit = params.get("omitZeroBalances", "false").lower() == "true"
        return payloads.account_info(_account(account), ex.clock.now_ms(), omit)


def create_order(ex: Exchange, params: Params, account: Account | None) -> object:
    req = parse_new_order(params)
    with ex.lock:
        order = ex.place_order(_account(account), req)
        return payloads.new_order(order, req.resp_type)


def query_order(ex: Exchange, params: Params, account: Account | None) -> object:
    sid = _required(params, "symbol")
    order_id, client_id = _order_ref(params)
    with ex.lock:
        return payloads.order_status(ex.query_order(_account(account), sid, order_id, client_id))


def cancel_order(ex: Exchange, params: Params, account: Account | None) -> object:
    sid = _required(params, "symbol")
    order_id, client_id = _order_ref(params)
    with ex.lock:
        order = ex.cancel_order(_account(account), sid, order_id, client_id)
        cancel_id = params.get("newClientOrderId") or f"cancel{order.order_id:016d}"
        return payloads.canceled(order, cancel_id, ex.clock.now_ms())


def cancel_all(ex: Exchange, params: Params, account: Account | None) -> object:
    sid = _required(params, "symbol")
    acct = _account(account)
    with ex.lock:
        out = []
        for order in ex.open_orders(acct, sid):
            ex.cancel_order(acct, sid, order.order_id, None)
            out.append(payloads.canceled(order, f"cancel{order.order_id:016d}", ex.clock.now_ms()))
        return out


def open_orders(ex: Exchange, params: Params, account: Account | None) -> object:
    with ex.lock:
        orders = ex.open_orders(_account(account), params.get("symbol") or None)
        return [payloads.order_status(o) for o in orders]


def all_orders(ex: Exchange, params: Params, account: Account | None) -> object:
    sid = _required(params, "symbol")
    from_id = _int(params, "orderId")
    start, end = _int(params, "startTime"), _int(params, "endTime")
    limit = _limit(params, 500, 1000)
    with ex.lock:
        orders = [
            o
            for o in ex.account_orders(_account(account), sid)
            if (from_id is None or o.order_id >= from_id)
            and (start is None or o.time >= start)
            and (end is None or o.time <= end)
        ]
        picked = orders[:limit] if (from_id is not None or start is not None) else orders[-limit:]
        return [payloads.order_status(o) for o in picked]


def my_trades(ex: Exchange, params: Params, account: Account | None) -> object:
    sid = _required(params, "symbol")
    order_id, from_id = _int(params, "orderId"), _int(params, "fromId")
    start, end = _int(params, "startTime"), _int(params, "endTime")
    limit = _limit(params, 500, 1000)
    with ex.lock:
        fills = [
            f
            for f in ex.fills(_account(account), sid)
            if (order_id is None or f.order_id == order_id)
            and (from_id is None or f.trade_id >= from_id)
            and (start is None or f.time >= start)
            and (end is None or f.time <= end)
        ]
        picked = fills[:limit] if (from_id is not None or start is not None) else fills[-limit:]
        return [payloads.trade(f) for f in picked]


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/v3/ping"): Route("ping", ping, False),
    ("GET", "/api/v3/time"): Route("time", server_time, False),
    ("GET", "/api/v3/exchangeInfo"): Route("exchange_info", exchange_info, False),
    ("GET", "/api/v3/ticker/24hr"): Route("ticker", ticker_24hr, False),
    ("GET", "/api/v3/depth"): Route("depth", depth, False),
    ("GET", "/api/v3/klines"): Route("klines", klines, False),
    ("GET", "/api/v3/account"): Route("account", account_info, True),
    ("POST", "/api/v3/order"): Route("order_create", create_order, True),
    ("GET", "/api/v3/order"): Route("order_query", query_order, True),
    ("DELETE", "/api/v3/order"): Route("order_cancel", cancel_order, True),
    ("DELETE", "/api/v3/openOrders"): Route("cancel_all", cancel_all, True),
    ("GET", "/api/v3/openOrders"): Route("open_orders", open_orders, True),
    ("GET", "/api/v3/allOrders"): Route("all_orders", all_orders, True),
    ("GET", "/api/v3/myTrades"): Route("my_trades", my_trades, True),
}
