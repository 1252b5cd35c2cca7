"""Time ``Engine.tick`` on a 50-rule policy over 20 symbols (goal: < 2 ms per tick).

The policy is generated (``gen.rules_text`` for triggers, symbol caps and change breakers)
and completed with every other kind of rule and setting: total, theme, position, order and
trade caps; loss, drawdown, stale-feed, API-error, kill-switch and exchange-halt breakers;
themes with a max exposure; every guard; cooldowns. The market is the synthetic one.

A small driver plays the exchange: it fills the previous tick's orders at the next bar's
open with the taker fee, reports cash, balances, open orders and fills, quotes at the
synthetic spread, and the exchange's increments. Each repeat builds a fresh engine, warms
it up on a few hundred bars (indicators, positions, pending orders, breaker history), then
times each of the next ticks; the figure per tick is the best over the repeats.

The split by stage comes from a separate, instrumented run: the engine's stage functions
are wrapped from outside (instance attributes and module globals), in the order
``Engine.tick`` calls them. Wrapping adds a little overhead, shown as the difference
between the instrumented and the plain figure.

    python benchmarks/bench_tick.py [--rules 50] [--symbols 20] [--warmup 300] [--ticks 200]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen
from policyctl.rules.compiler import CompiledPolicy, load_and_compile
from policyctl.runtime import account as acc_mod
from policyctl.runtime import engine as engine_mod
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.model import Bar, Fill, MarketRules, OpenOrder, Quote, Side, Snapshot
from policyctl.runtime.state import EngineState
from policyctl.simulator.synthetic import symbol_profile, synthetic_market

GOAL_MS = 2.0
CASH = 100_000.0

# Rules beyond the generated ones: every other cap and breaker the engine knows.
EXTRA_RULES = """
cap total_exposure: exposure.total <= 60%

cap theme_exposure: exposure.theme <= 35%

cap open_positions: positions.open <= 8

cap open_orders: orders.open <= 12

cap hourly_trades: trades(1h) <= 20

breaker daily_loss:
    when pnl(1d) <= -3%
    then halt for 24h

breaker drawdown:
    when drawdown >= 12%
    then flatten

breaker stale_feed:
    when any(data_age > 3 * timeframe)
    then pause

breaker api_errors:
    when api_errors(15m) >= 10
    then pause for 15m

breaker kill_switch:
    when kill_switch
    then halt

breaker exchange_halt:
    when any(product.halted or product.cancel_only)
    then reduce_only
"""
N_EXTRA = 11


def policy_yaml(symbols: list[str]) -> str:
    half = len(symbols) // 2
    majors, alts = symbols[:half], symbols[half:]
    return (
        "policy: bench-tick\n"
        "market:\n  exchange: binance\n"
        f"  symbols: [{', '.join(symbols)}]\n  timeframe: 5m\n"
        "  themes:\n"
        f"    majors: {{symbols: [{', '.join(majors)}], max_exposure: 40%}}\n"
        f"    alts: {{symbols: [{', '.join(alts)}], max_exposure: 25%}}\n"
        "include: [generated.rules, extra.rules]\n"
        "guards:\n"
        "  max_order_notional: 5000 USDT\n  price_collar: 2%\n  max_spread: 30bps\n"
        "  max_quote_age: 30s\n  bad_tick: 10%\n  bad_tick_volume: 3\n  max_orders: 20\n"
        "  order_window: 1m\n  round_up_min_notional: false\n"
        "execution:\n"
        "  order_type: market\n  fees: {maker: 0.1%, taker: 0.1%}\n  slippage: 5bps\n"
        "  maker_wait: 30s\n  pending_ttl: 2m\n  stale_after: 10m\n  dust: 1 USDT\n"
        "  min_trade: 10 USDT\n  cancel_on_shutdown: true\n"
        "cooldowns:\n  after_fill: 15m\n  after_stopout: 1h\n"
    )


def build_policy(folder: Path, n_rules: int, symbols: list[str]) -> CompiledPolicy:
    (folder / "generated.rules").write_text(gen.rules_text(n_rules - N_EXTRA), encoding="utf-8")
    (folder / "extra.rules").write_text(EXTRA_RULES, encoding="utf-8")
    path = folder / "policy.yaml"
    path.write_text(policy_yaml(symbols), encoding="utf-8")
    return load_and_compile(path)


class Driver:
    """A minimal exchange: market orders fill at the next bar's open with the taker fee."""

    def __init__(self, data: Any, symbols: list[str], fee: float):
        self.data, self.symbols, self.fee = data, symbols, fee
        self.tf = int(data.timeframe_ms)
        self.cash = CASH
        self.held: dict[str, float] = {}
        self.book: dict[str, tuple[Any, float, int]] = {}  # client id -> (order, qty, created)
        self.n = 0
        self.markets = {}
        for s in symbols:
            p = symbol_profile(s)
            self.markets[s] = MarketRules(tick_size=p.tick, step_size=p.lot, min_notional=5.0)
        self.cols = {s: tuple(getattr(data.series[s], f) for f in ("open", "high", "low", "close", "volume"))
                     for s in symbols}

    def snapshot(self, t: int) -> Snapshot:
        ts = int(self.data.timestamps[t])
        now = ts + self.tf
        bars, quotes = {}, {}
        for s in self.symbols:
            o, h, lo, c, v = (float(col[t]) for col in self.cols[s])
            bars[s] = Bar(ts, o, h, lo, c, v)
            half = c * float(self.data.spreads[s][t]) / 2e4 if self.data.spreads else c * 2.5e-4
            quotes[s] = Quote(c - half, c + half, c, now)
        fills = []
        for cid in sorted(self.book):
            req, qty, _ = self.book.pop(cid)
            px = bars[req.symbol].open
            if req.side is Side.SELL:
                qty = min(qty, self.held.get(req.symbol, 0.0))
            elif qty * px * (1 + self.fee) > self.cash:
                continue  # rejected: not enough cash
            if qty <= 0:
                continue
            self.n += 1
            fee = qty * px * self.fee
            sign = 1.0 if req.side is Side.BUY else -1.0
            self.cash -= sign * qty * px + fee
            self.held[req.symbol] = self.held.get(req.symbol, 0.0) + sign * qty
            fills.append(Fill(f"f{self.n}", cid, req.symbol, req.side, qty, px, fee, ts))
        balances = {s.split("/")[0]: self.held.get(s, 0.0) for s in self.symbols}
        open_orders = tuple(OpenOrder(cid, r.symbol, r.side, q, None, 0.0, c) for cid, (r, q, c) in
                            sorted(self.book.items()))
        return Snapshot(now=now, bars=bars, quotes=quotes, cash=self.cash, balances=balances,
                        open_orders=open_orders, fills=tuple(fills), markets=self.markets)

    def apply(self, d: Decision) -> None:
        for c in d.cancels:
            self.book.pop(c.client_id, None)
        for o in d.orders:
            self.book[o.client_id] = (o, float(o.qty), d.now)


