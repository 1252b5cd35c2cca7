"""Account figures at one tick, and the state inputs the evaluator reads.

From the books (``EngineState``) and the snapshot's prices this computes equity, exposure
(positions plus pending buys, as a share of equity), windows over fills and equity marks,
data ages and spreads: everything a policy can name that is not a candle. Values that
cannot be known (no price, no equity) are NaN, so every rule reading them fails closed.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from policyctl.rules.compiler import CompiledPolicy
from policyctl.rules.incremental import node_state_key
from policyctl.runtime.books import holds_lot
from policyctl.runtime.model import Bar, Snapshot
from policyctl.runtime.state import EngineState

NAN = math.nan


@dataclass
class Account:
    """What the account looks like now (and, for caps, after a hypothetical order)."""

    equity: float
    cash: float
    prices: dict[str, float]  # mark price per symbol (NaN if unknown)
    price_age: dict[str, int]  # ms since the price was observed
    position_value: dict[str, float]
    pending_buys: dict[str, float]  # notional of open buy orders, per symbol
    strategy_exposure: dict[str, float] = field(default_factory=dict)  # notional per strategy
    open: set[str] = field(default_factory=set)  # symbols with an open position (dust is not one)
    _sums: dict[tuple[str, ...], float] = field(default_factory=dict, repr=False)  # notional of symbol sets
    _total: float | None = field(default=None, repr=False)  # notional of every symbol
    _opening: frozenset[str] | None = field(default=None, repr=False)
    _terms: dict[str, float] = field(default_factory=dict, repr=False)  # notional per symbol, as summed

    def add_pending(self, symbol: str, notional: float, strategy: str | None) -> None:
        """An order just decided: its notional counts as exposure for the next checks. The sums
        already taken move by the order's notional (a burst of orders is not re-summed each time)."""
        self.pending_buys[symbol] = self.pending_buys.get(symbol, 0.0) + notional
        if strategy:
            self.strategy_exposure[strategy] = self.strategy_exposure.get(strategy, 0.0) + notional
        self._terms.pop(symbol, None)
        sums = self._sums
        for key in sums:
            if symbol in key:
                sums[key] += notional
        if self._total is not None:
            self._total += notional
        if self._opening is not None and symbol not in self._opening:
            self._opening = self._opening | {symbol}

    def held_or_opening(self, state: EngineState) -> frozenset[str]:
        """Symbols with an open position or a pending buy (this tick's orders included)."""
        if self._opening is None:
            self._opening = frozenset(self.open | {o.symbol for o in state.pending.values() if o.side == "buy"})
        return self._opening

    def _term(self, symbol: str) -> float:
        got = self._terms.get(symbol)
        if got is None:
            got = self._terms[symbol] = self.position_value.get(symbol, 0.0) + self.pending_buys.get(symbol, 0.0)
        return got

    def exposure_symbol(self, symbol: str) -> float:
        return _share(self._term(symbol), self.equity)

    def notional_of(self, symbols: tuple[str, ...]) -> float:
        """Positions plus pending buys of ``symbols``, in the quote currency (summed in order)."""
        got = self._sums.get(symbols)
        if got is None:
            term = self._term
            got = self._sums[symbols] = sum([term(s) for s in symbols])
        return got

    def exposure_of(self, symbols: tuple[str, ...]) -> float:
        return _share(self.notional_of(symbols), self.equity)

    @property
    def exposure_total(self) -> float:
        if self._total is None:
            term = self._term
            self._total = sum([term(s) for s in sorted({*self.position_value, *self.pending_buys})])
        return _share(self._total, self.equity)


def _share(x: float, equity: float) -> float:
    return x / equity if equity > 0 and math.isfinite(equity) else NAN


