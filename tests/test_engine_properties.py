"""Properties of the engine over random runs: caps hold, states are obeyed, runs replay.

Hypothesis draws whole runs: per bar, each symbol's move (quiet, trending, a jump up or
down, or no bar at all), its volume, its quote (fresh, stale, wide, crossed, missing), how
much of the engine's open orders the toy exchange fills at the next open (all, part,
nothing), the kill switch, bursts of API errors, and whether old fills are reported again.
:class:`engine_support.Exchange` plays the exchange. After every tick the properties are
checked against what the engine sent and what its books say.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine_support import Exchange, TickRecord, compile_text, fingerprint, quote
from policyctl.rules.compiler import CompiledPolicy
from policyctl.runtime.model import Bar, MarketRules, Quote, Side, TradingState
from policyctl.runtime.state import EngineState

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")
START = {"BTC/USDT": 40_000.0, "ETH/USDT": 2_000.0, "SOL/USDT": 100.0, "XRP/USDT": 0.5}
THEMES = {"majors": ("BTC/USDT", "ETH/USDT"), "alts": ("SOL/USDT", "XRP/USDT")}
LIMITS = {"total": 0.25, "symbol": 0.10, "theme": 0.15, "alts_max": 0.12, "positions": 2, "trades": 4}
TRADE_WINDOW_MS = 3_600_000
FEE = 0.001
TOL = 2e-3  # relative: the entry fees shrink equity a little once the orders fill

POLICY = f"""
triggers:
  enter:
    when: not position.open and close > open
    then: buy 8% of equity stop 4% take 6%
  add:
    when: position.open and close > 1.01 * open
    then: buy 3% of equity
  leave:
    when: position.open and close < open
    then: close
caps:
  total: exposure.total <= {LIMITS["total"]:.0%}
  per_symbol: exposure.symbol <= {LIMITS["symbol"]:.0%}
  per_theme: exposure.theme <= {LIMITS["theme"]:.0%}
  positions: positions.open <= {LIMITS["positions"]}
  hourly: trades(1h) <= {LIMITS["trades"]}
breakers:
  api:
    when: api_errors(15m) >= 5
    then: halt for 15m
  crash:
    when: any(change(close, 1) <= -12%)
    then: reduce_only for 15m
  drawdown:
    when: drawdown >= 4%
    then: pause for 15m
guards:
  max_spread: 50bps
  max_quote_age: 30s
  bad_tick: 15%
  bad_tick_volume: 3
  max_orders: 8
  order_window: 1m
  max_order_notional: 9000 USDT
execution:
  fees: {{taker: 0.1%}}
  min_trade: 10 USDT