def warmed(cp: CompiledPolicy, data: Any, warmup: int) -> tuple[Engine, EngineState, Driver]:
    engine = Engine(cp, mode="paper")
    state = EngineState.initial(CASH, int(data.timestamps[0]))
    driver = Driver(data, list(cp.symbols), engine.fee)
    for t in range(warmup):
        d = engine.tick(driver.snapshot(t), state)
        driver.apply(d)
    return engine, state, driver


def plain_run(cp: CompiledPolicy, data: Any, warmup: int, ticks: int) -> tuple[list[float], dict[str, int]]:
    """Seconds per tick for ticks ``warmup .. warmup + ticks`` and what those ticks did."""
    engine, state, driver = warmed(cp, data, warmup)
    times, seen = [], defaultdict(int)
    perf = time.perf_counter
    for t in range(warmup, warmup + ticks):
        snap = driver.snapshot(t)
        t0 = perf()
        d = engine.tick(snap, state)
        times.append(perf() - t0)
        driver.apply(d)
        seen["orders"] += len(d.orders)
        seen["fills"] += len(snap.fills)
        seen["denials"] += len(d.denials)
        for x in d.denials:
            seen[f"denied {x['code']}"] += 1
        seen["positions"] = len(state.positions)
        seen[f"state {d.trading_state.value}"] += 1
    return times, dict(seen)


