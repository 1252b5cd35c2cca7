"""Scalar semantics of every pure operator, shared by constant folding and the evaluators.

Values are floats. Booleans are ``1.0`` / ``0.0``. ``NaN`` means *unavailable* (missing or
stale input, division by zero); an infinity (an overflow) is unavailable too: comparing one
gives unavailable. Unavailable propagates through arithmetic and comparisons, and the
logical operators follow Kleene's three-valued logic, so ``unavailable and false`` is false
but ``not unavailable`` is still unavailable. The engine fails closed on an unavailable
result: a trigger fires only on a definite true, and a breaker, cap or guard that cannot be
evaluated blocks.

Comparisons are tolerant (``rules.numeric``): values within 1e-12 relative compare equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from policyctl.rules.numeric import REL_TOL

NAN = math.nan


def _tol(a: float, b: float) -> float:
    return REL_TOL * max(abs(a), abs(b))


def _bad(a: float, b: float) -> bool:
    """NaN or infinite: ``x - x`` is 0.0 for every finite ``x`` and NaN otherwise."""
    return a - a != 0.0 or b - b != 0.0


def gt(a: float, b: float) -> float:
    if _bad(a, b):
        return NAN
    return 1.0 if a - b > _tol(a, b) else 0.0


def lt(a: float, b: float) -> float:
    return gt(b, a)


def ge(a: float, b: float) -> float:
    r = gt(b, a)
    return r if r != r else 1.0 - r


def le(a: float, b: float) -> float:
    r = gt(a, b)
    return r if r != r else 1.0 - r


def eq(a: float, b: float) -> float:
    if _bad(a, b):
        return NAN
    return 1.0 if abs(a - b) <= _tol(a, b) else 0.0


def ne(a: float, b: float) -> float:
    r = eq(a, b)
    return r if r != r else 1.0 - r


def and_(a: float, b: float) -> float:
    if a == 0.0 or b == 0.0:
        return 0.0
    if a != a or b != b:
        return NAN
    return 1.0


def or_(a: float, b: float) -> float:
    if a == 1.0 or b == 1.0:
        return 1.0
    if a != a or b != b:
        return NAN
    return 0.0


def not_(a: float) -> float:
    return a if a != a else 1.0 - a


def div(a: float, b: float) -> float:
    if b == 0.0 or b != b or a != a:
        return NAN
    r = a / b
    return r if math.isfinite(r) else NAN


def _nan_if_any(xs: tuple[float, ...]) -> bool:
    return any(x != x for x in xs)


def min_(*xs: float) -> float:
    return NAN if _nan_if_any(xs) else min(xs)


def max_(*xs: float) -> float:
    return NAN if _nan_if_any(xs) else max(xs)


def clamp(x: float, lo: float, hi: float) -> float:
    if x != x or lo != lo or hi != hi:
        return NAN
    return min(max(x, lo), hi)


def any_(xs: list[float]) -> float:
    if any(x == 1.0 for x in xs):
        return 1.0
    if any(x != x for x in xs):
        return NAN
    return 0.0


def all_(xs: list[float]) -> float:
    if any(x == 0.0 for x in xs):
        return 0.0
    if any(x != x for x in xs):
        return NAN
    return 1.0


def _finite(x: float) -> float:
    return x if math.isfinite(x) else NAN


PURE: dict[str, Callable[..., float]] = {
    "add": lambda a, b: _finite(a + b),
    "sub": lambda a, b: _finite(a - b),
    "mul": lambda a, b: _finite(a * b),
    "div": div,
    "neg": lambda a: -a,
    "abs": abs,
    "min": min_,
    "max": max_,
    "clamp": clamp,
    "gt": gt,
    "ge": ge,
    "lt": lt,
    "le": le,
    "eq": eq,
    "ne": ne,
    "and": and_,
    "or": or_,
    "not": not_,
}

BINARY_OPS = {
    "+": "add", "-": "sub", "*": "mul", "/": "div",
    ">": "gt", ">=": "ge", "<": "lt", "<=": "le", "==": "eq", "!=": "ne",
    "and": "and", "or": "or",
}
SYMBOLS = {v: k for k, v in BINARY_OPS.items()}
COMPARISONS = frozenset({"gt", "ge", "lt", "le", "eq", "ne"})