def mark_prices(snap: Snapshot, state: EngineState, symbols: tuple[str, ...], tf_ms: int,
                bars: dict[str, Bar], untrusted: set[str]) -> tuple[dict[str, float], dict[str, int]]:
    """The latest trustworthy price of each symbol: a validated bar's close or the quote's last;
    for a symbol whose latest print is not trusted, the last trusted price."""
    prices: dict[str, float] = {}
    ages: dict[str, int] = {}
    for s in symbols:
        bar = bars.get(s) if s not in untrusted else None
        quote = snap.quotes.get(s) if s not in untrusted else None
        candidates: list[tuple[int, float]] = []
        if bar is not None and bar.close > 0 and math.isfinite(bar.close):
            candidates.append((bar.ts + tf_ms, bar.close))
        if quote is not None and quote.last > 0 and math.isfinite(quote.last):
            candidates.append((quote.ts, quote.last))
        if candidates:
            ts, px = max(candidates)
            prices[s], ages[s] = px, max(0, snap.now - ts)
        elif s in state.last_price:
            prices[s], ages[s] = state.last_price[s], max(0, snap.now - state.last_bar_ts.get(s, 0))
        else:
            prices[s], ages[s] = NAN, 1 << 62
    return prices, ages


def account(snap: Snapshot, state: EngineState, cp: CompiledPolicy, bars: dict[str, Bar],
            untrusted: set[str] | None = None) -> Account:
    tf_ms = int(cp.timeframe_seconds * 1000)
    prices, ages = mark_prices(snap, state, cp.symbols, tf_ms, bars, untrusted or set())
    value = {s: p.qty * prices.get(s, NAN) for s, p in state.positions.items()}
    pending: dict[str, float] = {}
    strategy: dict[str, float] = {}
    for o in state.pending.values():
        if o.side == "buy":  # (a pending order's side is the plain value)
            notional = max(o.qty - o.filled, 0.0) * o.ref_price
            pending[o.symbol] = pending.get(o.symbol, 0.0) + notional
            if o.strategy:
                strategy[o.strategy] = strategy.get(o.strategy, 0.0) + notional
    for s, p in state.positions.items():
        if p.strategy:
            strategy[p.strategy] = strategy.get(p.strategy, 0.0) + value[s]
    equity = state.cash + sum(value.values())
    held = {s for s, p in state.positions.items() if holds_lot(p.qty, snap.markets.get(s))}
    return Account(equity, state.cash, prices, ages, value, pending, strategy, held)


def _count_since(times: list[int], since: int) -> float:
    return float(len(times) - bisect.bisect_left(times, since))


def equity_at(state: EngineState, ms: int, fallback: float) -> float:
    """Equity at the latest mark at or before ``ms`` (the first mark if none is that old)."""
    marks = state.equity_marks
    if not marks:
        return fallback
    i = bisect.bisect_right(marks, (ms, math.inf)) - 1
    return marks[max(i, 0)][1]


def _reads(cp: CompiledPolicy) -> tuple[frozenset[str], list[tuple[str, str, float]]]:
    """The state keys the policy's graph reads, and its windows as (key, function, seconds)."""
    got: tuple[frozenset[str], list[tuple[str, str, float]]] | None = cp.memo.get("state_reads")
    if got is None:
        g = cp.graph
        keys: set[str] = set()
        windows: list[tuple[str, str, float]] = []
        for i in g.reachable():
            n = g[i]
            if n.op == "window":
                windows.append((node_state_key(n), str(n.attr[0]), float(n.attr[1])))  # type: ignore[arg-type]
            elif n.op == "field" and not n.market:
                keys.add(str(n.attr[0]))
                keys.add(node_state_key(n))
        got = cp.memo["state_reads"] = (frozenset(keys), windows)
    return got


