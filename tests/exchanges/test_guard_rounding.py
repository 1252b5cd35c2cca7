"""The guard's grid arithmetic: the fast paths give what the decimal definitions give."""

from __future__ import annotations

import math
import random
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.exchanges.guard import _fmt, _places, _round

INCREMENTS = [1e-8, 1e-5, 0.001, 0.01, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 100.0, 3e-7, 0.0005, 1e-18,
              0.123456789, 7.3, 0.3, 1e-12, 2.5e-6]


def decimal_round(x: float, inc: float, mode: str) -> float:
    """The definition: ``x`` and ``inc`` as the decimals they print as, rounded on the grid."""
    if inc <= 0:
        return x
    q = Decimal(repr(inc))
    return float((Decimal(repr(x)) / q).to_integral_value(rounding=mode) * q)


def decimal_fmt(x: float, inc: float) -> str:
    d = Decimal(repr(x))
    if inc > 0:
        d = d.quantize(_places(inc), rounding=ROUND_HALF_EVEN)
    return format(d.normalize(), "f")


def _samples(inc: float, rng: random.Random) -> list[float]:
    """Values around the grid: on it (as decimals and as floats), one ulp off, and anywhere."""
    out: list[float] = []
    for _ in range(300):
        k = rng.choice([rng.randint(0, 50), rng.randint(0, 10**6), rng.randint(0, 10**12)])
        on = float(Decimal(k) * Decimal(repr(inc)))
        out += [on, k * inc, math.nextafter(on, math.inf), math.nextafter(on, -math.inf),
                on + inc * rng.random(), rng.uniform(0, 1e4) * rng.choice([1e-9, 1e-3, 1.0, 1e3])]
    return [x for x in out if math.isfinite(x)]


@pytest.mark.parametrize("inc", INCREMENTS)
def test_round_and_fmt_match_their_decimal_definitions(inc: float) -> None:
    rng = random.Random(repr(inc))
    for x in _samples(inc, rng):
        for mode in (ROUND_FLOOR, ROUND_CEILING):
            got, want = _round(x, inc, mode), decimal_round(x, inc, mode)
            assert got == want, (x, inc, mode)
            assert _fmt(got, inc) == decimal_fmt(got, inc), (got, inc)
        assert _fmt(x, inc) == decimal_fmt(x, inc), (x, inc)  # off the grid too: rounded half-even


@settings(max_examples=500, deadline=None)
@given(x=st.floats(0, 1e8, allow_nan=False, exclude_min=True), inc=st.sampled_from(INCREMENTS),
       floor=st.booleans())
def test_round_property(x: float, inc: float, floor: bool) -> None:
    mode = ROUND_FLOOR if floor else ROUND_CEILING
    got = _round(x, inc, mode)
    assert got == decimal_round(x, inc, mode)
    assert _fmt(got, inc) == decimal_fmt(got, inc)


def test_without_a_grid() -> None:
    for x in (0.1, 1e-7, 123.456, 1e20, 5.0, 0.0):
        assert _round(x, 0.0, ROUND_FLOOR) == x
        assert _fmt(x, 0.0) == decimal_fmt(x, 0.0)
