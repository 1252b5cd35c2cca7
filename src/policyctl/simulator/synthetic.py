"""An embedded synthetic crypto market: seeded, fast, and shaped like the real thing.

:func:`synthetic_market` returns a :class:`~policyctl.simulator.data.MarketData` with

* a **common market factor** plus idiosyncratic noise per symbol (each symbol's share of
  market variance sets its correlation: BTC-ETH about 0.8, alts lower);
* **volatility regimes**: a three-state Markov chain (calm / normal / turbulent) built from
  geometric run lengths, times a persistent log-volatility AR(1) process (GARCH-like
  clustering); Student-t market shocks, Gaussian idiosyncratic ones;
* **jumps**: market-wide crashes and spikes (more often in turbulent regimes, crashes more
  likely than spikes) and idiosyncratic jumps, scaled by each symbol's beta;
* intrabar **high/low** from the exact Brownian-bridge extremes, **prices on the tick grid**,
  ``open[t] == close[t-1]`` except for rare small gaps;
* **volume** with intraday/weekly seasonality (peak 15:00 UTC, quieter weekends) that rises
  with the absolute return and the volatility level, on each symbol's lot grid;
* per-bar **spreads** in bps (``MarketData.spreads``), wider when volatility is high, and
  the regime path (``MarketData.regime``: 0 calm, 1 normal, 2 turbulent).

Randomness comes only from ``numpy.random.Generator(PCG64(...))`` seeded with ``seed`` plus
a fixed stream number per component (and a CRC-32 of the symbol for per-symbol noise), so

* the same arguments give byte-identical arrays;
* a symbol's path does not depend on which other symbols are requested;
* a shorter run is a prefix of a longer one with the same seed (up to float rounding).

Everything is vectorized; the only Python loops run over regime runs and over blocks of the
AR(1) filter, never over bars.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.random import PCG64, Generator

from policyctl.simulator.data import DataError, MarketData, Series, SourceInfo, _Grid

__all__ = [
    "CALM",
    "DEFAULT_SYMBOLS",
    "GENERATOR_VERSION",
    "NORMAL",
    "REGIME_NAMES",
    "TURBULENT",
    "SymbolProfile",
    "regime_path",
    "symbol_profile",
    "synthetic_market",
]

#: Bump when the generated numbers change for the same arguments (part of the fingerprint).
GENERATOR_VERSION = 1

CALM, NORMAL, TURBULENT = 0, 1, 2
REGIME_NAMES = ("calm", "normal", "turbulent")
DEFAULT_SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")

_DAY_MS = 86_400_000
_YEAR_MS = 365 * _DAY_MS

# regimes: volatility multiplier, mean duration (hours), embedded transition matrix
_REGIME_VOL = np.array([0.6, 1.0, 2.4])
_REGIME_HOURS = np.array([96.0, 48.0, 10.0])
_REGIME_NEXT = np.array(
    [
        [0.0, 0.85, 0.15],  # calm -> normal mostly
        [0.55, 0.0, 0.45],  # normal -> calm or turbulent
        [0.25, 0.75, 0.0],  # turbulent -> normal mostly
    ]
)
_REGIME_START = (0.35, 0.5, 0.15)
_REGIME_BATCH = 1024  # runs drawn per batch (fixed, so shorter runs are prefixes)

_MARKET_VOL = 0.5  # annualised volatility of the market factor (unit beta)
_SV_HALF_LIFE_H = 6.0  # log-volatility persistence
_SV_STD = 0.35  # stationary std of log-volatility
_T_DF = 5.0  # Student-t degrees of freedom of the shocks
_MKT_JUMPS_PER_DAY = np.array([0.1, 0.3, 2.0])  # by regime
_MKT_JUMP_SCALE = 0.012  # mean jump size beyond the minimum (log return)
_MKT_JUMP_MIN = 0.004
_CRASH_PROB = 0.6
_IDIO_JUMP_REGIME = np.array([0.5, 1.0, 3.0])
_GAP_PROB = 0.003  # open != previous close
_GAP_SCALE = 0.3  # in units of the bar's volatility
_PRICE_HALF_LIFE_YEARS = 2.0  # weak mean reversion of log price (keeps long runs plausible)
_VOLUME_NOISE = 0.35
_SPREAD_NOISE = 0.2

# streams of the seeded generators
_S_REGIME, _S_SV, _S_FACTOR, _S_MKT_JUMP = 1, 2, 3, 4
_S_SYMBOL = 100

_USD_QUOTES = {"USDT", "USDC", "USD", "BUSD", "FDUSD", "TUSD", "DAI"}


@dataclass(frozen=True)
class SymbolProfile:
    """Static parameters of one synthetic symbol."""

    price: float  # starting price
    tick: float  # price grid
    lot: float  # volume grid (base currency)
    annual_vol: float  # total annualised volatility (diffusive part)
    market_share: float  # share of variance explained by the market factor (R^2)
    idio_jumps_per_day: float
    idio_jump_scale: float  # mean idiosyncratic jump size (log return)
    spread_bps: float  # typical quoted spread
    daily_volume: float  # typical daily volume, base currency


_PROFILES = {
    "BTC": SymbolProfile(42_000.0, 0.01, 0.00001, 0.55, 0.92, 0.05, 0.008, 1.0, 25_000.0),
    "ETH": SymbolProfile(2_300.0, 0.01, 0.0001, 0.70, 0.75, 0.15, 0.012, 1.5, 350_000.0),
    "SOL": SymbolProfile(100.0, 0.001, 0.001, 1.00, 0.50, 0.30, 0.02, 4.0, 3_000_000.0),
    "XRP": SymbolProfile(0.6, 0.0001, 0.1, 0.85, 0.42, 0.30, 0.02, 3.0, 500_000_000.0),
}


def _rng(seed: int, *stream: int) -> Generator:
    return Generator(PCG64([seed, *stream]))


def _crc(symbol: str) -> int:
    return zlib.crc32(symbol.encode("utf-8"))


def symbol_profile(symbol: str) -> SymbolProfile:
    """Parameters for ``symbol``: BTC, ETH, SOL, XRP against USD(T) are built in; any
    other symbol gets plausible parameters derived from its name (stable across runs)."""
    base, _, rest = symbol.partition("/")
    quote = rest.split(":")[0]
    if base.upper() in _PROFILES and quote.upper() in _USD_QUOTES:
        return _PROFILES[base.upper()]
    u = _rng(0, _crc(symbol)).random(5)
    price = float(f"{10 ** (-1 + 4 * u[0]):.4g}")
    tick = 10.0 ** (math.floor(math.log10(price)) - 4)
    lot = 10.0 ** math.floor(math.log10(0.05 / price))
    return SymbolProfile(
        price=price,
        tick=tick,
        lot=lot,
        annual_vol=0.8 + 0.6 * float(u[1]),
        market_share=0.3 + 0.25 * float(u[2]),
        idio_jumps_per_day=0.3,
        idio_jump_scale=0.025,
        spread_bps=3.0 + 7.0 * float(u[3]),
        daily_volume=float(f"{(10e6 + 40e6 * u[4]) / price:.3g}"),
    )


# --------------------------------------------------------------------------------------
# building blocks


def _ar1(x: np.ndarray, a: float, y0: float = 0.0) -> np.ndarray:
    """``y[t] = a * y[t-1] + x[t]`` with ``y[-1] = y0``, vectorized (0 <= a < 1).

    Small ``a``: a truncated sum of shifted copies. Otherwise blocks of length L with
    ``a**-L <= 1e3`` are solved in closed form at once and the block carries (an AR(1) with
    coefficient ``a**L``) are solved recursively.
    """
    n = x.shape[0]
    if n == 0:
        return x.astype(np.float64)
    if a <= 0.5:
        terms = n if a == 0.0 else min(n, math.ceil(math.log(1e-18) / math.log(a)) + 1)
        y = x.astype(np.float64)
        if a > 0.0:
            for j in range(1, terms):
                y[j:] += a**j * x[:-j]
        y += y0 * a ** np.arange(1, n + 1)
        return y
    length = int(min(max(2, math.floor(math.log(1e3) / -math.log(a))), 1 << 16))
    blocks = -(-n // length)
    xb = np.zeros(blocks * length)
    xb[:n] = x
    xb = xb.reshape(blocks, length)
    k = np.arange(length, dtype=np.float64)
    xb *= a**-k
    np.cumsum(xb, axis=1, out=xb)
    xb *= a**k  # xb[b, k] = sum over j <= k of a**(k - j) * x[b, j]
    # end_b = a**L * end_{b-1} + xb[b, -1]; the carry into block b is end_{b-1}
    carry = np.empty(blocks)
    carry[0] = y0
    if blocks > 1:
        carry[1:] = _ar1(xb[:-1, -1], a**length, y0)
    if blocks > 1 or y0 != 0.0:
        decay = a ** (k + 1)
        if blocks <= 4096:  # row by row: no temporary of the full size
            for b in range(blocks):
                xb[b] += carry[b] * decay
        else:
            xb += np.outer(carry, decay)
    return xb.ravel()[:n]


def _regime_weights() -> np.ndarray:
    """Long-run share of time spent in each regime."""
    vals, vecs = np.linalg.eig(_REGIME_NEXT.T)
    pi = np.real(vecs[:, int(np.argmin(np.abs(vals - 1.0)))])
    pi = pi / pi.sum()
    w = pi * _REGIME_HOURS
    return np.asarray(w / w.sum(), dtype=np.float64)


def regime_path(seed: int, bars: int, timeframe: str = "5m") -> np.ndarray:
    """The regime of every bar (int8: CALM, NORMAL, TURBULENT) for ``seed``.

    Run lengths are geometric with the regime's mean duration; the next regime follows the
    embedded transition matrix. This is the path :func:`synthetic_market` uses.
    """
    tf_ms = _check_timeframe(timeframe)
    rng = _rng(seed, _S_REGIME)
    mean_bars = np.maximum(_REGIME_HOURS * 3_600_000 / tf_ms, 1.0)
    with np.errstate(divide="ignore"):
        log_stay = np.log1p(-1.0 / mean_bars)  # -inf when every run is one bar
    cum = np.cumsum(_REGIME_NEXT, axis=1).tolist()
    start = float(rng.random())
    state = 0 if start < _REGIME_START[0] else 1 if start < sum(_REGIME_START[:2]) else 2
    out = np.empty(bars, dtype=np.int8)
    filled = 0
    while filled < bars:
        u_next = rng.random(_REGIME_BATCH).tolist()
        u_len = rng.random(_REGIME_BATCH)
        states = np.empty(_REGIME_BATCH, dtype=np.int64)
        for k, u in enumerate(u_next):
            states[k] = state
            row = cum[state]
            state = 0 if u < row[0] else 1 if u < row[1] else 2
        with np.errstate(divide="ignore"):
            lengths = np.ceil(np.log1p(-u_len) / log_stay[states])
        lengths = np.where(np.isfinite(lengths), np.maximum(lengths, 1.0), 1.0).astype(np.int64)
        runs = np.repeat(states.astype(np.int8), lengths)
        take = min(bars - filled, runs.shape[0])
        out[filled : filled + take] = runs[:take]
        filled += take
    return out


def _check_timeframe(timeframe: str) -> int:
    grid = _Grid.of(timeframe)
    if grid.step == 0:
        raise DataError("the synthetic market needs a fixed timeframe (not 1M)")
    return grid.step


def _student_t(rng: Generator, n: int) -> np.ndarray:
    """Student-t shocks scaled to unit variance."""
    out = rng.standard_t(_T_DF, n)
    out *= math.sqrt((_T_DF - 2.0) / _T_DF)
    return out


def _lognormal(rng: Generator, n: int, sigma: float) -> np.ndarray:
    """Multiplicative noise with mean 1."""
    out = rng.standard_normal(n)
    out *= sigma
    out -= 0.5 * sigma * sigma
    np.exp(out, out=out)
    return out


def _jumps(
    rng_hit: Generator,
    rng_size: Generator,
    p_by_regime: np.ndarray,
    regime: np.ndarray,
    scale: float,
    minimum: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(bar indices, signed log-return jumps); ``p_by_regime``: jump probability per bar.

    One uniform per bar decides whether it jumps (``u < p``) and the direction (a crash when
    ``u < p * _CRASH_PROB``); sizes are drawn for the jumping bars only, in bar order (so a
    shorter run still gets a prefix of the same jumps).
    """
    p = p_by_regime[regime]
    u = rng_hit.random(len(regime))
    idx = np.flatnonzero(u < p)
    sizes = np.minimum(rng_size.exponential(scale, len(idx)) + minimum, 0.4)
    return idx, np.where(u[idx] < p[idx] * _CRASH_PROB, -sizes, sizes)


