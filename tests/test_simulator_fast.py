"""The fast path (skipping provably quiet bars) must decide exactly as the plain loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import compile_ok
from policyctl.rules.compiler import CompiledPolicy, load_and_compile
from policyctl.runtime.state import EngineState, Position
from policyctl.simulator.data import MarketData
from policyctl.simulator.quiet import Precomputed, QuietScanner
from policyctl.simulator.run import SimConfig, SimResult, simulate
from policyctl.simulator.synthetic import synthetic_market

ROOT = Path(__file__).resolve().parents[1]
POLICIES = sorted(p.name for p in (ROOT / "policies").glob("*.yaml") if not p.name.endswith(".test.yaml"))


def assert_fast_equals_plain(cp: CompiledPolicy, seed: int, bars: int = 2500) -> tuple[SimResult, SimResult]:
    md = synthetic_market(seed, bars=bars, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    cfg = SimConfig(seed=seed)
    slow = simulate(cp, md, cfg, fast=False)
    fast = simulate(cp, md, cfg, fast=True)
    key = lambda f: (f.symbol, f.side.value, f.qty, f.price, f.ts, f.kind)  # noqa: E731
    assert [key(f) for f in fast.fills] == [key(f) for f in slow.fills]
    np.testing.assert_array_equal(fast.equity, slow.equity)
    np.testing.assert_array_equal(fast.state_codes, slow.state_codes)
    assert fast.denials == slow.denials
    assert fast.breaker_trips == slow.breaker_trips
    assert fast.reasons == slow.reasons
    assert fast.events == slow.events
    assert slow.decisions == len(md.timestamps)
    return fast, slow


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", [3, 42])
def test_fast_path_equals_plain_loop(policy: str, seed: int) -> None:
    fast, slow = assert_fast_equals_plain(load_and_compile(ROOT / "policies" / policy), seed)
    # and it is fast: most bars are provably quiet (a scan that cannot read a condition would
    # tick the engine on every bar, still correct but slow)
    assert fast.decisions < slow.decisions / 2, (fast.decisions, slow.decisions)


# Triggers and breakers reading (nearly) every account value, on three symbols with a theme:
# the scan builds each lazily, as a constant when it is one over the segment.
EVERY_VALUE = """
triggers:
  entry:
    when: >-
      not position.open
      and close > sma(close, 10) and rsi(close, 14) < 60
      and trades(1h) < 4 and exposure.total < 60% and exposure.theme < 50%
      and equity > 1000 USDT and cash > 100 USDT and positions.open < 3
    then: buy 10% of equity stop 1%
  exit:
    when: >-
      position.open
      and (position.pnl >= 1.5% or position.pnl <= -1% or position.bars >= 40
           or position.age >= 3h or position.pnl_amount <= -30 USDT
           or position.value > 2000 USDT or position.size * close > 2500 USDT
           or exposure.symbol > 30% or spread > 1%)
    then: close
breakers:
  majors: {when: exposure.theme of "majors" > 95%, then: pause for 1h}
  drawdown: {when: drawdown >= 4%, then: reduce_only for 2h}
  loss: {when: pnl_amount(1d) <= -150 USDT or pnl(4h) <= -1.5%, then: halt for 6h}
  streak: {when: stoplosses(2h) >= 1, then: pause for 1h}
  busy: {when: trades(30m) >= 5, then: pause for 30m}
  held: {when: any(position.open and close < 0.995 * position.entry), then: pause for 1h}
