"""The reference strategy (../shared/REFERENCE_STRATEGY.md), trade by trade.

`policies/reference.yaml` says the strategy in the policy language; the simulator runs it
through the engine. An independent implementation, written here from the specification
with numpy and a plain loop (and exact rational arithmetic for the SMA crosses, as the
specification requires), must produce the same trades: entry and exit bars and prices,
and the same final equity.
"""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from policyctl.rules.compiler import load_and_compile
from policyctl.simulator.data import MarketData, Series
from policyctl.simulator.exchange import FillModel
from policyctl.simulator.run import SimConfig, simulate
from policyctl.simulator.synthetic import synthetic_market

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ohlcv"
FEE = 0.001


def reference_trades(o: np.ndarray, c: np.ndarray, cash: float = 10_000.0) -> tuple[list[tuple], float, int]:
    """The specification, literally: returns (trades, final equity, open position flag)."""
    n = len(c)
    fr = [Fraction(repr(float(x))) for x in c]  # exact decimal value of each close
    s20: list[Fraction | None] = [None] * n
    s50: list[Fraction | None] = [None] * n
    for t in range(n):
        if t >= 19:
            s20[t] = sum(fr[t - 19:t + 1], Fraction(0)) if t == 19 else s20[t - 1] + fr[t] - fr[t - 20]
        if t >= 49:
            s50[t] = sum(fr[t - 49:t + 1], Fraction(0)) if t == 49 else s50[t - 1] + fr[t] - fr[t - 50]
    # Wilder RSI(14), as written in the specification
    rsi = [math.nan] * n
    ag = al = 0.0
    for t in range(1, n):
        d = c[t] - c[t - 1]
        g, lo = max(d, 0.0), max(-d, 0.0)
        if t <= 14:
            ag += g
            al += lo
            if t == 14:
                ag, al = ag / 14, al / 14
        else:
            ag = (ag * 13 + g) / 14
            al = (al * 13 + lo) / 14
        if t >= 14:
            rsi[t] = (50.0 if ag == 0 else 100.0) if al == 0 else 100 - 100 / (1 + ag / al)

    def cmp(t: int) -> int:  # sign of SMA20 - SMA50, exactly: 50*sum20 vs 20*sum50
        a, b = 50 * s20[t], 20 * s50[t]  # type: ignore[operator]
        return (a > b) - (a < b)

    trades = []
    qty = 0.0
    entry_bar = -1
    entry = 0.0
    pending = None  # ("buy" | "sell", decided at bar)
    for t in range(n):
        if pending is not None:  # fill at this bar's open
            p = float(o[t])
            if pending == "buy":
                qty = 0.95 * cash / (p * 1.001)
                cash -= qty * p + 0.001 * qty * p
                entry, entry_bar = p, t
            else:
                cash += qty * p - 0.001 * qty * p
                trades.append((entry_bar, entry, t, p))
                qty = 0.0
            pending = None
        if t == n - 1:
            break  # a signal on the last bar is never filled
        if t < 50:
            continue
        up = cmp(t) > 0 and cmp(t - 1) <= 0
        down = cmp(t) < 0 and cmp(t - 1) >= 0
        if qty == 0.0:
            if up and rsi[t] < 70:
                pending = "buy"
        elif down or c[t] <= 0.97 * entry or c[t] >= 1.06 * entry:
            pending = "sell"
    return trades, cash + qty * float(c[-1]), int(qty > 0)


def simulated_trades(md: MarketData) -> tuple[list[tuple], float, int]:
    cp = load_and_compile(ROOT / "policies" / "reference.yaml")
    result = simulate(cp, md, SimConfig(cash=10_000.0, fill=FillModel.ideal(FEE)))
    ts = md.timestamps
    trades = []
    buy = None
    for f in result.fills:
        bar = int(np.searchsorted(ts, f.ts))
        if f.side.value == "buy":
            buy = (bar, f.price)
        else:
            assert buy is not None
            trades.append((buy[0], buy[1], bar, f.price))
            buy = None
    return trades, float(result.equity[-1]), int(buy is not None)


def _as_btc(md: MarketData) -> MarketData:
    (ser,) = md.series.values()
    return replace(md, series={"BTC/USDT": replace(ser, symbol="BTC/USDT")}, spreads={})


def _csv(name: str) -> MarketData:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not present (shared data)")
    rows = list(csv.DictReader(path.open()))
    o = np.array([float(r["open"]) for r in rows])
    h = np.array([float(r["high"]) for r in rows])
    lo = np.array([float(r["low"]) for r in rows])
    c = np.array([float(r["close"]) for r in rows])
    v = np.array([float(r["volume"] or "nan") for r in rows])
    ts = np.arange(len(rows), dtype=np.int64) * 300_000 + 1_600_000_000_000  # file order: t = 0..N-1
    return MarketData(300_000, ts, {"BTC/USDT": Series("BTC/USDT", o, h, lo, c, v)})


def _check(md: MarketData) -> list[tuple]:
    ser = md.series["BTC/USDT"]
    expected, eq_ref, open_ref = reference_trades(np.asarray(ser.open), np.asarray(ser.close))
    got, eq_sim, open_sim = simulated_trades(md)
    assert [(a, c) for a, _, c, _ in got] == [(a, c) for a, _, c, _ in expected]
    for (_, pe, _, px), (_, qe, _, qx) in zip(got, expected, strict=True):
        assert pe == qe and px == qx  # fills at the open, exactly
    assert open_sim == open_ref
    assert eq_sim == pytest.approx(eq_ref, rel=1e-9)
    return expected


@pytest.mark.parametrize("name", ["unknown_BTC-USDT_5m.csv", "bittrex_ETH-BTC_5m.csv",
                                  "bittrex_LTC-BTC_1m.csv", "binance_XRP-ETH_5m.csv"])
def test_reference_strategy_matches_on_real_candles(name: str) -> None:
    trades = _check(_csv(name))
    assert len(trades) >= 5  # the data exercises the strategy


@pytest.mark.parametrize("seed", [1, 42])
def test_reference_strategy_matches_on_synthetic_candles(seed: int) -> None:
    md = _as_btc(synthetic_market(seed, bars=20_000, timeframe="1m", symbols=("BTC/USDT",)))
    trades = _check(md)
    assert len(trades) >= 20