def _jump_probability(per_day: np.ndarray, tf_ms: int) -> np.ndarray:
    return np.asarray(-np.expm1(-per_day * (tf_ms / _DAY_MS)), dtype=np.float64)


def _on_grid(values: np.ndarray, step: float) -> np.ndarray:
    """Round positive values to a grid of ``step`` (at least one step), in place.

    For steps like 0.01 the result is ``units / 100``: the double closest to the decimal.
    """
    inverse = 1.0 / step
    exact = abs(inverse - round(inverse)) < 1e-9 * inverse
    if exact:
        values *= round(inverse)
    else:
        values /= step
    np.rint(values, out=values)
    np.maximum(values, 1.0, out=values)
    if exact:
        values /= round(inverse)
    else:
        values *= step
    return values


def _bridge_extreme(
    rng: Generator, body: np.ndarray, body_sq: np.ndarray, var2: np.ndarray, upper: bool
) -> np.ndarray:
    """Max (``upper``) or min of a Brownian bridge from 0 to ``body`` with variance
    ``var2 / 2``: P(max > m) = exp(-2 m (m - b) / s^2) for m >= max(0, b), inverted."""
    out = rng.random(len(body))
    np.negative(out, out=out)
    np.log1p(out, out=out)  # log(1 - U) <= 0
    out *= var2
    np.subtract(body_sq, out, out=out)
    np.sqrt(out, out=out)
    if upper:
        out += body
    else:
        np.subtract(body, out, out=out)
    out *= 0.5
    return out


