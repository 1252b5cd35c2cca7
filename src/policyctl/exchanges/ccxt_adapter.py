"""The live execution adapter: real orders through ccxt, behind rate limits and retries.

Construction::

    adapter = CcxtAdapter.from_env("binance")                    # the real exchange
    adapter = CcxtAdapter.from_env("binance", base_url=emu.url)  # the loopback emulator

Credentials come from the environment only: ``POLICYCTL_API_KEY`` and
``POLICYCTL_API_SECRET`` (:data:`ENV_API_KEY`, :data:`ENV_API_SECRET`). They are handed to
ccxt and otherwise never stored, logged, or put into an exception message (every message
passes :func:`policyctl.exchanges.errors.scrub`, which also cuts signed query strings).
A 429's ``Retry-After`` is read from the client's last response headers right after the
failure (best effort if one adapter is shared by several threads).
ccxt's own DEBUG log of every request carries the API key in the headers; the client's
logger is replaced by :class:`WireLog`, which scrubs those lines before logging them.

How a call goes out:

* every request takes a token from its endpoint class's bucket
  (:mod:`policyctl.exchanges.ratelimit`: ``market_data``, ``account``, ``orders``);
* failures are classified once (:func:`policyctl.exchanges.errors.classify`);
* reads and cancels are retried on Transient by the :class:`RetryPolicy`;
* placement is never retried blindly. On Ambiguous (timeout, 5xx or a dropped connection
  after sending) :meth:`CcxtAdapter.place` looks the order up by its client id and returns
  what the exchange has; only when the lookup says it is definitely absent is the order
  sent once more, with the same client id. A "duplicate client id" rejection is answered
  the same way: the existing order is looked up and returned. Throttling (429) and other
  Transient failures of placement are raised for the runtime to decide.

Fills: Binance charges a buy's fee in the base asset. The engine's books keep fees in the
quote currency and positions as held quantity, so such a fill is reported with the net
quantity received and the fee converted at the fill price (a sell whose fee is in the base
asset likewise reports the gross quantity that left). Fees in a third asset (BNB) are not
converted and reported as 0.

``fetch_candles`` asks the exchange for its time first and drops every candle still
forming at that time (open time + timeframe > exchange time).

ccxt is imported lazily: importing this module costs nothing for the paper adapter, the
simulator or the linter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from policyctl.clock import Clock, WallClock
from policyctl.exchanges.adapter import (
    AdapterError,
    Ambiguous,
    Balances,
    Market,
    NeedsHuman,
    OrderStatus,
    Rejected,
    Transient,
)
from policyctl.exchanges.errors import classify, retry_after_from_headers, scrub
from policyctl.exchanges.ratelimit import RateLimit, RateLimiter
from policyctl.exchanges.retry import RetryPolicy
from policyctl.runtime.model import Bar, Fill, MarketRules, OpenOrder, OrderRequest, Quote, Side

T = TypeVar("T")

ENV_API_KEY = "POLICYCTL_API_KEY"
ENV_API_SECRET = "POLICYCTL_API_SECRET"

# ccxt's precision modes (ccxt.base.decimal_to_precision): stable numeric constants.
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

_SYMBOL_STATUS = {
    "TRADING": "trading",
    "HALT": "halted",
    "BREAK": "halted",
    "END_OF_DAY": "halted",
    "PRE_TRADING": "halted",
    "POST_TRADING": "halted",
    "AUCTION_MATCH": "halted",
}

_NATIVE_ORDER_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "CANCELLED": "canceled",
    "PENDING_CANCEL": "open",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "rejected",
}

_KLINES_MAX = 1000
_TRADES_PAGE = 1000
_TRADES_MAX_PAGES = 20

# real (non-emulator) Binance: spot only, and no endpoints beyond the spot REST API
_BINANCE_OPTIONS: dict[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "adjustForTimeDifference": True,
}


def increment(value: Any, precision_mode: int) -> float:
    """A price/amount increment from ccxt's ``market['precision']`` entry, 0 if unknown.

    TICK_SIZE mode stores the increment itself (``0.01``); DECIMAL_PLACES mode stores the
    number of decimals (``2`` -> ``0.01``). SIGNIFICANT_DIGITS has no fixed increment.
    """
    if value is None:
        return 0.0
    if precision_mode == DECIMAL_PLACES:
        return float(Decimal(1).scaleb(-int(value)))
    if precision_mode == TICK_SIZE:
        return float(value)
    return 0.0


def market_rules(market: Mapping[str, Any], precision_mode: int) -> MarketRules:
    """:class:`MarketRules` from one ccxt market structure."""
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    amount_limits = limits.get("amount") or {}
    cost_limits = limits.get("cost") or {}
    info = market.get("info")
    native = str(info.get("status") or "").upper() if isinstance(info, Mapping) else ""
    if native in _SYMBOL_STATUS:
        status = _SYMBOL_STATUS[native]
    elif market.get("active") is False:
        status = "halted"
    else:
        status = "trading"
    return MarketRules(
        tick_size=increment(precision.get("price"), precision_mode),
        step_size=increment(precision.get("amount"), precision_mode),
        min_qty=float(amount_limits.get("min") or 0.0),
        min_notional=float(cost_limits.get("min") or 0.0),
        status=status,
    )


class WireLog:
    """The logger handed to ccxt: its DEBUG request/response lines, minus secrets and
    signed query strings, go to the ``policyctl.exchanges.wire`` logger."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = secrets
        self._log = logging.getLogger("policyctl.exchanges.wire")

    def _emit(self, level: int, msg: object, args: tuple[object, ...]) -> None:
        if not self._log.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(str(a) for a in (msg, *args))
        self._log.log(level, "%s", scrub(text, self._secrets))

    def debug(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.DEBUG, msg, args)

    def info(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.INFO, msg, args)

    def warning(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.WARNING, msg, args)

    def error(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.ERROR, msg, args)


