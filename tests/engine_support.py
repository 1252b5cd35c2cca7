"""Helpers of the engine test suite: policies from YAML text, snapshots, and a tiny exchange.

Everything goes through the real pipeline: the policy text is written into a temporary
folder and compiled with ``load_and_compile``, and the engine is the real ``Engine``. The
only stand-in is :class:`Exchange`, a deterministic toy exchange that

* accepts the orders of one tick and fills them at the *next* bar's open (the bar that
  closes on the following tick), with a taker fee, fully or partly;
* reports what is still open (``open_orders``), its cash and balances, and every fill
  once (or, on request, again: duplicates must not change the engine's books);
* drops the orders the engine cancels, and rejects what it cannot settle (a buy without
  the cash, a sell without the coins), as a real exchange would.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from policyctl.rules.compiler import CompiledPolicy, load_and_compile
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.model import (
    Bar,
    Fill,
    MarketRules,
    OpenOrder,
    OrderRequest,
    Quote,
    Side,
    Snapshot,
)
from policyctl.runtime.state import EngineState

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, on every timeframe's grid
MIN = 60_000
TF5 = 5 * MIN
SYMBOLS = ("BTC/USDT", "ETH/USDT")


# ---- policies -----------------------------------------------------------------------------


def policy_text(body: str, symbols: Sequence[str] = SYMBOLS, timeframe: str = "5m",
                themes: str = "", name: str = "engine-test") -> str:
    """A policy document: a market header, then ``body`` (dedented YAML sections)."""
    head = f"policy: {name}\nmarket:\n  symbols: [{', '.join(symbols)}]\n  timeframe: {timeframe}\n"
    if themes:
        head += "  themes:\n" + textwrap.indent(textwrap.dedent(themes).strip("\n"), "    ") + "\n"
    return head + textwrap.dedent(body).lstrip("\n")


def compile_text(folder: Path, body: str, rules: Mapping[str, str] | None = None,
                 file: str = "policy.yaml", **header: object) -> CompiledPolicy:
    """Write ``policy_text(body, **header)`` (and any ``.rules`` files) and compile it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (rules or {}).items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    path = folder / file
    path.write_text(policy_text(body, **header), encoding="utf-8")  # type: ignore[arg-type]
    return load_and_compile(path)


# ---- market data ------------------------------------------------------------------------


def bar(ts: int, close: float, open: float | None = None, high: float | None = None,
        low: float | None = None, volume: float = 1000.0) -> Bar:
    o = close if open is None else open
    h = max(o, close) if high is None else high
    lo = min(o, close) if low is None else low
    return Bar(ts, o, h, lo, close, volume)


def quote(px: float, ts: int, spread: float = 0.0002) -> Quote:
    """A quote around ``px`` with a relative ``spread`` (bid/ask symmetric), last = ``px``."""
    half = px * spread / 2
    return Quote(px - half, px + half, px, ts)


def snapshot(now: int, bars: Mapping[str, Bar] | None = None, *, quotes: Mapping[str, Quote] | None = None,
             fresh_quotes: bool = True, **kw: object) -> Snapshot:
    """A snapshot at ``now``; by default every bar gets a fresh, tight quote at its close."""
    bars = dict(bars or {})
    q = dict(quotes) if quotes is not None else (
        {s: quote(b.close, now) for s, b in bars.items()} if fresh_quotes else {})
    return Snapshot(now=now, bars=bars, quotes=q, **kw)  # type: ignore[arg-type]


def closes_to_bars(ts: int, closes: Mapping[str, float], prev: Mapping[str, float] | None = None,
                   volume: float = 1000.0) -> dict[str, Bar]:
    """Bars at ``ts`` closing at ``closes``; each opens at the previous close when given."""
    prev = prev or {}
    return {s: bar(ts, c, open=prev.get(s, c), volume=volume) for s, c in closes.items()}


