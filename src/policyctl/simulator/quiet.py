"""Skipping quiet bars: the simulator's fast path, with the engine's exact semantics.

Most bars change nothing: no rule fires, no breaker trips, nothing fills. Between two
events the books are frozen (no open orders, the same positions and cash), so every
account value the policy can read (equity, exposure, position PnL, drawdown, windows over
fills and equity) is a vectorizable function of the candles, and many are constants.
:class:`QuietScanner` evaluates the trigger and breaker conditions over a segment of bars
and returns the first bar where anything could happen. The bars before it are provably
quiet: the engine would decide nothing on them, so the simulator only updates the few
counters a tick keeps (last prices, volume average, peak equity) and ticks the engine on
the event bar itself.

What does not depend on the books (candle values, from one pass over the whole series in
:class:`Precomputed`) is evaluated once. The rest is evaluated per segment by
:class:`~policyctl.rules.vectorized.Partial`, on demand from the conditions: the account
values (:class:`Segment`) are floats where they are constant over the segment (position
flags and entries, cash, equity when flat, most windows), so a condition like ``position.open
and ...`` folds to false at once when flat, and arrays are built only for what is read.

Which values are floats and which arrays, and which way the constants decide, depends on the
books, not on the bars: segments come in a few shapes (flat; holding this symbol...). The second
time a shape is evaluated, its evaluation becomes a plan (``scanplan.compile_plan``): straight
numpy code with no dispatch, that checks first that a segment has its shape and computes once,
over the whole series, what does not depend on the segment.

``tests/test_simulator_fast.py`` holds the fast path to the plain bar-by-bar loop: same
fills, same equity, same denials, on every policy in ``policies/``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy.signal import lfilter

from policyctl.rules import scanplan, vectorized
from policyctl.rules.compiler import BreakerInfo, CompiledPolicy, TriggerInfo
from policyctl.rules.incremental import IncrementalEvaluator, Values, node_state_key
from policyctl.runtime.model import BREAKER_STATES, Bar, TradingState
from policyctl.runtime.state import EngineState, Position
from policyctl.simulator.data import MarketData

FIELDS = ("open", "high", "low", "close", "volume")
NAN = math.nan
MAX_PLANS = 16  # compiled plans of the scan per set of symbols held (each for a shape of the books)
VOLUME_RUN = 4096  # bars of the volume average filtered ahead at a time (see Precomputed.volume_average)


class Precomputed:
    """Every market node over the whole series, and a value source reading it at bar ``t``."""

    def __init__(self, cp: CompiledPolicy, data: MarketData):
        self.cp = cp
        g = cp.graph
        syms = cp.symbols
        self.market: dict[str, np.ndarray] = {}  # (symbols, bars) per field
        for f in FIELDS:
            cols = [np.asarray(getattr(data.series[s], f), dtype=np.float64) for s in syms]
            # with one symbol, a view of its series: a stack would copy it
            self.market[f] = cols[0][None, :] if len(cols) == 1 else np.stack(cols)
        self.market_nodes = [i for i in g.reachable() if g[i].market and not g[i].is_const]
        values = vectorized.evaluate(g, syms, self.market, nodes=self.market_nodes,
                                     bars=len(data.timestamps))
        self.values: dict[int, np.ndarray] = {i: values[i] for i in self.market_nodes}  # type: ignore[misc]
        self.ev = IncrementalEvaluator(g, syms)
        self._adv_g = [i for i in self.ev.advance_nodes if not g[i].per_symbol]
        self._adv_s = [i for i in self.ev.advance_nodes if g[i].per_symbol]
        # what a tick copies into the evaluator: (its row, the node, the node's series there)
        G, rows = self.ev._g, self.ev._rows
        self._copies: list[tuple[list[float], int, np.ndarray]] = [(G, i, self.values[i]) for i in self._adv_g]
        self._copies += [(r, i, self.values[i][k]) for i in self._adv_s for k, r in enumerate(rows)]
        self._volume_runs: dict[int, tuple[int, np.ndarray]] = {}
        self.t = 0

    def on_bar(self, bars: dict[str, Bar]) -> None:
        """Nothing to advance: the simulator sets :attr:`t`; values are read from the arrays."""

    def evaluate(self, inputs: dict[str, object], full: bool) -> Values:
        t = self.t
        for row, i, series in self._copies:
            row[i] = float(series.item(t))  # item: a Python scalar, not a numpy one
        return self.ev.evaluate(inputs, full=full)

    def volume_average(self, i: int, a: int, e: int, avg: float) -> float:
        """The engine's average volume of symbol ``i`` (its row) after bars [a, e), from ``avg`` (a
        positive number) before bar ``a``: ``avg = 0.95 * avg + 0.05 * volume``, bar after bar.

        The recursion is filtered ahead over a run of bars (``lfilter`` computes it bit for bit), and
        the run serves the next segments while the average of the books is still the one the run
        holds at their first bar: the full ticks in between update it the same way, bar after bar."""
        got = self._volume_runs.get(i)
        if got is not None:
            c0, run = got
            if c0 <= a and e - c0 < len(run) and run.item(a - c0) == avg:
                return float(run.item(e - c0))
        v = self.market["volume"][i, a:max(e, a + VOLUME_RUN)]
        run = np.empty(len(v) + 1)
        run[0] = avg
        run[1:] = lfilter([0.05], [1.0, -0.95], v, zi=[0.95 * avg])[0]
        self._volume_runs[i] = (a, run)
        return float(run.item(e - a))


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
        # how the scan reads the account: a state field or window node -> (state key, symbol row)
        reads: dict[int, tuple[str, int | None]] = {}
        for i in live:
            n = g[i]
            if n.op == "window":
                reads[i] = (node_state_key(n), None)
            elif n.op == "field" and not n.market:
                name, target = str(n.attr[0]), n.attr[1]
                tix = self.index.get(target) if isinstance(target, str) else None
                named_theme = target is not None and tix is None
                reads[i] = (node_state_key(n), None) if named_theme else (name, tix)
        # window key -> (function, seconds, bars back the engine's equity lookup goes)
        self.windows: dict[str, tuple[str, float, int]] = {}
        for i in live:
            if g[i].op == "window":
                func, w = str(g[i].attr[0]), float(g[i].attr[1])  # type: ignore[arg-type]
                self.windows[node_state_key(g[i])] = (func, w, math.ceil(w * 1000 / self.tf))
        self.pnl_windows = sorted({w for f, w, _ in self.windows.values() if f in ("pnl", "pnl_amount")})
        themes = cp.policy.market.themes
        self.exposure_keys = {"exposure.total", "exposure.symbol"} | (
            {"exposure.theme", *(f"exposure.theme@{t.name}" for t in themes.values())} if themes else set())
        # What does not depend on the books is evaluated once, over the whole series: candle
        # values, and the account values a simulation never changes (no kill switch, data as
        # old as its bar, products trading, no API errors, and no order in flight, since the
        # scan only runs with none). What depends on the books is evaluated per segment.
        fixed = {i for i, (key, _) in reads.items() if key in _ZERO or key.startswith("api_errors:")}
        self.reads = {i: (key, row, _reader(key, self)) for i, (key, row) in reads.items() if i not in fixed}
        booked: set[int] = set()
        for i in live:  # arguments first
            if i in self.reads or any(a in booked for a in g[i].args):
                booked.add(i)
        whole = vectorized.Partial(g, len(self.syms), len(self.ts),
                                   lambda i: 0.0 if i in fixed else pre.values.get(i))
        self.given = {a: whole.value(a) for i in booked for a in g[i].args if a not in booked}
        m = self.pre.market
        finite = np.isfinite(m["open"]) & np.isfinite(m["high"]) & np.isfinite(m["low"]) & np.isfinite(m["close"])
        self.bad_tick = cp.settings.get("bad_tick")
        self.close_rows = [(s, m["close"][i]) for s, i in self.index.items()]
        # Only what can make something happen: trigger and breaker conditions (caps matter only
        # when an order is sized, which happens on an event bar, in a full engine tick). The
        # conditions that do not depend on the books are decided once, with missing candles.
        self.static: np.ndarray = np.logical_not(finite.all(axis=0))
        self.buy_triggers: list[TriggerInfo] = []
        self.exit_triggers: list[TriggerInfo] = []
        self.breakers: list[BreakerInfo] = []
        for t in cp.triggers:
            if t.action == "buy" and t.when not in booked:
                self.static |= self._fires(whole.value(t.when), t.symbols)
            else:
                (self.buy_triggers if t.action == "buy" else self.exit_triggers).append(t)
        for br in cp.breakers:
            if br.when not in booked:
                self.static |= np.not_equal(whole.value(br.when), 0.0)  # true, or unavailable
            else:
                self.breakers.append(br)
        # with the bad-tick guard: a close too far from the previous one (the first bar of a
        # segment is compared with the last trusted price instead, see _bad_first_tick)
        self.static_ticks = self.static
        if self.bad_tick is not None:
            c = m["close"]
            with np.errstate(divide="ignore", invalid="ignore"):
                jumps = np.abs(c[:, 1:] / c[:, :-1] - 1.0) > self.bad_tick
            self.static_ticks = self.static.copy()
            self.static_ticks[1:] |= jumps.any(axis=0)
        # compiled plans of the scan, by the symbols held, and the conditions asked with them
        self.plans: dict[tuple[str, ...], list[scanplan.Plan]] = {}
        self.max_plans = MAX_PLANS
        self.conditions: dict[tuple[str, ...], list[scanplan.Condition]] = {}
        self.shapes: set[object] = set()  # shapes evaluated once: the second time, a plan is compiled
        self.whole: dict[tuple[object, ...], np.ndarray] = {}  # values over the whole series, for the plans

    # ---- the first bar where something can happen ------------------------------------------
    def first_event(self, a: int, b: int, state: EngineState, eq_hist: np.ndarray,
                    spreads: Mapping[str, np.ndarray], protect: Mapping[str, tuple[float | None, float | None]],
                    intrabar: bool) -> tuple[int, vectorized.Value]:
        """The first bar in [a, b) where the engine could decide something (``b`` if none), and
        the equity over the bars before it (and possibly more): an array, or a float when it is
        constant. The account arithmetic divides by zero and meets NaN: the caller silences
        numpy's warnings of it (``simulate`` does, once)."""
        seg = Segment(self, a, b, state, eq_hist, spreads)
        if _expected_state(state) is not state.trading_state or self._bad_first_tick(a, state):
            return a, seg.equity
        event = self.static_ticks[a:b].copy()
        event[0] = self.static[a]
        if not event[0]:
            held = tuple(s for s in self.syms if s in state.positions and state.positions[s].qty > 0)
            if state.trips or held:
                self._stops(seg, held, protect, intrabar, event)
            if not event[0]:
                self._conditions(seg, held, event)
        first = int(event.argmax())
        return (a + first if event[first] else b), seg.equity

    def _stops(self, seg: Segment, held: tuple[str, ...], protect: Mapping[str, tuple[float | None, float | None]],
               intrabar: bool, event: np.ndarray) -> None:
        """Where a breaker's hold ends, or a protective stop or take level is reached."""
        a, b, state = seg.a, seg.b, seg.state
        for trip in state.trips.values():
            if trip.until_ms is not None:
                event |= self.now[a:b] >= trip.until_ms
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

    def _conditions(self, seg: Segment, held: tuple[str, ...], event: np.ndarray) -> None:
        """Where a breaker's condition is true or unavailable, or a trigger fires. A plan compiled
        for segments of this shape does it (``scanplan.compile_plan``); else ``vectorized.Partial``,
        which records the evaluation: a shape evaluated twice gets its plan."""
        key = held
        plans = self.plans.get(key)
        if plans is None:
            plans = self.plans[key] = []
            self.conditions[key] = self._conditions_for(held)
        planned = seg.n > max(1, len(self.syms))  # a segment's shapes tell its bars from the symbols
        for k, plan in enumerate(plans if planned else ()):
            if plan.run(seg.read, seg.a, seg.b, event):
                if k:  # the last shape first: shapes come in runs
                    plans.insert(0, plans.pop(k))
                return
        conditions = self.conditions[key]
        record = planned and len(plans) < self.max_plans
        ev = vectorized.Partial(self.cp.graph, len(self.syms), seg.n, seg.source, record=record)
        for c in conditions:
            x = scanplan._holds(ev.value(c.node), c.holds)
            if isinstance(x, np.ndarray):
                if x.ndim == 2:
                    rows = c.rows or range(len(self.syms))
                    x = x[rows[0]] if len(rows) == 1 else x[list(rows)].any(axis=0)
                event |= x
            elif x:  # the same at every bar
                event[0] = True
            if event[0] and not record:
                return  # nothing can come earlier (a recording goes on: the plan needs it all)
        if record:
            shape = (key, ev.shape())
            if shape not in self.shapes:
                self.shapes.add(shape)
                return
            compiled = scanplan.compile_plan(ev, conditions, self.given, self.whole)
            if compiled is not None:
                plans.insert(0, compiled)

    def _conditions_for(self, held: tuple[str, ...]) -> list[scanplan.Condition]:
        """What the scan asks while ``held`` are the symbols held (exit triggers ask only those)."""
        out = [scanplan.Condition(br.when, scanplan.NOT_FALSE) for br in self.breakers]
        for trig in self.buy_triggers:
            out.append(scanplan.Condition(trig.when, scanplan.TRUE, self._rows(trig.symbols or self.syms)))
        for trig in self.exit_triggers:
            targets = tuple(s for s in (trig.symbols or self.syms) if s in held)
            if targets:
                out.append(scanplan.Condition(trig.when, scanplan.TRUE, self._rows(targets)))
        return out

    def _rows(self, symbols: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(self.index[s] for s in symbols)

    def _fires(self, v: vectorized.Value, symbols: tuple[str, ...]) -> np.ndarray | bool:
        if not isinstance(v, np.ndarray):
            return v == 1.0
        if v.ndim == 2:
            rows = [self.index[s] for s in (symbols or self.syms)]
            if len(rows) == 1:
                return np.asarray(v[rows[0]] == 1.0)
            return np.asarray((v[rows] == 1.0).any(axis=0))
        return np.asarray(v == 1.0)

    def _bad_first_tick(self, a: int, state: EngineState) -> bool:
        if self.bad_tick is None:
            return False
        for s, close in self.close_rows:
            c = float(close[a])
            last = state.last_price.get(s, c)
            # the division the series' check makes (numpy's, which gives infinities or NaN for 0)
            jump = c / last if last != 0.0 else float(np.float64(c) / last)
            if abs(jump - 1.0) > self.bad_tick:
                return True
        return False

    # ---- what a quiet stretch changes ---------------------------------------------------------
    def bookkeep(self, a: int, e: int, state: EngineState, eq: vectorized.Value) -> None:
        if e <= a:
            return
        m = self.pre.market
        close, volume = m["close"], m["volume"]
        last_ts = self.ts.item(e - 1)  # item: a Python scalar, not a numpy one
        for s, i in self.index.items():
            state.last_bar_ts[s] = last_ts
            state.last_price[s] = close.item(i, e - 1)
            avg = state.avg_volume.get(s)
            if avg is not None and 0.0 < avg < math.inf:
                avg = self.pre.volume_average(i, a, e, avg)
            elif e - a - (avg is None) > 256:  # the engine's average, bar after bar: 0.95 * avg + 0.05 * volume
                v = volume[i, a:e]
                if avg is None:
                    avg, v = v.item(0), v[1:]
                y = lfilter([0.05], [1.0, -0.95], v, zi=[0.95 * avg])[0]
                avg = float(y[-1])
            else:  # on a few bars, the same recursion in Python costs less than the filter's call
                vs = volume[i, a:e].tolist()
                if avg is None:
                    avg, vs = vs[0], vs[1:]
                for x in vs:
                    avg = 0.95 * avg + 0.05 * x
            state.avg_volume[s] = avg
        top = float(np.maximum.reduce(eq[: e - a])) if isinstance(eq, np.ndarray) else eq  # np.max, less its wrapper
        state.peak_equity = max(state.peak_equity, top)
        state.bars_seen += e - a
        state.now = self.now.item(e - 1)

    def inject_marks(self, state: EngineState, e: int, eq_hist: np.ndarray) -> None:
        """Give the engine the equity marks its pnl windows will look up at bar ``e``."""
        if not self.pnl_windows or e == 0:
            return
        tf, now = self.tf, self.now
        marks = []
        last = -1
        for w in reversed(self.pnl_windows):  # the longest window first: the earliest mark
            k = max(e - math.ceil(w * 1000 / tf), 0)
            if k != last:  # (windows that look up the same bar share its mark)
                marks.append((now.item(k), eq_hist.item(k)))  # Python scalars, not numpy ones
                last = k
        state.equity_marks = marks


_FLAT = {"position.open": 0.0, "position.size": 0.0, "position.value": 0.0}  # no position; NaN otherwise
_FIXED: dict[str, Callable[[Position], float]] = {  # constant while the books are frozen
    "position.open": lambda p: 1.0 if p.qty > 0 else 0.0,
    "position.size": lambda p: p.qty,
    "position.entry": lambda p: p.entry,
}
_ZERO = frozenset({"kill_switch", "orders.open", "data_age", "product.halted", "product.cancel_only",
                   "product.post_only"})


class Segment:
    """The account values the policy reads, over bars [a, b) for the frozen books, built when the
    evaluation first asks for one (``source``). A value constant over the segment is a float (all
    of them but equity and what derives from it when flat; a count window that is the same at the
    first and the last bar); the arithmetic is the engine's, in the same order."""

    __slots__ = ("_close", "_equity", "_equity_array", "_value", "a", "b", "cache", "eq_hist", "n", "positions",
                 "sc", "spreads", "state")

    def __init__(self, sc: QuietScanner, a: int, b: int, state: EngineState, eq_hist: np.ndarray,
                 spreads: Mapping[str, np.ndarray]):
        self.sc, self.a, self.b, self.n = sc, a, b, b - a
        self.state, self.eq_hist, self.spreads = state, eq_hist, spreads
        self.positions = {s: p for s, p in state.positions.items() if s in sc.index}
        self._close: np.ndarray | None = None
        self.cache: dict[str, vectorized.Value] = {}
        self._value: dict[str, np.ndarray] | None = None
        self._equity: vectorized.Value | None = None
        self._equity_array: np.ndarray | None = None

    def source(self, i: int) -> vectorized.Value | None:
        """The value of node ``i`` as the scan reads it, or None: computed from its arguments."""
        x = self.sc.given.get(i)
        if x is not None:
            return x[..., self.a:self.b] if isinstance(x, np.ndarray) else x
        return self.read(i) if i in self.sc.reads else None

    def read(self, i: int) -> vectorized.Value:
        """The value of the account field or window node ``i``."""
        key, row, compute = self.sc.reads[i]
        v = self.cache.get(key)
        if v is None:
            v = self.cache[key] = compute(self, key)
        if row is not None and isinstance(v, np.ndarray) and v.ndim == 2:
            v = v[row]
            return float(v[0]) if v.size == 1 else v
        return v

    @property
    def close(self) -> np.ndarray:
        if self._close is None:
            self._close = self.sc.pre.market["close"][:, self.a:self.b]
        return self._close

    @property
    def value(self) -> dict[str, np.ndarray]:
        """The value of each position, over the bars."""
        if self._value is None:
            self._value = {s: p.qty * self.close[self.sc.index[s]] for s, p in self.positions.items()}
        return self._value

    @property
    def equity(self) -> vectorized.Value:
        if self._equity is None:
            if not self.positions:
                self._equity = self.state.cash + 0.0
            else:
                values = iter(self.value.values())
                tot = next(values) + 0.0  # a sum from zero: 0.0 plus the first term
                for v in values:
                    tot = tot + v
                self._equity = self.state.cash + tot
        return self._equity

    def equity_array(self) -> np.ndarray:
        if self._equity_array is None:
            eq = self.equity
            self._equity_array = eq if isinstance(eq, np.ndarray) else np.full(self.n, eq)
        return self._equity_array

    def _equity_value(self, key: str) -> vectorized.Value:
        return self.equity

    def _cash(self, key: str) -> vectorized.Value:
        return self.state.cash

    def _positions_open(self, key: str) -> vectorized.Value:
        return float(sum(1 for p in self.state.positions.values() if p.qty > 0))

    def _missing(self, key: str) -> vectorized.Value:
        return NAN

    def _drawdown(self, key: str) -> vectorized.Value:
        eq, peak0 = self.equity, self.state.peak_equity
        if not isinstance(eq, np.ndarray) and math.isfinite(eq) and peak0 > 0:
            # the running peak is max(eq, peak0) from the second bar: the same drawdown as the first's
            return max(0.0, 1.0 - eq / peak0)
        eq = self.equity_array()
        before = np.empty(self.n)  # the peak before each bar
        before[0] = peak0
        before[1:] = eq[:-1]
        np.maximum.accumulate(before, out=before)
        if peak0 > 0:  # then every peak is positive, or NaN (after a NaN equity), which gives NaN anyway
            return np.maximum(0.0, 1.0 - eq / before)
        return np.where(before > 0, np.maximum(0.0, 1.0 - eq / before), np.nan)

    def _exposure(self, key: str) -> vectorized.Value:
        sc = self.sc
        if key not in sc.exposure_keys:
            return NAN
        eq = self.equity
        if not isinstance(eq, np.ndarray) and eq > 0:
            return 0.0  # flat
        eq = self.equity_array()
        value, n, k = self.value, self.n, len(sc.syms)
        pos_eq = np.where(eq > 0, eq, np.nan)
        if key == "exposure.total":
            total = np.zeros(n)
            for s in sorted(value):
                total = total + value[s]
            return total / pos_eq
        if key == "exposure.symbol":
            val = np.zeros((k, n))
            for sym, v in value.items():
                val[sc.index[sym]] = v
            return (val + 0.0) / pos_eq
        theme_rows = np.zeros((k, n))
        for t in sc.cp.policy.market.themes.values():
            tv = np.zeros(n)
            for sym in t.symbols:
                tv = tv + (value[sym] + 0.0 if sym in value else 0.0)
            share = tv / pos_eq
            self.cache[f"exposure.theme@{t.name}"] = share
            for sym in t.symbols:
                if sym in sc.index and not theme_rows[sc.index[sym]].any():
                    theme_rows[sc.index[sym]] = share
        self.cache["exposure.theme"] = theme_rows
        return self.cache[key]

    def _position(self, key: str) -> vectorized.Value:
        flat = _FLAT.get(key, NAN)
        if not self.positions:
            return flat
        sc, k = self.sc, len(self.sc.syms)
        fixed = _FIXED.get(key)
        if fixed is not None:
            col = [flat] * k
            for s, p in self.positions.items():
                col[sc.index[s]] = float(fixed(p))
            return _column(col)
        a, b = self.a, self.b
        arr = np.full((k, self.n), flat)
        for s, p in self.positions.items():
            i = sc.index[s]
            c = self.close[i]
            if key == "position.value":
                arr[i] = self.value[s]
            elif key == "position.pnl":
                arr[i] = c / p.entry - 1.0 if p.entry > 0 else np.nan
            elif key == "position.pnl_amount":
                arr[i] = p.qty * c - p.cost
            elif key == "position.age":
                arr[i] = (sc.now[a:b] - p.opened_ms) / 1000.0
            elif key == "position.bars":
                arr[i] = ((sc.ts[a:b] - p.opened_bar) // sc.tf).astype(np.float64)
            else:
                return NAN
        return arr

    def _spread(self, key: str) -> vectorized.Value:
        sp = np.full((len(self.sc.syms), self.n), np.nan)
        for sym, i in self.sc.index.items():
            half = self.spreads[sym][self.a:self.b] / 2 if sym in self.spreads else np.zeros(self.n)
            c = self.close[i]
            bid, ask = c * (1 - half), c * (1 + half)
            sp[i] = (ask - bid) / ((bid + ask) / 2)
        return sp

    def _window(self, key: str) -> vectorized.Value:
        sc, a, b, n = self.sc, self.a, self.b, self.n
        func, w, wb = sc.windows[key]
        if func in ("trades", "stoplosses"):
            times = self.state.trade_times if func == "trades" else self.state.stopout_times
            ms = int(w * 1000)
            # a count of past events only falls as the window slides: constant if the ends agree
            first = len(times) - bisect.bisect_left(times, int(sc.now[a]) - ms)
            if first == len(times) - bisect.bisect_left(times, int(sc.now[b - 1]) - ms):
                return float(first)
            counts = len(times) - np.searchsorted(times, sc.now[a:b] - ms, side="left")
            return np.asarray(counts, dtype=np.float64)
        # the engine looks up the latest equity mark at or before now - w: bar t - wb, or the
        # first mark when none is that old (bar 0's equity)
        eq, hist = self.equity, self.eq_hist
        s0 = a - wb  # the mark for the segment's first bar
        if s0 >= 0 and s0 + n <= a:
            start = hist[s0:s0 + n]
        elif s0 >= 0:
            start = np.concatenate([hist[s0:a], self.equity_array()])[:n]
        else:
            first = hist[0] if a > 0 else self.equity_array()[0]
            start = np.concatenate([np.full(min(-s0, n), first), hist[:a], self.equity_array()])[:n]
        if func == "pnl_amount":
            return eq - start
        pnl = (eq - start) / start
        pnl[start <= 0] = np.nan  # where the start is not positive (a NaN one gives NaN already)
        return pnl


def _reader(key: str, sc: QuietScanner) -> Callable[[Segment, str], vectorized.Value]:
    """How a segment computes the state value ``key``."""
    simple = {"equity": Segment._equity_value, "cash": Segment._cash, "positions.open": Segment._positions_open,
              "drawdown": Segment._drawdown, "spread": Segment._spread}
    if key in simple:
        return simple[key]
    if key.startswith("exposure."):
        return Segment._exposure
    if key.startswith("position."):
        return Segment._position
    return Segment._window if key in sc.windows else Segment._missing


def _column(col: list[float]) -> vectorized.Value:
    """A per-symbol constant: a float when the same for every symbol, else a (symbols, 1) array."""
    x = col[0]
    if len(col) == 1 or all(v == x or (v != v and x != x) for v in col):
        return x
    return np.array(col)[:, None]


def _expected_state(state: EngineState) -> TradingState:
    out = TradingState.ACTIVE
    for t in state.trips.values():
        s = BREAKER_STATES.get(t.action)
        if s is not None and s.rank > out.rank:
            out = s
    return out