"""

THEMES_YAML = """
majors: [BTC/USDT, ETH/USDT]
alts: {symbols: [SOL/USDT, XRP/USDT], max_exposure: 12%}
"""

_TMP = tempfile.TemporaryDirectory(prefix="engine-props-")  # removed when the session ends


@cache
def compiled(variant: str = "main") -> CompiledPolicy:
    folder = Path(_TMP.name) / variant
    body = POLICY
    if variant == "round_up":
        body = POLICY.replace("guards:\n", "guards:\n  round_up_min_notional: true\n")
    return compile_text(folder, body, symbols=SYMBOLS, themes=THEMES_YAML)


# ---- random runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class TickSpec:
    moves: tuple[float | None, ...]  # per symbol: relative move of the close, None = no bar
    heavy: tuple[bool, ...]  # per symbol: 4x volume (confirms a jump)
    quotes: str  # fresh | stale | wide | crossed | none | mixed
    fill: float  # share of every open order filled at the next open
    kill: bool
    api_burst: int
    duplicates: bool


_KINDS = ["quiet"] * 5 + ["up"] * 4 + ["jump"] + ["gone"]
_move = st.sampled_from(_KINDS).flatmap(lambda k: {
    "quiet": st.floats(-0.02, 0.02, allow_nan=False).map(lambda x: round(x, 4)),
    "up": st.sampled_from([0.0, 0.005, 0.012, 0.02]),  # flat and up bars make the triggers fire
    "jump": st.sampled_from([-0.3, -0.15, 0.18, 0.4]),  # some beyond the bad-tick filter
    "gone": st.none(),
}[k])

_tick = st.builds(
    TickSpec,
    moves=st.tuples(*[_move] * len(SYMBOLS)),
    heavy=st.tuples(*[st.booleans()] * len(SYMBOLS)),
    quotes=st.sampled_from(["fresh"] * 6 + ["stale", "wide", "crossed", "none", "mixed"]),
    fill=st.sampled_from([1.0, 1.0, 1.0, 0.5, 0.25, 0.0]),
    kill=st.integers(0, 14).map(lambda k: k == 0),
    api_burst=st.sampled_from([0] * 14 + [2, 6]),
    duplicates=st.integers(0, 4).map(lambda k: k == 0),
)

runs = st.lists(_tick, min_size=12, max_size=48)


def _quotes(spec: TickSpec, bars: dict[str, Bar], now: int) -> dict[str, Quote]:
    out = {}
    for k, (s, b) in enumerate(sorted(bars.items())):
        mode = spec.quotes if spec.quotes != "mixed" else ("fresh", "stale", "wide", "none")[k % 4]
        if mode == "fresh":
            out[s] = quote(b.close, now)
        elif mode == "stale":
            out[s] = quote(b.close, now - 120_000)
        elif mode == "wide":
            out[s] = quote(b.close, now, spread=0.02)
        elif mode == "crossed":
            out[s] = Quote(b.close * 1.001, b.close * 0.999, b.close, now)
    return out


def run(specs: list[TickSpec], variant: str = "main", duplicates: bool = True,
        markets: dict[str, MarketRules] | None = None) -> Exchange:
    ex = Exchange(compiled(variant), cash=100_000.0, fee_rate=FEE, markets=dict(markets or {}))
    price = dict(START)
    for spec in specs:
        ts, now = ex.ts, ex.ts + ex.tf
        bars: dict[str, Bar] = {}
        for s, mv, heavy in zip(SYMBOLS, spec.moves, spec.heavy, strict=True):
            if mv is None:
                continue
            o = price[s]
            c = o * (1 + mv)
            price[s] = c
            bars[s] = Bar(ts, o, max(o, c) * 1.001, min(o, c) * 0.999, c, 4000.0 if heavy else 1000.0)
        ex.step(bars, fill_fraction=spec.fill, quotes=_quotes(spec, bars, now), kill_switch=spec.kill,
                api_errors=tuple(now - 1000 * (k + 1) for k in range(spec.api_burst)),
                duplicate_fills=duplicates and spec.duplicates)
    return ex


def props(n: int = 60, shrink: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Reproducible runs; no shrinking for known bugs (the first failing run is evidence enough)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=n, derandomize=True, deadline=None, database=None, phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- measuring the account after the engine's orders fill -------------------------------


def marks(rec: TickRecord) -> dict[str, float]:
    """The price the engine marks each symbol at: this bar's close, else its last trusted price."""
    st_ = rec.state
    out = {}
    for s in SYMBOLS:
        b = rec.snap.bars.get(s)
        if b is not None and math.isfinite(b.close) and b.close > 0:
            out[s] = b.close
        else:
            out[s] = st_.last_price.get(s, math.nan)
    return out


def after_fills(rec: TickRecord) -> tuple[dict[str, float], float]:
    """Value per symbol (positions plus pending buys at their reference price) and equity,
    as they would be once every pending buy fills at its reference price with the fee."""
    state: EngineState = rec.state
    px = marks(rec)
    value = {s: p.qty * px[s] for s, p in state.positions.items()}
    fees = 0.0
    for o in state.pending.values():
        if o.side == Side.BUY.value:
            n = max(o.qty - o.filled, 0.0) * o.ref_price
            value[o.symbol] = value.get(o.symbol, 0.0) + n
            fees += n * FEE
    equity = state.cash + sum(p.qty * px[s] for s, p in state.positions.items()) - fees
    return value, equity


def bought(rec: TickRecord) -> set[str]:
    return {o.symbol for o in rec.decision.orders if o.side is Side.BUY}


def check_exposure(rec: TickRecord, theme_limits: dict[str, float]) -> None:
    syms = bought(rec)
    if not syms:
        return
    value, equity = after_fills(rec)
    assert equity > 0
    share = {s: v / equity for s, v in value.items()}
    total = sum(share.values())
    assert total <= LIMITS["total"] * (1 + TOL), (rec.snap.now, total, share)
    for s in syms:
        assert share[s] <= LIMITS["symbol"] * (1 + TOL), (rec.snap.now, s, share)
        for theme, members in THEMES.items():
            if s in members and theme in theme_limits:
                used = sum(share.get(m, 0.0) for m in members)
                assert used <= theme_limits[theme] * (1 + TOL), (rec.snap.now, theme, used, share)


# ---- the properties -----------------------------------------------------------------------


@props(70)
@given(runs)
def test_exposure_caps_hold_after_fills(specs: list[TickSpec]) -> None:
    ex = run(specs)
    for rec in ex.history:
        check_exposure(rec, {"majors": LIMITS["theme"], "alts": LIMITS["theme"]})



@props(40, shrink=False)
@given(runs)
def test_theme_max_exposure_holds(specs: list[TickSpec]) -> None:
    ex = run(specs)
    for rec in ex.history:
        check_exposure(rec, {"alts": LIMITS["alts_max"]})