def state_inputs(snap: Snapshot, state: EngineState, cp: CompiledPolicy, acct: Account) -> dict[str, object]:
    """The ``state`` mapping of one evaluation (keys of ``rules.incremental.state_key``): the
    keys the policy reads (a key it does not read is unavailable, like any missing key)."""
    need, windows = _reads(cp)
    syms = cp.symbols
    tf_ms = int(cp.timeframe_seconds * 1000)
    themes = cp.policy.market.themes
    eq = acct.equity if acct.equity > 0 else NAN
    out: dict[str, object] = {
        "equity": acct.equity,
        "cash": acct.cash,
        "exposure.total": acct.exposure_total if math.isfinite(eq) else NAN,
        "positions.open": float(len(acct.open)),
        "orders.open": float(len(state.pending)),
        "drawdown": max(0.0, 1.0 - acct.equity / state.peak_equity) if state.peak_equity > 0 else NAN,
        "kill_switch": 1.0 if snap.kill_switch else 0.0,
    }
    pos = [state.positions.get(s) for s in syms]
    if "position.open" in need:
        out["position.open"] = [1.0 if s in acct.open else 0.0 for s in syms]
    if "position.size" in need:
        out["position.size"] = [p.qty if p else 0.0 for p in pos]
    if "position.value" in need:
        out["position.value"] = [acct.position_value.get(s, 0.0) for s in syms]
    if "position.entry" in need:
        out["position.entry"] = [p.entry if p else NAN for p in pos]
    if "position.pnl" in need or "position.pnl_amount" in need:
        px = [acct.prices.get(s, NAN) for s in syms]
        out["position.pnl"] = [x / p.entry - 1.0 if p and p.entry > 0 else NAN
                               for p, x in zip(pos, px, strict=True)]
        out["position.pnl_amount"] = [p.qty * x - p.cost if p else NAN for p, x in zip(pos, px, strict=True)]
    if "position.age" in need:
        out["position.age"] = [(snap.now - p.opened_ms) / 1000.0 if p else NAN for p in pos]
    if "position.bars" in need:
        bar_ts = [snap.bars[s].ts if s in snap.bars else state.last_bar_ts.get(s, 0) for s in syms]
        out["position.bars"] = [float((t - p.opened_bar) // tf_ms) if p else NAN
                                for p, t in zip(pos, bar_ts, strict=True)]
    if "exposure.symbol" in need:
        out["exposure.symbol"] = [acct.exposure_symbol(s) for s in syms]
    if "exposure.theme" in need:
        theme_of = {s: t.name for t in themes.values() for s in t.symbols}
        out["exposure.theme"] = [acct.exposure_of(themes[theme_of[s]].symbols) if s in theme_of else 0.0
                                 for s in syms]
    for t in themes.values():
        if f"exposure.theme@{t.name}" in need:
            out[f"exposure.theme@{t.name}"] = acct.exposure_of(t.symbols)
    if "data_age" in need:
        out["data_age"] = [acct.price_age.get(s, 1 << 62) / 1000.0 for s in syms]
    if "spread" in need:
        spreads = []
        for s in syms:
            q = snap.quotes.get(s)
            spreads.append((q.ask - q.bid) / q.mid if q is not None and q.mid > 0 and q.ask >= q.bid else NAN)
        out["spread"] = spreads
    if need & {"product.halted", "product.cancel_only", "product.post_only"}:
        status = [snap.markets[s].status if s in snap.markets else "trading" for s in syms]
        out["product.halted"] = [1.0 if st == "halted" else 0.0 for st in status]
        out["product.cancel_only"] = [1.0 if st == "cancel_only" else 0.0 for st in status]
        out["product.post_only"] = [1.0 if st == "post_only" else 0.0 for st in status]
    api = sorted(snap.api_errors) if windows else []
    for key, func, seconds in windows:
        since = snap.now - int(seconds * 1000)
        if func == "trades":
            v = _count_since(state.trade_times, since)
        elif func == "stoplosses":
            v = _count_since(state.stopout_times, since)
        elif func == "api_errors":
            v = _count_since(api, since)
        else:
            start = equity_at(state, since, acct.equity)
            v = acct.equity - start if func == "pnl_amount" else (
                (acct.equity - start) / start if start > 0 else NAN)
        out[key] = v
    return out