def warm_up(engine: Engine, state: EngineState, symbols: Iterable[str], n: int, price: float = 100.0,
            start: int = T0, tf: int = TF5, step: float = 0.0) -> tuple[EngineState, int]:
    """Feed ``n`` quiet bars (no orders expected); returns the state and the next bar time."""
    ts = start
    symbols = list(symbols)
    for k in range(n):
        px = price + step * k
        bars = {s: bar(ts, px, open=px - step if k else px) for s in symbols}
        d = engine.tick(snapshot(ts + tf, bars), state)
        state = d.state
        ts += tf
    return state, ts


# ---- a toy exchange ----------------------------------------------------------------------


@dataclass
class ExOrder:
    req: OrderRequest
    qty: float
    filled: float = 0.0
    created: int = 0

    @property
    def remaining(self) -> float:
        return self.qty - self.filled


@dataclass
class Completed:
    """An order the exchange finished (filled completely, or partly then dropped)."""

    client_id: str
    symbol: str
    side: Side
    kind: str
    filled: float
    ts: int  # time of the last fill (or of the cancel)
    seen: int  # the tick (``now``) whose snapshot first told the engine


@dataclass
class TickRecord:
    snap: Snapshot
    decision: Decision
    fills: list[Fill]
    prices: dict[str, float]  # reference close of each symbol this tick
    state: EngineState  # a copy of the state right after the tick (the engine updates it in place)


@dataclass
class Exchange:
    """Drives an engine bar by bar, filling its orders at the next bar's open with a fee."""

    cp: CompiledPolicy
    cash: float = 10_000.0
    fee_rate: float = 0.001
    markets: dict[str, MarketRules] = field(default_factory=dict)
    report_books: bool = True
    start: int = T0
    engine_kw: dict[str, object] = field(default_factory=dict)
    keep_states: bool = True  # keep a copy of the state after every tick in ``history``

    def __post_init__(self) -> None:
        self.engine = Engine(self.cp, **self.engine_kw)  # type: ignore[arg-type]
        self.state = EngineState.initial(self.cash, self.start)
        self.tf = int(self.cp.timeframe_seconds * 1000)
        self.ts = self.start  # open time of the next bar
        self.balances: dict[str, float] = {}
        self.book: dict[str, ExOrder] = {}  # client id -> open order
        self.all_fills: list[Fill] = []
        self.completed: list[Completed] = []
        self.history: list[TickRecord] = []
        self.last_close: dict[str, float] = {}
        self._fill_no = 0

    # -- the exchange side --
    def _fill(self, o: ExOrder, price: float, qty: float, ts: int) -> Fill | None:
        sym = o.req.symbol
        base = sym.split("/")[0]
        if o.req.side is Side.SELL:
            qty = min(qty, self.balances.get(base, 0.0))
        elif qty * price * (1 + self.fee_rate) > self.cash:
            qty = self.cash / (price * (1 + self.fee_rate)) * (1 - 1e-9)
        if qty <= 1e-12:
            return None
        fee = qty * price * self.fee_rate
        self._fill_no += 1
        f = Fill(f"f{self._fill_no}", o.req.client_id, sym, o.req.side, qty, price, fee, ts)
        if o.req.side is Side.BUY:
            self.cash -= qty * price + fee
            self.balances[base] = self.balances.get(base, 0.0) + qty
        else:
            self.cash += qty * price - fee
            self.balances[base] = self.balances.get(base, 0.0) - qty
        o.filled += qty
        return f

    def _settle(self, bars: Mapping[str, Bar], fill_fraction: float | Mapping[str, float]) -> list[Fill]:
        fills: list[Fill] = []
        for cid in sorted(self.book):
            o = self.book[cid]
            b = bars.get(o.req.symbol)
            if b is None:
                continue  # no trading on this symbol this bar: the order waits
            frac = fill_fraction if isinstance(fill_fraction, float | int) else fill_fraction.get(cid, 1.0)
            if frac <= 0:
                continue
            want = o.remaining if frac >= 1 else o.remaining * frac
            f = self._fill(o, b.open, want, b.ts)
            if f is not None:
                fills.append(f)
            if f is None or o.remaining <= o.qty * 1e-9:
                del self.book[cid]
                if o.filled > 0:
                    self.completed.append(Completed(cid, o.req.symbol, o.req.side, o.req.kind, o.filled,
                                                    b.ts, b.ts + self.tf))
        return fills

    # -- one tick --
    def step(self, closes: Mapping[str, float | Bar], *, fill_fraction: float | Mapping[str, float] = 1.0,
             quotes: Mapping[str, Quote] | None = None, kill_switch: bool = False,
             api_errors: Sequence[int] = (), duplicate_fills: bool = False,
             markets: Mapping[str, MarketRules] | None = None, report_books: bool | None = None,
             volume: float = 1000.0) -> Decision:
        """One bar: ``closes`` maps each symbol that traded to its close (or a full Bar)."""
        ts, now = self.ts, self.ts + self.tf
        bars: dict[str, Bar] = {}
        for s, c in closes.items():
            if isinstance(c, Bar):
                bars[s] = c
            else:
                o = self.last_close.get(s, c)
                bars[s] = bar(ts, c, open=o, volume=volume)
        fills = self._settle({s: b for s, b in bars.items()}, fill_fraction)
        self.all_fills += fills
        reported = list(fills)
        if duplicate_fills:
            reported += self.all_fills[-len(fills) - 5: -len(fills) or None]  # some seen before
            reported += fills  # and this tick's again
        if quotes is None:
            quotes = {s: quote(b.close, now) for s, b in bars.items()}
        books = self.report_books if report_books is None else report_books
        snap = Snapshot(
            now=now, bars=bars, quotes=dict(quotes),
            cash=self.cash if books else None,
            balances=dict(self.balances) if books else {},
            open_orders=tuple(OpenOrder(cid, o.req.symbol, o.req.side, o.qty, None, o.filled, o.created,
                                        o.req.reduce_only) for cid, o in sorted(self.book.items())),
            fills=tuple(reported), markets=dict(markets if markets is not None else self.markets),
            api_errors=tuple(api_errors), kill_switch=kill_switch,
        )
        d = self.engine.tick(snap, self.state)
        self.state = d.state
        for c in d.cancels:
            o = self.book.pop(c.client_id, None)
            if o is not None and o.filled > 0:
                self.completed.append(Completed(c.client_id, o.req.symbol, o.req.side, o.req.kind,
                                                o.filled, now, now + self.tf))
        for req in d.orders:
            assert req.client_id not in self.book, f"order id {req.client_id} sent while still open"
            self.book[req.client_id] = ExOrder(req, float(req.qty), 0.0, now)
        for s, b in bars.items():
            self.last_close[s] = b.close
        self.history.append(TickRecord(snap, d, fills, {s: b.close for s, b in bars.items()},
                                       self.state.clone() if self.keep_states else self.state))
        self.ts += self.tf
        return d


