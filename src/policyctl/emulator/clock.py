"""Clocks for the exchange emulator.

The emulator has one notion of "exchange time" (``serverTime``, ``transactTime``, ticker
``closeTime``, kline times): an injectable :class:`Clock`.  Tests use :class:`ManualClock`
(the default), a counter they move by hand or by replaying candles; humans and live-like
runs use :class:`SystemClock`, the wall clock plus an offset a test can still push forward.

:func:`wall_clock_ms` is the only place in the emulator that reads the wall clock.  Besides
``SystemClock`` it serves the signed-request ``timestamp``/``recvWindow`` check, which is a
transport property: ccxt stamps requests with the host's wall clock, and emulator and client
share that host, so the check works whatever exchange time the test has set.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from policyctl.clock import wall_ms

# 2024-01-01T00:00:00Z: a fixed, readable start for tests that do not care about the date.
DEFAULT_START_MS = 1_704_067_200_000


def wall_clock_ms() -> int:
    """Milliseconds since the epoch from the host's wall clock (read in ``policyctl.clock``)."""
    return wall_ms()


@runtime_checkable
class Clock(Protocol):
    """Exchange time in epoch milliseconds."""

    def now_ms(self) -> int: ...

    def advance(self, ms: int) -> None: ...


@runtime_checkable
class SettableClock(Clock, Protocol):
    """A clock that candle replay may move to a bar's close time."""

    def set_ms(self, ms: int) -> None: ...


class ManualClock:
    """A monotonic counter the test controls; it never moves by itself."""

    def __init__(self, start_ms: int = DEFAULT_START_MS) -> None:
        self._now = int(start_ms)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a manual clock only moves forward")
        with self._lock:
            self._now += int(ms)

    def set_ms(self, ms: int) -> None:
        """Move to ``ms``; moving backwards is refused (exchange time is monotonic)."""
        with self._lock:
            if ms < self._now:
                raise ValueError(f"clock would go back from {self._now} to {ms}")
            self._now = int(ms)


class SystemClock:
    """Wall-clock time plus an offset; ``advance`` pushes the offset forward."""

    def __init__(self, offset_ms: int = 0) -> None:
        self._offset = int(offset_ms)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return wall_clock_ms() + self._offset

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += int(ms)
