"""The emulated exchange: markets, price paths, accounts, orders and the matching engine.

One :class:`Exchange` holds all state behind one re-entrant lock; the HTTP server and the
test's handle both go through it.  Matching model (documented, deliberately simple):

* the order book belongs to "the market": our fills never consume or move it;
* MARKET orders (and the marketable part of a LIMIT) take liquidity at once, walking the
  depth; what the depth cannot fill EXPIREs (IOC/FOK and MARKET) or rests (GTC);
* a resting LIMIT fills as maker at its own price when a price event crosses it
  (``set_price``: ask <= buy price / bid >= sell price; a candle: low / high), by
  ``limit_fill_fraction`` of its original quantity per event (1 = all at once);
* a symbol that is not TRADING rejects new orders and fills nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from . import matching, payloads, placement
from .accounts import Account
from .clock import Clock, SettableClock
from .errors import (
    cancel_rejected,
    invalid_symbol,
    no_such_order,
)
from .marketdata import Bar, Feed, Level, interval_ms
from .markets import MarketSpec, Number, dec, floor_to_step
from .orders import Fill, NewOrder, Order


@dataclass(frozen=True)
class EngineSettings:
    depth_levels: int = 5  # synthetic depth: this many ticks per side
    level_qty: Decimal = Decimal(1000)  # synthetic depth: base quantity per level
    limit_fill_fraction: Decimal = Decimal(1)
    spread_ticks: int = 1  # candle replay: bid/ask = close -/+ this many ticks
    client_id_scope: Literal["open", "account"] = "open"  # Binance: unique among open orders


class Exchange:
    """All emulator state; every public method takes the lock."""

    def __init__(self, clock: Clock, settings: EngineSettings | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.settings = settings or EngineSettings()
        self.markets: dict[str, MarketSpec] = {}
        self.feeds: dict[str, Feed] = {}
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self._next_order_id = 1
        self._next_trade_id = 1

    # -- setup ---------------------------------------------------------------------------

    def add_market(self, spec: MarketSpec) -> None:
        with self.lock:
            self.markets[spec.symbol] = spec
            self.feeds.setdefault(spec.symbol, Feed())

    def add_account(self, account: Account) -> None:
        with self.lock:
            self.accounts[account.api_key] = account

    def symbol_id(self, symbol: str) -> str:
        """``BTCUSDT`` from ``BTC/USDT`` or ``BTCUSDT``; KeyError when not listed."""
        sid = symbol.replace("/", "")
        if sid not in self.markets:
            raise KeyError(f"no market {symbol!r}; listed: {sorted(self.markets)}")
        return sid

    def spec(self, symbol: str) -> MarketSpec:
        return self.markets[self.symbol_id(symbol)]

    def listed(self, sid: str) -> MarketSpec:
        """The market for a request's ``symbol`` parameter, or -1121."""
        spec = self.markets.get(sid)
        if spec is None:
            raise invalid_symbol()
        return spec

    # -- the price path ------------------------------------------------------------------

    def set_price(
        self,
        symbol: str,
        bid: Number,
        ask: Number,
        last: Number | None = None,
        volume: Number | None = None,
        bid_qty: Number | None = None,
        ask_qty: Number | None = None,
    ) -> None:
        with self.lock:
            sid = self.symbol_id(symbol)
            b, a = dec(bid), dec(ask)
            qty = self.settings.level_qty
            self.feeds[sid].set_quote(
                b,
                a,
                dec(last) if last is not None else (b + a) / 2,
                dec(volume) if volume is not None else None,
                dec(bid_qty) if bid_qty is not None else qty,
                dec(ask_qty) if ask_qty is not None else qty,
            )
            self._match_resting(sid, low=a, high=b)

    def set_depth(
        self,
        symbol: str,
        bids: Iterable[tuple[Number, Number]],
        asks: Iterable[tuple[Number, Number]],
    ) -> None:
        with self.lock:
            sid = self.symbol_id(symbol)
            self.feeds[sid].set_depth(
                [(dec(p), dec(q)) for p, q in bids], [(dec(p), dec(q)) for p, q in asks]
            )

    def depth(self, sid: str) -> tuple[list[Level], list[Level]]:
        spec = self.markets[sid]
        return self.feeds[sid].depth(spec.tick_size, self.settings.depth_levels)

    def load_candles(self, symbol: str, bars: list[Bar], interval: str) -> None:
        """Queue bars for replay; the first one is applied at once (so there is a price)."""
        with self.lock:
            sid = self.symbol_id(symbol)
            feed = self.feeds[sid]
            feed.bars = sorted(bars, key=lambda b: b.open_time)
            feed.bar_ms = interval_ms(interval)
            feed.cursor = -1
            if feed.bars:
                self._apply_next_bar(sid)
                self._move_clock(feed.bars[0].open_time + feed.bar_ms)

    def advance(self, bars: int = 1) -> int:
        """Replay the next ``bars`` candle steps across all symbols; returns steps taken."""
        taken = 0
        with self.lock:
            for _ in range(bars):
                nexts = {sid: f.next_open_time() for sid, f in self.feeds.items()}
                due = [t for t in nexts.values() if t is not None]
                if not due:
                    break
                t = min(due)
                step = min(self.feeds[s].bar_ms for s, nt in nexts.items() if nt == t)
                for sid, nt in nexts.items():
                    if nt == t:
                        self._apply_next_bar(sid)
                self._move_clock(t + step)
                taken += 1
        return taken

    def _move_clock(self, target: int) -> None:
        if isinstance(self.clock, SettableClock) and target > self.clock.now_ms():
            self.clock.set_ms(target)

    def _apply_next_bar(self, sid: str) -> None:
        feed = self.feeds[sid]
        feed.cursor += 1
        bar = feed.bars[feed.cursor]
        tick = self.markets[sid].tick_size
        spread = tick * self.settings.spread_ticks
        bid = max(bar.close - spread, tick)
        qty = self.settings.level_qty
        feed.set_quote(bid, bar.close + spread, bar.close, None, qty, qty)
        self._match_resting(sid, low=bar.low, high=bar.high)

    def ticker(self, sid: str) -> dict[str, object]:
        """The 24h ticker as served: frozen while stale, spiked once per queued bad tick."""
        with self.lock:
            spec, feed = self.listed(sid), self.feeds[sid]
            if feed.frozen_ticker is not None:
                return dict(feed.frozen_ticker)
            spike = feed.bad_ticks.popleft() if feed.bad_ticks else None
            return payloads.ticker_24h(spec, feed, self.clock.now_ms(), spike)

    def set_stale(self, symbol: str, stale: bool = True) -> None:
        """Freeze (or thaw) the ticker: its ``closeTime`` and prices stop moving."""
        with self.lock:
            sid = self.symbol_id(symbol)
            feed = self.feeds[sid]
            feed.frozen_ticker = None
            if stale:
                feed.frozen_ticker = payloads.ticker_24h(
                    self.markets[sid], feed, self.clock.now_ms()
                )

    def set_late(self, symbol: str, bars: int = 1, requests: int = 1) -> None:
        """The next ``requests`` candle requests of ``symbol`` miss its newest ``bars`` candles, as
        when the exchange has not closed them yet."""
        with self.lock:
            self.feeds[self.symbol_id(symbol)].late = (max(bars, 0), max(requests, 0))

    def bad_tick(self, symbol: str, price: Number, count: int = 1) -> None:
        """The next ``count`` ticker responses report ``price`` as last, bid and ask."""
        with self.lock:
            self.feeds[self.symbol_id(symbol)].bad_ticks.extend([dec(price)] * count)

    def set_status(self, symbol: str, status: str) -> None:
        with self.lock:
            sid = self.symbol_id(symbol)
            self.markets[sid] = self.markets[sid].with_status(status)

    # -- matching ------------------------------------------------------------------------

    def new_order_id(self) -> int:
        oid = self._next_order_id
        self._next_order_id += 1
        return oid

    def new_trade_id(self) -> int:
        tid = self._next_trade_id
        self._next_trade_id += 1
        return tid

    def _match_resting(self, sid: str, low: Decimal, high: Decimal) -> None:
        spec = self.markets[sid]
        if spec.status != "TRADING":
            return
        now = self.clock.now_ms()
        fraction = self.settings.limit_fill_fraction
        for order in sorted(self.orders.values(), key=lambda o: o.order_id):
            if order.symbol != sid or not order.is_open:
                continue
            crossed = low <= order.price if order.is_buy else high >= order.price
            if not crossed:
                continue
            qty = floor_to_step(order.orig_qty * fraction, spec.step_size)
            qty = order.remaining if qty <= 0 else min(qty, order.remaining)
            matching.book_fill(
                order,
                spec,
                self.accounts[order.api_key],
                order.price,
                qty,
                is_maker=True,
                trade_id=self.new_trade_id(),
                now=now,
            )

    def place_order(self, account: Account, req: NewOrder) -> Order:
        """Validate and execute ``POST /api/v3/order`` (see ``placement``)."""
        with self.lock:
            return placement.place(self, account, req)

    # -- queries and cancels ---------------------------------------------------------------

    def find_order(
        self, account: Account, sid: str, order_id: int | None, client_id: str | None
    ) -> Order | None:
        with self.lock:
            if order_id is not None:
                o = self.orders.get(order_id)
                ok = (
                    o is not None
                    and o.api_key == account.api_key
                    and o.symbol == sid
                    and (client_id is None or o.client_order_id == client_id)
                )
                return o if ok else None
            mine = [
                o
                for o in self.orders.values()
                if o.api_key == account.api_key
                and o.symbol == sid
                and o.client_order_id == client_id
            ]
            return max(mine, key=lambda o: o.order_id) if mine else None

    def query_order(
        self, account: Account, sid: str, order_id: int | None, client_id: str | None
    ) -> Order:
        self.listed(sid)
        order = self.find_order(account, sid, order_id, client_id)
        if order is None:
            raise no_such_order()
        return order

    def cancel_order(
        self, account: Account, sid: str, order_id: int | None, client_id: str | None
    ) -> Order:
        with self.lock:
            spec = self.listed(sid)
            order = self.find_order(account, sid, order_id, client_id)
            if order is None or not order.is_open:
                raise cancel_rejected()
            matching.close_order(order, spec, account, "CANCELED", self.clock.now_ms())
            return order

    def expire_order(self, order_id: int, status: str = "EXPIRED") -> Order:
        """The exchange ends an open order on its own (EXPIRED, or REJECTED after the fact)."""
        if status not in ("EXPIRED", "REJECTED", "CANCELED"):
            raise ValueError(f"an exchange-side end is EXPIRED, REJECTED or CANCELED, not {status}")
        with self.lock:
            order = self.orders[order_id]
            if not order.is_open:
                raise ValueError(f"order {order_id} is already {order.status}")
            spec = self.markets[order.symbol]
            matching.close_order(
                order, spec, self.accounts[order.api_key], status, self.clock.now_ms()
            )
            return order

    def open_orders(self, account: Account, sid: str | None) -> list[Order]:
        with self.lock:
            if sid is not None:
                self.listed(sid)
            return sorted(
                (
                    o
                    for o in self.orders.values()
                    if o.api_key == account.api_key
                    and o.is_open
                    and (sid is None or o.symbol == sid)
                ),
                key=lambda o: o.order_id,
            )

    def account_orders(self, account: Account, sid: str) -> list[Order]:
        with self.lock:
            self.listed(sid)
            return sorted(
                (
                    o
                    for o in self.orders.values()
                    if o.api_key == account.api_key and o.symbol == sid
                ),
                key=lambda o: o.order_id,
            )

    def fills(self, account: Account, sid: str) -> list[Fill]:
        with self.lock:
            return sorted(
                (f for o in self.account_orders(account, sid) for f in o.fills),
                key=lambda f: f.trade_id,
            )