# ---- reading decisions --------------------------------------------------------------------


def denial_codes(d: Decision) -> list[str]:
    return [x["code"] for x in d.denials]


def only_denial(d: Decision, code: str | None = None) -> dict[str, object]:
    items = [x for x in d.denials if code is None or x["code"] == code]
    assert len(items) == 1, d.denials
    return items[0]


def events_of(d: Decision, kind: str) -> list[str]:
    return [e.message for e in d.events if e.kind == kind]


def problems(d: Decision) -> list[str]:
    """The ``problem`` codes of the data events of a decision."""
    return [str(e.data.get("problem")) for e in d.events if e.kind == "data"]


def fingerprint(d: Decision, state: EngineState | None = None) -> tuple[object, ...]:
    """What must be identical when the same inputs are replayed (``state``: the state right
    after the tick, when the decision's own state has moved on since)."""
    return (
        d.trading_state.value,
        tuple((o.client_id, o.symbol, o.side.value, o.qty, o.price, o.kind, o.rule, o.reduce_only)
              for o in d.orders),
        tuple((c.client_id, c.reason) for c in d.cancels),
        tuple((x["code"], x["rule"], x["symbol"], x["message"]) for x in d.denials),
        tuple((e.kind, e.message) for e in d.events),
        (state or d.state).to_json(),
    )
