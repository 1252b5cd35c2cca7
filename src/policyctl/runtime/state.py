"""The engine's persisted state: its books, breaker trips, counters and memory of orders.

Everything the engine must remember between ticks lives here, in plain data that
round-trips through JSON (``to_json`` / ``from_json``), so the live runtime can store it in
SQLite and a restart continues exactly where the crash left off. Indicator history is not
here: it is rebuilt by replaying candles through the evaluator at start-up.

The books (cash and positions) are kept from fills; a snapshot's balances are checked
against them, and a disagreement fails closed until it is reconciled.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from policyctl.runtime.model import TradingState


@dataclass
class Position:
    symbol: str
    qty: float
    entry: float  # average entry price
    opened_ms: int
    opened_bar: int  # open time of the bar the position was opened on
    cost: float  # quote spent on the position, fees included
    stop: float | None = None  # protective stop-loss price
    take: float | None = None  # take-profit price
    strategy: str | None = None
    rule: str = ""


@dataclass
class Trip:
    breaker: str
    action: str
    since_ms: int
    until_ms: int | None  # None: until an operator resets it
    reason: str


@dataclass
class PendingOrder:
    """What the engine decided about an order it sent, kept until the order is done."""

    client_id: str
    symbol: str
    side: str
    qty: float
    ref_price: float
    kind: str
    rule: str
    created_ms: int
    stop: float | None = None
    take: float | None = None
    strategy: str | None = None
    filled: float = 0.0
    last_fill_ms: int | None = None  # when its latest fill happened (its cooldowns start then)


@dataclass
class EngineState:
    cash: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)
    pending: dict[str, PendingOrder] = field(default_factory=dict)
    trips: dict[str, Trip] = field(default_factory=dict)
    trading_state: TradingState = TradingState.ACTIVE
    peak_equity: float = 0.0
    equity_marks: list[tuple[int, float]] = field(default_factory=list)  # (ms, equity)
    realized: list[tuple[int, float]] = field(default_factory=list)  # (ms, realized pnl)
    fills_seen: OrderedDict[str, int] = field(default_factory=OrderedDict)  # recent fill id -> time, oldest first
    sent_ids: OrderedDict[str, int] = field(default_factory=OrderedDict)  # recent client id -> time, oldest first
    trade_times: list[int] = field(default_factory=list)  # one per filled order
    stopout_times: list[int] = field(default_factory=list)
    order_times: list[int] = field(default_factory=list)  # one per order sent
    cooldowns: dict[str, int] = field(default_factory=dict)  # symbol -> until ms
    last_bar_ts: dict[str, int] = field(default_factory=dict)
    last_price: dict[str, float] = field(default_factory=dict)  # last trusted price
    avg_volume: dict[str, float] = field(default_factory=dict)
    bars_seen: int = 0
    now: int = 0

    MAX_IDS = 5000

    @classmethod
    def initial(cls, cash: float, now: int = 0) -> EngineState:
        return cls(cash=cash, peak_equity=cash, now=now)

    def clone(self) -> EngineState:
        """A deep copy: ``Engine.tick`` updates the state it is given, so keep a clone to compare."""
        return copy.deepcopy(self)

    # -- (de)serialization --
    def to_json(self) -> str:
        d = asdict(self)
        d["trading_state"] = self.trading_state.value
        for o in d["pending"].values():  # (written only once known: states of orders never filled stay as they were)
            if o["last_fill_ms"] is None:
                del o["last_fill_ms"]
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EngineState:
        d: dict[str, Any] = json.loads(text)
        d["trading_state"] = TradingState(d["trading_state"])
        d["positions"] = {k: Position(**v) for k, v in d["positions"].items()}
        d["pending"] = {k: PendingOrder(**v) for k, v in d["pending"].items()}
        d["trips"] = {k: Trip(**v) for k, v in d["trips"].items()}
        for key in ("equity_marks", "realized"):
            d[key] = [tuple(x) for x in d[key]]
        for key in ("fills_seen", "sent_ids"):
            d[key] = OrderedDict(d[key])
        return cls(**d)

    # -- small helpers --
    def remember(self, ids: OrderedDict[str, int], value: str, ts: int) -> None:
        """Record an id in a bounded, insertion-ordered memory of the newest ``MAX_IDS`` ids
        (O(1) to add and to test; the oldest goes first, unlinked from the front, where a plain
        dict would scan its deleted slots from the start every time)."""
        ids[value] = ts
        while len(ids) > self.MAX_IDS:
            ids.popitem(last=False)

    def prune(self, horizon_ms: int) -> None:
        """Forget what is older than every window the policy looks at."""
        cutoff = self.now - horizon_ms
        for name in ("trade_times", "stopout_times", "order_times"):
            times: list[int] = getattr(self, name)
            k = 0
            while k < len(times) and times[k] < cutoff:
                k += 1
            if k:
                del times[:k]
        for marks in (self.equity_marks, self.realized):
            k = 0
            while k + 1 < len(marks) and marks[k + 1][0] <= cutoff:
                k += 1  # keep the last mark at or before the cutoff: the window's start
            if k:
                del marks[:k]
