"""The incremental and the vectorized evaluator agree on real candles.

One policy uses every indicator and math builtin, history, `of` another symbol and
`any`/`all` across symbols, and reads account state. It is compiled once per market and
evaluated bar by bar (``IncrementalEvaluator.step``) and all at once
(``vectorized.evaluate``) over real exchange candles: three Bittrex 5m pairs aligned by
timestamp (two of them with gaps, which become NaN bars), and 38 days of BTC/USDT 5m.
Every node the rules need must agree on every bar, to 1e-9 relative (or 1e-12 absolute
near zero), with NaN in the same places.
"""

from __future__ import annotations

import csv
import itertools
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import compile_ok
from policyctl.rules import vectorized
from policyctl.rules.compiler import CompiledPolicy
from policyctl.rules.incremental import MARKET_FIELDS, IncrementalEvaluator

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ohlcv"
REL, ABS = 1e-9, 1e-12

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no market data at {DATA}")

BITTREX = {
    "ETH/BTC": "bittrex_ETH-BTC_5m.csv",  # no gaps
    "ADA/BTC": "bittrex_ADA-BTC_5m.csv",  # 40 missing bars in 5 gaps
    "POWR/BTC": "bittrex_POWR-BTC_5m.csv",  # 6 missing bars
}
BTC_USDT = {"BTC/USDT": "unknown_BTC-USDT_5m.csv"}

# Every builtin of the language, in triggers (per symbol), caps and breakers (portfolio).
POLICY = """\
params:
  fast: 10
  slow: 30
  band: 2
triggers:
  entry:
    when: >-
      not position.open
      and crosses_above(ema(close, fast), sma(close, slow))
      and rsi(close, 14) < 70
      and close > lowest(low, 20)[1]
      and change(close of "{a}", 1h) > -5%
      and any(change(close, 3) > 0%)
      and stdev(close, 20) < band * atr(14)
    then: buy 2% of equity stop max(2 * atr(14), close * 1%) take 6%
  exit:
    when: >-
      position.open
      and (crosses_below(close, sma(close, slow))
           or close <= position.entry * (1 - 3%)
           or abs(close - position.entry) > position.entry * 10%
           or highest(high, 1h) - lowest(low, 1h) > 3 * atr(14))
    then: close
  scaled:
    when: >-
      all(rsi(close, 7) > 20)
      and clamp(rsi(close, 14), 30, 70) == rsi(close, 14)
      and close[2] < close
      and sma(close, 20)[3] < ema(close, 20)
      and (high - low)[1] > 0
      and volume > 1.5 * sma(volume, 20)
      and min(open, close) - low >= 0
      and equity > 0
    then: buy risk 1% of equity per min(atr(14), close * 2%) stop 2%
  relative:
    when: >-
      close / close of "{b}" > (close / close of "{b}")[12]
      and crosses_below(rsi(close, 14), ema(rsi(close, 14), 9))
      and ema(close, 50) > sma(close, 50) of "{a}" * 0
    then: sell 1% of equity
caps:
  per_asset: exposure.symbol <= clamp(atr(14) / close * 100%, 1%, 10%)
  total: exposure.total <= 25%
breakers:
  crash:
    when: change(close of "{a}", 12) <= -3% or rsi(close of "{b}", 14) < 10
    then: pause for 1h
  broad:
    when: any(close < lowest(low, 50)[1]) and all(ema(close, 20) < sma(close, 50))
    then: reduce_only
  volatile:
    when: stdev(close of "{a}", 48) > 2 * atr(48) of "{a}" or drawdown >= 10%
    then: alert
"""


