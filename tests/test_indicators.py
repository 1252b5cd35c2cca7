"""Indicators: vectorized and incremental modes agree, and both match their definitions.

* every indicator, both modes, over real candles (with real gaps and injected NaNs);
* every vectorized indicator against a naive loop written here from the definition;
* exactness of sma/stdev against rational arithmetic;
* a Hypothesis property: random series with NaN/inf, both modes agree;
* exact decimal ties (SMA20 == SMA50 on a tick grid) give identical crossings in both
  modes, equal to the crossings computed in exact integer arithmetic;
* a 1,000,000-update drift test;
* the comparison contract of ``rules.numeric``.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.rules import indicators as ind
from policyctl.rules import numeric as num

FloatArray = npt.NDArray[np.float64]
NAN = math.nan
OHLCV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ohlcv"
needs_data = pytest.mark.skipif(not OHLCV.is_dir(), reason=f"real candle data not found at {OHLCV}")

WINDOWS = (2, 14, 20, 50)
TOL = 1e-9


# =========================================================================== helpers


def load_candles(name: str, fill_gaps: bool = False) -> dict[str, FloatArray]:
    """Read one OHLCV CSV; with ``fill_gaps`` missing bars become all-NaN rows."""
    with (OHLCV / name).open(newline="") as f:
        rows = list(csv.DictReader(f))
    ts = [datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp() for r in rows]
    cols = {k: np.array([float(r[k]) for r in rows]) for k in ("open", "high", "low", "close")}
    if not fill_gaps:
        return cols
    step = min(b - a for a, b in itertools.pairwise(ts))
    pos = np.array([round((t - ts[0]) / step) for t in ts])
    out = {}
    for k, v in cols.items():
        full = np.full(pos[-1] + 1, np.nan)
        full[pos] = v
        out[k] = full
    return out


def inject_nans(x: FloatArray, count: int, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    y = x.copy()
    y[rng.choice(x.size, size=count, replace=False)] = np.nan
    return y


def run_incremental(obj: ind.Incremental, *series: Sequence[float] | FloatArray) -> FloatArray:
    """Feed the series bar by bar (as Python floats) and collect the outputs."""
    cols = [np.asarray(s, dtype=np.float64).tolist() for s in series]
    update = obj.update
    return np.array([update(*bar) for bar in zip(*cols, strict=True)], dtype=np.float64)


def assert_agree(got: FloatArray, want: FloatArray, scale: float = 1.0, tol: float = TOL) -> None:
    """Same NaN pattern; values within ``tol`` relative, or ``tol * scale`` absolute."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    gn, wn = np.isnan(got), np.isnan(want)
    bad = np.flatnonzero(gn != wn)
    assert bad.size == 0, f"NaN pattern differs at {bad[:10]}: {got[bad[:5]]} vs {want[bad[:5]]}"
    m = ~gn
    assert np.isfinite(got[m]).all() and np.isfinite(want[m]).all()
    err = np.abs(got[m] - want[m])
    allowed = tol * np.maximum(np.maximum(np.abs(got[m]), np.abs(want[m])), scale)
    worst = np.flatnonzero(err > allowed)
    assert worst.size == 0, (
        f"{worst.size} values differ, e.g. at {np.flatnonzero(m)[worst[:5]]}: "
        f"{got[m][worst[:5]]} vs {want[m][worst[:5]]}"
    )


def series_scale(x: FloatArray) -> float:
    a = np.abs(x[np.isfinite(x)])
    return float(np.median(a)) if a.size else 1.0


def both_modes(name: str, window: int | None, *series: FloatArray) -> tuple[FloatArray, FloatArray]:
    spec = ind.SPECS[name]
    vec = spec.vector(*series, window) if spec.windowed else spec.vector(*series)
    inc = run_incremental(spec.new(window), *series)
    return vec, inc


def output_scale(name: str, x: FloatArray) -> float:
    """The absolute scale below which an output value counts as 'near zero'."""
    if name == "rsi":
        return 100.0
    if name in ("change", "crosses_above", "crosses_below"):
        return 1.0
    return series_scale(x)


# =========================================================================== real candles

REAL_FILES = [
    ("unknown_BTC-USDT_5m.csv", False),  # 11k bars, 0.1 grid, no gaps
    ("bittrex_ETH-BTC_1m.csv", False),  # 14k bars, small prices
    ("bittrex_DASH-BTC_1m.csv", True),  # 1954 missing bars in 1493 gaps -> NaN rows
    ("bittrex_ETC-BTC_1m_2017-11.csv", True),  # 717 missing bars in 538 gaps
]


