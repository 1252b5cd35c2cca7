"""The compiled incremental indicators against their own source, bit for bit.

``setup.py`` compiles ``policyctl.rules.streaming`` with mypyc. The extension must be the
source's arithmetic, operation for operation: here both run side by side over the same inputs
(NaN and infinity restarts, signed zeros, ties, plateaus, huge and tiny magnitudes) and every
output must have the same bits. With a pure-Python install there is nothing to compare, and the
tests say so (skipped); ``.ci/run`` checks that its install is compiled.
"""

from __future__ import annotations

import importlib.util
import math
import random
import struct
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from policyctl.rules import indicators, streaming

COMPILED = not (streaming.__file__ or "").endswith(".py")
needs_build = pytest.mark.skipif(not COMPILED, reason="pure-Python install: no compiled indicators to compare")
SOURCE = Path(indicators.__file__).with_name("streaming.py")


def _source_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("policyctl_test_streaming_source", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _bits(x: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", x))[0])


def _series(rng: random.Random, length: int) -> list[float]:
    """Prices that wander, with the values that break indicators mixed in."""
    out: list[float] = []
    x = rng.choice([100.0, 0.5, 3e4, 1e-6])
    for _ in range(length):
        r = rng.random()
        if r < 0.03:
            out.append(rng.choice([math.nan, math.inf, -math.inf]))
        elif r < 0.06:
            out.append(rng.choice([0.0, -0.0]))
        elif r < 0.25 and out:
            out.append(out[-1])  # a plateau: ties
        else:
            x *= math.exp(rng.gauss(0.0, 0.01))
            out.append(round(x, rng.choice([2, 4, 8, 12])))
    return out


UNARY = ["SMA", "Stdev", "Highest", "Lowest", "EMA", "RSI", "Change", "Shift"]


@needs_build
@pytest.mark.parametrize("name", UNARY)
def test_compiled_unary_indicators_match_the_source(name: str) -> None:
    src = _source_module()
    rng = random.Random(f"native-{name}")
    for _ in range(30):
        n = rng.choice([0, 1, 2, 3, 5, 14, 50]) if name == "Shift" else rng.choice([1, 2, 3, 5, 14, 50])
        xs = _series(rng, rng.randint(1, 400))
        compiled: Callable[[float], float] = getattr(streaming, name)(n).update
        pure: Callable[[float], float] = getattr(src, name)(n).update
        got = [_bits(compiled(x)) for x in xs]
        want = [_bits(pure(x)) for x in xs]
        assert got == want, (name, n)


@needs_build
def test_compiled_atr_matches_the_source() -> None:
    src = _source_module()
    rng = random.Random("native-atr")
    for _ in range(30):
        n = rng.choice([1, 2, 5, 14])
        closes = _series(rng, 300)
        bars = [(c * 1.01, c * 0.99, c) if rng.random() > 0.02 else (math.nan, c, c) for c in closes]
        a, b = streaming.ATR(n), src.ATR(n)
        assert [_bits(a.update(*bar)) for bar in bars] == [_bits(b.update(*bar)) for bar in bars]


@needs_build
@pytest.mark.parametrize("name", ["CrossesAbove", "CrossesBelow"])
def test_compiled_crossings_match_the_source(name: str) -> None:
    src = _source_module()
    rng = random.Random(f"native-{name}")
    for _ in range(30):
        xs, ys = _series(rng, 300), _series(rng, 300)
        ys = [y if rng.random() > 0.3 else x for x, y in zip(xs, ys, strict=True)]  # equal often
        a, b = getattr(streaming, name)(), getattr(src, name)()
        assert ([_bits(a.update(x, y)) for x, y in zip(xs, ys, strict=True)]
                == [_bits(b.update(x, y)) for x, y in zip(xs, ys, strict=True)])


@needs_build
def test_compiled_windows_are_checked_like_the_source() -> None:
    src = _source_module()
    for bad, error in ((2.5, TypeError), (True, TypeError), ("3", TypeError), (0, ValueError), (-1, ValueError)):
        with pytest.raises(error):
            src.SMA(bad)
        with pytest.raises(error):
            streaming.SMA(bad)
    assert streaming.SMA(3).n == src.SMA(3).n == 3
    assert streaming.Shift(0).update(7.0) == 7.0


@needs_build
def test_a_stale_build_runs_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """An extension compiled from other text than the source beside it is not used."""
    real = importlib.import_module

    class Stamp:
        SOURCE_SHA256 = "0" * 64

    def fake(name: str, package: str | None = None) -> object:
        return Stamp if name.endswith("_streaming_stamp") else real(name, package)

    monkeypatch.setattr(importlib, "import_module", fake)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = indicators._streaming()
    assert module.__file__ == str(SOURCE)
    assert any("compiled from another version" in str(w.message) for w in caught)
    assert module.SMA(2).update(1.0) != module.SMA(2).update(1.0)  # NaN while warming up: it runs


@needs_build
def test_the_current_build_is_used() -> None:
    assert indicators._streaming() is streaming
    assert indicators.SMA is streaming.SMA
