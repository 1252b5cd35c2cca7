"""The embedded synthetic market: determinism and the stylised facts of crypto prices."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from policyctl.simulator.data import DataError, MarketData
from policyctl.simulator.synthetic import (
    CALM,
    DEFAULT_SYMBOLS,
    NORMAL,
    TURBULENT,
    _ar1,
    regime_path,
    symbol_profile,
    synthetic_market,
)

BARS = 100_000
TICKS = {"BTC/USDT": 0.01, "ETH/USDT": 0.01, "SOL/USDT": 0.001, "XRP/USDT": 0.0001}
START = {"BTC/USDT": 42_000.0, "ETH/USDT": 2_300.0, "SOL/USDT": 100.0, "XRP/USDT": 0.6}


@pytest.fixture(scope="module")
def market() -> MarketData:
    return synthetic_market(42, bars=BARS)


def log_returns(md: MarketData, symbol: str) -> np.ndarray:
    return np.diff(np.log(md.series[symbol].close))


def fingerprint(md: MarketData) -> str:
    h = hashlib.sha256(md.timestamps.tobytes())
    for key, s in md.series.items():
        h.update(key.encode())
        for arr in (s.open, s.high, s.low, s.close, s.volume, md.spreads[key]):
            h.update(arr.tobytes())
    assert md.regime is not None
    h.update(md.regime.tobytes())
    return h.hexdigest()


def pearson_kurtosis(x: np.ndarray) -> float:
    z = (x - x.mean()) / x.std()
    return float(np.mean(z**4))


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a = synthetic_market(7, bars=5_000)
    b = synthetic_market(7, bars=5_000)
    c = synthetic_market(8, bars=5_000)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)
    assert a.sources[0].sha256 == b.sources[0].sha256 != c.sources[0].sha256
    assert not np.array_equal(a.series["BTC/USDT"].close, c.series["BTC/USDT"].close)


def test_shape_and_grid(market: MarketData) -> None:
    assert market.symbols == tuple(sorted(DEFAULT_SYMBOLS))
    assert market.timeframe == "5m" and market.timeframe_ms == 300_000
    assert len(market) == BARS
    assert market.timestamps.dtype == np.int64
    assert market.start_ms == 1_704_067_200_000
    assert np.all(np.diff(market.timestamps) == 300_000)
    assert market.gaps == () and market.bad_bars == ()
    assert market.sources[0].format == "synthetic"
    assert market.regime is not None and market.regime.shape == (BARS,)
    for key, s in market.series.items():
        for arr in (s.open, s.high, s.low, s.close, s.volume, market.spreads[key]):
            assert arr.dtype == np.float64 and arr.shape == (BARS,)
            assert np.all(np.isfinite(arr)), key


def test_ohlc_consistency(market: MarketData) -> None:
    for s in market.series.values():
        assert np.all(s.high >= np.maximum(s.open, s.close))
        assert np.all(s.low <= np.minimum(s.open, s.close))
        assert np.all(s.low > 0)
        assert np.all(s.volume > 0)
        assert np.mean(s.high > np.maximum(s.open, s.close)) > 0.5  # real wicks
        same = np.mean(s.open[1:] == s.close[:-1])
        assert 0.99 < same < 1.0  # mostly continuous, occasionally a small gap
        jumps = np.abs(np.log(s.open[1:] / s.close[:-1]))
        assert np.max(jumps) < 0.01


def test_prices_on_tick_grid(market: MarketData) -> None:
    for key, s in market.series.items():
        tick = TICKS[key]
        for arr in (s.open, s.high, s.low, s.close):
            units = arr / tick
            assert np.max(np.abs(units - np.rint(units))) < 1e-6, key
        # and they are the clean decimal: 42000.13, not 42000.130000000005
        decimals = len(str(tick).split(".")[1])
        assert all(len(str(float(v)).split(".")[1]) <= decimals for v in s.close[:2000]), key


def test_starting_prices(market: MarketData) -> None:
    for key, s in market.series.items():
        assert s.open[0] == pytest.approx(START[key], rel=1e-9)
        assert abs(np.log(s.close[1000] / START[key])) < 0.5


def test_cross_correlation(market: MarketData) -> None:
    r = {k: log_returns(market, k) for k in market.symbols}
    corr = np.corrcoef([r[k] for k in market.symbols])
    idx = {k: i for i, k in enumerate(market.symbols)}
    btc_eth = corr[idx["BTC/USDT"], idx["ETH/USDT"]]
    assert 0.6 <= btc_eth <= 0.95
    for alt in ("SOL/USDT", "XRP/USDT"):
        assert 0.2 < corr[idx["BTC/USDT"], idx[alt]] < btc_eth


def test_fat_tails(market: MarketData) -> None:
    for key in market.symbols:
        assert pearson_kurtosis(log_returns(market, key)) > 6.0, key


def test_regimes(market: MarketData) -> None:
    assert market.regime is not None
    reg = market.regime[1:]
    assert set(np.unique(reg)) == {CALM, NORMAL, TURBULENT}
    r = log_returns(market, "BTC/USDT")
    vol = {state: float(np.std(r[reg == state])) for state in (CALM, NORMAL, TURBULENT)}
    assert vol[CALM] < vol[NORMAL] < vol[TURBULENT]
    assert vol[TURBULENT] > 1.8 * vol[CALM]
    spread = market.spreads["ETH/USDT"][1:]
    assert np.median(spread[reg == TURBULENT]) > 1.5 * np.median(spread[reg == CALM])
    # regimes come in runs lasting hours to days, not flickering bar by bar
    switches = int(np.count_nonzero(np.diff(market.regime)))
    assert 10 < switches < BARS / 50
    np.testing.assert_array_equal(regime_path(42, BARS, "5m"), market.regime)


def test_volatility_clusters(market: MarketData) -> None:
    a = np.abs(log_returns(market, "BTC/USDT"))
    for lag in (1, 12, 48):
        assert np.corrcoef(a[:-lag], a[lag:])[0, 1] > 0.05


def test_plausible_volatility(market: MarketData) -> None:
    bars_per_year = 365 * 288
    ann = {k: float(np.std(log_returns(market, k))) * np.sqrt(bars_per_year) for k in START}
    assert 0.3 < ann["BTC/USDT"] < 1.0
    assert ann["BTC/USDT"] < ann["ETH/USDT"] < ann["SOL/USDT"]


def test_volume_seasonality_and_activity(market: MarketData) -> None:
    s = market.series["BTC/USDT"]
    hour = (market.timestamps // 3_600_000) % 24
    assert s.volume[hour == 15].mean() > 1.3 * s.volume[hour == 3].mean()
    r = np.abs(np.diff(np.log(s.close)))
    v = s.volume[1:]
    big = r > np.quantile(r, 0.95)
    small = r < np.quantile(r, 0.5)
    assert v[big].mean() > 2.0 * v[small].mean()
    assert np.all(np.abs(s.volume / 1e-5 - np.rint(s.volume / 1e-5)) < 1e-6)  # lot grid


def test_spreads_at_least_one_tick(market: MarketData) -> None:
    for key, s in market.series.items():
        one_tick = TICKS[key] / s.close * 1e4
        assert np.all(market.spreads[key] >= one_tick - 1e-12)
        assert 0.2 < float(np.median(market.spreads[key])) < 20


def test_symbols_are_independent_and_runs_are_prefixes() -> None:
    full = synthetic_market(3, bars=6_000)
    short = synthetic_market(3, bars=2_500)
    alone = synthetic_market(3, bars=6_000, symbols=["SOL/USDT"])
    np.testing.assert_allclose(short.series["BTC/USDT"].close, full.series["BTC/USDT"].close[:2500])
    np.testing.assert_array_equal(alone.series["SOL/USDT"].close, full.series["SOL/USDT"].close)


def test_other_symbols_and_timeframes() -> None:
    md = synthetic_market(1, bars=3_000, timeframe="1h", symbols=["DOGE/USDT", "ETH/BTC"])
    assert md.symbols == ("DOGE/USDT", "ETH/BTC")
    assert np.all(np.diff(md.timestamps) == 3_600_000)
    prof = symbol_profile("DOGE/USDT")
    assert prof == symbol_profile("DOGE/USDT")  # derived from the name, stable
    assert md.series["DOGE/USDT"].open[0] == pytest.approx(prof.price)
    for s in md.series.values():
        assert np.all(np.isfinite(s.close)) and np.all(s.low > 0)
    daily = synthetic_market(1, bars=500, timeframe="1d", start_ms=1_704_067_200_000)
    assert np.all(np.isfinite(daily.series["BTC/USDT"].close))


def test_slice_keeps_spreads_and_regime(market: MarketData) -> None:
    part = market.slice(int(market.timestamps[100]), int(market.timestamps[200]))
    assert len(part) == 100
    assert part.regime is not None and part.regime.shape == (100,)
    np.testing.assert_array_equal(part.spreads["BTC/USDT"], market.spreads["BTC/USDT"][100:200])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        synthetic_market(-1)
    with pytest.raises(ValueError):
        synthetic_market(1, bars=0)
    with pytest.raises(ValueError):
        synthetic_market(1, symbols=["BTC/USDT", "BTC/USDT"])
    with pytest.raises(ValueError):
        synthetic_market(1, start_ms=1_704_067_200_001)
    with pytest.raises(DataError):
        synthetic_market(1, timeframe="1M")
    with pytest.raises(DataError):
        synthetic_market(1, timeframe="5 minutes")


@pytest.mark.parametrize("a", [0.0, 0.2, 0.7, 0.985, 0.9999, 0.9999999])
def test_ar1_matches_the_recursion(a: float) -> None:
    x = np.random.Generator(np.random.PCG64(5)).standard_normal(3_000)
    expected = np.empty_like(x)
    y = 0.3
    for i, v in enumerate(x):
        y = a * y + v
        expected[i] = y
    np.testing.assert_allclose(_ar1(x, a, 0.3), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("timeframe", "first"), [("5m", "2024-01-01T00:00"), ("3d", "2024-01-03T00:00"),
                                                  ("7h", "2024-01-01T02:00"), ("2w", "2024-01-08T00:00")])
def test_the_default_start_is_the_first_bar_of_the_grid_from_2024(timeframe: str, first: str) -> None:
    """Bars of 3d, 7h or 2w are aligned to the epoch (weeks to a Monday), not to 2024-01-01."""
    md = synthetic_market(1, bars=10, timeframe=timeframe, symbols=("BTC/USDT",))
    assert str(np.datetime64(int(md.timestamps[0]), "ms"))[:16] == first
    assert int(md.timestamps[1] - md.timestamps[0]) == md.timeframe_ms
