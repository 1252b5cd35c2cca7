"""Tolerant float comparisons: the comparison contract of the whole engine.

Policy decisions must never be flipped by float noise. Two moving averages of prices on a
tick grid can be exactly equal in decimal arithmetic and still differ by an ulp or two in
binary floating point, depending on the order of the additions. Every comparison the engine
makes between computed values therefore goes through this module.

Semantics (``REL_TOL = 1e-12``):

* ``gt(a, b)`` is true iff ``a - b > REL_TOL * max(|a|, |b|)``: ``a`` must exceed ``b`` by
  more than one part in 10**12 of the larger magnitude. Values closer than that compare
  *equal*: ``eq(a, b)`` is ``not gt(a, b) and not lt(a, b)``.
* ``lt(a, b) = gt(b, a)``, ``ge = not lt``, ``le = not gt``, ``ne = gt or lt``. The
  relation is symmetric, so exactly one of ``lt``, ``eq``, ``gt`` holds for any pair.
* The tolerance is purely relative: ``0.0`` equals only ``0.0`` (and ``-0.0``), and
  ``1e-300 > 0.0``. Series that hover around zero (returns, differences) are compared
  exactly near zero; the tolerance only absorbs rounding noise, which is relative.
* The scalar functions order infinities naturally (``inf > 1e308``); the policy engine never
  lets them decide, though: the vectorized functions (and the engine's evaluators, see
  ``rules.ops``) treat any non-finite input as *unavailable*.
* ``eq`` is not transitive (``a == b`` and ``b == c`` need not give ``a == c``); it is an
  "indistinguishable up to rounding" relation, not an equivalence.

The scalar functions assume non-NaN inputs; callers handle NaN (unavailable data)
separately. With a NaN argument they return an unspecified boolean.

The vectorized functions (``vgt``, ``vlt``, ``vge``, ``vle``, ``veq``, ``vne``) broadcast
their arguments and return float64 arrays holding ``1.0`` (true), ``0.0`` (false), or NaN
where either input is NaN or infinite. Scalar and vectorized forms evaluate the same IEEE-754 double
operations, so they reach the same decision for the same pair of values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "REL_TOL",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ne",
    "veq",
    "vge",
    "vgt",
    "vle",
    "vlt",
    "vne",
]

REL_TOL = 1e-12
"""Relative tolerance below which two values compare equal."""

_INF = float("inf")

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- scalar


def gt(a: float, b: float) -> bool:
    """``a > b`` by more than ``REL_TOL`` relative (inputs assumed non-NaN)."""
    d = a - b
    # ``d == inf`` only matters for infinite operands (or overflowing differences), where
    # the tolerance itself is infinite.
    return d > REL_TOL * max(abs(a), abs(b)) or d == _INF


def lt(a: float, b: float) -> bool:
    """``a < b`` by more than ``REL_TOL`` relative (inputs assumed non-NaN)."""
    return gt(b, a)


def ge(a: float, b: float) -> bool:
    """``not lt(a, b)`` (inputs assumed non-NaN)."""
    return not gt(b, a)


def le(a: float, b: float) -> bool:
    """``not gt(a, b)`` (inputs assumed non-NaN)."""
    return not gt(a, b)


def eq(a: float, b: float) -> bool:
    """Neither ``gt`` nor ``lt``: equal up to ``REL_TOL`` (inputs assumed non-NaN)."""
    return not gt(a, b) and not gt(b, a)


def ne(a: float, b: float) -> bool:
    """``gt`` or ``lt`` (inputs assumed non-NaN)."""
    return gt(a, b) or gt(b, a)


# --------------------------------------------------------------------------- vectorized


def _diff_tol(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``a - b`` and the tolerance. ``b - a`` is exactly ``-(a - b)``, so ``lt(a, b)`` is
    ``d < -tol``. The tolerance is finite exactly where both inputs are (NaN or an infinity
    makes it NaN or infinite), and only there is the result a decision: see :func:`_finish`.
    (An overflowing difference of finite inputs is infinite and beats any finite tolerance.)"""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return x - y, REL_TOL * np.maximum(np.abs(x), np.abs(y))


def _finish(res: npt.NDArray[np.bool_], tol: FloatArray) -> FloatArray:
    """The policy engine treats a non-finite value (NaN, or an infinity from an overflow) as
    unavailable: any comparison with one is unavailable too."""
    out: FloatArray = np.where(np.isfinite(tol), res, np.nan)
    return out


def vgt(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Element-wise :func:`gt`: 1.0 / 0.0, NaN where either input is NaN."""
    d, tol = _diff_tol(a, b)
    return _finish(d > tol, tol)


def vlt(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Element-wise :func:`lt`: 1.0 / 0.0, NaN where either input is NaN."""
    d, tol = _diff_tol(a, b)
    return _finish(d < -tol, tol)


def vge(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Element-wise :func:`ge`: 1.0 / 0.0, NaN where either input is NaN."""
    d, tol = _diff_tol(a, b)
    return _finish(d >= -tol, tol)


def vle(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Element-wise :func:`le`: 1.0 / 0.0, NaN where either input is NaN."""
    d, tol = _diff_tol(a, b)
    return _finish(d <= tol, tol)


def veq(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Element-wise :func:`eq`: 1.0 / 0.0, NaN where either input is NaN."""
    d, tol = _diff_tol(a, b)
    return _finish((d <= tol) & (d >= -tol), tol)


def vne(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Element-wise :func:`ne`: 1.0 / 0.0, NaN where either input is NaN."""
    d, tol = _diff_tol(a, b)
    return _finish((d > tol) | (d < -tol), tol)