@pytest.fixture(scope="module", params=REAL_FILES, ids=[f for f, _ in REAL_FILES])
def candles(request: pytest.FixtureRequest) -> dict[str, FloatArray]:
    if not OHLCV.is_dir():
        pytest.skip(f"real candle data not found at {OHLCV}")
    name, fill = request.param
    data = load_candles(name, fill_gaps=fill)
    # injected NaNs on top of the real gaps: random bars, and one bad field only
    seed = sum(name.encode())
    bad_bars = np.random.default_rng(seed).choice(data["close"].size, 25, replace=False)
    out = {k: v.copy() for k, v in data.items()}
    for k in ("open", "high", "low", "close"):
        out[k][bad_bars] = np.nan
    out["high"][bad_bars[:5] + 1] = np.nan  # ATR bar invalid through high only
    return out


@needs_data
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("name", ["sma", "ema", "rsi", "stdev", "highest", "lowest", "change", "shift"])
def test_real_candles_single_series(candles: dict[str, FloatArray], name: str, window: int) -> None:
    for col in ("close", "low"):
        x = candles[col]
        vec, inc = both_modes(name, window, x)
        assert_agree(vec, inc, output_scale(name, x))
        assert np.isfinite(vec).sum() > 400  # not vacuous, even on the gappiest file


@needs_data
@pytest.mark.parametrize("window", WINDOWS)
def test_real_candles_atr(candles: dict[str, FloatArray], window: int) -> None:
    h, lo, c = candles["high"], candles["low"], candles["close"]
    vec, inc = both_modes("atr", window, h, lo, c)
    assert_agree(vec, inc, series_scale(c))
    assert np.isfinite(vec).sum() > 400


@needs_data
@pytest.mark.parametrize("fast, slow", [(2, 14), (14, 50), (20, 50)])
def test_real_candles_crosses(candles: dict[str, FloatArray], fast: int, slow: int) -> None:
    c = candles["close"]
    a, b = ind.sma(c, fast), ind.ema(c, slow)
    for name in ("crosses_above", "crosses_below"):
        vec, inc = both_modes(name, None, a, b)
        np.testing.assert_array_equal(vec, inc)  # decisions: exactly equal, NaN included
        assert np.nansum(vec) > 0
    # the whole pipeline incrementally (indicator instances feeding the crossing)
    fa, fb, cross = ind.SMA(fast), ind.EMA(slow), ind.CrossesAbove()
    live = np.array([cross.update(fa.update(v), fb.update(v)) for v in c.tolist()])
    np.testing.assert_array_equal(live, ind.crosses_above(a, b))


@needs_data
def test_recursive_indicators_are_bit_identical_on_this_platform() -> None:
    """EMA/RSI/ATR use lfilter's operation order in both modes: same bits on IEEE hardware.

    (Checked with 1e-15 so a fused multiply-add build of scipy would not fail it.)
    """
    d = load_candles("bittrex_ETH-BTC_1m.csv")
    for name, args in (
        ("ema", (d["close"],)),
        ("rsi", (d["close"],)),
        ("atr", (d["high"], d["low"], d["close"])),
    ):
        vec, inc = both_modes(name, 14, *args)
        assert_agree(vec, inc, tol=1e-15)


# =========================================================================== naive references


def naive_windowed(x: FloatArray, n: int, f: Callable[[list[float]], float]) -> FloatArray:
    out = np.full(x.size, np.nan)
    for t in range(n - 1, x.size):
        w = x[t - n + 1 : t + 1].tolist()
        if not any(math.isnan(v) for v in w):
            out[t] = f(w)
    return out


def naive_sma(x: FloatArray, n: int) -> FloatArray:
    return naive_windowed(x, n, lambda w: math.fsum(w) / n)


def naive_stdev(x: FloatArray, n: int) -> FloatArray:
    def f(w: list[float]) -> float:
        m = math.fsum(w) / n
        return math.sqrt(math.fsum((v - m) ** 2 for v in w) / n)

    return naive_windowed(x, n, f)


def naive_runs(valid: list[bool]) -> list[tuple[int, int]]:
    runs, t = [], 0
    while t < len(valid):
        if valid[t]:
            s = t
            while t < len(valid) and valid[t]:
                t += 1
            runs.append((s, t))
        else:
            t += 1
    return runs


