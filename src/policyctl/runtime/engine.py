"""The engine: one tick, from a snapshot and the persisted state to decisions.

``Engine.tick(snapshot, state)`` is the whole decision path, shared by the simulator and
the live runtime. It is pure: no I/O, no clock (time is ``snapshot.now``), and the same
inputs give the same decisions and client order ids. The stages, in order:

1. candles checked (bad, duplicate, out-of-order bars are dropped and reported) and fed to
   the evaluator; new fills booked (once each); vanished orders forgotten;
2. account figures and the evaluation of every rule;
3. breakers set the trading state (strictest wins; unevaluable ones fail closed);
4. cancels (everything when HALTED, open buys when REDUCE_ONLY, stale orders);
5. exits: flatten, stop-loss and take-profit prices, then exit triggers;
6. entries: triggers propose, sizing sizes, caps clip or block, the guard checks the
   concrete order; client ids are derived from the decision itself.

Every decision carries a trace: what fired with which values, how the size was computed,
which cap clipped it, which check denied it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from policyctl.exchanges.guard import Draft, Guard, GuardContext
from policyctl.rules.compiler import CompiledPolicy, TriggerInfo
from policyctl.rules.incremental import IncrementalEvaluator, Values
from policyctl.rules.types import Kind
from policyctl.runtime import account as acc
from policyctl.runtime.books import apply_fill, forget_vanished
from policyctl.runtime.breakers import evaluate_breakers
from policyctl.runtime.caps import check_caps, check_counts
from policyctl.runtime.model import (
    Bar,
    Cancel,
    Event,
    Fill,
    OrderRequest,
    Side,
    Snapshot,
    TradingState,
)
from policyctl.runtime.sizing import Sized, size_buy, size_sell
from policyctl.runtime.state import EngineState, PendingOrder

NAN = math.nan
FIELDS = ("open", "high", "low", "close", "volume")


class ValueSource(Protocol):
    """Where rule values come from: the incremental evaluator, or precomputed series."""

    def on_bar(self, bars: dict[str, Bar]) -> None: ...

    def evaluate(self, inputs: dict[str, object], full: bool) -> Values: ...


class IncrementalSource:
    def __init__(self, cp: CompiledPolicy):
        self.symbols = cp.symbols
        self.ev = IncrementalEvaluator(cp.graph, cp.symbols)

    def on_bar(self, bars: dict[str, Bar]) -> None:
        market = {f: [getattr(bars[s], f) if s in bars else NAN for s in self.symbols] for f in FIELDS}
        self.ev.advance(market)

    def evaluate(self, inputs: dict[str, object], full: bool) -> Values:
        return self.ev.evaluate(inputs, full=full)


@dataclass
class Decision:
    now: int
    orders: list[OrderRequest] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    denials: list[dict[str, Any]] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    trading_state: TradingState = TradingState.ACTIVE
    equity: float = NAN
    margins: dict[str, float] = field(default_factory=dict)
    breaker_margins: dict[str, float] = field(default_factory=dict)  # distance to tripping, > 0 is safe
    exposure: dict[str, float] = field(default_factory=dict)  # total, and per symbol, as shares of equity
    state: EngineState = field(default_factory=EngineState)


def client_id(policy_hash: str, rule: str, symbol: str, side: Side, bar_ts: int, kind: str) -> str:
    """Deterministic from the decision: the same decision on the same bar is the same order."""
    h = hashlib.sha256(f"{policy_hash}|{rule}|{symbol}|{side.value}|{bar_ts}|{kind}".encode())
    return "pc" + h.hexdigest()[:30]


class Engine:
    def __init__(self, cp: CompiledPolicy, mode: str = "dry-run", live_armed: bool = False,
                 source: ValueSource | None = None, explain: bool = False):
        self.cp = cp
        self.mode = mode
        self.live_armed = live_armed
        self.source = source if source is not None else IncrementalSource(cp)
        self.explain = explain
        self.guard = Guard()
        self.tf_ms = int(cp.timeframe_seconds * 1000)
        self.limit_entries = cp.flags.get("order_type") == "limit"
        # entries pay the maker fee when they rest as limit orders; exits are always market
        self.fee = cp.settings.get("fees.taker", 0.001)
        self.entry_fee = cp.settings.get("fees.maker", self.fee) if self.limit_entries else self.fee
        self.min_trade = cp.settings.get("min_trade", 0.0)
        # the breakers whose distance to tripping is exported (a comparison of portfolio-wide
        # values, whose sides the compiler made outputs): (name, minuend node, subtrahend node)
        g = cp.graph
        self._margin_plan: list[tuple[str, int, int]] = []
        for b in cp.breakers:
            lhs, rhs = g.output_node("breaker", b.name, "lhs"), g.output_node("breaker", b.name, "rhs")
            if lhs is not None and rhs is not None:
                le = g[b.when].op in ("le", "lt")
                self._margin_plan.append((b.name, lhs.id, rhs.id) if le else (b.name, rhs.id, lhs.id))
        self.cooldowns = {k: v for k, v in cp.settings.items() if k in ("after_fill", "after_stopout")}
        windows = [float(cp.graph[i].attr[1]) for i in cp.graph.reachable()  # type: ignore[arg-type]
                   if cp.graph[i].op == "window"]
        self.horizon_ms = int(max([*windows, cp.settings.get("order_window", 60.0), 86400.0]) * 1000)
        self.index = {s: i for i, s in enumerate(cp.symbols)}
        self._per_symbol = frozenset(i for i in cp.graph.reachable() if cp.graph[i].per_symbol)
        # each trigger's symbols with their rows of values, in order
        self._targets = {t.name: tuple((s, self.index[s]) for s in self._symbols(t)) for t in cp.triggers}

    # ---- the tick ------------------------------------------------------------------------
    def tick(self, snap: Snapshot, state: EngineState) -> Decision:
        """Decide on one snapshot. ``state`` is updated in place and returned in the decision
        (clone it first to keep the state before the tick)."""
        state.now = snap.now
        d = Decision(snap.now, state=state)
        untrusted: set[str] = set()  # symbols whose latest print is not believed this tick
        bars = self._check_bars(snap, state, d, untrusted)
        self._check_quotes(snap, state, d, untrusted)
        if snap.new_bar and bars:  # a tick with no new candle (all repeats) advances nothing
            self.source.on_bar(bars)
            state.bars_seen += 1
        for f in sorted(snap.fills, key=lambda f: (f.ts, f.id)):
            problem = self._bad_fill(f)
            if problem:
                d.events.append(Event("data", f"fill `{f.id}` ignored: {problem}",
                                      {"fill": f.id, "problem": "bad_fill", "symbol": f.symbol}))
                continue
            d.events += apply_fill(state, f, bars[f.symbol].ts if f.symbol in bars else
                                   state.last_bar_ts.get(f.symbol, f.ts), self.cooldowns, snap.markets.get(f.symbol))
        for cid, reason in snap.rejections:  # the exchange refused an order: the engine hears why
            o = state.pending.pop(cid, None)
            if o is not None:
                d.events.append(Event("order_rejected", f"order `{cid}` ({o.kind} {o.side} {o.symbol}) rejected "
                                      f"by the exchange: {reason}", {"client_id": cid, "reason": reason}))
                self._record_denial(d, "exchange", o.rule, o.symbol, f"exchange:{reason}",
                                    f"the exchange rejected the order: {reason}")
        d.events += forget_vanished(state, snap.open_orders, snap.now, self.cooldowns)
        account = acc.account(snap, state, self.cp, bars, untrusted)
        d.equity = account.equity
        d.exposure = {"total": account.exposure_total, **{s: account.exposure_symbol(s) for s in self.cp.symbols}}
        inputs = acc.state_inputs(snap, state, self.cp, account)
        values = self.source.evaluate(inputs, full=self.explain)
        if math.isfinite(account.equity):
            state.peak_equity = max(state.peak_equity, account.equity)
            state.equity_marks.append((snap.now, account.equity))
        state.prune(self.horizon_ms)
        books_ok = self._check_books(snap, state, d)
        outcome = evaluate_breakers(self.cp, values, state, snap.now, snap.kill_switch)
        d.events += outcome.events
        d.trading_state = outcome.state
        d.trace.append({"stage": "breakers", "state": outcome.state.value, "reasons": list(outcome.reasons)})
        d.breaker_margins = self._breaker_margins(values)
        self._cancels(snap, state, d)
        ctx = _Tick(snap, state, values, account, bars, d, books_ok, untrusted)
        flatten = outcome.flatten or any(trip.action == "flatten" for trip in state.trips.values())
        self._exits(ctx, flatten)
        self._entries(ctx)
        return d

    def _breaker_margins(self, values: Values) -> dict[str, float]:
        """How far each breaker of the form ``x <= t`` (or ``>=``, ``<``, ``>``) is from tripping:
        ``x - t`` for ``<=``/``<``, ``t - x`` for ``>=``/``>``. Compound conditions are left out."""
        g = values.g
        return {name: g[x] - g[t] for name, x, t in self._margin_plan}

    # ---- stage 1: data -------------------------------------------------------------------
    def _check_bars(self, snap: Snapshot, state: EngineState, d: Decision, untrusted: set[str]) -> dict[str, Bar]:
        good: dict[str, Bar] = {}
        for s, b in snap.bars.items():
            if s not in self.index:
                continue
            last = state.last_bar_ts.get(s)
            if last is not None and b.ts <= last:
                d.events.append(Event("data", f"{s}: bar at {b.ts} is not newer than {last}: ignored",
                                      {"symbol": s, "problem": "duplicate_or_out_of_order"}))
                continue
            values = (b.open, b.high, b.low, b.close, b.volume)
            if not all(math.isfinite(v) for v in values) or min(b.open, b.high, b.low, b.close) <= 0 \
                    or b.volume < 0 or b.high < max(b.open, b.close, b.low) or b.low > min(b.open, b.close):
                d.events.append(Event("data", f"{s}: bad bar at {b.ts} ({values}): treated as missing",
                                      {"symbol": s, "problem": "bad_bar"}))
                state.last_bar_ts[s] = b.ts
                continue
            state.last_bar_ts[s] = b.ts
            if not self._trust(state, s, b, d):
                untrusted.add(s)
            good[s] = b
        return good

    def _check_quotes(self, snap: Snapshot, state: EngineState, d: Decision, untrusted: set[str]) -> None:
        """A quote whose last price is further than ``bad_tick`` from the last trusted price is
        a bad print as well (a ticker has no volume to confirm it): the symbol is untrusted
        this tick, so the quote never marks the account and no entry is made on it."""
        limit = self.cp.settings.get("bad_tick")
        if limit is None:
            return
        for s, q in snap.quotes.items():
            last = state.last_price.get(s)
            if s not in self.index or s in untrusted or last is None or last <= 0:
                continue
            if math.isfinite(q.last) and q.last > 0 and abs(q.last / last - 1) > limit:
                untrusted.add(s)
                d.events.append(Event("data", f"{s}: quote at {q.last:.8g} is not trusted (the last trusted price "
                                      f"is {last:.8g})", {"symbol": s, "problem": "bad_tick"}))

    def _trust(self, state: EngineState, s: str, b: Bar, d: Decision) -> bool:
        """Keep the last trusted price: a big move needs volume to be believed. An untrusted
        close still reaches the indicators, but never marks the account (equity, exposure,
        PnL stay at the last trusted price) and never prices an order."""
        limit = self.cp.settings.get("bad_tick")
        last = state.last_price.get(s)
        avg = state.avg_volume.get(s)
        trusted = True
        if limit is not None and last is not None and last > 0 and abs(b.close / last - 1) > limit:
            confirm = self.cp.settings.get("bad_tick_volume", 3.0)
            trusted = avg is not None and avg > 0 and b.volume >= confirm * avg
            if not trusted:
                d.events.append(Event("data", f"{s}: move to {b.close:.8g} from {last:.8g} without volume "
                                      "confirmation is not trusted", {"symbol": s, "problem": "bad_tick"}))
        if trusted:
            state.last_price[s] = b.close
        # an EMA of volume, written as the simulator's vectorized form computes it (bit for bit)
        state.avg_volume[s] = b.volume if avg is None else 0.95 * avg + 0.05 * b.volume
        return trusted

    def _bad_fill(self, f: Fill) -> str | None:
        """Why a fill cannot be booked (it is reported, and the books check fails closed)."""
        if f.symbol not in self.index:
            return f"`{f.symbol}` is not a symbol of the policy"
        if not (math.isfinite(f.qty) and f.qty > 0):
            return f"quantity {f.qty} is not positive"
        if not (math.isfinite(f.price) and f.price > 0):
            return f"price {f.price} is not positive"
        if not (math.isfinite(f.fee) and f.fee >= 0):
            return f"fee {f.fee} is not a non-negative number"
        return None

    def _check_books(self, snap: Snapshot, state: EngineState, d: Decision) -> bool:
        problems = []
        if snap.cash is not None and not abs(snap.cash - state.cash) <= 1e-6 * max(1.0, abs(state.cash)):
            problems.append(f"cash {snap.cash:.8g} at the exchange, {state.cash:.8g} in the books")
        for s in self.cp.symbols:
            base = s.split("/")[0]
            if base in snap.balances:
                held = state.positions[s].qty if s in state.positions else 0.0
                if not abs(snap.balances[base] - held) <= 1e-9 * max(1.0, held):
                    problems.append(
                        f"{base} {snap.balances[base]:.8g} at the exchange, {held:.8g} in the books")
        if problems:
            d.events.append(Event("data", "books disagree with the exchange: " + "; ".join(problems)
                                  + ": no new entries until reconciled", {"problem": "books_mismatch"}))
        return not problems

    # ---- stage 4: cancels ----------------------------------------------------------------
    def _cancels(self, snap: Snapshot, state: EngineState, d: Decision) -> None:
        stale = self.cp.settings.get("stale_after")
        maker_wait = self.cp.settings.get("maker_wait")
        for o in snap.open_orders:
            reason = None
            age = snap.now - o.created_ms
            if d.trading_state is TradingState.HALTED:
                reason = "halted"
            elif d.trading_state is TradingState.REDUCE_ONLY and o.side is Side.BUY:
                reason = "reduce_only"
            elif stale is not None and age > stale * 1000:
                reason = "stale"
            elif maker_wait is not None and o.price is not None and not o.reduce_only and age > maker_wait * 1000:
                reason = "maker_wait"  # a maker entry not filled in time is withdrawn, not chased
            if reason:
                d.cancels.append(Cancel(o.client_id, o.symbol, reason))

    # ---- stage 5: exits ------------------------------------------------------------------
    def _exits(self, t: _Tick, flatten: bool) -> None:
        exiting = {o.symbol for o in t.state.pending.values() if o.side == "sell"}
        for s, p in sorted(t.state.positions.items()):
            if s in exiting or s not in self.index or s not in t.account.open:  # dust cannot be sold
                continue
            px = t.account.prices.get(s, NAN)
            kind = None
            if flatten:
                kind = "flatten"
            elif p.stop is not None and px <= p.stop:
                kind = "stop_loss"
            elif p.take is not None and px >= p.take:
                kind = "take_profit"
            if kind:
                t.d.trace.append({"stage": "exit", "symbol": s, "kind": kind, "price": px,
                                  "stop": p.stop, "take": p.take})
                if self._order(t, s, Side.SELL, p.qty, px, kind, kind, None, None, None):
                    exiting.add(s)
        for trig in self.cp.triggers:
            if trig.action == "buy":
                continue
            for s in self._firing(t, trig, lambda s: s not in exiting and s in t.account.open):
                i = self.index[s]
                p = t.state.positions[s]
                px = t.account.prices.get(s, NAN)
                sized = size_sell(self.cp, trig, t.values, i, px, p.qty, t.account.equity, t.account.cash)
                if not isinstance(sized, Sized):
                    self._deny(t, "sizing", trig.name, s, "unsized", sized.reason)
                    continue
                t.d.trace.append({"stage": "sizing", "rule": trig.name, "symbol": s,
                                  "explain": sized.explain})
                kind = "exit" if sized.qty >= p.qty else "reduce"
                if self._order(t, s, Side.SELL, sized.qty, px, kind, trig.name, None, None, None):
                    exiting.add(s)

    # ---- stage 6: entries ----------------------------------------------------------------
    def _entries(self, t: _Tick) -> None:
        for trig in self.cp.triggers:
            if trig.action != "buy":
                continue
            for s in self._firing(t, trig):
                if t.d.trading_state is not TradingState.ACTIVE:
                    self._deny(t, "state", trig.name, s, t.d.trading_state.value,
                               f"trading state is {t.d.trading_state.value}: no new entries")
                    continue
                if not t.books_ok:
                    self._deny(t, "state", trig.name, s, "books_mismatch",
                               "books disagree with the exchange: no new entries until reconciled")
                    continue
                others = t.untrusted - {s}  # (its own untrusted print: the guard denies it, precisely)
                if others:  # exposure cannot be known: caps would be checked on a guess
                    names = ", ".join(sorted(others))
                    self._deny(t, "state", trig.name, s, "untrusted_price",
                               f"the latest print of {names} is not trusted: no new entries this tick")
                    continue
                i = self.index[s]
                counted = check_counts(self.cp, t.values, t.account, t.state, s, i, trig.strategy, t.snap.now)
                if counted.blocked:  # no size could pass: the entry is not sized
                    t.d.margins.update(counted.margins)
                    t.d.trace.append({"stage": "caps", "rule": trig.name, "symbol": s, "clips": [],
                                      "blocked": counted.blocked, "margins": counted.margins})
                    self._deny(t, "cap", trig.name, s, f"cap:{counted.blocked_by}", counted.blocked)
                    continue
                px = t.account.prices.get(s, NAN)
                sized = size_buy(self.cp, trig, t.values, i, px, t.account.equity, t.account.cash,
                                 self.entry_fee)
                if not isinstance(sized, Sized):
                    self._deny(t, "sizing", trig.name, s, "unsized", sized.reason)
                    continue
                t.d.trace.append({"stage": "sizing", "rule": trig.name, "symbol": s, "explain": sized.explain,
                                  "qty": sized.qty, "notional": sized.notional})
                caps = check_caps(self.cp, t.values, t.account, t.state, s, i, sized.notional,
                                  trig.strategy, t.snap.now, self.min_trade, counted)
                t.d.margins.update(caps.margins)
                t.d.trace.append({"stage": "caps", "rule": trig.name, "symbol": s, "clips": caps.clips,
                                  "blocked": caps.blocked, "margins": caps.margins})
                if caps.blocked:
                    self._deny(t, "cap", trig.name, s, f"cap:{caps.blocked_by}", caps.blocked)
                    continue
                qty = caps.notional / px
                spend = None if self.limit_entries else caps.notional * (1 + self.fee)
                if self._order(t, s, Side.BUY, qty, px, "entry", trig.name, sized.stop, sized.take,
                               trig.strategy, spend=spend, ceiling=caps.room, limit=self.limit_entries):
                    t.account.add_pending(s, caps.notional, trig.strategy)

    # ---- shared ----------------------------------------------------------------------------
    def _symbols(self, trig: TriggerInfo) -> tuple[str, ...]:
        return trig.symbols or self.cp.symbols

    def _firing(self, t: _Tick, trig: TriggerInfo,
                eligible: Callable[[str], bool] | None = None) -> Iterator[str]:
        """The symbols the trigger fires for, in order, each traced as :meth:`_fired` does when
        it is reached (lazily: the trace keeps its order). ``eligible`` is asked first, when it
        is reached too: a symbol it turns away is neither evaluated nor traced."""
        if self.explain:
            yield from (s for s in self._symbols(trig)
                        if (eligible is None or eligible(s)) and self._fired(t, trig, s))
            return
        w = trig.when
        fired: Sequence[str]
        if w in self._per_symbol:
            rows = t.values.rows
            fired = [s for s, i in self._targets[trig.name] if rows[i][w] == 1.0]
        elif t.values.g[w] == 1.0:
            fired = self._symbols(trig)
        else:
            return
        trace = t.d.trace
        for s in fired:
            if eligible is None or eligible(s):
                trace.append({"stage": "trigger", "rule": trig.name, "symbol": s, "fired": True, "value": True})
                yield s

    def _fired(self, t: _Tick, trig: TriggerInfo, s: str) -> bool:
        w = trig.when
        v = t.values.rows[self.index[s]][w] if w in self._per_symbol else t.values.g[w]
        if self.explain or v == 1.0:
            entry: dict[str, Any] = {"stage": "trigger", "rule": trig.name, "symbol": s,
                                     "fired": v == 1.0, "value": None if math.isnan(v) else bool(v)}
            if self.explain:
                entry["inputs"] = self._inputs(t.values, trig.when, self.index[s])
            t.d.trace.append(entry)
        return v == 1.0

    def _inputs(self, values: Values, root: int, i: int) -> dict[str, float | bool | None]:
        """The values a rule read (for explanations): fields, windows, indicators, and the
        values a crossing compares."""
        g = self.cp.graph
        out: dict[str, float | bool | None] = {}
        stack, seen = [root], set()
        while stack:
            n = g[stack.pop()]
            if n.id in seen:
                continue
            seen.add(n.id)
            if n.op in ("field", "window", "ind", "cross", "shift"):
                v = values.get(n.id, i) if n.per_symbol else values.get(n.id)
                out[_describe(g, n.id)] = None if math.isnan(v) else (
                    v == 1.0 if n.type.kind is Kind.BOOL else v)
            if n.op not in ("ind", "shift"):  # a crossing shows the two values that cross, too
                stack.extend(n.args)
        return dict(sorted(out.items()))

    def _deny(self, t: _Tick, stage: str, rule: str, symbol: str, code: str, message: str) -> None:
        self._record_denial(t.d, stage, rule, symbol, code, message)

    @staticmethod
    def _record_denial(d: Decision, stage: str, rule: str, symbol: str, code: str, message: str) -> None:
        entry = {"stage": stage, "rule": rule, "symbol": symbol, "code": code, "message": message}
        d.denials.append(entry)
        d.trace.append({"stage": "denied", **entry})

    def _order(self, t: _Tick, s: str, side: Side, qty: float, px: float, kind: str, rule: str,
               stop: float | None, take: float | None, strategy: str | None,
               spend: float | None = None, ceiling: float = math.inf, limit: bool = False) -> bool:
        bar_ts = t.state.last_bar_ts.get(s, t.snap.now)
        cid = client_id(self.cp.hash, rule, s, side, bar_ts, kind)
        draft = Draft(cid, s, side, qty, px if limit else None, px, side is Side.SELL, kind, rule, ceiling)
        gctx = GuardContext(
            now=t.snap.now, mode=self.mode, live_armed=self.live_armed, trading_state=t.d.trading_state,
            kill_switch=t.snap.kill_switch, settings=self.cp.settings, flags=self.cp.flags, fee=self.fee,
            market=t.snap.markets.get(s), quote=t.snap.quotes.get(s), bar=t.bars.get(s),
            last_trusted=t.state.last_price.get(s), avg_volume=t.state.avg_volume.get(s),
            order_times=t.state.order_times, sent_ids=t.state.sent_ids,
        )
        v = self.guard.check(draft, gctx)
        t.d.trace.append({"stage": "guard", "rule": rule, "symbol": s, "ok": v.ok, "notes": list(v.notes),
                          "denial": None if v.ok else v.denial.code})  # type: ignore[union-attr]
        if not v.ok:
            assert v.denial is not None
            self._deny(t, f"guard:{v.denial.check}", rule, s, v.denial.code, v.denial.message)
            return False
        if spend is not None and v.draft.qty != qty:  # the guard clipped or rounded it
            spend *= v.draft.qty / qty
        o = OrderRequest(cid, s, side, v.qty_text, v.price_text, kind, rule, side is Side.SELL, px,
                         stop, take, strategy, spend)
        t.d.orders.append(o)
        t.state.remember(t.state.sent_ids, cid, t.snap.now)
        t.state.order_times.append(t.snap.now)
        t.state.pending[cid] = PendingOrder(cid, s, side.value, float(v.qty_text), px, kind, rule,
                                            t.snap.now, stop, take, strategy)
        t.d.trace.append({"stage": "order", "client_id": cid, "symbol": s, "side": side.value,
                          "qty": v.qty_text, "kind": kind, "rule": rule, "ref_price": px})
        return True


@dataclass
class _Tick:
    snap: Snapshot
    state: EngineState
    values: Values
    account: acc.Account
    bars: dict[str, Bar]
    d: Decision
    books_ok: bool
    untrusted: set[str]


def _describe(g: Any, i: int) -> str:
    """A readable name for a node: ``sma(close, 20)`` rather than ``%12``."""
    n = g[i]
    if n.op == "field":
        name, target = n.attr
        return f'{name} of "{target}"' if target else str(name)
    if n.op == "window":
        return n.label()
    if n.op == "ind":
        name, window = n.attr
        args = ", ".join(_describe(g, a) for a in n.args) if name != "atr" else ""
        return f"{name}({args + ', ' if args else ''}{window})"
    if n.op == "shift":
        return f"{_describe(g, n.args[0])}[{n.attr[0]}]"
    if n.op == "cross":
        return f"crosses_{n.attr[0]}({_describe(g, n.args[0])}, {_describe(g, n.args[1])})"
    if n.is_const:
        return n.label()
    return f"({' '.join(_describe(g, a) for a in n.args)} {n.label()})"
