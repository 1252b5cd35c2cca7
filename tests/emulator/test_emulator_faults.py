"""Fault injection, auth and data faults, seen through the real ccxt client.

The exception classes asserted here are the contract the runtime's error classifier uses.
"""

from __future__ import annotations

from typing import Literal

import ccxt
import pytest

from emulator_markets import BTC, CLIENT_TIMEOUT_MS
from policyctl.emulator import EmulatorHandle, ManualClock, start_emulator


def test_429_is_ddos_protection_with_retry_after(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.inject("ticker", "rate_limit", count=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection, match="429") as info:
            client.fetch_ticker("BTC/USDT")
        assert not isinstance(info.value, ccxt.RateLimitExceeded)
    assert client.last_response_headers["Retry-After"] == "7"
    assert client.fetch_ticker("BTC/USDT")["bid"] == 42000.0  # the burst is over


def test_418_ip_ban_is_ddos_protection(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.inject("public", "ip_ban")
    with pytest.raises(ccxt.DDoSProtection, match="IP banned until"):
        client.fetch_order_book("BTC/USDT")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, "html", ccxt.ExchangeNotAvailable),
        (502, "html", ccxt.ExchangeNotAvailable),
        (503, "html", ccxt.ExchangeNotAvailable),
        (504, "html", ccxt.RequestTimeout),
        (500, "json", ccxt.OperationFailed),  # -1001
        (503, "json", ccxt.OperationFailed),  # -1008
        (504, "json", ccxt.RequestTimeout),  # -1007
    ],
)
def test_5xx(
    emu: EmulatorHandle,
    client: ccxt.binance,
    status: int,
    body: Literal["html", "json"],
    expected: type,
) -> None:
    emu.inject("market_data", "server_error", status=status, body=body)
    with pytest.raises(expected) as info:
        client.fetch_ticker("BTC/USDT")
    assert type(info.value) is expected


def test_5xx_burst_hits_only_the_targeted_class(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.inject("orders", "server_error", count=3, status=502)
    assert client.fetch_ticker("BTC/USDT")["last"] == 42000.05  # public: untouched
    for _ in range(3):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            client.fetch_open_orders("BTC/USDT")
    assert client.fetch_open_orders("BTC/USDT") == []
    assert [f[1] for f in emu.faults.fired] == ["server_error"] * 3


def test_5xx_after_execution_leaves_the_order_in_the_book(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    emu.inject("order_create", "server_error", status=503, apply=True)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "u-503"})
    assert client.fetch_order(None, "BTC/USDT", {"clientOrderId": "u-503"})["status"] == "open"


def test_timeout_is_request_timeout(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.inject("ticker", "timeout", delay=CLIENT_TIMEOUT_MS / 1000 * 3)
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_ticker("BTC/USDT")
    assert emu.served[-1].fault == "timeout" and emu.served[-1].status == 0


def test_timeout_on_create_may_still_execute(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.inject("order_create", "timeout", delay=1.0, apply=True)
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "slow-1"})
    assert [o.client_order_id for o in emu.orders()] == ["slow-1"]


def test_timeout_without_execution_creates_nothing(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    emu.inject("order_create", "timeout", delay=1.0)
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "lost-1"})
    assert emu.orders() == []


def test_accept_then_drop(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.inject("order_create", "drop")
    with pytest.raises(ccxt.NetworkError) as info:
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "drop-1"})
    assert type(info.value) is ccxt.NetworkError
    found = client.fetch_order(None, "BTC/USDT", {"clientOrderId": "drop-1"})
    assert found["status"] == "open" and found["amount"] == 0.01
    assert len(emu.orders()) == 1
    # a blind retry with the same client id is refused while the first one is open
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "drop-1"})
    assert len(emu.orders()) == 1


def test_accept_then_drop_of_a_market_order(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.inject("order_create", "drop")
    with pytest.raises(ccxt.NetworkError):
        client.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "mk-1"})
    found = client.fetch_order(None, "BTC/USDT", {"clientOrderId": "mk-1"})
    assert found["status"] == "closed" and found["filled"] == 0.001


def test_stale_ticker_close_time_stays_in_the_past(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    frozen_at = emu.clock.now_ms()
    emu.set_stale("BTC/USDT")
    emu.advance_time(120_000)
    emu.set_price("BTC/USDT", bid="43000", ask="43000.1")
    ticker = client.fetch_ticker("BTC/USDT")
    assert ticker["timestamp"] == frozen_at < emu.clock.now_ms()
    assert ticker["bid"] == 42000.0
    assert client.fetch_order_book("BTC/USDT")["bids"][0][0] == 43000.0  # the book moved
    emu.set_stale("BTC/USDT", False)
    assert client.fetch_ticker("BTC/USDT")["timestamp"] == emu.clock.now_ms()


def test_bad_tick_is_a_one_request_spike(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.bad_tick("BTC/USDT", "63000")
    spiked = client.fetch_ticker("BTC/USDT")
    assert spiked["last"] == spiked["bid"] == spiked["ask"] == 63000.0
    assert client.fetch_ticker("BTC/USDT")["last"] == 42000.05


def test_bad_signature_and_unknown_key(emu: EmulatorHandle, client: ccxt.binance) -> None:
    client.secret = "not-the-secret"
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        client.fetch_balance()
    stranger = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
    stranger.apiKey = "unknown-key"
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        stranger.fetch_balance()


def test_timestamp_checked_against_the_emulator_clock(credentials: tuple[str, str]) -> None:
    key, secret = credentials
    with start_emulator(
        markets=[BTC],
        api_key=key,
        secret=secret,
        timestamp_check="clock",
        clock=ManualClock(1_500_000_000_000),
    ) as emu:
        client = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
        with pytest.raises(ccxt.InvalidNonce, match="1000ms ahead"):
            client.fetch_balance()
        client.load_time_difference()  # what adjustForTimeDifference does
        assert client.fetch_balance()["info"]["accountType"] == "SPOT"


def test_stop_releases_a_request_held_by_a_timeout(credentials: tuple[str, str]) -> None:
    key, secret = credentials
    emu = start_emulator(markets=[BTC], api_key=key, secret=secret)
    emu.inject("time", "timeout", delay=30)
    client = emu.ccxt(timeout_ms=200)
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_time()
    emu.stop()  # sets the stop event the held handler waits on, then shuts down
    emu.stop()  # idempotent
    with pytest.raises(ccxt.NetworkError):
        client.fetch_time()  # nothing listens any more