def naive_ema(x: FloatArray, n: int) -> FloatArray:
    out = np.full(x.size, np.nan)
    alpha = 2 / (n + 1)
    for s, e in naive_runs([not math.isnan(v) for v in x]):
        if e - s < n:
            continue
        v = sum(x[s : s + n].tolist()) / n
        out[s + n - 1] = v
        for t in range(s + n, e):
            v = v + alpha * (x[t] - v)
            out[t] = v
    return out


def naive_rsi(x: FloatArray, n: int) -> FloatArray:
    out = np.full(x.size, np.nan)
    for s, e in naive_runs([not math.isnan(v) for v in x]):
        if e - s < n + 1:
            continue
        gain = {t: max(x[t] - x[t - 1], 0.0) for t in range(s + 1, e)}
        loss = {t: max(x[t - 1] - x[t], 0.0) for t in range(s + 1, e)}
        ag = sum(gain[t] for t in range(s + 1, s + n + 1)) / n
        al = sum(loss[t] for t in range(s + 1, s + n + 1)) / n
        for t in range(s + n, e):
            if t > s + n:
                ag = (ag * (n - 1) + gain[t]) / n
                al = (al * (n - 1) + loss[t]) / n
            if al == 0:
                out[t] = 50.0 if ag == 0 else 100.0
            else:
                out[t] = 100 - 100 / (1 + ag / al)
    return out


def naive_atr(h: FloatArray, lo: FloatArray, c: FloatArray, n: int) -> FloatArray:
    out = np.full(c.size, np.nan)
    valid = [not (math.isnan(a) or math.isnan(b) or math.isnan(d)) for a, b, d in zip(h, lo, c, strict=True)]
    for s, e in naive_runs(valid):
        if e - s < n:
            continue
        tr = [h[s] - lo[s]] + [
            max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])) for t in range(s + 1, e)
        ]
        v = sum(tr[:n]) / n
        out[s + n - 1] = v
        for t in range(s + n, e):
            v = (v * (n - 1) + tr[t - s]) / n
            out[t] = v
    return out


def naive_change(x: FloatArray, n: int) -> FloatArray:
    out = np.full(x.size, np.nan)
    for t in range(n, x.size):
        if x[t - n] > 0 and not math.isnan(x[t]):
            out[t] = x[t] / x[t - n] - 1
    return out


def naive_shift(x: FloatArray, n: int) -> FloatArray:
    return np.array([x[t - n] if t >= n else NAN for t in range(x.size)])


def naive_cross(a: FloatArray, b: FloatArray, above: bool) -> FloatArray:
    out = np.full(a.size, np.nan)
    for t in range(1, a.size):
        vals = (a[t], b[t], a[t - 1], b[t - 1])
        if any(math.isnan(v) for v in vals):
            continue
        if above:
            hit = num.gt(a[t], b[t]) and num.le(a[t - 1], b[t - 1])
        else:
            hit = num.lt(a[t], b[t]) and num.ge(a[t - 1], b[t - 1])
        out[t] = 1.0 if hit else 0.0
    return out


@pytest.fixture(scope="module")
def small_candles() -> dict[str, FloatArray]:
    """~3000 real bars with NaN restarts, or a synthetic walk without the data folder."""
    if OHLCV.is_dir():
        d = load_candles("bittrex_LTC-BTC_5m.csv")
        d = {k: v[:3000].copy() for k, v in d.items()}
    else:
        rng = np.random.default_rng(3)
        c = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, 3000)))
        d = {"open": c, "high": c * 1.002, "low": c * 0.998, "close": c.copy()}
    rng = np.random.default_rng(11)
    for k in d:
        d[k][rng.choice(3000, 12, replace=False)] = np.nan
    d["close"][1500:1503] = np.nan  # a short gap: restart
    d["close"][2000:2060] = d["close"][1999]  # flat stretch: RSI AG == AL == 0 -> 50
    d["high"][2000:2060] = d["low"][2000:2060] = d["close"][1999]
    return d


