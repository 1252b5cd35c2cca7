"""Shared helpers of the adapter tests (imported by conftest and the test modules)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from emulator_markets import BTC, CLIENT_TIMEOUT_MS, ETH  # noqa: F401  (re-exported)
from policyctl.exchanges.ratelimit import RateLimit, RateLimiter
from policyctl.exchanges.retry import RetryPolicy

HOLD_S = 1.0  # how long a "timeout" fault holds the response (> the client timeout)
RNG_SEED = 7



@dataclass
class FakeTime:
    """A monotonic clock that only moves when something sleeps; every sleep is recorded."""

    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_retry(clock: FakeTime, **overrides: float) -> RetryPolicy:
    settings: dict[str, float] = {"max_attempts": 5, "base_delay": 0.5, "max_delay": 4.0, "max_total": 30.0}
    settings.update(overrides)
    return RetryPolicy(
        max_attempts=int(settings["max_attempts"]),
        base_delay=settings["base_delay"],
        max_delay=settings["max_delay"],
        max_total=settings["max_total"],
        sleep=clock.sleep,
        clock=clock.monotonic,
        rng=random.Random(RNG_SEED),
    )


def roomy_limiter(clock: FakeTime) -> RateLimiter:
    """Generous buckets on a fake clock: accounting still happens, nobody waits for real."""
    big = RateLimit(rate=1000.0, burst=1000.0)
    return RateLimiter(
        {"market_data": big, "account": big, "orders": big}, clock=clock.monotonic, sleep=clock.sleep
    )
