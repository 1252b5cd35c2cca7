"""Skipping quiet bars: the simulator's fast path, with the engine's exact semantics.

Most bars change nothing: no rule fires, no breaker trips, nothing fills. Between two
events the books are frozen (no open orders, the same positions and cash), so every
account value the policy can read (equity, exposure, position PnL, drawdown, windows over
fills and equity) is a vectorizable function of the candles. :class:`QuietScanner`
evaluates the whole policy over a segment of bars with numpy, market values coming from
one pass over the whole series (:class:`Precomputed`), and returns the first bar where
anything could happen. The bars before it are provably quiet: the engine would decide
nothing on them, so the simulator only updates the few counters a tick keeps (last prices,
volume average, peak equity) and ticks the engine on the event bar itself.

``tests/test_simulator_fast.py`` holds the fast path to the plain bar-by-bar loop: same
fills, same equity, same denials, on every policy in ``policies/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.signal import lfilter

from policyctl.rules import vectorized
from policyctl.rules.compiler import CompiledPolicy
from policyctl.rules.incremental import IncrementalEvaluator, Values, node_state_key
from policyctl.runtime.model import BREAKER_STATES, Bar, TradingState
from policyctl.runtime.state import EngineState
from policyctl.simulator.data import MarketData

FIELDS = ("open", "high", "low", "close", "volume")
NAN = math.nan


class Precomputed:
    """Every market node over the whole series, and a value source reading it at bar ``t``."""

    def __init__(self, cp: CompiledPolicy, data: MarketData):
        self.cp = cp
        g = cp.graph
        syms = cp.symbols
        self.market = {f: np.stack([np.asarray(getattr(data.series[s], f), dtype=np.float64) for s in syms])
                       for f in FIELDS}
        self.market_nodes = [i for i in g.reachable() if g[i].market and not g[i].is_const]
        values = vectorized.evaluate(g, syms, self.market, nodes=self.market_nodes,
                                     bars=len(data.timestamps))
        self.values: dict[int, np.ndarray] = {i: values[i] for i in self.market_nodes}  # type: ignore[misc]
        self.ev = IncrementalEvaluator(g, syms)
        self._adv_g = [i for i in self.ev.advance_nodes if not g[i].per_symbol]
        self._adv_s = [i for i in self.ev.advance_nodes if g[i].per_symbol]
        self.t = 0

    def on_bar(self, bars: dict[str, Bar]) -> None:
        """Nothing to advance: the simulator sets :attr:`t`; values are read from the arrays."""

    def evaluate(self, inputs: dict[str, object], full: bool) -> Values:
        t = self.t
        G, rows = self.ev._g, self.ev._rows
        for i in self._adv_g:
            G[i] = float(self.values[i][t])
        for i in self._adv_s:
            col = self.values[i][:, t]
            for k, r in enumerate(rows):
                r[i] = float(col[k])
        return self.ev.evaluate(inputs, full=full)


class QuietScanner:
    def __init__(self, cp: CompiledPolicy, data: MarketData, pre: Precomputed):
        self.cp, self.data, self.pre = cp, data, pre
        g = cp.graph
        self.syms = cp.symbols
        self.index = {s: i for i, s in enumerate(self.syms)}
        self.tf = data.timeframe_ms
        self.ts = np.asarray(data.timestamps, dtype=np.int64)
        self.now = self.ts + self.tf
        live = g.reachable()
        # only what can make something happen: trigger and breaker conditions (caps matter only
        # when an order is sized, which happens on an event bar, in a full engine tick)
        roots = [t.when for t in cp.triggers] + [b.when for b in cp.breakers]
        needed: set[int] = set()
        stack = list(roots)
        while stack:
            i = stack.pop()
            if i not in needed:
                needed.add(i)
                stack.extend(g[i].args)
        self.state_nodes = [i for i in live if i in needed and not g[i].market]
        self.eval_nodes = sorted({*self.state_nodes,
                                  *(a for i in self.state_nodes for a in g[i].args if g[a].is_const)})
        # market values the scan reads: conditions built from candles alone, and the candle
        # arguments of state-dependent nodes
        self.given_nodes = sorted({*(i for i in roots if g[i].market and not g[i].is_const),
                                   *(a for i in self.state_nodes for a in g[i].args
                                     if g[a].market and not g[a].is_const)})
        self.keys = {node_state_key(g[i]) if g[i].op in ("field", "window") else "" for i in self.state_nodes
                     if g[i].op in ("field", "window")}
        self.windows = [(str(g[i].attr[0]), float(g[i].attr[1])) for i in live  # type: ignore[arg-type]
                        if g[i].op == "window"]
        self.pnl_windows = sorted({w for f, w in self.windows if f in ("pnl", "pnl_amount")})
        m = self.pre.market
        finite = np.isfinite(m["open"]) & np.isfinite(m["high"]) & np.isfinite(m["low"]) & np.isfinite(m["close"])
        self.all_bars: np.ndarray = np.asarray(finite.all(axis=0), dtype=bool)
        self.bad_tick = cp.settings.get("bad_tick")
        self.buy_triggers = [t for t in cp.triggers if t.action == "buy"]
        self.exit_triggers = [t for t in cp.triggers if t.action != "buy"]

    # ---- account arrays over a segment ---------------------------------------------------------
    def state_arrays(self, a: int, b: int, state: EngineState, eq_hist: np.ndarray,
                     spreads: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], np.ndarray]:
        """The account values the policy reads, over bars [a, b), for the frozen books (only the
        keys the graph reads are built; the arithmetic is the engine's, in the same order)."""
        need = self.keys
        m = self.pre.market
        close = m["close"][:, a:b]
        n = b - a
        now = self.now[a:b]
        value = {s: p.qty * close[self.index[s]] for s, p in state.positions.items() if s in self.index}
        tot = np.zeros(n)
        for v in value.values():
            tot = tot + v
        eq = state.cash + tot
        st: dict[str, Any] = {"equity": eq, "cash": state.cash, "kill_switch": 0.0,
                              "positions.open": float(sum(1 for p in state.positions.values() if p.qty > 0)),
                              "orders.open": 0.0}
        k = len(self.syms)
        with np.errstate(divide="ignore", invalid="ignore"):
            pos_eq = np.where(eq > 0, eq, np.nan)
            if "exposure.total" in need:
                total = np.zeros(n)
                for s in sorted(value):
                    total = total + value[s]
                st["exposure.total"] = total / pos_eq
            if "drawdown" in need:
                peak0 = state.peak_equity
                run = np.maximum.accumulate(np.maximum(eq, peak0))
                before = np.concatenate([[peak0], run[:-1]]) if n else run
                st["drawdown"] = np.where(before > 0, np.maximum(0.0, 1.0 - eq / before), np.nan)
            per_symbol = {
                "position.open": lambda p, i: np.full(n, 1.0 if p.qty > 0 else 0.0),
                "position.size": lambda p, i: np.full(n, p.qty),
                "position.value": lambda p, i: value[p.symbol],
                "position.entry": lambda p, i: np.full(n, p.entry),
                "position.pnl": lambda p, i: close[i] / p.entry - 1.0 if p.entry > 0 else np.full(n, np.nan),
                "position.pnl_amount": lambda p, i: p.qty * close[i] - p.cost,
                "position.age": lambda p, i: (now - p.opened_ms) / 1000.0,
                "position.bars": lambda p, i: ((self.ts[a:b] - p.opened_bar) // self.tf).astype(np.float64),
            }
            flat = {"position.open": 0.0, "position.size": 0.0, "position.value": 0.0}
            for key, f in per_symbol.items():
                if key not in need:
                    continue
                arr = np.full((k, n), flat.get(key, np.nan))
                for sym, p in state.positions.items():
                    i = self.index.get(sym)
                    if i is not None:
                        arr[i] = f(p, i)
                st[key] = arr
            zeros = np.zeros((k, n))
            for key in ("data_age", "product.halted", "product.cancel_only", "product.post_only"):
                st[key] = zeros
            if "exposure.symbol" in need:
                val = np.zeros((k, n))
                for sym, v in value.items():
                    val[self.index[sym]] = v
                st["exposure.symbol"] = (val + 0.0) / pos_eq
            themes = self.cp.policy.market.themes
            if themes and any(x.startswith("exposure.theme") for x in need):
                theme_rows = np.zeros((k, n))
                for t in themes.values():
                    tv = np.zeros(n)
                    for sym in t.symbols:
                        tv = tv + (value[sym] + 0.0 if sym in value else 0.0)
                    share = tv / pos_eq
                    st[f"exposure.theme@{t.name}"] = share
                    for sym in t.symbols:
                        if sym in self.index and not theme_rows[self.index[sym]].any():
                            theme_rows[self.index[sym]] = share
                st["exposure.theme"] = theme_rows
            if "spread" in need:
                sp = np.full((k, n), np.nan)
                for sym, i in self.index.items():
                    half = spreads[sym][a:b] / 2 if sym in spreads else np.zeros(n)
                    c = close[i]
                    bid, ask = c * (1 - half), c * (1 + half)
                    sp[i] = (ask - bid) / ((bid + ask) / 2)
                st["spread"] = sp
            for func, w in self.windows:
                since = now - int(w * 1000)
                if func == "trades":
                    v = len(state.trade_times) - np.searchsorted(state.trade_times, since, side="left")
                elif func == "stoplosses":
                    v = len(state.stopout_times) - np.searchsorted(state.stopout_times, since, side="left")
                elif func == "api_errors":
                    v = np.zeros(n)
                else:
                    # the engine looks up the latest equity mark at or before now - w: bar t - wb,
                    # or the first mark when none is that old (bar 0's equity)
                    wb = math.ceil(w * 1000 / self.tf)
                    lo = max(a - wb, 0)
                    comb = np.concatenate([eq_hist[lo:a], eq])  # only the history the window reaches
                    idx = np.arange(a, b) - wb
                    first = eq_hist[0] if a > 0 else (eq[0] if n else np.nan)
                    start = np.where(idx >= 0, comb[np.maximum(idx - lo, 0)], first)
                    v = eq - start if func == "pnl_amount" else np.where(start > 0, (eq - start) / start, np.nan)
                st[f"{func}:{w:g}"] = np.asarray(v, dtype=np.float64)
        return st, eq

    # ---- the first bar where something can happen ------------------------------------------
    def first_event(self, a: int, b: int, state: EngineState, eq_hist: np.ndarray,
                    spreads: Mapping[str, np.ndarray], protect: Mapping[str, tuple[float | None, float | None]],
                    intrabar: bool) -> tuple[int, np.ndarray]:
        g = self.cp.graph
        n = b - a
        st, eq = self.state_arrays(a, b, state, eq_hist, spreads)
        given = {i: _slice(self.pre.values[i], a, b) for i in self.given_nodes}
        vals = vectorized.evaluate(g, self.syms, {f: x[:, a:b] for f, x in self.pre.market.items()}, st,
                                   nodes=self.eval_nodes, bars=n, given=given, complete=True)
        event: np.ndarray = np.logical_not(self.all_bars[a:b])
        for trig in self.buy_triggers:
            event |= self._fires(vals[trig.when], trig.symbols)
        held = tuple(s for s, p in state.positions.items() if p.qty > 0)
        for trig in self.exit_triggers:
            targets = tuple(s for s in (trig.symbols or self.syms) if s in held)
            if targets:
                event |= self._fires(vals[trig.when], targets)
        for br in self.cp.breakers:
            v = vals[br.when]
            event |= np.asarray(v != 0.0) if v is not None else True  # true, or unavailable
        for trip in state.trips.values():
            if trip.until_ms is not None:
                event |= self.now[a:b] >= trip.until_ms
        if _expected_state(state) is not state.trading_state:
            event[0] = True
        m = self.pre.market
        for s in held:
            i = self.index[s]
            p = state.positions[s]
            if intrabar:
                stop, take = protect.get(s, (None, None))
                if stop is not None:
                    event |= m["low"][i, a:b] <= stop
                if take is not None:
                    event |= m["high"][i, a:b] >= take
            if p.stop is not None:
                event |= m["close"][i, a:b] <= p.stop
            if p.take is not None:
                event |= m["close"][i, a:b] >= p.take
        if self.bad_tick is not None:
            for s, i in self.index.items():
                c = m["close"][i, a:b]
                prev = np.concatenate([[state.last_price.get(s, c[0] if n else np.nan)], c[:-1]])
                with np.errstate(divide="ignore", invalid="ignore"):
                    event |= np.abs(c / prev - 1.0) > self.bad_tick
        hits = np.flatnonzero(event)
        return (a + int(hits[0]) if len(hits) else b), eq

    def _fires(self, v: np.ndarray | None, symbols: tuple[str, ...]) -> np.ndarray:
        if v is None:
            return np.asarray(True)
        if v.ndim == 2:
            rows = [self.index[s] for s in (symbols or self.syms)]
            return np.asarray((v[rows] == 1.0).any(axis=0))
        return np.asarray(v == 1.0)

    # ---- what a quiet stretch changes ---------------------------------------------------------
    def bookkeep(self, a: int, e: int, state: EngineState, eq: np.ndarray) -> None:
        if e <= a:
            return
        m = self.pre.market
        for s, i in self.index.items():
            state.last_bar_ts[s] = int(self.ts[e - 1])
            state.last_price[s] = float(m["close"][i, e - 1])
            v = m["volume"][i, a:e]
            avg = state.avg_volume.get(s)
            if avg is None:
                avg, v = float(v[0]), v[1:]
            if len(v):
                y = lfilter([0.05], [1.0, -0.95], v, zi=[0.95 * avg])[0]
                avg = float(y[-1])
            state.avg_volume[s] = avg
        seg = eq[: e - a]
        if len(seg):
            top = float(np.max(seg))
            state.peak_equity = max(state.peak_equity, top)
        state.bars_seen += e - a
        state.now = int(self.now[e - 1])

    def inject_marks(self, state: EngineState, e: int, eq_hist: np.ndarray) -> None:
        """Give the engine the equity marks its pnl windows will look up at bar ``e``."""
        if not self.pnl_windows or e == 0:
            return
        ks = sorted({max(e - math.ceil(w * 1000 / self.tf), 0) for w in self.pnl_windows})
        state.equity_marks = [(int(self.now[k]), float(eq_hist[k])) for k in ks]


def _slice(x: np.ndarray, a: int, b: int) -> np.ndarray:
    return x[..., a:b]


def _expected_state(state: EngineState) -> TradingState:
    out = TradingState.ACTIVE
    for t in state.trips.values():
        s = BREAKER_STATES.get(t.action)
        if s is not None and s.rank > out.rank:
            out = s
    return out