@pytest.mark.parametrize("n", [1, 2, 3, 5, 14])
def test_vectorized_matches_naive_loops(small_candles: dict[str, FloatArray], n: int) -> None:
    c, h, lo = small_candles["close"], small_candles["high"], small_candles["low"]
    s = series_scale(c)
    assert_agree(ind.sma(c, n), naive_sma(c, n), s, tol=1e-13)
    assert_agree(ind.stdev(c, n), naive_stdev(c, n), s, tol=1e-12)
    assert_agree(ind.ema(c, n), naive_ema(c, n), s, tol=1e-12)
    assert_agree(ind.rsi(c, n), naive_rsi(c, n), 100.0, tol=1e-12)
    assert_agree(ind.atr(h, lo, c, n), naive_atr(h, lo, c, n), s, tol=1e-12)
    np.testing.assert_array_equal(ind.highest(c, n), naive_windowed(c, n, max))
    np.testing.assert_array_equal(ind.lowest(c, n), naive_windowed(c, n, min))
    np.testing.assert_array_equal(ind.change(c, n), naive_change(c, n))
    np.testing.assert_array_equal(ind.shift(c, n), naive_shift(c, n))
    a, b = ind.sma(c, n), ind.ema(c, n + 3)
    np.testing.assert_array_equal(ind.crosses_above(a, b), naive_cross(a, b, above=True))
    np.testing.assert_array_equal(ind.crosses_below(a, b), naive_cross(a, b, above=False))
    assert np.nansum(ind.crosses_above(a, b)) > 0


def test_rsi_edge_cases() -> None:
    up = np.arange(1.0, 11.0)
    np.testing.assert_array_equal(ind.rsi(up, 3), [NAN] * 3 + [100.0] * 7)  # AL == 0
    np.testing.assert_array_equal(ind.rsi(up[::-1].copy(), 3), [NAN] * 3 + [0.0] * 7)  # AG == 0
    np.testing.assert_array_equal(ind.rsi(np.full(8, 5.0), 2), [NAN] * 2 + [50.0] * 6)  # both 0
    # flat after a rise: AG decays (1, .5, .25, .125) but AL stays 0 -> 100; then one loss:
    # AG = .0625, AL = .5 -> RSI = 100 - 100/1.125 = 100/9, and both decay alike afterwards
    x = np.array([1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 2.0, 2.0, 2.0])
    r = ind.rsi(x, 2)
    np.testing.assert_array_equal(r[:6], [NAN, NAN, 100.0, 100.0, 100.0, 100.0])
    np.testing.assert_allclose(r[6:], [100 / 9] * 3, rtol=1e-14)
    # exact Wilder values: gains 1,0 -> AG = 0.5, losses 0,1 -> AL = 0.5 -> 50
    assert ind.rsi(np.array([1.0, 2.0, 1.0]), 2)[2] == 50.0
    # seed then one step: AG = (0.5*1 + 2)/2 = 1.25, AL = (0.5*1 + 0)/2 = 0.25 -> 100 - 100/6
    assert ind.rsi(np.array([1.0, 2.0, 1.0, 3.0]), 2)[3] == pytest.approx(100 - 100 / 6, abs=1e-12)
    for y in (up, np.full(8, 5.0), np.array([1.0, 2.0, 1.0, 3.0]), x):
        assert_agree(run_incremental(ind.RSI(2), y), ind.rsi(y, 2), 100.0, tol=0)