def _num(value: Any, default: float = 0.0) -> float:
    return default if value is None else float(value)


class CcxtAdapter:
    """:class:`~policyctl.exchanges.adapter.ExchangeAdapter` over a synchronous ccxt client."""

    def __init__(
        self,
        exchange_id: str,
        api_key: str | None,
        secret: str | None,
        *,
        base_url: str | None = None,
        urls: Mapping[str, str] | None = None,
        timeout_ms: int = 10_000,
        rate_limits: Mapping[str, RateLimit] | RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = exchange_id
        self._base_url = base_url
        self._has_credentials = bool(api_key and secret)
        self._secrets = tuple(s for s in (api_key, secret) if s)
        self._client: Any = _make_client(exchange_id, api_key, secret, timeout_ms, base_url, urls, options)
        # ccxt logs every request's headers (the API key among them) at DEBUG: scrub them
        self._client.logger = WireLog(self._secrets)
        self.limiter = rate_limits if isinstance(rate_limits, RateLimiter) else RateLimiter(rate_limits)
        self.retry = retry if retry is not None else RetryPolicy()
        self._clock: Clock = clock if clock is not None else WallClock()
        self._markets: dict[str, Market] | None = None
        self._order_cids: dict[tuple[str, str], str] = {}

    @classmethod
    def from_env(
        cls,
        exchange_id: str,
        env: Mapping[str, str] = os.environ,
        base_url: str | None = None,
        *,
        require_credentials: bool = True,
        **kwargs: Any,
    ) -> CcxtAdapter:
        """Credentials from ``POLICYCTL_API_KEY`` / ``POLICYCTL_API_SECRET`` in ``env``.

        ``base_url`` points the client at a Binance emulator (see
        :func:`policyctl.emulator.client.make_ccxt_client`). Without
        ``require_credentials`` missing keys are allowed (public market data only).
        """
        key = env.get(ENV_API_KEY) or None
        secret = env.get(ENV_API_SECRET) or None
        if require_credentials and (key is None or secret is None):
            missing = [n for n, v in ((ENV_API_KEY, key), (ENV_API_SECRET, secret)) if v is None]
            raise NeedsHuman(f"exchange credentials missing: set {' and '.join(missing)} in the environment",
                             "account")
        return cls(exchange_id, key, secret, base_url=base_url, **kwargs)

    def __repr__(self) -> str:
        where = f", base_url={self._base_url!r}" if self._base_url else ""
        creds = "set" if self._has_credentials else "none"
        return f"CcxtAdapter({self.name!r}{where}, credentials={creds})"

    @property
    def client(self) -> Any:
        """The underlying ccxt client (for diagnostics; calls through it bypass the limiter)."""
        return self._client

    # -- plumbing ---------------------------------------------------------------------------

    def _classify(self, exc: BaseException, endpoint: str, placing: bool) -> AdapterError:
        import ccxt

        retry_after = None
        if isinstance(exc, ccxt.DDoSProtection | ccxt.ExchangeNotAvailable):
            retry_after = retry_after_from_headers(getattr(self._client, "last_response_headers", None))
        return classify(exc, endpoint, placing=placing, retry_after=retry_after, secrets=self._secrets)

    def _attempt(self, endpoint: str, fn: Callable[[], T], *, placing: bool = False) -> T:
        """One rate-limited request; any failure comes out classified."""
        self.limiter.acquire(endpoint)
        try:
            return fn()
        except Exception as exc:
            raise self._classify(exc, endpoint, placing) from exc

    def _read(self, endpoint: str, fn: Callable[[], T]) -> T:
        return self.retry.call(lambda: self._attempt(endpoint, fn))

    def _ensure_markets(self) -> dict[str, Market]:
        if self._markets is None or self._client.markets is None:
            return self.load_markets()
        return self._markets

    def _market_info(self, symbol: str) -> Mapping[str, Any]:
        try:
            return self._client.market(symbol)
        except Exception as exc:
            raise self._classify(exc, "market_data", False) from exc

    # -- market data ---------------------------------------------------------------------

    def load_markets(self) -> dict[str, Market]:
        raw: Mapping[str, Any] = self._read("market_data", lambda: self._client.load_markets(reload=True))
        mode = int(self._client.precisionMode)
        out: dict[str, Market] = {}
        for symbol, m in raw.items():
            if m.get("spot") is False:
                continue
            out[symbol] = Market(symbol, str(m["base"]), str(m["quote"]), market_rules(m, mode))
        self._markets = out
        return out

    def time_ms(self) -> int:
        return int(self._read("market_data", self._client.fetch_time))

    def fetch_candles(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list[Bar]:
        if limit <= 0:
            return []
        self._ensure_markets()
        step_ms = int(self._client.parse_timeframe(timeframe) * 1000)
        # the exchange's time first: a candle closed then is final in what comes after
        now = self.time_ms()
        want = min(limit + 1, _KLINES_MAX)
        rows = self._read("market_data", lambda: self._client.fetch_ohlcv(symbol, timeframe, since_ms, want))
        bars: dict[int, Bar] = {}
        for r in rows:
            ts = int(r[0])
            if ts + step_ms > now:
                continue  # still forming
            bars[ts] = Bar(ts, _num(r[1]), _num(r[2]), _num(r[3]), _num(r[4]), _num(r[5]))
        ordered = [bars[ts] for ts in sorted(bars)]
        return ordered[:limit] if since_ms is not None else ordered[-limit:]

    def fetch_quote(self, symbol: str) -> Quote:
        self._ensure_markets()
        t: Mapping[str, Any] = self._read("market_data", lambda: self._client.fetch_ticker(symbol))
        bid, ask, last = t.get("bid"), t.get("ask"), t.get("last")
        if bid is None or ask is None:
            raise Transient(f"market_data: the {symbol} ticker has no bid/ask", "market_data")
        ts = t.get("timestamp")
        return Quote(
            bid=float(bid),
            ask=float(ask),
            last=float(last) if last is not None else (float(bid) + float(ask)) / 2,
            ts=int(ts) if ts is not None else self._clock.now_ms(),
        )

    # -- account ---------------------------------------------------------------------------

    def fetch_balances(self) -> Balances:
        b: Mapping[str, Any] = self._read("account", self._client.fetch_balance)
        free = {k: float(v) for k, v in (b.get("free") or {}).items() if v}
        total = {k: float(v) for k, v in (b.get("total") or {}).items() if v}
        return Balances(free=free, total=total)

    def fetch_open_orders(self, symbols: tuple[str, ...]) -> list[OpenOrder]:
        self._ensure_markets()
        out: list[OpenOrder] = []
        for symbol in symbols:
            rows = self._read("orders", lambda s=symbol: self._client.fetch_open_orders(s))  # type: ignore[misc]
            for o in rows:
                cid = self._remember(o, symbol)
                out.append(
                    OpenOrder(
                        client_id=cid,
                        symbol=str(o.get("symbol") or symbol),
                        side=Side(str(o["side"]).lower()),
                        qty=_num(o.get("amount")),
                        price=None if o.get("type") == "market" or o.get("price") is None else float(o["price"]),
                        filled=_num(o.get("filled")),
                        created_ms=int(o.get("timestamp") or 0),
                    )
                )
        return out

    def fetch_fills(self, symbols: tuple[str, ...], since_ms: int | None) -> list[Fill]:
        self._ensure_markets()
        fills: list[Fill] = []
        for symbol in symbols:
            trades = self._my_trades(symbol, since_ms)
            market = self._market_info(symbol)
            for t in trades:
                fills.append(self._fill(t, symbol, market))
        fills.sort(key=lambda f: (f.ts, f.id))
        return fills

    def _my_trades(self, symbol: str, since_ms: int | None) -> list[Mapping[str, Any]]:
        """Own trades from ``since_ms`` on, paged by trade id (Binance's ``fromId``)."""
        page: list[Mapping[str, Any]] = self._read(
            "account", lambda: self._client.fetch_my_trades(symbol, since_ms, _TRADES_PAGE)
        )
        out = list(page)
        pages = 1
        while since_ms is not None and len(page) >= _TRADES_PAGE and pages < _TRADES_MAX_PAGES:
            try:
                next_id = int(page[-1]["id"]) + 1
            except (KeyError, TypeError, ValueError):
                break
            page = self._read(
                "account",
                lambda n=next_id: self._client.fetch_my_trades(  # type: ignore[misc]
                    symbol, None, _TRADES_PAGE, {"fromId": n}
                ),
            )
            out.extend(page)
            pages += 1
        return out

    def _fill(self, t: Mapping[str, Any], symbol: str, market: Mapping[str, Any]) -> Fill:
        side = Side(str(t["side"]).lower())
        qty = _num(t.get("amount"))
        price = _num(t.get("price"))
        base, quote = market.get("base"), market.get("quote")
        fees = t.get("fees") or ([t["fee"]] if t.get("fee") else [])
        fee = 0.0
        base_fee = 0.0
        for f in fees:
            if not f:
                continue
            cost = _num(f.get("cost"))
            if f.get("currency") == quote:
                fee += cost
            elif f.get("currency") == base:
                base_fee += cost
        if base_fee:
            fee += base_fee * price
            qty = qty - base_fee if side is Side.BUY else qty + base_fee
        order_id = t.get("order")
        cid = self._client_id_for(symbol, str(order_id)) if order_id is not None else ""
        return Fill(
            id=f"{market.get('id', symbol)}:{t['id']}",
            client_id=cid,
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            fee=fee,
            ts=int(t.get("timestamp") or 0),
        )

    def _client_id_for(self, symbol: str, order_id: str) -> str:
        """The client id of an order by exchange id (cached; myTrades does not carry it)."""
        cached = self._order_cids.get((symbol, order_id))
        if cached is not None:
            return cached
        try:
            raw = self._read("orders", lambda: self._client.fetch_order(order_id, symbol))
        except Rejected as err:
            if err.reason == "not_found":
                return order_id
            raise
        return self._remember(raw, symbol)

    def _remember(self, raw: Mapping[str, Any], symbol: str, known_cid: str | None = None) -> str:
        """Cache exchange id -> client id. ``known_cid`` wins: a Binance cancel answers with
        the cancel request's own client id in ``clientOrderId``."""
        cid = str(known_cid or raw.get("clientOrderId") or raw.get("id") or "")
        if raw.get("id") is not None:
            self._order_cids[(symbol, str(raw["id"]))] = cid
        return cid

    # -- orders ------------------------------------------------------------------------------

    def place(self, order: OrderRequest) -> OrderStatus:
        """Send once; if the answer is lost, look the order up by client id, and send a second
        time (same client id) only when the exchange has definitely never seen it."""
        self._ensure_markets()
        for attempt in (1, 2):
            try:
                return self._send(order)
            except Rejected as err:
                if err.reason != "duplicate":
                    raise
                return self._existing(order, err)
            except Ambiguous as err:
                found = self._confirm(order, err)
                if found is not None:
                    return found
                if attempt == 2:
                    raise Ambiguous(
                        f"orders: {order.client_id} not confirmed after two attempts; look it up before anything else",
                        "orders",
                        err.cause,
                    ) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, order: OrderRequest) -> OrderStatus:
        client = self._client
        side = order.side.value

        def send() -> Mapping[str, Any]:
            params: dict[str, Any] = {"newClientOrderId": order.client_id}
            if order.price is None:
                by_cost = order.side is Side.BUY and order.spend is not None
                if by_cost and client.has.get("createMarketBuyOrderWithCost"):
                    return client.create_market_buy_order_with_cost(
                        order.symbol, order.spend, params
                    )
                return client.create_order(
                    order.symbol, "market", side, float(order.qty), None, params
                )
            return client.create_order(
                order.symbol, "limit", side, float(order.qty), float(order.price), params
            )

        raw = self._attempt("orders", send, placing=True)
        return self._status(raw, order.symbol, order.client_id, float(order.qty))

    def _confirm(self, order: OrderRequest, err: Ambiguous) -> OrderStatus | None:
        """After an Ambiguous send: the order if the exchange has it, None if definitely not."""
        try:
            return self.find_order(order.client_id, order.symbol)
        except AdapterError as lookup:
            raise Ambiguous(
                f"orders: {order.client_id} may have been placed and the lookup failed ({lookup.kind})",
                "orders",
                err.cause,
            ) from lookup

    def _existing(self, order: OrderRequest, err: Rejected) -> OrderStatus:
        """After a duplicate-client-id rejection: the order that holds the id."""
        found = self._confirm(order, Ambiguous(str(err), "orders", err.cause))
        if found is None:
            raise err
        return found

    def cancel(self, client_id: str, symbol: str) -> OrderStatus | None:
        """Cancel by client id; None when the exchange has no open order by that id (already
        filled, canceled or never seen: :meth:`find_order` tells which)."""
        self._ensure_markets()
        try:
            raw = self._read(
                "orders", lambda: self._client.cancel_order(None, symbol, {"origClientOrderId": client_id})
            )
        except Rejected as err:
            if err.reason == "not_found":
                return None
            raise
        return self._status(raw, symbol, client_id)

    def find_order(self, client_id: str, symbol: str) -> OrderStatus | None:
        self._ensure_markets()
        try:
            raw = self._read(
                "orders", lambda: self._client.fetch_order(None, symbol, {"origClientOrderId": client_id})
            )
        except Rejected as err:
            if err.reason == "not_found":
                return None
            raise
        return self._status(raw, symbol, client_id)

    def _status(
        self, raw: Mapping[str, Any], symbol: str, client_id: str | None = None, qty: float | None = None
    ) -> OrderStatus:
        cid = self._remember(raw, symbol, client_id)
        info = raw.get("info")
        native = str(info.get("status") or "").upper() if isinstance(info, Mapping) else ""
        filled = _num(raw.get("filled"))
        status = _NATIVE_ORDER_STATUS.get(native) or _unified_status(raw.get("status"), filled)
        average = raw.get("average")
        created = raw.get("timestamp")
        return OrderStatus(
            client_id=cid,
            exchange_id=str(raw.get("id") or ""),
            symbol=str(raw.get("symbol") or symbol),
            side=str(raw.get("side") or "").lower(),
            status=status,
            qty=_num(raw.get("amount"), qty if qty is not None else 0.0),
            filled=filled,
            avg_price=float(average) if average is not None else None,
            created_ms=int(created) if created is not None else self._clock.now_ms(),
        )


def _unified_status(status: Any, filled: float) -> str:
    if status == "open":
        return "partially_filled" if filled > 0 else "open"
    if status == "closed":
        return "filled"
    if status in ("canceled", "expired", "rejected"):
        return str(status)
    return "new"


def _make_client(
    exchange_id: str,
    api_key: str | None,
    secret: str | None,
    timeout_ms: int,
    base_url: str | None,
    urls: Mapping[str, str] | None,
    options: Mapping[str, Any] | None,
) -> Any:
    if base_url is not None:
        if exchange_id != "binance":
            raise ValueError("base_url points at the Binance emulator; it needs exchange_id 'binance'")
        # URL rebasing and the spot error-table merge live with the emulator (see its docs)
        from policyctl.emulator.client import make_ccxt_client

        client = make_ccxt_client(base_url, api_key, secret, timeout_ms=timeout_ms, options=dict(options or {}))
    else:
        import ccxt

        cls = getattr(ccxt, exchange_id, None)
        if not isinstance(cls, type) or not issubclass(cls, ccxt.Exchange):
            raise ValueError(f"unknown ccxt exchange {exchange_id!r}")
        defaults = _BINANCE_OPTIONS if exchange_id == "binance" else {}
        config: dict[str, Any] = {
            "timeout": timeout_ms,
            "enableRateLimit": False,  # ours is in front of every call
            "options": {**defaults, **(options or {})},
        }
        if api_key:
            config["apiKey"] = api_key
        if secret:
            config["secret"] = secret
        client = cls(config)
    if urls:
        api = client.urls.get("api")
        client.urls["api"] = {**api, **urls} if isinstance(api, dict) else dict(urls)
    return client

