"""Token buckets: accounting on an injected clock, queueing in debt, thread safety."""

from __future__ import annotations

import threading

import pytest
from exchange_support import FakeTime

from policyctl.exchanges.ratelimit import DEFAULT_LIMITS, RateLimit, RateLimiter


def limiter(t: FakeTime, rate: float = 2.0, burst: float = 4.0) -> RateLimiter:
    limit = RateLimit(rate=rate, burst=burst)
    return RateLimiter({"market_data": limit, "account": limit, "orders": limit}, clock=t.monotonic, sleep=t.sleep)


def test_burst_is_free_then_each_token_costs_one_interval() -> None:
    t = FakeTime()
    rl = limiter(t, rate=2.0, burst=4.0)
    waits = [rl.acquire("orders") for _ in range(7)]
    assert waits == [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5]  # each wait is slept before the next call
    assert t.sleeps == [0.5, 0.5, 0.5]
    assert rl.granted("orders") == 7


def test_queued_callers_wait_in_line_on_a_frozen_clock() -> None:
    t = FakeTime()
    rl = limiter(t, rate=2.0, burst=2.0)
    assert [rl.reserve("orders") for _ in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.5]
    assert rl.available("orders") == -3.0  # three tokens owed
    t.now += 1.5
    assert rl.available("orders") == 0.0


def test_refill_is_capped_at_the_burst() -> None:
    t = FakeTime()
    rl = limiter(t, rate=2.0, burst=4.0)
    for _ in range(4):
        rl.acquire("account")
    t.now += 100.0
    assert rl.available("account") == 4.0


def test_the_rate_holds_over_a_long_run() -> None:
    t = FakeTime()
    rl = limiter(t, rate=5.0, burst=10.0)
    start = t.now
    for _ in range(510):
        rl.acquire("market_data")
    elapsed = t.now - start
    # tokens handed out never exceed burst + rate * elapsed
    assert rl.granted("market_data") <= 10.0 + 5.0 * elapsed + 1e-9
    assert elapsed == pytest.approx(100.0)


def test_try_acquire_never_goes_into_debt() -> None:
    t = FakeTime()
    rl = limiter(t, rate=1.0, burst=2.0)
    assert rl.try_acquire("orders") and rl.try_acquire("orders")
    assert not rl.try_acquire("orders")
    assert rl.available("orders") == 0.0
    t.now += 1.0
    assert rl.try_acquire("orders")


def test_endpoint_classes_are_independent() -> None:
    t = FakeTime()
    rl = limiter(t, rate=1.0, burst=1.0)
    assert rl.reserve("orders") == 0.0
    assert rl.reserve("orders") == 1.0
    assert rl.reserve("market_data") == 0.0
    assert rl.reserve("account") == 0.0


def test_unknown_class_and_bad_costs() -> None:
    rl = limiter(FakeTime())
    with pytest.raises(KeyError, match="unknown endpoint class"):
        rl.acquire("withdrawals")
    with pytest.raises(ValueError):
        rl.acquire("orders", cost=100)
    assert rl.acquire("orders", cost=0) == 0.0
    with pytest.raises(ValueError):
        RateLimit(rate=0, burst=1)


def test_defaults_cover_the_three_classes() -> None:
    assert set(DEFAULT_LIMITS) == {"market_data", "account", "orders"}
    assert set(RateLimiter(clock=FakeTime().monotonic)._buckets) == set(DEFAULT_LIMITS)


def test_concurrent_callers_get_exactly_the_serial_schedule() -> None:
    t = FakeTime()  # frozen: nobody's sleep moves it (the sleep below is a no-op)
    rl = RateLimiter({"orders": RateLimit(rate=4.0, burst=8.0)}, clock=t.monotonic, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        for _ in range(25):
            w = rl.acquire("orders")
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # 400 tokens: 8 from the burst, then one every 0.25 s, whatever the interleaving
    expected = [0.0] * 8 + [(k + 1) * 0.25 for k in range(392)]
    assert sorted(waits) == pytest.approx(expected)
    assert rl.granted("orders") == 400