def test_nan_restarts_exact_values() -> None:
    x = np.array([1.0, 2.0, 3.0, NAN, 4.0, 5.0, 6.0])
    # ema(2): alpha 2/3; seed 1.5, then 2.5; NaN; warm-up; seed 4.5, then 5.5
    want = [NAN, 1.5, 2.5, NAN, NAN, 4.5, 5.5]
    np.testing.assert_allclose(ind.ema(x, 2), want, rtol=1e-15)
    np.testing.assert_allclose(run_incremental(ind.EMA(2), x), want, rtol=1e-15)
    # windowed ones: NaN while the window touches the gap
    np.testing.assert_array_equal(ind.sma(x, 2), [NAN, 1.5, 2.5, NAN, NAN, 4.5, 5.5])
    np.testing.assert_array_equal(ind.highest(x, 3), [NAN, NAN, 3.0, NAN, NAN, NAN, 6.0])
    np.testing.assert_array_equal(ind.shift(x, 2), [NAN, NAN, 1.0, 2.0, 3.0, NAN, 4.0])
    np.testing.assert_array_equal(ind.change(x, 1), [NAN, 1.0, 0.5, NAN, NAN, 0.25, 6 / 5 - 1])
    # rsi(1) restarts: needs 2 valid bars after the gap
    np.testing.assert_array_equal(ind.rsi(x, 1), [NAN, 100, 100, NAN, NAN, 100, 100])
    # atr(2): TR = h-l at each (re)start; a bar with only `low` missing restarts too
    h = np.array([3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    lo = np.array([1.0, 2.0, 3.0, NAN, 5.0, 6.0])
    c = np.array([2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    # TR: 2, max(2,|4-2|,|2-2|)=2, max(2,2,0)=2 | gap | 2, max(2,|8-6|,|6-6|)=2
    want = [NAN, 2.0, 2.0, NAN, NAN, 2.0]
    np.testing.assert_array_equal(ind.atr(h, lo, c, 2), want)
    np.testing.assert_array_equal(run_incremental(ind.ATR(2), h, lo, c), want)
    # true range uses the previous close: a gap up of 10
    h2, l2, c2 = np.array([11.0, 21.0, 22.0]), np.array([9.0, 20.0, 21.0]), np.array([10.0, 21.0, 21.5])
    # TR = 2, max(1, 11, 10) = 11, max(1, 1, 0) = 1; atr(2): 6.5, then (6.5 + 1)/2
    np.testing.assert_allclose(ind.atr(h2, l2, c2, 2), [NAN, 6.5, 3.75], rtol=1e-15)


def test_infinities_are_unavailable() -> None:
    x = np.array([1.0, 2.0, math.inf, 4.0, 5.0, -math.inf, 7.0, 8.0])
    xn = np.where(np.isinf(x), NAN, x)
    for name, spec in ind.SPECS.items():
        if spec.inputs != 1:
            continue
        vec = spec.vector(x, 2)
        np.testing.assert_array_equal(vec, spec.vector(xn, 2), err_msg=name)
        np.testing.assert_array_equal(run_incremental(spec.new(2), x), vec, err_msg=name)
    np.testing.assert_array_equal(ind.crosses_above(x, 3.0), ind.crosses_above(xn, 3.0))


# =========================================================================== exactness


def exact_mean_std(w: list[float]) -> tuple[float, float]:
    q = [Fraction(v) for v in w]
    m = sum(q, Fraction(0)) / len(q)
    var = sum(((v - m) ** 2 for v in q), Fraction(0)) / len(q)
    return float(m), math.sqrt(float(var))


@needs_data
@pytest.mark.parametrize("n", [2, 20])
def test_sma_and_stdev_are_accurate_against_exact_arithmetic(n: int) -> None:
    c = load_candles("unknown_BTC-USDT_5m.csv")["close"][:2500]
    c[700:730] = c[699]  # constant windows (ending at 698+n .. 729): stdev exactly 0
    vs, vd = ind.sma(c, n), ind.stdev(c, n)
    ins, ind_ = run_incremental(ind.SMA(n), c), run_incremental(ind.Stdev(n), c)
    scale = series_scale(c)
    for t in range(n - 1, c.size):
        m, sd = exact_mean_std(c[t - n + 1 : t + 1].tolist())
        for got in (vs[t], ins[t]):
            assert abs(got - m) <= 4e-16 * abs(m), (t, got, m)
        for got in (vd[t], ind_[t]):
            # relative to the stdev, plus a hair of the price scale for near-constant windows
            assert abs(got - sd) <= 1e-13 * sd + 1e-15 * scale, (t, got, sd)
            assert (got == 0.0) == (sd == 0.0), (t, got, sd)  # constant window <=> exactly 0
    flat = slice(698 + n, 730)
    assert (vd[flat] == 0.0).all() and (ind_[flat] == 0.0).all()


# =========================================================================== properties

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
special = st.sampled_from([NAN, NAN, NAN, math.inf, -math.inf, 0.0, -0.0])
values = st.one_of(finite, finite, finite, finite, finite, finite, special)
price = st.one_of(st.floats(min_value=1e-4, max_value=1e5, allow_nan=False), st.just(NAN), st.just(0.0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    xs=st.lists(values, max_size=120),
    ys=st.lists(values, min_size=120, max_size=120),
    zs=st.lists(values, min_size=120, max_size=120),
    n=st.integers(min_value=1, max_value=9),
)
def test_property_modes_agree_on_random_series(
    xs: list[float], ys: list[float], zs: list[float], n: int
) -> None:
    x = np.array(xs, dtype=np.float64)
    y = np.array(ys[: x.size], dtype=np.float64)
    z = np.array(zs[: x.size], dtype=np.float64)
    finite_abs = np.abs(np.concatenate([x, y, z]))
    finite_abs = finite_abs[np.isfinite(finite_abs)]
    scale = float(finite_abs.max()) if finite_abs.size else 1.0
    for name, spec in ind.SPECS.items():
        if spec.inputs == 1:
            vec, inc = both_modes(name, n, x)
        elif spec.inputs == 3:
            # atr wants high >= low; build a bar around x from |y|, |z|
            with np.errstate(invalid="ignore"):  # inf - inf: NaN, which is fine here
                h, lo = x + np.abs(y), x - np.abs(z)
            vec, inc = both_modes(name, n, h, lo, x)
        else:
            vec, inc = both_modes(name, None, x, y)
            np.testing.assert_array_equal(vec, inc, err_msg=name)
            continue
        assert_agree(vec, inc, 100.0 if name == "rsi" else max(scale, 1e-300))


@settings(max_examples=100, deadline=None)
@given(xs=st.lists(price, max_size=150), n=st.integers(min_value=1, max_value=12))
def test_property_modes_agree_on_prices(xs: list[float], n: int) -> None:
    x = np.array(xs, dtype=np.float64)
    s = series_scale(x)
    for name in ("sma", "ema", "rsi", "stdev", "change", "highest"):
        vec, inc = both_modes(name, n, x)
        assert_agree(vec, inc, 100.0 if name == "rsi" else 1.0 if name == "change" else s)
    np.testing.assert_array_equal(ind.sma(x, n), ind.sma(x, n))  # deterministic


# =========================================================================== ties


def tick_grid_prices(bars: int, seed: int) -> npt.NDArray[np.int64]:
    """Integer cents: random walks, period-10 patterns (SMA20 == SMA50 exactly), flats."""
    rng = np.random.default_rng(seed)
    parts, level, size = [], 2_000_000, 0  # 20000.00
    while size < bars:
        kind = rng.integers(3)
        if kind == 0:
            seg = level + np.cumsum(rng.integers(-3, 4, rng.integers(20, 200)))
        elif kind == 1:
            seg = np.tile(level + rng.integers(-5, 6, 10), rng.integers(6, 20))
        else:
            seg = np.full(rng.integers(50, 120), level)
        parts.append(seg)
        level = int(seg[-1])
        size += seg.size
    return np.concatenate(parts)[:bars].astype(np.int64)


def test_exact_ties_give_identical_crossings_in_both_modes() -> None:
    cents = tick_grid_prices(150_000, seed=7)
    x = cents / 100.0  # == float("20000.37"): the correctly rounded decimal
    # exact: SMA20 > SMA50  <=>  sum20/20 > sum50/50  <=>  5*sum20 > 2*sum50 (integers)
    s20 = np.convolve(cents, np.ones(20, dtype=np.int64))[: cents.size]
    s50 = np.convolve(cents, np.ones(50, dtype=np.int64))[: cents.size]
    above, below = 5 * s20 > 2 * s50, 5 * s20 < 2 * s50
    ties = (5 * s20 == 2 * s50)[50:]
    exact_up = np.r_[np.zeros(50), (above[50:] & ~above[49:-1]).astype(float)]
    exact_down = np.r_[np.zeros(50), (below[50:] & ~below[49:-1]).astype(float)]

    v20, v50 = ind.sma(x, 20), ind.sma(x, 50)
    f20, f50, up, down = ind.SMA(20), ind.SMA(50), ind.CrossesAbove(), ind.CrossesBelow()
    i20, i50, iup, idown = [], [], [], []
    for p in x.tolist():
        a, b = f20.update(p), f50.update(p)
        i20.append(a)
        i50.append(b)
        iup.append(up.update(a, b))
        idown.append(down.update(a, b))
    i20a, i50a = np.array(i20), np.array(i50)

    # the scenario has teeth: many exact ties, and float noise at some of them in both modes
    assert ties.sum() > 10_000
    assert (v20[50:][ties] != v50[50:][ties]).any()
    assert (i20a[50:][ties] != i50a[50:][ties]).any()
    # ...which an exact float comparison would turn into wrong decisions
    raw = i20a > i50a
    assert (np.r_[False, raw[1:] & ~raw[:-1]][50:] != exact_up[50:].astype(bool)).any()

    vup, vdown = ind.crosses_above(v20, v50), ind.crosses_below(v20, v50)
    np.testing.assert_array_equal(np.array(iup), vup)
    np.testing.assert_array_equal(np.array(idown), vdown)
    np.testing.assert_array_equal(vup[50:], exact_up[50:])
    np.testing.assert_array_equal(vdown[50:], exact_down[50:])
    assert vup[50:].sum() > 100


# =========================================================================== drift


def test_long_run_drift_one_million_updates() -> None:
    rng = np.random.default_rng(42)
    bars = 1_000_000
    # a crash from 60000 to ~0.6 (sums shrink by 1e5: old rounding must not linger)
    x = 60_000.0 * np.exp(np.cumsum(rng.normal(-1.15e-5, 1e-3, bars)))
    x[rng.choice(bars, 50, replace=False)] = np.nan
    assert x[-1] < 10
    for n in (20, 200):
        vec = ind.sma(x, n)
        inc = run_incremental(ind.SMA(n), x)
        assert_agree(inc, vec, tol=1e-13, scale=0.0)
    vec = ind.stdev(x[:300_000], 50)
    inc = run_incremental(ind.Stdev(50), x[:300_000])
    assert_agree(inc, vec, tol=1e-11, scale=0.0)


# =========================================================================== API


def test_registry_is_consistent() -> None:
    assert set(ind.VECTOR) == set(ind.INCREMENTAL) == set(ind.ARITY) == set(ind.WINDOWED)
    assert set(ind.SPECS) == {
        "sma", "ema", "rsi", "atr", "stdev", "highest", "lowest", "change", "shift",
        "crosses_above", "crosses_below",
    }  # fmt: skip
    x = np.linspace(100.0, 120.0, 60) + np.sin(np.arange(60))
    for name, spec in ind.SPECS.items():
        assert ind.ARITY[name] == spec.inputs and ind.WINDOWED[name] == spec.windowed
        series = [x + 1.0, x - 1.0, x] if spec.inputs == 3 else [x, x[::-1].copy()][: spec.inputs]
        window = 7 if spec.windowed else None
        vec, inc = both_modes(name, window, *series)
        first = int(np.flatnonzero(~np.isnan(vec))[0])
        assert first == spec.warmup(window), name
        assert_agree(vec, inc, series_scale(x))
        with pytest.raises(ValueError):
            spec.new(None if spec.windowed else 3)


@pytest.mark.parametrize(
    "cls", [ind.SMA, ind.EMA, ind.RSI, ind.ATR, ind.Stdev, ind.Highest, ind.Lowest, ind.Change]
)
def test_window_validation(cls: Callable[..., object]) -> None:
    with pytest.raises(ValueError):
        cls(0)
    with pytest.raises(ValueError):
        cls(-3)
    with pytest.raises(TypeError):
        cls(2.5)
    with pytest.raises(TypeError):
        cls(True)
    cls(np.int64(3))  # numpy integers are fine


def test_vectorized_validation_and_edge_shapes() -> None:
    x = np.array([1.0, 2.0, 3.0])
    for f in (ind.sma, ind.ema, ind.rsi, ind.stdev, ind.highest, ind.lowest, ind.change):
        with pytest.raises(ValueError):
            f(x, 0)
        assert f(np.array([]), 3).shape == (0,)
        np.testing.assert_array_equal(f(x, 5), [NAN] * 3)  # window longer than the series
    with pytest.raises(ValueError):
        ind.shift(x, -1)
    np.testing.assert_array_equal(ind.shift(x, 0), x)
    np.testing.assert_array_equal(run_incremental(ind.Shift(0), x), x)
    with pytest.raises(ValueError):
        ind.sma(np.ones((2, 2)), 2)
    with pytest.raises(ValueError):
        ind.atr(x, x, x[:2], 2)
    with pytest.raises(ValueError):
        ind.crosses_above(x, x[:2])
    # scalar threshold
    np.testing.assert_array_equal(ind.crosses_above(x, 1.5), [NAN, 1.0, 0.0])
    np.testing.assert_array_equal(ind.crosses_below(x[::-1].copy(), 2.5), [NAN, 1.0, 0.0])
    # inputs are never modified, lists are accepted
    y = np.array([1.0, math.inf, 3.0, 4.0])
    before = y.copy()
    for spec in ind.SPECS.values():
        if spec.inputs == 1:
            spec.vector(y, 2)
            spec.vector(y.tolist(), 2)
    np.testing.assert_array_equal(y, before)


def test_change_semantics() -> None:
    x = np.array([100.0, 105.0, 0.0, 5.0, -2.0, 3.0])
    np.testing.assert_allclose(
        ind.change(x, 1), [NAN, 0.05, -1.0, NAN, -1.4, NAN], rtol=1e-15
    )  # x[t-1] <= 0 -> NaN
    np.testing.assert_array_equal(run_incremental(ind.Change(1), x), ind.change(x, 1))
    tiny = np.array([5e-324, 4.0, 8.0])  # the ratio overflows: unavailable, not inf
    np.testing.assert_array_equal(ind.change(tiny, 1), [NAN, NAN, 1.0])
    np.testing.assert_array_equal(run_incremental(ind.Change(1), tiny), [NAN, NAN, 1.0])


# =========================================================================== numeric


def test_numeric_contract() -> None:
    a = 0.1 + 0.2  # 0.30000000000000004
    assert a != 0.3 and num.eq(a, 0.3) and not num.gt(a, 0.3) and not num.lt(a, 0.3)
    assert num.ge(a, 0.3) and num.le(a, 0.3) and not num.ne(a, 0.3)
    assert num.gt(1.0 + 1e-11, 1.0) and num.lt(1.0, 1.0 + 1e-11) and num.ne(1.0, 1.0 + 1e-11)
    assert num.eq(1e6, 1e6 * (1 + 5e-13)) and num.gt(1e6 * (1 + 2e-12), 1e6)
    assert num.gt(1e-300, 0.0) and num.eq(0.0, -0.0) and num.lt(-1e-300, 0.0)
    assert num.gt(math.inf, 1e308) and num.eq(math.inf, math.inf) and num.lt(-math.inf, 0.0)
    assert num.REL_TOL == 1e-12


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(finite, st.just(NAN), st.floats(0.29, 0.31)), min_size=1, max_size=30),
    st.lists(st.one_of(finite, st.just(NAN), st.floats(0.29, 0.31)), min_size=30, max_size=30),
)
def test_numeric_vectorized_matches_scalar(xs: list[float], ys: list[float]) -> None:
    a = np.array(xs)
    b = np.array(ys[: a.size])
    pairs = [
        (num.vgt, num.gt), (num.vlt, num.lt), (num.vge, num.ge),
        (num.vle, num.le), (num.veq, num.eq), (num.vne, num.ne),
    ]  # fmt: skip
    for vf, sf in pairs:
        got = vf(a, b)
        want = [
            NAN if (math.isnan(p) or math.isnan(q)) else float(sf(p, q)) for p, q in zip(a, b, strict=True)
        ]
        np.testing.assert_array_equal(got, want)
    # exactly one of lt / eq / gt
    m = ~(np.isnan(a) | np.isnan(b))
    total = num.vlt(a, b)[m] + num.veq(a, b)[m] + num.vgt(a, b)[m]
    assert (total == 1.0).all()
    assert num.vgt(a, 0.3).shape == a.shape  # broadcasting with a scalar


def _brute_extreme(xs: list[float], n: int, better: Callable[[float, float], bool]) -> list[float]:
    """The rolling extreme by its definition: over the last ``n`` values since the last NaN,
    the newest of equal extremes (so ``-0.0`` and ``0.0`` are told apart); NaN until ``n``."""
    out: list[float] = []
    run: list[float] = []
    for x in xs:
        if math.isnan(x):
            run = []
            out.append(NAN)
            continue
        run = [*run, x][-n:]
        if len(run) < n:
            out.append(NAN)
            continue
        best = run[0]
        for v in run[1:]:
            if not better(best, v):  # v is at least as good, and newer
                best = v
        out.append(best)
    return out


def _bits(xs: list[float]) -> list[tuple[bool, float, float]]:
    """Comparable values: NaN equals NaN, and ``0.0`` differs from ``-0.0``."""
    return [(True, 0.0, 0.0) if math.isnan(x) else (False, math.copysign(1.0, x), x) for x in xs]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    xs=st.lists(st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, NAN]),
                          st.floats(-1e6, 1e6, allow_nan=False)), max_size=120),
    n=st.integers(1, 12),
)
def test_incremental_extremes_match_their_definition(xs: list[float], n: int) -> None:
    for cls, better in ((ind.Highest, lambda a, b: a > b), (ind.Lowest, lambda a, b: a < b)):
        live = cls(n)
        assert _bits([live.update(x) for x in xs]) == _bits(_brute_extreme(xs, n, better))


def test_incremental_extremes_over_monotone_runs() -> None:
    """A falling series makes the highest leave the window every bar (and a rising one the
    lowest): the window is scanned again each time."""
    for xs in ([float(100 - k) for k in range(300)], [float(k) for k in range(300)],
               [float((k * 37) % 101) for k in range(500)]):
        for n in (1, 2, 5, 50):
            hi, lo = ind.Highest(n), ind.Lowest(n)
            assert _bits([hi.update(x) for x in xs]) == _bits(_brute_extreme(xs, n, lambda a, b: a > b))
            assert _bits([lo.update(x) for x in xs]) == _bits(_brute_extreme(xs, n, lambda a, b: a < b))
            vec_hi, vec_lo = ind.highest(np.array(xs), n), ind.lowest(np.array(xs), n)
            assert _bits(vec_hi.tolist()) == _bits(_brute_extreme(xs, n, lambda a, b: a > b))
            assert _bits(vec_lo.tolist()) == _bits(_brute_extreme(xs, n, lambda a, b: a < b))
