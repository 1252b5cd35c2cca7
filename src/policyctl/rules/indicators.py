"""Indicator library: every indicator in two modes that agree.

*Vectorized* functions (``sma(x, n)``, ...) evaluate a whole series at once with numpy/scipy;
the simulator uses them over up to millions of bars. *Incremental* classes (``SMA(n)``, ...,
defined in :mod:`policyctl.rules.streaming`, which the build compiles) consume one bar per
``update()`` call in O(1) amortized; the live runtime uses them. For the same input both
modes return the same values up to ~1e-14 relative (the test suite checks 1e-9 over real
candles, gaps and random data), and exact ties (e.g. two SMAs of tick-grid prices that are
equal in decimal arithmetic) stay ties in both modes, so tolerant comparisons
(:mod:`policyctl.rules.numeric`) reach the same decision.

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

import hashlib
import importlib
import importlib.util
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from policyctl.rules.numeric import vgt, vlt

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


def _streaming() -> ModuleType:
    """:mod:`policyctl.rules.streaming` as built (a C extension, see ``setup.py``), or its
    source when the extension was compiled from other text than the source beside it."""
    from policyctl.rules import streaming

    path = Path(streaming.__file__ or "")
    if path.suffix == ".py":
        return streaming  # not compiled: the source itself
    source = path.with_name("streaming.py")
    try:
        stamp = importlib.import_module("policyctl.rules._streaming_stamp")  # written by setup.py
        current = hashlib.sha256(source.read_bytes()).hexdigest() == stamp.SOURCE_SHA256
    except (ImportError, OSError):
        current = False
    if current or not source.is_file():
        return streaming
    warnings.warn(f"{path.name} was compiled from another version of {source}: running the source "
                  "(reinstall to compile it again)", RuntimeWarning, stacklevel=2)
    spec = importlib.util.spec_from_file_location("policyctl.rules._streaming_source", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from policyctl.rules.streaming import (
        ATR,
        EMA,
        RSI,
        SMA,
        Change,
        CrossesAbove,
        CrossesBelow,
        Highest,
        Lowest,
        Shift,
        Stdev,
        _window,
    )
else:
    _inc = _streaming()
    SMA, Stdev, Highest, Lowest = _inc.SMA, _inc.Stdev, _inc.Highest, _inc.Lowest
    EMA, RSI, ATR, Change, Shift = _inc.EMA, _inc.RSI, _inc.ATR, _inc.Change, _inc.Shift
    CrossesAbove, CrossesBelow, _window = _inc.CrossesAbove, _inc.CrossesBelow, _inc._window

_NAN = math.nan
_INF = math.inf
_isfinite = math.isfinite
_fsum = math.fsum


# =========================================================================== helpers


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
