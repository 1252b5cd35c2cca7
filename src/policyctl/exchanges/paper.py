"""The paper adapter: live market data from a real adapter, fills simulated against it.

``PaperAdapter(market_data, cash, fees, seed)`` reads markets, candles, quotes and the time
from ``market_data`` (any :class:`~policyctl.exchanges.adapter.ExchangeAdapter`, normally a
:class:`~policyctl.exchanges.ccxt_adapter.CcxtAdapter`) and keeps its own balances, open
orders and fills. The fill model is deliberately plain:

* **market orders** fill completely at the current ask (buys) or bid (sells) and pay the
  taker fee, in the quote currency; a buy with ``spend`` set spends that amount, fee
  included (quantity floored to the market's step);
* **limit orders** that are marketable when placed fill at once at the ask/bid as a taker;
  the others rest, locking their funds, and fill completely at their limit price (maker
  fee) once a quote crosses them: ``ask <= price`` for a buy, ``bid >= price`` for a sell.
  Resting orders are checked against a fresh quote on every :meth:`fetch_open_orders` and
  :meth:`fetch_fills` call, or on an explicit :meth:`poll`;
* orders are checked the way an exchange checks them, with the same rejection reasons as
  the ccxt adapter: ``market_closed``, ``filter`` (tick, step, minimum quantity),
  ``min_notional``, ``insufficient_funds``, ``duplicate`` (a client id already used by an
  open order, or by any order with ``client_id_scope="account"``).

Fills carry unique ids (``paper-<prefix>-<n>``, the prefix drawn from ``seed``) and the
quote's timestamp, so a run is deterministic given the sequence of quotes it sees.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

from policyctl.exchanges.adapter import (
    Balances,
    ExchangeAdapter,
    Market,
    NeedsHuman,
    OrderStatus,
    Rejected,
)
from policyctl.runtime.model import Bar, Fill, MarketRules, OpenOrder, OrderRequest, Quote, Side

DUST = 1e-12


@dataclass(frozen=True, slots=True)
class Fees:
    maker: float = 0.001
    taker: float = 0.001


@dataclass
class _Order:
    exchange_id: str
    client_id: str
    symbol: str
    side: Side
    price: float | None
    qty: float
    created_ms: int
    reduce_only: bool
    lock_asset: str = ""
    locked: float = 0.0
    filled: float = 0.0
    cost: float = 0.0
    status: str = "open"

    def to_status(self) -> OrderStatus:
        return OrderStatus(
            client_id=self.client_id,
            exchange_id=self.exchange_id,
            symbol=self.symbol,
            side=self.side.value,
            status=self.status,
            qty=self.qty,
            filled=self.filled,
            avg_price=self.cost / self.filled if self.filled > 0 else None,
            created_ms=self.created_ms,
        )


def _dec(x: float | str) -> Decimal:
    return Decimal(x) if isinstance(x, str) else Decimal(repr(x))


def _on_grid(value: Decimal, step: float) -> bool:
    return step <= 0 or value % _dec(step) == 0


def _floor(value: float, step: float) -> float:
    if step <= 0:
        return value
    s = _dec(step)
    return float((_dec(value) / s).to_integral_value(rounding=ROUND_FLOOR) * s)


class PaperAdapter:
    """:class:`~policyctl.exchanges.adapter.ExchangeAdapter` with simulated execution."""

    def __init__(
        self,
        market_data: ExchangeAdapter,
        cash: float | Mapping[str, float],
        fees: Fees | float = Fees(),
        seed: int = 0,
        *,
        quote_asset: str = "USDT",
        client_id_scope: Literal["open", "account"] = "open",
    ) -> None:
        self.name = f"paper:{market_data.name}"
        self.market_data = market_data
        self.fees = fees if isinstance(fees, Fees) else Fees(maker=float(fees), taker=float(fees))
        self.client_id_scope = client_id_scope
        start = {quote_asset: float(cash)} if isinstance(cash, int | float) else dict(cash)
        self._free: dict[str, float] = {k: float(v) for k, v in start.items()}
        self._locked: dict[str, float] = {}
        self._orders: list[_Order] = []
        self._fills: list[Fill] = []
        self._markets: dict[str, Market] = {}
        self._lock = threading.RLock()
        self._prefix = f"{random.Random(seed).getrandbits(32):08x}"
        self._next_order = 1
        self._next_fill = 1

    # -- market data: straight from the real adapter --------------------------------------

    def load_markets(self) -> dict[str, Market]:
        markets = self.market_data.load_markets()
        with self._lock:
            self._markets = dict(markets)
        return markets

    def time_ms(self) -> int:
        return self.market_data.time_ms()

    def fetch_candles(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list[Bar]:
        return self.market_data.fetch_candles(symbol, timeframe, since_ms, limit)

    def fetch_quote(self, symbol: str) -> Quote:
        return self.market_data.fetch_quote(symbol)

    # -- the simulated account -------------------------------------------------------------

    def fetch_balances(self) -> Balances:
        with self._lock:
            assets = set(self._free) | set(self._locked)
            free = {a: self._free.get(a, 0.0) for a in assets}
            total = {a: self._free.get(a, 0.0) + self._locked.get(a, 0.0) for a in assets}
        return Balances(
            free={a: v for a, v in free.items() if abs(v) > DUST},
            total={a: v for a, v in total.items() if abs(v) > DUST},
        )

    def fetch_open_orders(self, symbols: tuple[str, ...]) -> list[OpenOrder]:
        self.poll(symbols)
        with self._lock:
            return [
                OpenOrder(o.client_id, o.symbol, o.side, o.qty, o.price, o.filled, o.created_ms, o.reduce_only)
                for o in self._orders
                if o.status == "open" and o.symbol in symbols
            ]

    def fetch_fills(self, symbols: tuple[str, ...], since_ms: int | None) -> list[Fill]:
        self.poll(symbols)
        with self._lock:
            return [f for f in self._fills if f.symbol in symbols and (since_ms is None or f.ts >= since_ms)]

    def poll(self, symbols: Iterable[str] | None = None) -> list[Fill]:
        """Fill resting limit orders the current quotes cross; returns the new fills."""
        with self._lock:
            wanted = set(symbols) if symbols is not None else None
            todo = list(
                dict.fromkeys(
                    o.symbol
                    for o in self._orders
                    if o.status == "open" and (wanted is None or o.symbol in wanted)
                )
            )
        new: list[Fill] = []
        for symbol in todo:
            quote = self.market_data.fetch_quote(symbol)  # outside the lock: a network call
            with self._lock:
                market = self._markets.get(symbol)
                if market is not None and market.rules.status != "trading":
                    continue  # nothing fills on a halted market
                for o in [o for o in self._orders if o.status == "open" and o.symbol == symbol]:
                    assert o.price is not None
                    crossed = quote.ask <= o.price if o.side is Side.BUY else quote.bid >= o.price
                    if crossed:
                        new.append(self._execute(o, o.price, self.fees.maker, quote.ts))
        return new

    # -- orders ------------------------------------------------------------------------------

    def place(self, order: OrderRequest) -> OrderStatus:
        market = self._market(order.symbol)
        if market.rules.status != "trading":
            raise Rejected(f"orders: {order.symbol} is not trading ({market.rules.status})", "orders",
                           reason="market_closed")
        quote = self.market_data.fetch_quote(order.symbol)
        with self._lock:
            self._check_duplicate(order.client_id)
            if order.price is None:
                return self._place_market(order, market, quote)
            return self._place_limit(order, market, quote)

    def _place_market(self, order: OrderRequest, market: Market, quote: Quote) -> OrderStatus:
        rules = market.rules
        fee = self.fees.taker
        if order.side is Side.BUY:
            px = quote.ask
            if order.spend is not None:
                if order.spend < rules.min_notional:
                    raise self._reject(order, "min_notional", f"spend {order.spend:g} < {rules.min_notional:g}")
                qty = _floor(order.spend / (px * (1 + fee)), rules.step_size)
            else:
                qty = float(order.qty)
                self._check_qty(order, _dec(order.qty), rules)
            if qty <= 0 or qty < rules.min_qty:
                raise self._reject(order, "filter", f"quantity {qty:g} below the minimum {rules.min_qty:g}")
            if order.spend is None:
                self._check_notional(order, qty * quote.last, rules)
            need = qty * px * (1 + fee)
            if self._free.get(market.quote, 0.0) + DUST < need:
                raise self._reject(order, "insufficient_funds", f"needs {need:.8g} {market.quote}")
        else:
            px = quote.bid
            qty = float(order.qty)
            self._check_qty(order, _dec(order.qty), rules)
            self._check_notional(order, qty * quote.last, rules)
            if self._free.get(market.base, 0.0) + DUST < qty:
                raise self._reject(order, "insufficient_funds", f"needs {qty:.8g} {market.base}")
        o = self._new_order(order, None, qty, quote.ts)
        self._execute(o, px, fee, quote.ts)
        return o.to_status()

    def _place_limit(self, order: OrderRequest, market: Market, quote: Quote) -> OrderStatus:
        rules = market.rules
        assert order.price is not None
        price = float(order.price)
        if price <= 0 or not _on_grid(_dec(order.price), rules.tick_size):
            raise self._reject(order, "filter", f"price {order.price} is off the tick grid {rules.tick_size:g}")
        self._check_qty(order, _dec(order.qty), rules)
        qty = float(order.qty)
        self._check_notional(order, qty * price, rules)
        worst_fee = max(self.fees.maker, self.fees.taker)
        if order.side is Side.BUY:
            marketable = quote.ask <= price
            asset, amount = market.quote, qty * price * (1 + worst_fee)
        else:
            marketable = quote.bid >= price
            asset, amount = market.base, qty
        if self._free.get(asset, 0.0) + DUST < amount:
            raise self._reject(order, "insufficient_funds", f"needs {amount:.8g} {asset}")
        o = self._new_order(order, price, qty, quote.ts)
        if marketable:
            self._execute(o, quote.ask if order.side is Side.BUY else quote.bid, self.fees.taker, quote.ts)
        else:
            o.lock_asset, o.locked = asset, amount
            self._move(asset, -amount)
            self._locked[asset] = self._locked.get(asset, 0.0) + amount
        return o.to_status()

    def cancel(self, client_id: str, symbol: str) -> OrderStatus | None:
        with self._lock:
            for o in self._orders:
                if o.client_id == client_id and o.symbol == symbol and o.status == "open":
                    self._release(o)
                    o.status = "canceled"
                    return o.to_status()
        return None

    def find_order(self, client_id: str, symbol: str) -> OrderStatus | None:
        with self._lock:
            for o in reversed(self._orders):
                if o.client_id == client_id and o.symbol == symbol:
                    return o.to_status()
        return None

    # -- internals ---------------------------------------------------------------------------

    def _market(self, symbol: str) -> Market:
        with self._lock:
            market = self._markets.get(symbol)
        if market is None:
            market = self.load_markets().get(symbol)
        if market is None:
            raise NeedsHuman(f"market_data: unknown symbol {symbol!r}", "market_data")
        return market

    def _check_duplicate(self, client_id: str) -> None:
        for o in self._orders:
            if o.client_id == client_id and (self.client_id_scope == "account" or o.status == "open"):
                raise Rejected(f"orders: duplicate client id {client_id!r}", "orders", reason="duplicate")

    def _check_qty(self, order: OrderRequest, qty: Decimal, rules: MarketRules) -> None:
        if qty <= 0 or float(qty) < rules.min_qty or not _on_grid(qty, rules.step_size):
            raise self._reject(order, "filter", f"quantity {qty} is below {rules.min_qty:g} or off the step "
                               f"{rules.step_size:g}")

    def _check_notional(self, order: OrderRequest, notional: float, rules: MarketRules) -> None:
        if notional < rules.min_notional:
            raise self._reject(order, "min_notional", f"notional {notional:.8g} < {rules.min_notional:g}")

    @staticmethod
    def _reject(order: OrderRequest, reason: str, detail: str) -> Rejected:
        return Rejected(f"orders: {order.client_id} rejected ({reason}): {detail}", "orders", reason=reason)

    def _new_order(self, order: OrderRequest, price: float | None, qty: float, ts: int) -> _Order:
        o = _Order(
            exchange_id=f"{self._prefix}-{self._next_order}",
            client_id=order.client_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            created_ms=ts,
            reduce_only=order.reduce_only,
        )
        self._next_order += 1
        self._orders.append(o)
        return o

    def _move(self, asset: str, amount: float) -> None:
        self._free[asset] = self._free.get(asset, 0.0) + amount

    def _release(self, o: _Order) -> None:
        if o.locked:
            self._locked[o.lock_asset] = self._locked.get(o.lock_asset, 0.0) - o.locked
            self._move(o.lock_asset, o.locked)
            o.locked = 0.0

    def _execute(self, o: _Order, price: float, fee_rate: float, ts: int) -> Fill:
        """Fill what is left of ``o`` at ``price``; balances move, the fill is recorded."""
        market = self._markets[o.symbol]
        self._release(o)
        qty = o.qty - o.filled
        notional = qty * price
        fee = notional * fee_rate
        if o.side is Side.BUY:
            self._move(market.quote, -(notional + fee))
            self._move(market.base, qty)
        else:
            self._move(market.base, -qty)
            self._move(market.quote, notional - fee)
        o.filled = o.qty
        o.cost += notional
        o.status = "filled"
        fill = Fill(
            id=f"paper-{self._prefix}-{self._next_fill}",
            client_id=o.client_id,
            symbol=o.symbol,
            side=o.side,
            qty=qty,
            price=price,
            fee=fee,
            ts=ts,
        )
        self._next_fill += 1
        self._fills.append(fill)
        return fill
