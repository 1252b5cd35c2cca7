"""RetryPolicy: full-jitter backoff, attempt and time bounds, Retry-After, what is retried."""

from __future__ import annotations

import random

import pytest
from exchange_support import RNG_SEED, FakeTime, make_retry

from policyctl.exchanges.adapter import Ambiguous, NeedsHuman, Rejected, Transient
from policyctl.exchanges.retry import RetryPolicy


class Flaky:
    """Fails with the given errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_transient_failures_are_retried_with_full_jitter() -> None:
    t = FakeTime()
    policy = make_retry(t)
    fn = Flaky(Transient("a"), Transient("b"), Transient("c"))
    assert policy.call(fn) == "ok"
    assert fn.calls == 4
    # full jitter: retry n sleeps uniform(0, min(max_delay, base * 2**(n-1))), from the rng
    replay = random.Random(RNG_SEED)
    caps = [0.5, 1.0, 2.0]
    assert t.sleeps == [replay.uniform(0.0, cap) for cap in caps]
    assert all(0.0 <= d <= cap for d, cap in zip(t.sleeps, caps, strict=True))


def test_backoff_cap_grows_then_saturates() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=2.0)
    assert [policy.backoff_cap(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_full_jitter_covers_the_whole_interval() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, rng=random.Random(1))
    draws = [policy.delay(3) for _ in range(4000)]  # cap 4.0
    assert all(0.0 <= d <= 4.0 for d in draws)
    assert min(draws) < 0.05 and max(draws) > 3.95
    assert abs(sum(draws) / len(draws) - 2.0) < 0.1


def test_attempts_are_bounded() -> None:
    t = FakeTime()
    policy = make_retry(t, max_attempts=3)
    fn = Flaky(*(Transient(str(i)) for i in range(10)))
    with pytest.raises(Transient, match="2"):
        policy.call(fn)
    assert fn.calls == 3 and len(t.sleeps) == 2


def test_total_time_is_bounded() -> None:
    t = FakeTime()
    # every delay is at least 4 s (retry_after), the budget is 10 s: two retries fit, not three
    policy = make_retry(t, max_attempts=100, max_total=10.0)
    fn = Flaky(*(Transient(str(i), retry_after=4.0) for i in range(10)))
    with pytest.raises(Transient):
        policy.call(fn)
    assert t.sleeps == [4.0, 4.0]
    assert fn.calls == 3
    assert t.now - 1_000.0 <= 10.0


def test_retry_after_is_a_floor_not_a_replacement() -> None:
    t = FakeTime()
    policy = make_retry(t, base_delay=10.0, max_delay=10.0, max_total=100.0)
    fn = Flaky(Transient("429", retry_after=3.0), Transient("429", retry_after=3.0))
    assert policy.call(fn) == "ok"
    replay = random.Random(RNG_SEED)
    expected = [max(3.0, replay.uniform(0.0, 10.0)) for _ in range(2)]
    assert t.sleeps == expected
    assert all(d >= 3.0 for d in t.sleeps)


def test_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    t = FakeTime()
    policy = make_retry(t, max_total=5.0)
    fn = Flaky(Transient("banned for a while", retry_after=60.0))
    with pytest.raises(Transient) as info:
        policy.call(fn)
    assert info.value.retry_after == 60.0
    assert t.sleeps == [] and fn.calls == 1


@pytest.mark.parametrize(
    "error",
    [Ambiguous("maybe"), Rejected("no", reason="filter"), NeedsHuman("ban"), ValueError("bug")],
)
def test_only_transient_is_retried(error: BaseException) -> None:
    t = FakeTime()
    fn = Flaky(error)
    with pytest.raises(type(error)):
        make_retry(t).call(fn)
    assert fn.calls == 1 and t.sleeps == []


def test_on_retry_hook_sees_each_retry() -> None:
    t = FakeTime()
    seen: list[tuple[str, int, float]] = []
    policy = make_retry(t)
    policy.on_retry = lambda err, n, delay: seen.append((str(err), n, delay))
    assert policy.call(Flaky(Transient("x"), Transient("y"))) == "ok"
    assert [(m, n) for m, n, _ in seen] == [("x", 1), ("y", 2)]
    assert [d for _, _, d in seen] == t.sleeps


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)