"""


@pytest.mark.parametrize("seed", [3, 42])
def test_fast_path_equals_plain_loop_on_every_account_value(tmp_path: Path, seed: int) -> None:
    """Its breakers are tight: they trip (all but `majors`) and hold, so many bars are events.
    Also a regression: the fast path booked a bar's fills in the exchange's order, the engine
    in (ts, id) order, so three positions sat in another order in the books and the equity of
    a quiet bar, their sum, differed in the last bit (seed 42)."""
    cp = compile_ok(tmp_path, EVERY_VALUE, symbols=("BTC/USDT", "ETH/USDT", "SOL/USDT"),
                    market_extra="themes:\n  majors: {symbols: [BTC/USDT, ETH/USDT]}\n")
    assert_fast_equals_plain(cp, seed, bars=3000)


def test_candle_only_breaker_does_not_force_ticks() -> None:
    """Regression: a breaker built from candles alone must be read by the scan, not treated as
    'could fire anywhere' (which ticked the engine on every bar)."""
    cp = load_and_compile(ROOT / "benchmarks" / "reference_risk.yaml")
    md = synthetic_market(42, bars=3000, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    fast = simulate(cp, md, SimConfig(seed=42), fast=True)
    assert fast.decisions < len(md.timestamps) / 4


# ---- compiled scan plans --------------------------------------------------------------------


def books(md: MarketData, a: int, held: dict[str, float], stopouts: int, rng: np.random.Generator) -> EngineState:
    """Frozen books at bar ``a``: positions entered a few bars before at ``held[s]`` times the
    close (their exits move with it), and stop-outs ``stopouts`` hours ago (a breaker's count
    that changes within the segment, or not)."""
    ts, tf = md.timestamps, md.timeframe_ms
    state = EngineState.initial(10_000.0, int(ts[a]))
    for s, factor in held.items():
        close = float(md.series[s].close[a - 1])
        qty = float(rng.uniform(1.0, 50.0)) / close
        state.positions[s] = Position(s, qty, close * factor, int(ts[a - 3]) + tf, int(ts[a - 3]), qty * close * factor)
        state.cash -= qty * close * factor
    for s in md.series:
        state.last_price[s] = float(md.series[s].close[a - 1])
    state.peak_equity = 10_000.0 * float(rng.uniform(1.0, 1.05))
    state.stopout_times = [int(ts[a]) - stopouts * 3_600_000] if stopouts else []
    state.trade_times = [int(ts[a - 3])]
    return state


@pytest.mark.parametrize("case", ["reference_risk", "every_value"])
def test_scan_plans_give_what_the_interpretation_gives(tmp_path: Path, case: str) -> None:
    """Segments of the same shapes (flat, holding each symbol) with other values (entries, cash,
    peaks, windows): a scanner running compiled plans finds the same first event, with the same
    equity, as one that interprets every segment; shapes come and go (a stop-out count constant
    over a segment or not), and the plans of the others stay right."""
    if case == "reference_risk":
        cp = load_and_compile(ROOT / "benchmarks" / "reference_risk.yaml")
    else:
        cp = compile_ok(tmp_path, EVERY_VALUE, symbols=("BTC/USDT", "ETH/USDT", "SOL/USDT"),
                        market_extra="themes:\n  majors: {symbols: [BTC/USDT, ETH/USDT]}\n")
    md = synthetic_market(5, bars=3000, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    pre = Precomputed(cp, md)
    compiled, interpreted = QuietScanner(cp, md, pre), QuietScanner(cp, md, pre)
    interpreted.max_plans = 0
    rng = np.random.default_rng(11)
    spreads = {s: np.zeros(len(md.timestamps)) for s in cp.symbols}
    firsts = set()
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(150):
            a = int(rng.integers(400, 2800))
            held = {s: float(rng.choice([0.9, 0.98, 1.0, 1.02, 1.1])) for s in cp.symbols[:int(rng.integers(0, 3))]}
            state = books(md, a, held, int(rng.choice([0, 5, 6])), rng)
            hist = np.full(len(md.timestamps), 10_000.0) * rng.uniform(0.97, 1.03, size=len(md.timestamps))
            args = (a, a + 128, state, hist, spreads, {}, False)
            e, eq = compiled.first_event(*args)
            want_e, want_eq = interpreted.first_event(*args)
            assert e == want_e, (held, a)
            np.testing.assert_array_equal(np.broadcast_to(eq, (128,)), np.broadcast_to(want_eq, (128,)))
            firsts.add(e - a)
    plans = [p for ps in compiled.plans.values() for p in ps]
    assert len(plans) >= 3 and not interpreted.plans.get(()), len(plans)
    assert len(firsts) > 5  # the events move with the values
