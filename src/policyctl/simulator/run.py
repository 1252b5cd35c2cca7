"""The simulation loop: the live engine, driven by a simulated clock, feed and exchange.

For each bar ``t``: orders due fill at the bar's open; resting orders and protective stops
fill inside the bar; at the bar's close the engine ticks on a snapshot built from the data
and the simulated exchange (exactly the kind of snapshot the live runtime builds), and its
orders go to the simulated exchange. No rule is implemented twice: the engine decides.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policyctl.rules.compiler import CompiledPolicy
from policyctl.runtime.books import apply_fill
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.model import Bar, Fill, MarketRules, Quote, Snapshot
from policyctl.runtime.state import EngineState
from policyctl.simulator.data import MarketData
from policyctl.simulator.exchange import FillModel, SimExchange
from policyctl.simulator.quiet import Precomputed, QuietScanner

FIELDS = ("open", "high", "low", "close", "volume")
# bars the first scan after an event covers (doubling while quiet): events of a minute-bar
# strategy come tens of bars apart, and a scan costs about the same for 32 bars as for 128
FIRST_CHUNK = 128


@dataclass(frozen=True)
class SimConfig:
    seed: int = 42
    cash: float = 10_000.0
    fill: FillModel = field(default_factory=FillModel)
    markets: dict[str, MarketRules] = field(default_factory=dict)
    explain_at: int | None = None  # bar index whose decision is traced in full


@dataclass
class SimResult:
    policy: CompiledPolicy
    data: MarketData
    config: SimConfig
    equity: np.ndarray  # marked at each bar's close
    state_codes: np.ndarray  # trading state per bar (TradingState rank)
    fills: list[Fill]
    denials: Counter[str]
    breaker_trips: list[dict[str, Any]]
    events: Counter[str]
    fees: float
    slippage: float
    rejected: list[tuple[str, str]]
    explained: Decision | None = None
    decisions: int = 0
    reasons: dict[int, list[str]] = field(default_factory=dict)  # why the trading state changed, by bar


def simulate(cp: CompiledPolicy, data: MarketData, cfg: SimConfig,
             progress: Callable[[int], None] | None = None, fast: bool = True) -> SimResult:
    """Run the policy over the data. ``fast`` skips provably quiet bars (``simulator.quiet``);
    ``fast=False`` ticks the engine on every bar. Both give the same result."""
    missing = [s for s in cp.symbols if s not in data.series]
    if missing:
        raise ValueError(f"the data has no candles for {', '.join(missing)}")
    runner = _Runner(cp, data, cfg, fast)
    with np.errstate(divide="ignore", invalid="ignore") if fast else contextlib.nullcontext():
        _run(runner, cfg, len(data.timestamps), progress)
    return runner.result()


def _run(runner: _Runner, cfg: SimConfig, n: int, progress: Callable[[int], None] | None) -> None:
    """The bars, in order. (The scan's account arithmetic over stretches of bars divides by zero
    and meets NaN where values are unavailable: ``simulate`` silences numpy's warnings of it,
    once for the run.)"""
    step, book_fills, skip, ex = runner.step, runner.book_fills, runner.skip, runner.ex
    explain_at = cfg.explain_at
    t = 0
    chunk = FIRST_CHUNK
    next_progress = 0
    if runner.scanner is None:  # every bar in full
        while t < n:
            if progress is not None and t >= next_progress:
                progress(t)
                next_progress = t + 8192
            step(t)
            t += 1
    while t < n:
        if progress is not None and t >= next_progress:
            progress(t)
            next_progress = t + 8192
        if t == 0 or t == explain_at or ((ex.queued or ex.resting) and not book_fills(t)):  # busy
            step(t)
            t += 1
            continue
        b = min(n, t + chunk)
        if explain_at is not None and t < explain_at < b:
            b = explain_at  # the bar to explain is always ticked in full
        e = skip(t, b)
        if e >= b:
            chunk = min(chunk * 2, 1 << 16)
        else:
            chunk = FIRST_CHUNK
            step(e)
            e += 1
        t = e
    if progress is not None:
        progress(n)


class _Runner:
    def __init__(self, cp: CompiledPolicy, data: MarketData, cfg: SimConfig, fast: bool):
        self.cp, self.data, self.cfg = cp, data, cfg
        fee = cp.settings.get("fees.taker", cfg.fill.taker_fee)
        maker = cp.settings.get("fees.maker", cfg.fill.maker_fee)
        model = FillModel(**{**cfg.fill.describe(), "taker_fee": fee, "maker_fee": maker})  # type: ignore[arg-type]
        self.ex = SimExchange(data, model, cfg.cash, cfg.seed, dict(cfg.markets))
        self.pre = Precomputed(cp, data) if fast else None
        self.scanner = QuietScanner(cp, data, self.pre) if self.pre is not None else None
        self.engine = Engine(cp, mode="paper", source=self.pre)
        self.state = EngineState.initial(cfg.cash, int(data.timestamps[0]) if len(data.timestamps) else 0)
        self.symbols = cp.symbols
        self.arrays = {s: tuple(np.asarray(getattr(data.series[s], f), dtype=np.float64) for f in FIELDS)
                       for s in self.symbols}
        self.spreads = {s: self._spread_array(s) for s in self.symbols}
        constant = not (data.spreads and cfg.fill.spread is None)
        # what a full tick reads of each symbol: (symbol, base asset, open, high, low, close, volume,
        # spread per bar, half the spread when it is the same on every bar)
        self._columns: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                  float | None]] = []
        for s in self.symbols:
            o, h, lo, c, v = self.arrays[s]
            half = self.ex.spread_at(s, 0) / 2 if constant else None
            self._columns.append((s, s.split("/")[0], o, h, lo, c, v, self.spreads[s], half))
        self.ts = data.timestamps  # int64
        self.tf = data.timeframe_ms
        self._intrabar = self.ex.model.stops == "intrabar"
        n = len(data.timestamps)
        self.equity = np.full(n, np.nan)
        self.codes = np.zeros(n, dtype=np.int8)
        self.denials: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.trips: list[dict[str, Any]] = []
        self.reasons: dict[int, list[str]] = {}
        self.explained: Decision | None = None
        self.decisions = 0
        self._carry: list[Fill] = []  # fills booked directly, handed to the next full tick too

    def _spread_array(self, s: str) -> np.ndarray:
        """``SimExchange.spread_at`` at every bar."""
        n = len(self.data.timestamps)
        if not (self.data.spreads and self.cfg.fill.spread is None):
            return np.broadcast_to(self.ex.spread_at(s, 0), (n,))  # the same at every bar: no memory
        bps = self.data.spreads.get(s)
        if bps is None:
            return np.full(n, self.ex.model.default_spread)
        bps = np.asarray(bps, dtype=np.float64)[:n]
        return np.where(np.isfinite(bps), bps / 10_000.0, self.ex.model.default_spread)

    def busy(self) -> bool:
        return bool(self.ex.queued or self.ex.resting)

    def book_fills(self, t: int) -> bool:
        """Fill the market orders due at this bar's open and book them in the engine directly.
        True when that leaves nothing in flight, so the scanner may judge the bar like any other;
        otherwise the bar gets a full tick (fills are idempotent by id: booking twice is a no-op)."""
        ex = self.ex
        if ex.resting:
            return False
        for q in ex.queued:
            if q.due != t:
                return False
        ts = self.ts.item(t)  # item: a Python int, not a numpy one
        fills = ex.on_open(t, ts)
        if ex.protect:  # (nothing rests: only protective orders can fill inside the bar)
            fills += ex.during(t, ts + self.tf - 1)
        self._carry = fills
        if len(fills) > 1:
            fills = sorted(fills, key=lambda f: (f.ts, f.id))  # in the engine's order: the same books, bit for bit
        state, cooldowns, events = self.state, self.engine.cooldowns, self.events
        for f in fills:
            for ev in apply_fill(state, f, ts, cooldowns):
                events[ev.kind] += 1
        return not (ex.queued or ex.resting or state.pending)

    def skip(self, a: int, b: int) -> int:
        """Find the first eventful bar in [a, b); book the quiet bars before it."""
        assert self.scanner is not None
        state = self.state
        e, eq = self.scanner.first_event(a, b, state, self.equity, self.spreads, self.ex.protect, self._intrabar)
        if e > a:
            self.scanner.bookkeep(a, e, state, eq)
            self.equity[a:e] = eq[: e - a] if isinstance(eq, np.ndarray) else eq
            rank = state.trading_state.rank
            if rank:  # (codes start at 0: each bar is written once)
                self.codes[a:e] = rank
        return e

    def step(self, t: int) -> None:
        """One bar, in full: fills, the snapshot at the close, the engine's tick, the orders."""
        ex, tf = self.ex, self.tf
        ts = self.ts.item(t)  # item: Python scalars, not numpy ones
        fills = self._carry
        if ex.queued:
            fills = fills + ex.on_open(t, ts)
        if ex.resting or ex.protect:
            fills = fills + ex.during(t, ts + tf - 1)
        self._carry = []
        now = ts + tf
        bars: dict[str, Bar] = {}
        quotes: dict[str, Quote] = {}
        balances: dict[str, float] = {}
        holdings, isfinite = ex.holdings, math.isfinite
        for s, base, o_, h_, l_, c_, v_, spread, half in self._columns:
            balances[base] = holdings.get(s, 0.0)
            o, h, lo, c = o_.item(t), h_.item(t), l_.item(t), c_.item(t)
            if isfinite(o) and isfinite(h) and isfinite(lo) and isfinite(c):
                bars[s] = Bar(ts, o, h, lo, c, v_.item(t))
                if half is None:
                    half = spread.item(t) / 2
                quotes[s] = Quote(c * (1 - half), c * (1 + half), c, now)
        snap = Snapshot(now=now, bars=bars, quotes=quotes, cash=ex.cash, balances=balances,
                        open_orders=ex.open_orders(t, now), fills=tuple(fills), markets=ex.markets)
        if self.pre is not None:
            self.pre.t = t
            assert self.scanner is not None
            self.scanner.inject_marks(self.state, t, self.equity)
        engine = self.engine
        engine.explain = explain = self.cfg.explain_at == t
        d = engine.tick(snap, self.state)
        self.decisions += 1
        if explain:
            self.explained = d
        if d.cancels:
            ex.cancel(d.cancels)
        if d.orders:
            ex.submit(d.orders, t)
        self.equity[t] = d.equity
        self.codes[t] = d.trading_state.rank
        for x in d.denials:
            self.denials[x["code"]] += 1
        events = self.events
        for ev in d.events:
            events[ev.kind] += 1
            if ev.kind == "breaker_trip":
                self.trips.append({"bar": t, "ts": now, **ev.data})
            elif ev.kind == "state_change":
                why = ev.data.get("reasons")
                self.reasons[t] = [str(r) for r in why] if isinstance(why, list) else []

    def result(self) -> SimResult:
        ex = self.ex
        return SimResult(self.cp, self.data, self.cfg, self.equity, self.codes, ex.fills, self.denials,
                         self.trips, self.events, ex.fees_paid, ex.slippage_paid, ex.rejected,
                         self.explained, self.decisions, self.reasons)

