"""Shared helpers of the adapter tests (imported by conftest and the test modules)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from policyctl.emulator import MarketSpec
from policyctl.exchanges.ratelimit import RateLimit, RateLimiter
from policyctl.exchanges.retry import RetryPolicy

# Short client timeout: a held (timeout) request costs well under a second.
CLIENT_TIMEOUT_MS = 400
HOLD_S = 1.0  # how long a "timeout" fault holds the response (> the client timeout)
RNG_SEED = 7

BTC = MarketSpec.create(
    "BTC/USDT",
    tick_size="0.01",
    step_size="0.00001",
    min_qty="0.00001",
    max_qty="9000",
    min_price="0.01",
    max_price="1000000",
    min_notional="5",
)
ETH = MarketSpec.create(
    "ETH/BTC",
    tick_size="0.00001",
    step_size="0.0001",
    min_qty="0.0001",
    max_qty="100000",
    min_price="0.00001",
    max_price="922327",
    min_notional="0.0001",
    notional_filter="MIN_NOTIONAL",
)


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
