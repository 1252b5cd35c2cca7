"""Indicator library: every indicator in two modes that agree.

*Vectorized* functions (``sma(x, n)``, ...) evaluate a whole series at once with numpy/scipy;
the simulator uses them over up to millions of bars. *Incremental* classes (``SMA(n)``, ...)
consume one bar per ``update()`` call in O(1) amortized pure Python; the live runtime uses
them. For the same input both modes return the same values up to ~1e-14 relative (the test
suite checks 1e-9 over real candles, gaps and random data), and exact ties (e.g. two SMAs of
tick-grid prices that are equal in decimal arithmetic) stay ties in both modes, so tolerant
comparisons (:mod:`policyctl.rules.numeric`) reach the same decision.

Conventions
-----------
* Vectorized inputs are 1-D float64 arrays (anything ``np.asarray`` turns into one); outputs
  are new float64 arrays of the same length. Incremental ``update`` takes and returns floats.
* NaN means "unavailable" (missing bar, bad data). ``+inf``/``-inf`` are bad data too and
  are treated exactly like NaN by every indicator, in both modes. Outputs are NaN during
  warm-up and wherever the value is undefined; a defined output is always finite for finite
  inputs of sane magnitude (sums of squares must not overflow).
* Windows count bars and are integers ``>= 1`` (``>= 0`` for ``shift``): a non-integer raises
  ``TypeError``, a too-small window ``ValueError``.
* *Windowed* indicators (sma, stdev, highest, lowest, change, shift) are NaN wherever their
  window touches an unavailable value.
* *Recursive* indicators (ema, rsi, atr) are NaN at an unavailable bar and *restart* after
  it: they warm up again from the next valid bar as if the series began there.

Definitions (``t`` is the bar index, windows end at ``t``)
-----------------------------------------------------------
* ``sma(x, n)``: mean of ``x[t-n+1..t]``; first value at ``t = n-1``.
* ``stdev(x, n)``: population standard deviation of the same window (divides by ``n``).
* ``highest(x, n)`` / ``lowest(x, n)``: max / min of the window (exact in both modes).
* ``ema(x, n)``: ``alpha = 2/(n+1)``; seeded at ``t = n-1`` with the mean of the first ``n``
  values, then ``e[t] = e[t-1] + alpha*(x[t]-e[t-1])``.
* ``rsi(x, n)``: Wilder: ``d[t] = x[t]-x[t-1]``, gain ``max(d,0)``, loss ``max(-d,0)``;
  ``AG[n]``/``AL[n]`` = mean of the first ``n`` gains/losses (``t = 1..n``), then
  ``AG[t] = (AG[t-1]*(n-1) + gain[t]) / n`` (same for AL); ``RSI = 100 - 100/(1+AG/AL)``,
  ``100`` if ``AL == 0`` (``50`` if ``AG == 0`` as well). First value at ``t = n``.
* ``atr(high, low, close, n)``: Wilder: ``TR[0] = high-low``;
  ``TR[t] = max(high-low, |high-close[t-1]|, |low-close[t-1]|)``;
  ``ATR[n-1] = mean(TR[0..n-1])``, then ``ATR[t] = (ATR[t-1]*(n-1) + TR[t]) / n``. A bar is
  unavailable if any of high, low, close is; the first bar after a restart has ``TR = high-low``.
* ``change(x, n)``: ``x[t]/x[t-n] - 1`` (a fraction); NaN if ``x[t-n] <= 0`` or if the
  ratio overflows (a subnormal base), like division elsewhere in the engine.
* ``shift(x, n)``: ``x[t-n]`` (``close[1]`` in the DSL); ``shift(x, 0)`` is ``x``.
* ``crosses_above(a, b)``: ``1.0`` at ``t`` when ``gt(a[t], b[t])`` and ``le(a[t-1], b[t-1])``
  (tolerant comparisons), ``0.0`` otherwise, NaN when any of the four values is unavailable
  (so ``t = 0`` is NaN). ``crosses_below``: ``lt(a[t], b[t])`` and ``ge(a[t-1], b[t-1])``.
  Either argument may be a scalar (``crosses_above(rsi, 30)``).

Numerics
--------
* Means and sums are never taken from one global cumulative sum (its error grows with the
  series length and splits exact ties). Vectorized sma/stdev/highest/lowest cut the series
  into blocks of ``n`` bars: a window is either one whole block or a suffix of one block
  plus a prefix of the next, so prefix/suffix scans inside blocks give every window in
  O(1) with at most ``n-1`` accumulated terms (van Herk / Gil-Werman decomposition). The
  values are summed relative to a reference value that lies inside the window, so the
  sums are small and the rounding error is a few ulps of the mean. ``stdev`` uses
  ``(S2 - S1**2/n)/n`` on those shifted values: with the reference inside the window the
  cancellation is bounded (factor <= n) and a constant window gives exactly 0.
* Incremental SMA/Stdev keep a ring buffer and compensated (error-free TwoSum) running
  sums that are recomputed exactly (``math.fsum``) from the buffer every ``n`` updates:
  no drift over any number of updates, O(1) amortized.
* Seeds of the recursive indicators are ``math.fsum(first n values) / n`` in both modes,
  and the recursions are evaluated as ``beta*prev + alpha*x`` (``alpha = 2/(n+1)``,
  ``beta = 1 - alpha`` for EMA; ``alpha = 1/n``, ``beta = (n-1)/n`` for RSI/ATR), which is
  the operation sequence of ``scipy.signal.lfilter``; this is the textbook formula up to
  a few ulps, and the error does not accumulate (the recursion is contractive).

Registry
--------
:data:`SPECS` maps each name (``"sma"``, ...) to an :class:`IndicatorSpec` giving the
vectorized function, the incremental class, the number of series inputs, whether a window
is taken, the minimum window and the warm-up length. :data:`VECTOR`, :data:`INCREMENTAL`,
:data:`ARITY` and :data:`WINDOWED` are plain views of it for the compiler and the docs.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from policyctl.rules.numeric import REL_TOL, vgt, vlt

__all__ = [
    "ARITY",
    "ATR",
    "EMA",
    "INCREMENTAL",
    "RSI",
    "SMA",
    "SPECS",
    "VECTOR",
    "WINDOWED",
    "Change",
    "CrossesAbove",
    "CrossesBelow",
    "Highest",
    "Incremental",
    "IndicatorSpec",
    "Lowest",
    "Shift",
    "Stdev",
    "atr",
    "change",
    "crosses_above",
    "crosses_below",
    "ema",
    "highest",
    "lowest",
    "rsi",
    "shift",
    "sma",
    "stdev",
]

FloatArray = npt.NDArray[np.float64]

_NAN = math.nan
_INF = math.inf
_isfinite = math.isfinite
_fsum = math.fsum


# =========================================================================== helpers


def _window(n: int, minimum: int = 1) -> int:
    """Validate a window length: an integer (not bool) ``>= minimum``."""
    if isinstance(n, bool):
        raise TypeError(f"window must be an integer, got {n!r}")
    try:
        k = operator.index(n)
    except TypeError:
        raise TypeError(f"window must be an integer, got {n!r}") from None
    if k < minimum:
        raise ValueError(f"window must be >= {minimum}, got {k}")
    return k


def _series(x: npt.ArrayLike, what: str = "x") -> FloatArray:
    """A 1-D float64 view/copy of ``x`` with infinities replaced by NaN (never mutates x)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D series, got shape {a.shape}")
    if not np.isfinite(a).all():
        inf = np.isinf(a)
        if inf.any():
            a = np.where(inf, np.nan, a)
    return a


