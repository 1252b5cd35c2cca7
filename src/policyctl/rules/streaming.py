"""The incremental indicators: one bar per ``update()`` call, O(1) amortized.

These are the classes the live runtime advances on every tick (:mod:`policyctl.rules.indicators`
documents what each computes and how both modes agree). This module is plain Python that
imports nothing but the standard library and :mod:`policyctl.rules.numeric`, so that the
build compiles it to a C extension with mypyc when a C compiler is at hand (see ``setup.py``);
the compiled classes store their float state unboxed and run the same arithmetic, operation for
operation, so both builds give the same bits (``tests/test_streaming_native.py``). Without a
compiler, or with ``POLICYCTL_PURE_PYTHON=1`` at install time, this source runs as it is.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from itertools import accumulate
from typing import SupportsIndex

from policyctl.rules.numeric import REL_TOL

_NAN = math.nan
_INF = math.inf
_isfinite = math.isfinite
_fsum = math.fsum


def _window(n: SupportsIndex, minimum: int = 1) -> int:
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



class SMA:
    """Incremental :func:`sma`: ring buffer + compensated running sum, exact every n bars."""

    __slots__ = ("_buf", "_c", "_i", "_run", "_s", "n")

    def __init__(self, n: SupportsIndex) -> None:
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

    def __init__(self, n: SupportsIndex) -> None:
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

    def __init__(self, n: SupportsIndex, best: Callable[[float, float], float]) -> None:
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

    def __init__(self, n: SupportsIndex) -> None:
        super().__init__(n, max)


class Lowest(_Extreme):
    """Incremental :func:`lowest`."""

    __slots__ = ()

    def __init__(self, n: SupportsIndex) -> None:
        super().__init__(n, min)


class EMA:
    """Incremental :func:`ema` (restarts after NaN)."""

    __slots__ = ("_alpha", "_beta", "_e", "_warm", "n")

    def __init__(self, n: SupportsIndex) -> None:
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

    def __init__(self, n: SupportsIndex) -> None:
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

    def __init__(self, n: SupportsIndex) -> None:
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

    def __init__(self, n: SupportsIndex) -> None:
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

    def __init__(self, n: SupportsIndex) -> None:
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
