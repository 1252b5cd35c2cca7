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


def _bars_at(data: MarketData, symbols: tuple[str, ...], arrays: dict[str, tuple[np.ndarray, ...]],
             t: int, ts: int) -> dict[str, Bar]:
    out = {}
    for s in symbols:
        cols = arrays[s]
        vals = [float(c[t]) for c in cols]
        if all(math.isfinite(v) for v in vals[:4]):
            out[s] = Bar(ts, *vals)
    return out


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
    t = 0
    chunk = FIRST_CHUNK
    next_progress = 0
    while t < n:
        if progress is not None and t >= next_progress:
            progress(t)
            next_progress = t + 8192
        if runner.scanner is None or t == 0 or t == cfg.explain_at or (runner.busy() and not runner.book_fills(t)):
            runner.step(t)
            t += 1
            continue
        b = min(n, t + chunk)
        if cfg.explain_at is not None and t < cfg.explain_at < b:
            b = cfg.explain_at  # the bar to explain is always ticked in full
        e = runner.skip(t, b)
        if e >= b:
            chunk = min(chunk * 2, 1 << 16)
        else:
            chunk = FIRST_CHUNK
            runner.step(e)
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
        n = len(data.timestamps)
        self.equity = np.full(n, np.nan)
        self.codes = np.zeros(n, dtype=np.int8)
        self.denials: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.trips: list[dict[str, Any]] = []
        self.explained: Decision | None = None
        self.decisions = 0
        self._carry: list[Fill] = []  # fills booked directly, handed to the next full tick too

    def _spread_array(self, s: str) -> np.ndarray:
        n = len(self.data.timestamps)
        return np.array([self.ex.spread_at(s, t) for t in range(n)]) if self.data.spreads and \
            self.cfg.fill.spread is None else np.full(n, self.ex.spread_at(s, 0))

    def busy(self) -> bool:
        return bool(self.ex.queued or self.ex.resting)

    def book_fills(self, t: int) -> bool:
        """Fill the market orders due at this bar's open and book them in the engine directly.
        True when that leaves nothing in flight, so the scanner may judge the bar like any other;
        otherwise the bar gets a full tick (fills are idempotent by id: booking twice is a no-op)."""
        ex = self.ex
        if ex.resting or any(q.due != t for q in ex.queued):
            return False
        ts, tf = int(self.data.timestamps[t]), self.data.timeframe_ms
        fills = ex.on_open(t, ts) + ex.during(t, ts + tf - 1)
        self._carry = fills
        for f in sorted(fills, key=lambda f: (f.ts, f.id)):  # in the engine's order: the same books, bit for bit
            for ev in apply_fill(self.state, f, ts, self.engine.cooldowns):
                self.events[ev.kind] += 1
        return not (ex.queued or ex.resting or self.state.pending)

    def skip(self, a: int, b: int) -> int:
        """Find the first eventful bar in [a, b); book the quiet bars before it."""
        assert self.scanner is not None
        e, eq = self.scanner.first_event(a, b, self.state, self.equity, self.spreads, self.ex.protect,
                                         self.ex.model.stops == "intrabar")
        self.scanner.bookkeep(a, e, self.state, eq)
        self.equity[a:e] = eq[: e - a] if isinstance(eq, np.ndarray) else eq
        self.codes[a:e] = self.state.trading_state.rank
        return e

    def step(self, t: int) -> None:
        """One bar, in full: fills, the snapshot at the close, the engine's tick, the orders."""
        data, ex, tf = self.data, self.ex, self.data.timeframe_ms
        ts = int(data.timestamps[t])
        fills = self._carry + ex.on_open(t, ts) + ex.during(t, ts + tf - 1)
        self._carry = []
        now = ts + tf
        bars = _bars_at(data, self.symbols, self.arrays, t, ts)
        quotes = {}
        for s, b in bars.items():
            half = float(self.spreads[s][t]) / 2
            quotes[s] = Quote(b.close * (1 - half), b.close * (1 + half), b.close, now)
        balances = {s.split("/")[0]: ex.holdings.get(s, 0.0) for s in self.symbols}
        snap = Snapshot(now=now, bars=bars, quotes=quotes, cash=ex.cash, balances=balances,
                        open_orders=ex.open_orders(t, now), fills=tuple(fills), markets=ex.markets)
        if self.pre is not None:
            self.pre.t = t
            assert self.scanner is not None
            self.scanner.inject_marks(self.state, t, self.equity)
        self.engine.explain = self.cfg.explain_at == t
        d = self.engine.tick(snap, self.state)
        self.decisions += 1
        if self.engine.explain:
            self.explained = d
        ex.cancel(d.cancels)
        ex.submit(d.orders, t)
        self.equity[t] = d.equity
        self.codes[t] = d.trading_state.rank
        for x in d.denials:
            self.denials[x["code"]] += 1
        for ev in d.events:
            self.events[ev.kind] += 1
            if ev.kind == "breaker_trip":
                self.trips.append({"bar": t, "ts": now, **ev.data})

    def result(self) -> SimResult:
        ex = self.ex
        return SimResult(self.cp, self.data, self.cfg, self.equity, self.codes, ex.fills, self.denials,
                         self.trips, self.events, ex.fees_paid, ex.slippage_paid, ex.rejected,
                         self.explained, self.decisions)

