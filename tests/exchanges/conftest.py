"""Fixtures for the adapter tests: a loopback Binance emulator, injected time, adapters.

Nothing here waits on the wall clock: retry delays and rate-limiter waits go to
:class:`FakeTime` objects that record them and move a fake monotonic clock.
"""

from __future__ import annotations

import pytest
from exchange_support import CLIENT_TIMEOUT_MS, FakeTime, make_retry, roomy_limiter

from policyctl.emulator import EmulatorHandle
from policyctl.exchanges.ccxt_adapter import ENV_API_KEY, ENV_API_SECRET, CcxtAdapter
from policyctl.exchanges.retry import RetryPolicy


@pytest.fixture
def env(credentials: tuple[str, str]) -> dict[str, str]:
    key, secret = credentials
    return {ENV_API_KEY: key, ENV_API_SECRET: secret}


@pytest.fixture
def retry_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def limiter_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def adapter(
    emu: EmulatorHandle, env: dict[str, str], retry_time: FakeTime, limiter_time: FakeTime
) -> CcxtAdapter:
    a = CcxtAdapter.from_env(
        "binance",
        env=env,
        base_url=emu.url,
        timeout_ms=CLIENT_TIMEOUT_MS,
        retry=make_retry(retry_time),
        rate_limits=roomy_limiter(limiter_time),
    )
    a.load_markets()
    return a


@pytest.fixture
def one_shot(emu: EmulatorHandle, env: dict[str, str], limiter_time: FakeTime) -> CcxtAdapter:
    """An adapter that never retries: each call shows the first classification."""
    a = CcxtAdapter.from_env(
        "binance",
        env=env,
        base_url=emu.url,
        timeout_ms=CLIENT_TIMEOUT_MS,
        retry=RetryPolicy(max_attempts=1),
        rate_limits=roomy_limiter(limiter_time),
    )
    a.load_markets()
    return a