@props(40, shrink=False)
@given(runs)
def test_open_positions_never_exceed_the_cap(specs: list[TickSpec]) -> None:
    ex = run(specs)
    for rec in ex.history:
        st_ = rec.state
        held = {s for s, p in st_.positions.items() if p.qty > 0}
        held |= {o.symbol for o in st_.pending.values() if o.side == Side.BUY.value}
        if bought(rec):
            assert len(held) <= LIMITS["positions"], (rec.snap.now, sorted(held))


@props(60)
@given(runs)
def test_trades_per_window_never_exceed_the_cap(specs: list[TickSpec]) -> None:
    ex = run(specs)
    for rec in ex.history:
        if not bought(rec):
            continue
        now = rec.snap.now
        done = sum(1 for c in ex.completed if c.seen <= now and c.ts >= now - TRADE_WINDOW_MS)
        # orders open at the exchange right after this tick: ones sent now, or earlier and
        # not yet done (the engine counts each as a trade to come)
        open_now = {o.client_id for o in rec.snap.open_orders} | {o.client_id for o in rec.decision.orders}
        open_now -= {c.client_id for c in rec.decision.cancels}
        assert done + len(open_now) <= LIMITS["trades"], (now, done, sorted(open_now))


@props(70)
@given(runs)
def test_restricted_states_are_obeyed(specs: list[TickSpec]) -> None:
    ex = run(specs)
    for spec, rec in zip(specs, ex.history, strict=True):
        d = rec.decision
        if spec.kill:
            assert d.trading_state is TradingState.HALTED
        if d.trading_state is TradingState.HALTED:
            assert d.orders == [], d.orders
            open_ids = {o.client_id for o in rec.snap.open_orders}
            assert {c.client_id for c in d.cancels} == open_ids
        if d.trading_state in (TradingState.PAUSED, TradingState.REDUCE_ONLY):
            assert all(o.side is Side.SELL and o.reduce_only for o in d.orders), d.orders
        if d.trading_state is TradingState.REDUCE_ONLY:
            buys = {o.client_id for o in rec.snap.open_orders if o.side is Side.BUY}
            assert buys <= {c.client_id for c in d.cancels}


@props(50)
@given(runs)
def test_same_inputs_same_decisions(specs: list[TickSpec]) -> None:
    a, b = run(specs), run(specs)
    first = [fingerprint(r.decision, r.state) for r in a.history]
    assert first == [fingerprint(r.decision, r.state) for r in b.history]


@props(70)
@given(runs)
def test_client_ids_are_never_reused(specs: list[TickSpec]) -> None:
    ex = run(specs)
    ids = [o.client_id for rec in ex.history for o in rec.decision.orders]
    assert len(ids) == len(set(ids))


@props(50)
@given(runs)
def test_duplicate_fills_do_not_change_the_books(specs: list[TickSpec]) -> None:
    plain = run(specs, duplicates=False)
    noisy = run([TickSpec(s.moves, s.heavy, s.quotes, s.fill, s.kill, s.api_burst, True) for s in specs])
    assert sum(len(r.snap.fills) for r in noisy.history) >= sum(len(r.snap.fills) for r in plain.history)
    for p, n in zip(plain.history, noisy.history, strict=True):
        assert fingerprint(p.decision, p.state) == fingerprint(n.decision, n.state)


@props(50)
@given(runs)
def test_books_follow_the_exchange(specs: list[TickSpec]) -> None:
    """The engine's cash and positions are the exchange's, and it never sells what it lacks."""
    ex = run(specs)
    for rec in ex.history:
        st_ = rec.state
        if rec.snap.cash is not None:
            assert st_.cash == pytest.approx(rec.snap.cash, rel=1e-9, abs=1e-6)
        for s in SYMBOLS:
            base = s.split("/")[0]
            held = st_.positions[s].qty if s in st_.positions else 0.0
            assert held == pytest.approx(rec.snap.balances.get(base, 0.0), rel=1e-9, abs=1e-9)
            sells = sum(float(o.qty) for o in rec.decision.orders if o.side is Side.SELL and o.symbol == s)
            assert sells <= held * (1 + 1e-12)
        assert not [e for e in rec.decision.events if e.data.get("problem") == "books_mismatch"]



@props(40, shrink=False)
@given(runs)
def test_round_up_never_breaks_a_cap(specs: list[TickSpec]) -> None:
    markets = {s: MarketRules(min_notional=2500.0) for s in SYMBOLS}
    ex = run(specs, variant="round_up", markets=markets)
    for rec in ex.history:
        check_exposure(rec, {"majors": LIMITS["theme"], "alts": LIMITS["theme"]})
