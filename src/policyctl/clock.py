"""The one place that reads the wall clock.

Everything else takes time as an argument: the engine reads ``snapshot.now``, the
simulator takes it from the bars it replays, and the live runtime uses a :class:`SourceClock`
(the exchange's time, with the wall clock as fallback). Measuring durations (benchmarks,
latency metrics) uses ``monotonic`` from here too, so a grep for clock reads finds this file alone.
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
    decisions share one clock, also against an emulator replaying old data. While the
    source fails, time goes on from its last answer at the pace of the monotonic clock (the
    wall clock can be years away from an emulator's time); before any answer, the fallback
    clock is used."""

    def __init__(self, source: Callable[[], int], fallback: Clock | None = None):
        self._source = source
        self._fallback = fallback or WallClock()
        self._last: tuple[int, float] | None = None  # (source ms, monotonic s) of the last answer

    def now_ms(self) -> int:
        try:
            ms = int(self._source())
        except Exception:  # the exchange is unreachable: extrapolate from its last answer
            if self._last is None:
                return self._fallback.now_ms()
            ms0, t0 = self._last
            return ms0 + int((monotonic() - t0) * 1000)
        self._last = (ms, monotonic())
        return ms