def _same_length(*arrays: FloatArray) -> int:
    sizes = {a.size for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"input series differ in length: {sorted(sizes)}")
    return arrays[0].size


def _runs(valid: npt.NDArray[np.bool_], min_len: int) -> list[tuple[int, int]]:
    """Half-open ``(start, end)`` runs of consecutive True values with length >= min_len."""
    size = valid.size
    if size == 0:
        return []
    if valid.all():
        return [(0, size)] if size >= min_len else []
    edges = np.diff(valid.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    keep = (ends - starts) >= min_len
    return list(zip(starts[keep].tolist(), ends[keep].tolist(), strict=True))


def _blocks(x: FloatArray, n: int) -> npt.NDArray[np.float64]:
    """``x`` padded with NaN to a multiple of ``n`` and reshaped to ``(blocks, n)``."""
    m = -(-x.size // n)
    pad = m * n - x.size
    xp = np.concatenate((x, np.full(pad, np.nan))) if pad else x
    return xp.reshape(m, n)


def _window_sums(x: FloatArray, n: int, squares: bool) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Per-window reference ``r`` and sums ``S1 = sum(x - r)``, ``S2 = sum((x - r)**2)``.

    Windows ``[t-n+1, t]`` are decomposed over blocks of ``n`` bars. A window ending at the
    last offset of a block is that block; its reference is the block's last value. Any
    other window ending at offset ``j`` of block ``k`` is the suffix (offsets ``j+1..n-1``)
    of block ``k-1`` plus the prefix (offsets ``0..j``) of block ``k``; its reference is the
    last value of block ``k-1``, which lies inside the window. Suffix and prefix sums come
    from cumulative sums inside the blocks. NaN anywhere in a window (including the
    reference) propagates to its sums. Warm-up positions (``t < n-1``) are NaN.
    """
    size = x.size
    blk = _blocks(x, n)
    m = blk.shape[0]
    ref = np.empty((m, n))
    s1 = np.empty((m, n))
    s2 = np.empty((m, n)) if squares else None

    last = blk[:, n - 1 :]
    z = blk - last
    ref[:, n - 1] = last[:, 0]
    s1[:, n - 1] = z.sum(axis=1)
    if s2 is not None:
        s2[:, n - 1] = np.einsum("ij,ij->i", z, z)

    if n > 1:
        ref[0, : n - 1] = np.nan
        s1[0, : n - 1] = np.nan
        if s2 is not None:
            s2[0, : n - 1] = np.nan
        if m > 1:
            r = last[:-1]
            ref[1:, : n - 1] = r
            pre = blk[1:, : n - 1] - r  # offsets 0..n-2 of blocks 1..m-1
            suf = blk[:-1, :0:-1] - r  # offsets n-1..1 (reversed) of blocks 0..m-2
            s1[1:, : n - 1] = np.cumsum(suf, axis=1)[:, ::-1] + np.cumsum(pre, axis=1)
            if s2 is not None:
                pre *= pre
                suf *= suf
                s2[1:, : n - 1] = np.cumsum(suf, axis=1)[:, ::-1] + np.cumsum(pre, axis=1)

    return (
        ref.reshape(-1)[:size],
        s1.reshape(-1)[:size],
        None if s2 is None else s2.reshape(-1)[:size],
    )


def _rolling_extreme(x: FloatArray, n: int, op: np.ufunc) -> FloatArray:
    """Rolling max/min (``op`` = ``np.maximum``/``np.minimum``) by block prefix/suffix scans."""
    size = x.size
    blk = _blocks(x, n)
    m = blk.shape[0]
    pre = op.accumulate(blk, axis=1)
    out = np.empty((m, n))
    out[:, n - 1] = pre[:, n - 1]
    if n > 1:
        out[0, : n - 1] = np.nan
        if m > 1:
            suf = op.accumulate(blk[:-1, :0:-1], axis=1)[:, ::-1]
            out[1:, : n - 1] = op(suf, pre[1:, : n - 1])
    result: FloatArray = out.reshape(-1)[:size]
    return result


def _filter(alpha: float, beta: float, x: FloatArray, start: float) -> FloatArray:
    """``y[i] = beta*y[i-1] + alpha*x[i]`` with ``y[-1] = start`` (scipy lfilter)."""
    y, _ = lfilter(np.array([alpha]), np.array([1.0, -beta]), x, zi=np.array([beta * start]))
    result: FloatArray = y
    return result


def _rsi_values(ag: FloatArray, al: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out: FloatArray = 100.0 - 100.0 / (1.0 + ag / al)
    zero = al == 0.0
    if zero.any():
        out[zero] = np.where(ag[zero] == 0.0, 50.0, 100.0)
    return out


# =========================================================================== vectorized


def sma(x: npt.ArrayLike, n: int) -> FloatArray:
    """Simple moving average over ``n`` bars; NaN if any value in the window is NaN."""
    n = _window(n)
    a = _series(x)
    if a.size == 0:
        return np.empty(0)
    ref, s1, _ = _window_sums(a, n, squares=False)
    out: FloatArray = ref + s1 / n
    return out


def stdev(x: npt.ArrayLike, n: int) -> FloatArray:
    """Population standard deviation over ``n`` bars; NaN if the window holds a NaN."""
    n = _window(n)
    a = _series(x)
    if a.size == 0:
        return np.empty(0)
    _, s1, s2 = _window_sums(a, n, squares=True)
    assert s2 is not None
    var = (s2 - s1 * s1 / n) / n
    out: FloatArray = np.sqrt(np.maximum(var, 0.0))
    return out


def highest(x: npt.ArrayLike, n: int) -> FloatArray:
    """Rolling maximum over ``n`` bars; NaN if the window holds a NaN."""
    n = _window(n)
    a = _series(x)
    if a.size == 0:
        return np.empty(0)
    return _rolling_extreme(a, n, np.maximum)


def lowest(x: npt.ArrayLike, n: int) -> FloatArray:
    """Rolling minimum over ``n`` bars; NaN if the window holds a NaN."""
    n = _window(n)
    a = _series(x)
    if a.size == 0:
        return np.empty(0)
    return _rolling_extreme(a, n, np.minimum)


def ema(x: npt.ArrayLike, n: int) -> FloatArray:
    """Exponential moving average, SMA-seeded; restarts after a NaN."""
    n = _window(n)
    a = _series(x)
    out = np.full(a.size, np.nan)
    alpha = 2.0 / (n + 1)
    beta = 1.0 - alpha
    for s, e in _runs(~np.isnan(a), n):
        seed = _fsum(a[s : s + n].tolist()) / n
        out[s + n - 1] = seed
        if e > s + n:
            out[s + n : e] = _filter(alpha, beta, a[s + n : e], seed)
    return out


def rsi(x: npt.ArrayLike, n: int) -> FloatArray:
    """Wilder's RSI (0..100); restarts after a NaN. First value ``n`` bars into a run."""
    n = _window(n)
    a = _series(x)
    size = a.size
    ag = np.full(size, np.nan)
    al = np.full(size, np.nan)
    runs = _runs(~np.isnan(a), n + 1)
    if runs:
        d = np.diff(a)  # d[i] = a[i+1] - a[i]
        gain = np.maximum(d, 0.0)
        loss = np.maximum(-d, 0.0)
        alpha = 1.0 / n
        beta = (n - 1) / n
        for s, e in runs:
            # gains of bars s+1..s+n are gain[s..s+n-1]
            g0 = _fsum(gain[s : s + n].tolist()) / n
            l0 = _fsum(loss[s : s + n].tolist()) / n
            ag[s + n] = g0
            al[s + n] = l0
            if e > s + n + 1:
                ag[s + n + 1 : e] = _filter(alpha, beta, gain[s + n : e - 1], g0)
                al[s + n + 1 : e] = _filter(alpha, beta, loss[s + n : e - 1], l0)
    return _rsi_values(ag, al)


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int) -> FloatArray:
    """Wilder's average true range; a bar with any NaN of high/low/close restarts it."""
    n = _window(n)
    h = _series(high, "high")
    lo = _series(low, "low")
    c = _series(close, "close")
    size = _same_length(h, lo, c)
    out = np.full(size, np.nan)
    valid = ~(np.isnan(h) | np.isnan(lo) | np.isnan(c))
    runs = _runs(valid, n)
    if not runs:
        return out
    hl = h - lo
    prev_close = np.empty(size)
    prev_close[0] = np.nan
    prev_close[1:] = c[:-1]
    tr = np.maximum(np.maximum(hl, np.abs(h - prev_close)), np.abs(lo - prev_close))
    alpha = 1.0 / n
    beta = (n - 1) / n
    for s, e in runs:
        tr[s] = hl[s]  # no previous close at the start of a run
        seed = _fsum(tr[s : s + n].tolist()) / n
        out[s + n - 1] = seed
        if e > s + n:
            out[s + n : e] = _filter(alpha, beta, tr[s + n : e], seed)
    return out


def change(x: npt.ArrayLike, n: int) -> FloatArray:
    """``x[t]/x[t-n] - 1``; NaN if ``x[t-n]`` is NaN or ``<= 0``, ``x[t]`` is NaN, or on overflow."""
    n = _window(n)
    a = _series(x)
    out = np.full(a.size, np.nan)
    if a.size > n:
        prev = a[:-n]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = a[n:] / prev - 1.0
        out[n:] = np.where((prev > 0.0) & np.isfinite(r), r, np.nan)
    return out


def shift(x: npt.ArrayLike, n: int) -> FloatArray:
    """``x[t-n]`` (history operator); ``n >= 0``."""
    n = _window(n, minimum=0)
    a = _series(x)
    out = np.full(a.size, np.nan)
    if n == 0:
        out[:] = a
    elif a.size > n:
        out[n:] = a[:-n]
    return out


def _pair(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim > 1 or y.ndim > 1:
        raise ValueError("crosses_above/crosses_below take 1-D series or scalars")
    if x.ndim == 0 and y.ndim == 0:
        raise ValueError("crosses_above/crosses_below need at least one series")
    if x.ndim == 1 and y.ndim == 1:
        _same_length(x, y)
    x, y = np.broadcast_arrays(x, y)
    return _series(x, "a"), _series(y, "b")


def _cross(state: FloatArray) -> FloatArray:
    """1.0 where ``state`` goes from 0.0 to 1.0; NaN if either of the two bars is NaN."""
    out = np.empty(state.size)
    if state.size:
        out[0] = np.nan
        out[1:] = state[1:] * (1.0 - state[:-1])
    return out


def crosses_above(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """1.0 where ``a`` moves from ``<= b`` to ``> b`` (tolerant), NaN where undefined."""
    x, y = _pair(a, b)
    return _cross(vgt(x, y))


def crosses_below(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """1.0 where ``a`` moves from ``>= b`` to ``< b`` (tolerant), NaN where undefined."""
    x, y = _pair(a, b)
    return _cross(vlt(x, y))


# =========================================================================== incremental


class SMA:
    """Incremental :func:`sma`: ring buffer + compensated running sum, exact every n bars."""

    __slots__ = ("_buf", "_c", "_i", "_run", "_s", "n")

    def __init__(self, n: int) -> None:
        self.n = _window(n)
        self._buf = [0.0] * self.n
        self._i = 0  # next slot to write
        self._run = 0  # consecutive valid values, capped at n
        self._s = 0.0  # running sum; true sum = _s + _c
        self._c = 0.0

    def _rebase(self) -> float:
        """Exact sum of the buffer as ``_s`` (rounded) + ``_c`` (residual); returns value."""
        buf = self._buf
        s = self._s = _fsum(buf)
        buf.append(-s)
        self._c = _fsum(buf)
        buf.pop()
        return (s + self._c) / self.n

    def update(self, x: float) -> float:
        if not _isfinite(x):
            self._run = 0
            self._i = 0
            return _NAN
        buf = self._buf
        i = self._i
        n = self.n
        if self._run == n:
            old = buf[i]
            buf[i] = x
            i += 1
            if i == n:
                self._i = 0
                return self._rebase()
            self._i = i
            # s += x; s -= old, both error-free (TwoSum), errors collected in c
            s = self._s
            t = s + x
            bp = t - s
            c = self._c + ((s - (t - bp)) + (x - bp))
            u = t - old
            bp = u - t
            c += (t - (u - bp)) - (old + bp)
            self._s = u
            self._c = c
            return (u + c) / n
        buf[i] = x
        i += 1
        self._run += 1
        if i == n:
            self._i = 0
            return self._rebase()
        self._i = i
        return _NAN


class Stdev:
    """Incremental :func:`stdev`: sums of ``x - ref`` and their squares (ref in window)."""

    __slots__ = ("_buf", "_c1", "_c2", "_i", "_ref", "_run", "_s1", "_s2", "n")

    def __init__(self, n: int) -> None:
        self.n = _window(n)
        self._buf = [0.0] * self.n
        self._i = 0
        self._run = 0
        self._ref = 0.0
        self._s1 = self._c1 = self._s2 = self._c2 = 0.0

    def _rebase(self, ref: float) -> float:
        """Exact sums from the buffer relative to ``ref`` (the newest value); returns value."""
        self._ref = ref
        ys = [v - ref for v in self._buf]
        qs = [y * y for y in ys]
        s1 = self._s1 = _fsum(ys)
        s2 = self._s2 = _fsum(qs)
        # keep the residuals: a large sum may shrink later, its rounding error must not stay
        ys.append(-s1)
        qs.append(-s2)
        c1 = self._c1 = _fsum(ys)
        c2 = self._c2 = _fsum(qs)
        n = self.n
        s1 += c1
        var = ((s2 + c2) - s1 * s1 / n) / n
        return math.sqrt(var) if var > 0.0 else 0.0

    def update(self, x: float) -> float:
        if not _isfinite(x):
            self._run = 0
            self._i = 0
            return _NAN
        buf = self._buf
        i = self._i
        n = self.n
        if self._run == n:
            old = buf[i]
            buf[i] = x
            i += 1
            if i == n:
                self._i = 0
                return self._rebase(x)
            self._i = i
            r = self._ref
            yn = x - r
            yo = old - r
            # s1 += yn; s1 -= yo (TwoSum)
            s = self._s1
            t = s + yn
            bp = t - s
            c = self._c1 + ((s - (t - bp)) + (yn - bp))
            u = t - yo
            bp = u - t
            c += (t - (u - bp)) - (yo + bp)
            self._s1 = u
            self._c1 = c
            s1 = u + c
            # s2 += yn*yn; s2 -= yo*yo (TwoSum)
            qn = yn * yn
            qo = yo * yo
            s = self._s2
            t = s + qn
            bp = t - s
            c = self._c2 + ((s - (t - bp)) + (qn - bp))
            u = t - qo
            bp = u - t
            c += (t - (u - bp)) - (qo + bp)
            self._s2 = u
            self._c2 = c
            var = ((u + c) - s1 * s1 / n) / n
            return math.sqrt(var) if var > 0.0 else 0.0
        buf[i] = x
        i += 1
        self._run += 1
        if i == n:
            self._i = 0
            return self._rebase(x)
        self._i = i
        return _NAN


class _Extreme:
    """Incremental rolling extreme in O(1) a bar, touching little memory (van Herk / Gil-Werman).

    The ring buffer is filled in cycles of ``n`` bars. After writing slot ``i`` the window is
    slots ``0..i`` of this cycle, whose extreme is kept as it grows (``_pre``), and slots
    ``i+1..n-1`` of the previous cycle, whose extremes were computed once, from the end, when
    that cycle closed (``_suf``). Of equal values the newest counts (which tells ``0.0`` from
    ``-0.0``): the builtin ``max``/``min`` return their first argument on a tie, so the newer
    value always goes first. A NaN restarts the window at slot 0."""

    __slots__ = ("_best", "_buf", "_i", "_pre", "_run", "_suf", "n")

    def __init__(self, n: int, best: Callable[[float, float], float]) -> None:
        self.n = _window(n)
        self._best = best
        self._buf = [_NAN] * self.n
        self._suf = [_NAN] * (self.n + 1)  # _suf[n]: nothing of the previous cycle
        self._i = 0
        self._pre = _NAN
        self._run = 0

    def update(self, x: float) -> float:
        if not _isfinite(x):
            self._i = 0
            self._pre = _NAN
            self._run = 0
            return _NAN
        i = self._i
        n = self.n
        best = self._best
        self._buf[i] = x
        pre = self._pre = best(x, self._pre)  # (max(x, nan) is x)
        out = best(pre, self._suf[i + 1])
        i += 1
        if i == n:  # the cycle closes: its extremes from each slot to its end, for the next one
            self._suf[:n] = list(accumulate(reversed(self._buf), best))[::-1]
            self._pre = _NAN
            i = 0
        self._i = i
        run = self._run
        if run < n:
            self._run = run = run + 1
            if run < n:
                return _NAN
        return out


class Highest(_Extreme):
    """Incremental :func:`highest`."""

    __slots__ = ()

    def __init__(self, n: int) -> None:
        super().__init__(n, max)


class Lowest(_Extreme):
    """Incremental :func:`lowest`."""

    __slots__ = ()

    def __init__(self, n: int) -> None:
        super().__init__(n, min)


class EMA:
    """Incremental :func:`ema` (restarts after NaN)."""

    __slots__ = ("_alpha", "_beta", "_e", "_warm", "n")

    def __init__(self, n: int) -> None:
        self.n = _window(n)
        self._alpha = 2.0 / (self.n + 1)
        self._beta = 1.0 - self._alpha
        self._warm: list[float] = []
        self._e = _NAN

    def update(self, x: float) -> float:
        if not _isfinite(x):
            self._warm.clear()
            self._e = _NAN
            return _NAN
        e = self._e
        if e == e:
            e = self._e = self._beta * e + self._alpha * x
            return e
        warm = self._warm
        warm.append(x)
        if len(warm) < self.n:
            return _NAN
        e = self._e = _fsum(warm) / self.n
        warm.clear()
        return e


class RSI:
    """Incremental :func:`rsi` (Wilder; restarts after NaN)."""

    __slots__ = ("_ag", "_al", "_alpha", "_beta", "_prev", "_wg", "_wl", "n")

    def __init__(self, n: int) -> None:
        self.n = _window(n)
        self._alpha = 1.0 / self.n
        self._beta = (self.n - 1) / self.n
        self._prev = _NAN
        self._ag = _NAN
        self._al = _NAN
        self._wg: list[float] = []
        self._wl: list[float] = []

    def update(self, x: float) -> float:
        if not _isfinite(x):
            self._prev = self._ag = self._al = _NAN
            self._wg.clear()
            self._wl.clear()
            return _NAN
        p = self._prev
        self._prev = x
        if p != p:
            return _NAN
        d = x - p
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        ag = self._ag
        if ag == ag:
            beta = self._beta
            alpha = self._alpha
            ag = self._ag = beta * ag + alpha * g
            al = self._al = beta * self._al + alpha * lo
        else:
            wg = self._wg
            wg.append(g)
            self._wl.append(lo)
            if len(wg) < self.n:
                return _NAN
            ag = self._ag = _fsum(wg) / self.n
            al = self._al = _fsum(self._wl) / self.n
            wg.clear()
            self._wl.clear()
        if al == 0.0:
            return 50.0 if ag == 0.0 else 100.0
        return 100.0 - 100.0 / (1.0 + ag / al)


class ATR:
    """Incremental :func:`atr`: ``update(high, low, close)`` (restarts after NaN)."""

    __slots__ = ("_alpha", "_atr", "_beta", "_pc", "_warm", "n")

    def __init__(self, n: int) -> None:
        self.n = _window(n)
        self._alpha = 1.0 / self.n
        self._beta = (self.n - 1) / self.n
        self._pc = _NAN
        self._atr = _NAN
        self._warm: list[float] = []

    def update(self, high: float, low: float, close: float) -> float:
        if not (_isfinite(high) and _isfinite(low) and _isfinite(close)):
            self._pc = self._atr = _NAN
            self._warm.clear()
            return _NAN
        tr = high - low
        pc = self._pc
        if pc == pc:
            u = abs(high - pc)
            if u > tr:
                tr = u
            u = abs(low - pc)
            if u > tr:
                tr = u
        self._pc = close
        a = self._atr
        if a == a:
            a = self._atr = self._beta * a + self._alpha * tr
            return a
        warm = self._warm
        warm.append(tr)
        if len(warm) < self.n:
            return _NAN
        a = self._atr = _fsum(warm) / self.n
        warm.clear()
        return a


class Change:
    """Incremental :func:`change`: ring buffer of the last ``n`` inputs."""

    __slots__ = ("_buf", "_i", "n")

    def __init__(self, n: int) -> None:
        self.n = _window(n)
        self._buf = [_NAN] * self.n
        self._i = 0

    def update(self, x: float) -> float:
        if not _isfinite(x):
            x = _NAN
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = x
        i += 1
        self._i = 0 if i == self.n else i
        if old > 0.0:
            r = x / old - 1.0
            if r - r == 0.0:  # finite (a tiny base can overflow the ratio)
                return r
        return _NAN


class Shift:
    """Incremental :func:`shift`: the input of ``n`` bars ago (``n >= 0``)."""

    __slots__ = ("_buf", "_i", "n")

    def __init__(self, n: int) -> None:
        self.n = _window(n, minimum=0)
        self._buf = [_NAN] * self.n
        self._i = 0

    def update(self, x: float) -> float:
        if not _isfinite(x):
            x = _NAN
        if self.n == 0:
            return x
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = x
        i += 1
        self._i = 0 if i == self.n else i
        return old


class CrossesAbove:
    """Incremental :func:`crosses_above`: ``update(a, b)``."""

    __slots__ = ("_prev",)

    def __init__(self) -> None:
        self._prev = _NAN  # previous gt(a, b) as 1.0/0.0, NaN if unavailable

    def update(self, a: float, b: float) -> float:
        if not (_isfinite(a) and _isfinite(b)):
            self._prev = _NAN
            return _NAN
        prev = self._prev
        d = a - b  # numeric.gt(a, b), inlined: a and b are finite here
        if d > REL_TOL * max(a if a > 0.0 else -a, b if b > 0.0 else -b) or d == _INF:
            self._prev = 1.0
            return 1.0 - prev  # 1.0 if prev == 0.0, 0.0 if 1.0, NaN if NaN
        self._prev = 0.0
        return prev * 0.0  # 0.0, or NaN if prev is NaN


class CrossesBelow(CrossesAbove):
    """Incremental :func:`crosses_below`: ``a`` crossing below ``b`` is ``b`` crossing above ``a``.
    (The incremental evaluator calls a :class:`CrossesAbove` with the arguments swapped.)"""

    __slots__ = ()

    def update(self, a: float, b: float) -> float:
        return CrossesAbove.update(self, b, a)


# =========================================================================== registry


class Incremental(Protocol):
    """What every incremental indicator provides: ``update(*inputs) -> float``."""

    @property
    def update(self) -> Callable[..., float]: ...


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """Registry entry for one indicator name."""

    name: str
    vector: Callable[..., FloatArray]
    incremental: Callable[..., Incremental]
    inputs: int
    """Number of series inputs (``atr`` takes 3: high, low, close)."""
    windowed: bool
    """Whether a window length follows the series inputs."""
    min_window: int
    """Smallest legal window (0 for ``shift``, 1 otherwise; 0 when not windowed)."""
    warmup_offset: int
    """Leading NaN bars of a gap-free series = ``window + warmup_offset``."""
    summary: str

    def warmup(self, window: int | None = None) -> int:
        """Bars of a gap-free series before the first defined value."""
        if self.windowed:
            if window is None:
                raise ValueError(f"{self.name} takes a window")
            return _window(window, self.min_window) + self.warmup_offset
        return self.warmup_offset

    def new(self, window: int | None = None) -> Incremental:
        """A fresh incremental instance."""
        if self.windowed:
            if window is None:
                raise ValueError(f"{self.name} takes a window")
            return self.incremental(window)
        if window is not None:
            raise ValueError(f"{self.name} takes no window")
        return self.incremental()


SPECS: dict[str, IndicatorSpec] = {
    s.name: s
    for s in (
        IndicatorSpec("sma", sma, SMA, 1, True, 1, -1, "simple moving average"),
        IndicatorSpec("ema", ema, EMA, 1, True, 1, -1, "exponential moving average"),
        IndicatorSpec("rsi", rsi, RSI, 1, True, 1, 0, "Wilder's relative strength index"),
        IndicatorSpec("atr", atr, ATR, 3, True, 1, -1, "Wilder's average true range"),
        IndicatorSpec("stdev", stdev, Stdev, 1, True, 1, -1, "population standard deviation"),
        IndicatorSpec("highest", highest, Highest, 1, True, 1, -1, "rolling maximum"),
        IndicatorSpec("lowest", lowest, Lowest, 1, True, 1, -1, "rolling minimum"),
        IndicatorSpec("change", change, Change, 1, True, 1, 0, "x[t]/x[t-n] - 1"),
        IndicatorSpec("shift", shift, Shift, 1, True, 0, 0, "value n bars ago"),
        IndicatorSpec("crosses_above", crosses_above, CrossesAbove, 2, False, 0, 1, "a crosses above b"),
        IndicatorSpec("crosses_below", crosses_below, CrossesBelow, 2, False, 0, 1, "a crosses below b"),
    )
}

VECTOR: dict[str, Callable[..., FloatArray]] = {k: s.vector for k, s in SPECS.items()}
INCREMENTAL: dict[str, Callable[..., Incremental]] = {k: s.incremental for k, s in SPECS.items()}
ARITY: dict[str, int] = {k: s.inputs for k, s in SPECS.items()}
WINDOWED: dict[str, bool] = {k: s.windowed for k, s in SPECS.items()}
