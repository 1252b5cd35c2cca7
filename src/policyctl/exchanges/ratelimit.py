"""Token buckets per endpoint class, so the adapter never outruns the exchange's limits.

Three classes, each with its own :class:`RateLimit` (``rate`` tokens a second, at most
``burst`` saved up): ``market_data`` (time, markets, candles, tickers), ``account``
(balances, own trades) and ``orders`` (place, cancel, query, open orders).

:meth:`RateLimiter.acquire` takes the tokens at once, even into debt, and then sleeps until
the debt is paid off: concurrent callers queue up in arrival order, and over any window the
tokens handed out never exceed ``burst + rate * window``. The bucket arithmetic runs under
one lock; the sleeping happens outside it. ``clock`` (monotonic seconds) and ``sleep`` are
injectable, so tests check the accounting without waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from policyctl import clock as _clock
from policyctl.exchanges.retry import real_sleep

ENDPOINT_CLASSES: tuple[str, ...] = ("market_data", "account", "orders")


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate: float  # tokens per second
    burst: float  # bucket capacity

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")


# Conservative against Binance spot (6000 weight a minute, 50 orders per 10 s).
DEFAULT_LIMITS: dict[str, RateLimit] = {
    "market_data": RateLimit(rate=10.0, burst=20.0),
    "account": RateLimit(rate=2.0, burst=5.0),
    "orders": RateLimit(rate=4.0, burst=8.0),
}


class _Bucket:
    __slots__ = ("granted", "level", "limit", "stamp", "waited")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.level = limit.burst  # may go negative: tokens owed by queued callers
        self.stamp = now
        self.granted = 0.0
        self.waited = 0.0

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.limit.burst, self.level + (now - self.stamp) * self.limit.rate)
            self.stamp = now


class RateLimiter:
    def __init__(
        self,
        limits: Mapping[str, RateLimit] | None = None,
        *,
        clock: Callable[[], float] = _clock.monotonic,
        sleep: Callable[[float], None] = real_sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        merged = {**DEFAULT_LIMITS, **(limits or {})}
        self._buckets = {name: _Bucket(limit, now) for name, limit in merged.items()}

    def reserve(self, endpoint: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens now; return the seconds the caller must wait before sending."""
        if cost <= 0:
            return 0.0
        with self._lock:
            bucket = self._bucket(endpoint)
            if cost > bucket.limit.burst:
                raise ValueError(f"a cost of {cost} exceeds the {endpoint} burst of {bucket.limit.burst}")
            bucket.refill(self._clock())
            bucket.level -= cost
            bucket.granted += cost
            wait = max(0.0, -bucket.level / bucket.limit.rate)
            bucket.waited += wait
            return wait

    def acquire(self, endpoint: str, cost: float = 1.0) -> float:
        """Block until ``cost`` tokens of ``endpoint`` are ours; returns the seconds waited."""
        wait = self.reserve(endpoint, cost)
        if wait > 0:
            self._sleep(wait)
        return wait

    def try_acquire(self, endpoint: str, cost: float = 1.0) -> bool:
        """Take the tokens only if they are there now (never into debt)."""
        with self._lock:
            bucket = self._bucket(endpoint)
            bucket.refill(self._clock())
            if bucket.level < cost:
                return False
            bucket.level -= cost
            bucket.granted += cost
            return True

    def available(self, endpoint: str) -> float:
        """Tokens in the bucket now (negative while callers are queued)."""
        with self._lock:
            bucket = self._bucket(endpoint)
            bucket.refill(self._clock())
            return bucket.level

    def granted(self, endpoint: str) -> float:
        """Tokens handed out since the start (for metrics and tests)."""
        with self._lock:
            return self._bucket(endpoint).granted

    def limit(self, endpoint: str) -> RateLimit:
        return self._bucket(endpoint).limit

    def _bucket(self, endpoint: str) -> _Bucket:
        try:
            return self._buckets[endpoint]
        except KeyError:
            raise KeyError(f"unknown endpoint class {endpoint!r}; known: {sorted(self._buckets)}") from None