def load_candles(files: dict[str, str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Candles of several symbols aligned on the union of their timestamps (NaN = no bar)."""
    rows: dict[str, dict[int, list[float]]] = {}
    for sym, name in files.items():
        table: dict[int, list[float]] = {}
        with (DATA / name).open(newline="") as fh:
            for rec in csv.DictReader(fh):
                ts = int(datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00")).timestamp())
                table[ts] = [float(rec[f]) if rec[f] else math.nan for f in MARKET_FIELDS]
        rows[sym] = table
    stamps = sorted(set().union(*(t.keys() for t in rows.values())))
    step = min(b - a for a, b in itertools.pairwise(stamps))
    grid = list(range(stamps[0], stamps[-1] + step, step))  # missing bars everywhere too
    symbols = list(files)
    out = {f: np.full((len(symbols), len(grid)), np.nan) for f in MARKET_FIELDS}
    pos = {ts: k for k, ts in enumerate(grid)}
    for s, sym in enumerate(symbols):
        for ts, values in rows[sym].items():
            for f, v in zip(MARKET_FIELDS, values, strict=True):
                out[f][s, pos[ts]] = v
    return symbols, out


def make_state(market: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Account state over the whole run: portfolio values ``(bars,)``, per-symbol ``(S, bars)``."""
    rng = np.random.default_rng(seed)
    n_sym, bars = market["close"].shape
    is_open = (rng.random((n_sym, bars)) < 0.5).astype(float)
    is_open[rng.random((n_sym, bars)) < 0.02] = np.nan
    entry = market["close"] * (1 + rng.normal(0, 0.05, (n_sym, bars)))
    entry[rng.random((n_sym, bars)) < 0.02] = np.nan
    equity = 1.0 + np.cumsum(rng.normal(0, 0.01, bars))
    equity[rng.random(bars) < 0.01] = np.nan
    return {
        "equity": equity,
        "position.open": is_open,
        "position.entry": entry,
        "exposure.symbol": np.asarray(rng.uniform(0, 0.15, (n_sym, bars)), float),
        "exposure.total": np.asarray(rng.uniform(0, 0.4, bars), float),
        "drawdown": np.asarray(rng.uniform(0, 0.12, bars), float),
    }


def incremental_run(
    cp: CompiledPolicy, symbols: list[str], market: dict[str, np.ndarray], state: dict[str, np.ndarray]
) -> dict[int, np.ndarray]:
    g = cp.graph
    nodes = g.reachable()
    ev = IncrementalEvaluator(g, symbols)
    bars = market["close"].shape[1]
    out = {i: np.empty((len(symbols), bars) if g[i].per_symbol else bars) for i in nodes}
    for t in range(bars):
        m = {f: market[f][:, t].tolist() for f in MARKET_FIELDS}
        st: dict[str, Any] = {k: (v[:, t].tolist() if v.ndim == 2 else float(v[t]))
                              for k, v in state.items()}
        values = ev.step(m, st)
        for i in nodes:
            if g[i].per_symbol:
                out[i][:, t] = [values.get(i, s) for s in range(len(symbols))]
            else:
                out[i][t] = values.get(i)
    return out


def compare(cp: CompiledPolicy, symbols: list[str], market: dict[str, np.ndarray],
            state: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    g = cp.graph
    inc = incremental_run(cp, symbols, market, state)
    vec = vectorized.evaluate(g, symbols, market, state)
    for i in g.reachable():
        v = vec[i]
        assert v is not None, f"%{i} not computed by the vectorized evaluator"
        a = inc[i]
        b = np.broadcast_to(np.asarray(v, float), a.shape)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        where = np.argwhere(nan_a != nan_b)
        assert where.size == 0, (
            f"%{i} {g[i].label()}: NaN in one mode only at {where[:5].tolist()}: "
            f"incremental {a[tuple(where[0])]!r}, vectorized {b[tuple(where[0])]!r}")
        ok = nan_a | (a == b) | (np.abs(a - b) <= np.maximum(REL * np.maximum(np.abs(a), np.abs(b)), ABS))
        bad = np.argwhere(~ok)
        assert bad.size == 0, (
            f"%{i} {g[i].label()} differs at {bad[:5].tolist()}: incremental "
            f"{a[tuple(bad[0])]!r}, vectorized {b[tuple(bad[0])]!r}")
    return inc


def compile_for(tmp_path: Path, symbols: list[str]) -> CompiledPolicy:
    a, b = symbols[0], symbols[-1]
    return compile_ok(tmp_path, POLICY.format(a=a, b=b), symbols=symbols)


def test_policy_uses_every_builtin(tmp_path: Path) -> None:
    from policyctl.rules import catalogue as cat

    cp = compile_for(tmp_path, list(BITTREX))
    g = cp.graph
    used = {str(n.attr[0]) for n in g.nodes if n.op == "ind"}
    used |= {f"crosses_{n.attr[0]}" for n in g.nodes if n.op == "cross"}
    used |= {n.op for n in g.nodes}
    wanted = {f for f, spec in cat.FUNCTIONS.items() if spec.category in ("indicator", "math",
                                                                           "aggregate")}
    assert wanted <= used, wanted - used
    assert any(n.op == "shift" for n in g.nodes)
    assert any(n.op == "field" and n.attr[1] is not None for n in g.nodes)  # `of`


@pytest.mark.parametrize("files", [BITTREX, BTC_USDT], ids=["bittrex-3-pairs", "btc-usdt"])
def test_evaluators_agree_on_real_candles(tmp_path: Path, files: dict[str, str]) -> None:
    symbols, market = load_candles(files)
    state = make_state(market, seed=len(symbols))
    cp = compile_for(tmp_path, symbols)
    inc = compare(cp, symbols, market, state)

    # the comparison is not vacuous: rules fire, indicators are defined, gaps are NaN
    g = cp.graph
    fired = {o.rule for o in g.outputs if o.role == "when" and np.nansum(inc[o.node] == 1.0) > 0}
    assert {"entry", "exit", "scaled", "crash", "broad", "volatile"} <= fired, fired
    if len(symbols) > 1:
        assert "relative" in fired  # (against itself, a symbol's relative strength is 1)
    for node in g.nodes:
        if node.op == "ind" and node.id in inc:
            assert np.isfinite(inc[node.id]).mean() > 0.5, node.label()
    if files is BITTREX:
        gaps = np.isnan(market["close"])
        assert gaps[1].sum() >= 40 and gaps[0].sum() == 0
        (sma20,) = [n for n in g.nodes if n.attr == ("sma", 20) and n.per_symbol
                    and g[n.args[0]].label() == "close"]
        # NaN wherever the 20-bar window touches a missing bar, in both modes
        assert np.isnan(inc[sma20.id][1]).sum() > gaps[1].sum()


def test_evaluators_agree_on_gapped_and_constant_series(tmp_path: Path) -> None:
    """Synthetic edge cases on top of real prices: a flat stretch (stdev 0, rsi 50, exact
    ties for the crossings), NaN bars in one field only, and a symbol missing for a while."""
    symbols, market = load_candles(BITTREX)
    market = {f: v[:, :1500].copy() for f, v in market.items()}
    for f in ("open", "high", "low", "close"):
        market[f][0, 200:300] = 0.1  # flat: every window inside is constant
    market["high"][1, 500:510] = np.nan
    for f in MARKET_FIELDS:
        market[f][2, 700:760] = np.nan
    state = make_state(market, seed=7)
    cp = compile_for(tmp_path, symbols)
    inc = compare(cp, symbols, market, state)
    g = cp.graph
    (stdev20,) = [n for n in g.nodes if n.attr == ("stdev", 20) and n.per_symbol]
    assert np.all(inc[stdev20.id][0, 219:300] == 0.0)


def test_infinite_price_is_treated_alike(tmp_path: Path) -> None:
    symbols, market = load_candles(BITTREX)
    market = {f: v[:, :600].copy() for f, v in market.items()}
    market["close"][2, 400] = math.inf
    compare(compile_for(tmp_path, symbols), symbols, market, make_state(market, seed=7))


def test_portfolio_state_keeps_its_shape_in_the_vectorized_evaluator(tmp_path: Path) -> None:
    """Regression: a portfolio-wide state field (``equity``, ``drawdown``) came back as a
    ``(symbols, bars)`` array, so a breaker's value at bar ``t`` could not be read as
    ``values[node][t]``."""
    body = "breakers:\n  b: {when: drawdown >= 10% or equity < 1 USDT, then: halt}\n"
    cp = compile_ok(tmp_path, body, symbols=("BTC/USDT", "ETH/USDT", "SOL/USDT"))
    when = cp.graph.output_node("breaker", "b", "when")
    assert when is not None and not when.per_symbol
    state = {"drawdown": np.array([0.0, 0.2, 0.05, np.nan]), "equity": np.array([5.0, 5.0, 0.5, 5.0])}
    out = vectorized.evaluate(cp.graph, ["BTC/USDT", "ETH/USDT", "SOL/USDT"], {}, state, bars=4)
    value = out[when.id]
    assert value is not None and value.shape == (4,)
    assert np.array_equal(value, [0.0, 1.0, 1.0, np.nan], equal_nan=True)
