"""What goes into a tick and what comes out: snapshots, orders, fills, decisions.

The engine is a pure function of a :class:`Snapshot` (everything the outside world says at
one instant: candles, quotes, balances, open orders, new fills, health counters, the clock)
and the persisted :class:`~policyctl.runtime.state.EngineState`. The simulator and the live
runtime differ only in how they build snapshots and what they do with the decisions.

Times are epoch milliseconds (ints). Prices and quantities are floats inside the engine;
the guard rounds them to the exchange's increments and hands ``Decimal`` strings to
adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from policyctl.records import fast_init


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


class TradingState(str, Enum):
    """Ordered from least to most restrictive; the strictest active breaker wins."""

    ACTIVE = "active"  # everything allowed
    PAUSED = "paused"  # no new entries; exits and stops still work
    REDUCE_ONLY = "reduce_only"  # only orders that reduce exposure; open buys are canceled
    HALTED = "halted"  # every open order canceled, nothing new

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {TradingState.ACTIVE: 0, TradingState.PAUSED: 1, TradingState.REDUCE_ONLY: 2,
         TradingState.HALTED: 3}

BREAKER_STATES = {
    "pause": TradingState.PAUSED,
    "reduce_only": TradingState.REDUCE_ONLY,
    "flatten": TradingState.REDUCE_ONLY,
    "halt": TradingState.HALTED,
}


@fast_init
@dataclass(frozen=True, slots=True)
class Bar:
    """The candle that just closed: ``ts`` is its open time."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@fast_init
@dataclass(frozen=True, slots=True)
class Quote:
    bid: float
    ask: float
    last: float
    ts: int

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Exchange metadata of one symbol: increments, minimums, status."""

    tick_size: float = 0.0  # price increment (0 = none)
    step_size: float = 0.0  # quantity increment (0 = none)
    min_qty: float = 0.0
    min_notional: float = 0.0
    status: str = "trading"  # trading | halted | cancel_only | post_only


@fast_init
@dataclass(frozen=True, slots=True)
class OpenOrder:
    client_id: str
    symbol: str
    side: Side
    qty: float
    price: float | None  # None for market orders
    filled: float
    created_ms: int
    reduce_only: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: ``id`` is unique per exchange and makes applying a fill idempotent."""

    id: str
    client_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float  # in the quote currency
    ts: int
    kind: str = ""  # set by exchanges that fill protective orders themselves: stop_loss | take_profit


@fast_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    now: int
    bars: dict[str, Bar] = field(default_factory=dict)  # the bars that closed, by symbol
    quotes: dict[str, Quote] = field(default_factory=dict)
    cash: float | None = None  # free + locked quote currency; None = unknown
    balances: dict[str, float] = field(default_factory=dict)  # base asset -> quantity held
    open_orders: tuple[OpenOrder, ...] = ()
    fills: tuple[Fill, ...] = ()  # fills since the previous tick (repeats are ignored)
    markets: dict[str, MarketRules] = field(default_factory=dict)
    api_errors: tuple[int, ...] = ()  # times of failed exchange requests
    kill_switch: bool = False
    new_bar: bool = True  # False for an intra-bar re-evaluation (after a fill, say)
    rejections: tuple[tuple[str, str], ...] = ()  # (client id, reason) the exchange refused since


@fast_init
@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order the engine wants placed; the adapter sends it as it stands."""

    client_id: str
    symbol: str
    side: Side
    qty: str  # a decimal string, already on the exchange's step
    price: str | None  # limit price on the tick grid; None for market orders
    kind: str  # entry | exit | stop_loss | take_profit | flatten
    rule: str
    reduce_only: bool
    ref_price: float  # the price the decision was made at
    stop: float | None = None  # protective prices the position will carry
    take: float | None = None
    strategy: str | None = None
    spend: float | None = None  # buys: quote to spend, fee included (the qty follows the fill price)

    @property
    def notional(self) -> float:
        return float(self.qty) * self.ref_price


@fast_init
@dataclass(frozen=True, slots=True)
class Cancel:
    client_id: str
    symbol: str
    reason: str


@fast_init
@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a tick, for the journal, metrics and alerts."""

    kind: str  # state_change | breaker_trip | breaker_clear | denial | fill | data | alert
    message: str
    data: dict[str, object] = field(default_factory=dict)
