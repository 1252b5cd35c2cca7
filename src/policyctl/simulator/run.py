"""The simulation loop: the live engine, driven by a simulated clock, feed and exchange.

For each bar ``t``: orders due fill at the bar's open; resting orders and protective stops
fill inside the bar; at the bar's close the engine ticks on a snapshot built from the data
and the simulated exchange (exactly the kind of snapshot the live runtime builds), and its
orders go to the simulated exchange. No rule is implemented twice: the engine decides.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policyctl.rules.compiler import CompiledPolicy
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.model import Bar, Fill, MarketRules, Quote, Snapshot, TradingState
from policyctl.runtime.state import EngineState
from policyctl.simulator.data import MarketData
from policyctl.simulator.exchange import FillModel, SimExchange

FIELDS = ("open", "high", "low", "close", "volume")


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
             progress: Callable[[int], None] | None = None) -> SimResult:
    missing = [s for s in cp.symbols if s not in data.series]
    if missing:
        raise ValueError(f"the data has no candles for {', '.join(missing)}")
    fee = cp.settings.get("fees.taker", cfg.fill.taker_fee)
    maker = cp.settings.get("fees.maker", cfg.fill.maker_fee)
    model = FillModel(**{**cfg.fill.describe(), "taker_fee": fee, "maker_fee": maker})  # type: ignore[arg-type]
    ex = SimExchange(data, model, cfg.cash, cfg.seed, dict(cfg.markets))
    engine = Engine(cp, mode="paper")
    state = EngineState.initial(cfg.cash, int(data.timestamps[0]) if len(data.timestamps) else 0)
    symbols = cp.symbols
    arrays = {s: tuple(np.asarray(getattr(data.series[s], f), dtype=np.float64) for f in FIELDS)
              for s in symbols}
    tf = data.timeframe_ms
    n = len(data.timestamps)
    equity = np.full(n, np.nan)
    codes = np.zeros(n, dtype=np.int8)
    denials: Counter[str] = Counter()
    events: Counter[str] = Counter()
    trips: list[dict[str, Any]] = []
    explained = None
    decisions = 0
    for t in range(n):
        ts = int(data.timestamps[t])
        fills = ex.on_open(t, ts) + ex.during(t, ts + tf - 1)
        now = ts + tf
        bars = _bars_at(data, symbols, arrays, t, ts)
        quotes = {}
        for s, b in bars.items():
            half = ex.spread_at(s, t) / 2
            quotes[s] = Quote(b.close * (1 - half), b.close * (1 + half), b.close, now)
        balances = {s.split("/")[0]: ex.holdings.get(s, 0.0) for s in symbols}
        snap = Snapshot(now=now, bars=bars, quotes=quotes, cash=ex.cash, balances=balances,
                        open_orders=ex.open_orders(t, now), fills=tuple(fills), markets=ex.markets)
        engine.explain = cfg.explain_at == t
        d = engine.tick(snap, state)
        state = d.state
        decisions += 1
        if engine.explain:
            explained = d
        ex.cancel(d.cancels)
        ex.submit(d.orders, t)
        equity[t] = ex.cash + sum(ex.holdings.get(s, 0.0) * arrays[s][3][t] for s in symbols
                                  if ex.holdings.get(s, 0.0) and math.isfinite(arrays[s][3][t])) + sum(
            ex.holdings.get(s, 0.0) * state.last_price.get(s, 0.0) for s in symbols
            if ex.holdings.get(s, 0.0) and not math.isfinite(arrays[s][3][t]))
        codes[t] = d.trading_state.rank
        for x in d.denials:
            denials[x["code"]] += 1
        for e in d.events:
            events[e.kind] += 1
            if e.kind == "breaker_trip":
                trips.append({"bar": t, "ts": now, **e.data})
        if progress is not None and t % 4096 == 0:
            progress(t)
    return SimResult(cp, data, cfg, equity, codes, ex.fills, denials, trips, events, ex.fees_paid,
                     ex.slippage_paid, ex.rejected, explained, decisions)


STATE_NAMES = {s.rank: s.value for s in TradingState}