class Stages:
    """Accumulates the time spent in wrapped functions, per stage name."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.undo: list[Callable[[], None]] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        perf, total, calls = time.perf_counter, self.total, self.calls

        @functools.wraps(fn)
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = perf()
            try:
                return fn(*a, **kw)
            finally:
                total[name] += perf() - t0
                calls[name] += 1

        return timed

    def patch(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)
        had_own = attr in getattr(owner, "__dict__", {})
        setattr(owner, attr, self.wrap(name, original))

        def undo() -> None:
            if had_own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)

        self.undo.append(undo)

    def restore(self) -> None:
        for f in reversed(self.undo):
            f()
        self.undo.clear()


# (label, stage names summed); indented labels are parts of the stage above them
SPLIT = [
    ("data + evaluator advance", ["check_bars", "advance", "apply_fill", "forget_vanished"]),
    ("  candles checked", ["check_bars"]),
    ("  evaluator advance", ["advance"]),
    ("  fills booked, vanished orders", ["apply_fill", "forget_vanished"]),
    ("account + inputs", ["account", "state_inputs", "check_books"]),
    ("evaluate", ["evaluate"]),
    ("breakers + cancels", ["breakers", "cancels"]),
    ("exits", ["exits"]),
    ("entries (sizing, caps, guard)", ["entries"]),
    ("  sizing", ["size_buy"]),
    ("  caps", ["check_caps"]),
    ("  guard (entries and exits)", ["guard"]),
]
TOP = ["check_bars", "advance", "apply_fill", "forget_vanished", "account", "state_inputs",
       "check_books", "evaluate", "breakers", "cancels", "exits", "entries"]


def instrumented_run(cp: CompiledPolicy, data: Any, warmup: int, ticks: int) -> tuple[Stages, float]:
    engine, state, driver = warmed(cp, data, warmup)
    st = Stages()
    for attr, name in (("_check_bars", "check_bars"), ("_check_books", "check_books"),
                       ("_cancels", "cancels"), ("_exits", "exits"), ("_entries", "entries")):
        st.patch(engine, attr, name)
    st.patch(engine.source, "on_bar", "advance")
    st.patch(engine.source, "evaluate", "evaluate")
    st.patch(engine.guard, "check", "guard")
    for attr, name in (("apply_fill", "apply_fill"), ("forget_vanished", "forget_vanished"),
                       ("evaluate_breakers", "breakers"), ("check_caps", "check_caps"),
                       ("size_buy", "size_buy")):
        st.patch(engine_mod, attr, name)
    st.patch(acc_mod, "account", "account")
    st.patch(acc_mod, "state_inputs", "state_inputs")
    total = 0.0
    perf = time.perf_counter
    try:
        for t in range(warmup, warmup + ticks):
            snap = driver.snapshot(t)
            t0 = perf()
            d = engine.tick(snap, state)
            total += perf() - t0
            driver.apply(d)
    finally:
        st.restore()
    return st, total


def clone_cost(cp: CompiledPolicy, data: Any, warmup: int, n: int = 200) -> tuple[float, int]:
    """Seconds per ``EngineState.clone`` of a warmed-up state, and its JSON size."""
    _, state, _ = warmed(cp, data, warmup)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            state.clone()
        best = min(best, (time.perf_counter() - t0) / n)
    return best, len(state.to_json())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=50)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    symbols = gen.SYMBOLS[: args.symbols]
    with tempfile.TemporaryDirectory() as d:
        cp = build_policy(Path(d), args.rules, symbols)
    data = synthetic_market(args.seed, bars=args.warmup + args.ticks, timeframe="5m", symbols=symbols)
    g = cp.graph
    live = g.reachable()
    n_ind = sum(1 for i in live if g[i].op in ("ind", "shift", "cross"))
    print(f"policy: {cp.policy.rule_count} rules ({len(cp.triggers)} triggers, {len(cp.caps)} caps, "
          f"{len(cp.breakers)} breakers), {len(cp.symbols)} symbols, {len(cp.settings)} settings; "
          f"graph {len(live)} nodes ({n_ind} stateful)")
    print(f"market: synthetic seed {args.seed}, 5m; warm-up {args.warmup} bars, timed {args.ticks} ticks, "
          f"best of {args.repeat}")

    best: list[float] | None = None
    seen: dict[str, int] = {}
    for _ in range(args.repeat):
        times, seen = plain_run(cp, data, args.warmup, args.ticks)
        best = times if best is None else [min(a, b) for a, b in zip(best, times, strict=True)]
    assert best is not None
    ms = [x * 1e3 for x in best]
    mean = statistics.fmean(ms)
    p95 = sorted(ms)[int(0.95 * (len(ms) - 1))]
    print("during the timed ticks: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())
                                                 if not k.startswith("denied ")))
    top = sorted(((v, k[7:]) for k, v in seen.items() if k.startswith("denied ")), reverse=True)[:6]
    print("  denials by code: " + ", ".join(f"{k} {v}" for v, k in top))
    print(f"Engine.tick per tick (best of {args.repeat}): mean {mean:.3f} ms   median "
          f"{statistics.median(ms):.3f} ms   p95 {p95:.3f} ms   max {max(ms):.3f} ms")

    runs = [instrumented_run(cp, data, args.warmup, args.ticks) for _ in range(args.repeat)]
    best_of = {name: min(r.total.get(name, 0.0) for r, _ in runs) for name in runs[0][0].total}
    calls = runs[0][0].calls
    total = min(t for _, t in runs)
    n = args.ticks
    print(f"\nper-stage split (each stage's best of {args.repeat} instrumented runs; "
          f"{total / n * 1e3:.3f} ms per tick with the wrappers):")
    for label, names in SPLIT:
        secs = sum(best_of.get(x, 0.0) for x in names)
        k = sum(calls.get(x, 0) for x in names)
        print(f"  {label:<34} {secs / n * 1e3:8.3f} ms  {secs / total:6.1%}   ({k / n:.1f} calls per tick)")
    other = max(0.0, total - sum(best_of.get(x, 0.0) for x in TOP))
    print(f"  {'other (marks, prune, glue)':<34} {other / n * 1e3:8.3f} ms  {other / total:6.1%}")
    clone_s, size = clone_cost(cp, data, args.warmup)
    print(f"  {'state clone (deepcopy; not in tick)':<34} {clone_s * 1e3:8.3f} ms   "
          f"(state JSON {size / 1024:.0f} KiB)")

    ok = mean < GOAL_MS
    print(f"\ngoal: < {GOAL_MS:g} ms per tick   mean {mean:.3f} ms   {'OK' if ok else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
