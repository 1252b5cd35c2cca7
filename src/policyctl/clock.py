"""The one place that reads the wall clock.

Everything else takes time as an argument: the engine reads ``snapshot.now``, the
simulator runs on a :class:`SimulatedClock`, and the live runtime injects a
:class:`WallClock`. Measuring durations (benchmarks, latency metrics) uses ``monotonic``
from here too, so a grep for clock reads finds this file alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


def wall_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


def monotonic() -> float:
    """Seconds from an arbitrary origin, never going backwards: for measuring durations."""
    return time.monotonic()


class Clock(Protocol):
    def now_ms(self) -> int: ...


class WallClock:
    def now_ms(self) -> int:
        return wall_ms()


class SourceClock:
    """Time read from a source (an exchange's clock), falling back to the wall clock.

    The live runtime stamps decisions with the exchange's time, so candles, quotes and
    decisions share one clock, also against an emulator replaying old data."""

    def __init__(self, source: Callable[[], int], fallback: Clock | None = None):
        self._source = source
        self._fallback = fallback or WallClock()

    def now_ms(self) -> int:
        try:
            return int(self._source())
        except Exception:  # the exchange is unreachable: the wall clock is the best we have
            return self._fallback.now_ms()


class SimulatedClock:
    """A clock that moves only when told to: the simulator's and the tests' clock."""

    def __init__(self, start_ms: int = 0):
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        if ms < self._now:
            raise ValueError("a simulated clock never goes backwards")
        self._now = ms

    def advance(self, ms: int) -> None:
        self.set(self._now + ms)
