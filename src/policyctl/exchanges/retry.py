"""Retrying Transient failures: exponential backoff with full jitter, bounded twice.

Before retry ``n`` (``n = 1`` for the first retry) the policy sleeps a delay drawn
uniformly from ``[0, min(max_delay, base_delay * 2 ** (n - 1))]`` ("full jitter": clients
that failed together do not come back together). A ``retry_after`` the server sent is a
floor: the delay is never shorter than it.

Two bounds stop the retries, whichever comes first: ``max_attempts`` calls in all, and
``max_total`` seconds from the first call (a retry whose sleep would end past that budget is
not made). Then the last Transient is raised as it was. Only :class:`Transient` is retried;
Ambiguous, Rejected and NeedsHuman pass straight through, as does anything that is not an
:class:`AdapterError`.

Time is injected: ``sleep`` and ``clock`` (a monotonic clock in seconds, default
:func:`policyctl.clock.monotonic`) and ``rng`` (a ``random.Random``), so tests can record
delays without waiting.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from policyctl import clock as _clock
from policyctl.exchanges.adapter import Transient

T = TypeVar("T")

RetryHook = Callable[[Transient, int, float], None]  # (error, retry number, delay)


_NEVER_SET = threading.Event()


def real_sleep(seconds: float) -> None:
    """Block the calling thread for ``seconds`` (without touching the wall clock)."""
    if seconds > 0:
        _NEVER_SET.wait(seconds)


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_total: float = 30.0
    sleep: Callable[[float], None] = real_sleep
    clock: Callable[[], float] = _clock.monotonic
    rng: random.Random = field(default_factory=random.Random)
    on_retry: RetryHook | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_total < 0:
            raise ValueError("delays and the time budget must not be negative")

    def backoff_cap(self, retry: int) -> float:
        """The upper bound of the jittered delay before retry number ``retry`` (1-based)."""
        return min(self.max_delay, self.base_delay * (2 ** (retry - 1)))

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """The sleep before retry ``retry``: full jitter, floored at ``retry_after``."""
        jittered = self.rng.uniform(0.0, self.backoff_cap(retry))
        if retry_after is not None and retry_after > jittered:
            return float(retry_after)
        return jittered

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried on :class:`Transient` within the attempt and time bounds."""
        start = self.clock()
        attempt = 1
        while True:
            try:
                return fn()
            except Transient as err:
                if attempt >= self.max_attempts:
                    raise
                wait = self.delay(attempt, err.retry_after)
                if self.clock() - start + wait > self.max_total:
                    raise
                if self.on_retry is not None:
                    self.on_retry(err, attempt, wait)
                self.sleep(wait)
                attempt += 1


NO_RETRY = RetryPolicy(max_attempts=1)