def _seasonality(timestamps: np.ndarray) -> np.ndarray:
    """Volume multiplier: intraday cycle peaking 15:00 UTC, weekends quieter.

    Looked up per minute of the week (1970-01-01 was a Thursday; Monday = day 0).
    """
    minute = np.arange(7 * 1440)
    daily = 1.0 + 0.35 * np.cos(2.0 * np.pi * (minute % 1440 / 60.0 - 15.0) / 24.0)
    table = daily * np.where(minute // 1440 >= 5, 0.75, 1.0)
    minute_of_week = (timestamps // 60_000 + 3 * 1440) % (7 * 1440)
    return np.asarray(table[minute_of_week], dtype=np.float64)


# --------------------------------------------------------------------------------------


START_MS = 1_704_067_200_000  # 2024-01-01T00:00Z


def synthetic_market(
    seed: int,
    bars: int = 20_000,
    timeframe: str = "5m",
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    start_ms: int | None = None,
) -> MarketData:
    """A seeded synthetic market of ``bars`` candles per symbol from ``start_ms``."""
    if isinstance(symbols, str):
        symbols = (symbols,)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    seed = int(seed)
    if bars < 1:
        raise ValueError("bars must be at least 1")
    if not symbols:
        raise ValueError("at least one symbol is needed")
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols must be distinct")
    tf_ms = _check_timeframe(timeframe)
    grid = _Grid.of(timeframe)
    if start_ms is None:  # the first bar of the timeframe's grid from 2024-01-01 (3d bars are epoch-aligned)
        first = int(grid.index(np.array([START_MS - 1], dtype=np.int64))[0]) + 1
        start_ms = int(grid.times(first, first + 1)[0])
    if not bool(grid.on_grid(np.array([start_ms], dtype=np.int64))[0]):
        raise ValueError(f"start_ms {start_ms} is not on the {timeframe} grid")

    n = int(bars)
    timestamps = start_ms + np.arange(n, dtype=np.int64) * tf_ms
    bars_per_year = _YEAR_MS / tf_ms

    # market state shared by all symbols
    regime = regime_path(seed, n, timeframe)
    norm = 1.0 / math.sqrt(float(np.dot(_regime_weights(), _REGIME_VOL**2)))
    sv_a = 0.5 ** (tf_ms / (_SV_HALF_LIFE_H * 3_600_000))
    sv_rng = _rng(seed, _S_SV)
    sv0 = float(sv_rng.standard_normal()) * _SV_STD
    sv_noise = sv_rng.standard_normal(n)
    sv_noise *= _SV_STD * math.sqrt(1.0 - sv_a * sv_a)
    level = _ar1(sv_noise, sv_a, sv0)
    level -= _SV_STD**2  # E[exp(2 * log_vol)] = 1
    np.exp(level, out=level)
    level *= _REGIME_VOL[regime]
    level *= norm  # volatility multiplier per bar
    del sv_noise

    common = _student_t(_rng(seed, _S_FACTOR), n)  # market factor plus market jumps
    common *= level
    common *= _MARKET_VOL / math.sqrt(bars_per_year)
    idx, size = _jumps(
        _rng(seed, _S_MKT_JUMP, 0),
        _rng(seed, _S_MKT_JUMP, 1),
        _jump_probability(_MKT_JUMPS_PER_DAY, tf_ms),
        regime,
        _MKT_JUMP_SCALE,
        _MKT_JUMP_MIN,
    )
    common[idx] += size
    two_level_sq = 2.0 * level * level
    activity_level = np.sqrt(level)
    activity_level *= _seasonality(timestamps)
    spread_level = level**0.9
    reversion = 0.5 ** (1.0 / (_PRICE_HALF_LIFE_YEARS * bars_per_year))
    scratch = np.empty(n)

    series: dict[str, Series] = {}
    spreads: dict[str, np.ndarray] = {}
    for symbol in sorted(symbols):
        prof = symbol_profile(symbol)
        crc = _crc(symbol)

        def rng(k: int, crc: int = crc) -> Generator:
            return _rng(seed, _S_SYMBOL + k, crc)

        sigma = prof.annual_vol / math.sqrt(bars_per_year)  # diffusive vol per bar at level 1
        beta = math.sqrt(prof.market_share) * prof.annual_vol / _MARKET_VOL
        log_p0 = math.log(prof.price)

        returns = rng(0).standard_normal(n)  # close-to-close log returns
        returns *= level
        returns *= math.sqrt(1.0 - prof.market_share) * sigma
        np.multiply(common, beta, out=scratch)
        returns += scratch
        idx, size = _jumps(
            rng(1),
            rng(2),
            _jump_probability(prof.idio_jumps_per_day * _IDIO_JUMP_REGIME, tf_ms),
            regime,
            prof.idio_jump_scale,
            0.0,
        )
        returns[idx] += size

        log_close = _ar1(returns, reversion)
        log_close += log_p0
        log_open = np.empty(n)
        log_open[0] = log_p0
        log_open[1:] = log_close[:-1]
        idx = np.flatnonzero(rng(3).random(n) < _GAP_PROB)
        log_open[idx] += rng(4).standard_normal(len(idx)) * (_GAP_SCALE * sigma) * level[idx]

        body = log_close - log_open
        body_sq = body * body
        var2 = two_level_sq * (sigma * sigma)
        high = _bridge_extreme(rng(5), body, body_sq, var2, upper=True)
        low = _bridge_extreme(rng(6), body, body_sq, var2, upper=False)
        del body, body_sq, var2
        for arr in (high, low):
            arr += log_open
        for arr in (log_close, log_open, high, low):
            np.exp(arr, out=arr)
            _on_grid(arr, prof.tick)
        close, open_ = log_close, log_open
        np.maximum(high, open_, out=high)
        np.maximum(high, close, out=high)
        np.minimum(low, open_, out=low)
        np.minimum(low, close, out=low)

        # volume: seasonal, higher in volatile regimes and on large moves, on the lot grid
        volume = np.abs(returns, out=returns)
        volume /= level
        volume *= 1.0 / sigma
        np.minimum(volume, 20.0, out=volume)
        volume *= 0.9
        volume += 0.3
        volume *= activity_level
        volume *= _lognormal(rng(7), n, _VOLUME_NOISE)
        volume *= prof.daily_volume * tf_ms / _DAY_MS
        _on_grid(volume, prof.lot)

        spread = _lognormal(rng(8), n, _SPREAD_NOISE)
        spread *= spread_level
        spread *= prof.spread_bps
        np.divide(prof.tick * 1e4, close, out=scratch)  # one tick in bps
        np.maximum(spread, scratch, out=spread)
        spreads[symbol] = spread
        series[symbol] = Series(symbol, open_, high, low, close, volume)

    spec = (
        f"policyctl-synthetic v{GENERATOR_VERSION} seed={seed} bars={n} timeframe={timeframe} "
        f"start_ms={start_ms} symbols={','.join(sorted(symbols))}"
    )
    source = SourceInfo(
        path=f"synthetic:seed={seed}",
        format="synthetic",
        rows=n,
        sha256=hashlib.sha256(spec.encode("utf-8")).hexdigest(),
        symbol=",".join(sorted(symbols)),
        timeframe=timeframe,
        note=spec,
    )
    return MarketData(
        timeframe_ms=tf_ms,
        timestamps=timestamps,
        series=series,
        gaps=(),
        sources=(source,),
        bad_bars=(),
        spreads=spreads,
        regime=regime,
        timeframe=timeframe,
    )
