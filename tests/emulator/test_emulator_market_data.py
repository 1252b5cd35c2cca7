"""Public market data and the account balance, through the real ccxt client."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from emulator_markets import BTC, CLIENT_TIMEOUT_MS
from policyctl.emulator import (
    Bar,
    EmulatorHandle,
    ManualClock,
    SystemClock,
    start_emulator,
    wall_clock_ms,
)


def test_load_markets_calls_only_exchange_info(emu: EmulatorHandle) -> None:
    client = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
    markets = client.load_markets()
    assert set(markets) == {"BTC/USDT", "ETH/BTC"}
    assert [(s.method, s.path) for s in emu.served] == [("GET", "/api/v3/exchangeInfo")]


def test_load_markets_precision_and_limits(client: ccxt.binance) -> None:
    btc = client.market("BTC/USDT")
    assert btc["id"] == "BTCUSDT" and btc["spot"] and btc["active"]
    assert btc["precision"] == {"amount": 0.00001, "price": 0.01, "base": 1e-8, "quote": 1e-8}
    assert btc["limits"]["amount"] == {"min": 0.00001, "max": 9000.0}
    assert btc["limits"]["price"] == {"min": 0.01, "max": 1_000_000.0}
    assert btc["limits"]["cost"] == {"min": 5.0, "max": 9_000_000.0}
    eth = client.market("ETH/BTC")  # legacy MIN_NOTIONAL filter, no max
    assert eth["precision"]["price"] == 0.00001 and eth["precision"]["amount"] == 0.0001
    assert eth["limits"]["cost"] == {"min": 0.0001, "max": None}
    filters = {f["filterType"] for f in btc["info"]["filters"]}
    assert {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL", "MARKET_LOT_SIZE"} <= filters


def test_fetch_time_is_the_emulator_clock(emu: EmulatorHandle, client: ccxt.binance) -> None:
    assert client.fetch_time() == emu.clock.now_ms()
    emu.advance_time(1234)
    assert client.fetch_time() == emu.clock.now_ms()


def test_fetch_ticker(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.set_price("BTC/USDT", bid="42100.00", ask="42100.50", last="42100.25", volume="1600")
    t = client.fetch_ticker("BTC/USDT")
    assert (t["bid"], t["ask"], t["last"]) == (42100.0, 42100.5, 42100.25)
    assert t["baseVolume"] == 1600.0
    assert t["timestamp"] == emu.clock.now_ms()
    assert t["open"] == 42000.05 and t["high"] == 42100.25 and t["low"] == 42000.05
    assert t["info"]["lastPrice"] == "42100.25000000"  # Binance's 8-place strings


def test_fetch_order_book_synthetic_and_explicit(emu: EmulatorHandle, client: ccxt.binance) -> None:
    book = client.fetch_order_book("BTC/USDT", 5)
    assert book["bids"][0] == [42000.0, 1000.0] and book["asks"][0] == [42000.1, 1000.0]
    assert [p for p, _ in book["asks"]] == [42000.1, 42000.11, 42000.12, 42000.13, 42000.14]
    emu.set_depth("BTC/USDT", bids=[("41990", "0.5"), ("41995", "0.2")], asks=[("42010", "0.3")])
    book = client.fetch_order_book("BTC/USDT")
    assert book["bids"] == [[41995.0, 0.2], [41990.0, 0.5]]
    assert book["asks"] == [[42010.0, 0.3]]
    assert client.fetch_ticker("BTC/USDT")["bid"] == 41995.0


def test_fetch_balance(client: ccxt.binance) -> None:
    balance = client.fetch_balance()
    assert balance["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0}
    assert balance["BTC"]["free"] == 1.0
    assert balance["info"]["accountType"] == "SPOT"


def _bars(n: int, start: int = 1_700_000_000_000 // 300_000 * 300_000) -> list[Bar]:
    out = []
    for i in range(n):
        o = Decimal(100 + i)
        out.append(Bar(start + i * 300_000, o, o + 2, o - 1, o + 1, Decimal("10.5")))
    return out


def test_fetch_ohlcv_replays_candles_without_the_future(credentials: tuple[str, str]) -> None:
    bars = _bars(12)
    key, secret = credentials
    with start_emulator(
        markets=[BTC], candles={"BTC/USDT": (bars, "5m")}, api_key=key, secret=secret
    ) as emu:
        client = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
        assert emu.clock.now_ms() == bars[0].open_time + 300_000  # first bar applied
        assert emu.advance(3) == 3
        rows = client.fetch_ohlcv("BTC/USDT", "5m")
        assert [r[0] for r in rows] == [b.open_time for b in bars[:4]]
        assert rows[-1][1:] == [103.0, 105.0, 102.0, 104.0, 10.5]
        ticker = client.fetch_ticker("BTC/USDT")
        assert ticker["last"] == 104.0 and ticker["bid"] == 103.99 and ticker["ask"] == 104.01
        assert ticker["timestamp"] == bars[3].open_time + 300_000
        since = client.fetch_ohlcv("BTC/USDT", "5m", since=bars[2].open_time, limit=1)
        assert [r[0] for r in since] == [bars[2].open_time]
        emu.advance(8)
        fifteen = client.fetch_ohlcv("BTC/USDT", "15m")  # resampled from 5m
        assert fifteen[0][1] == 100.0 and all(r[0] % 900_000 == 0 for r in fifteen)
        assert emu.advance(5) == 0  # replay exhausted


def test_candles_fill_resting_limit_orders_on_bar_low(credentials: tuple[str, str]) -> None:
    bars = _bars(3)
    key, secret = credentials
    with start_emulator(
        markets=[BTC],
        candles={"BTC/USDT": (bars, "5m")},
        api_key=key,
        secret=secret,
        balances={"USDT": "1000"},
        clock=ManualClock(bars[0].open_time),
    ) as emu:
        client = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
        order = client.create_order("BTC/USDT", "limit", "buy", 0.5, 100.5)
        assert order["status"] == "open"
        emu.advance()  # bar 1: low 100 <= 100.5
        assert client.fetch_order(order["id"], "BTC/USDT")["status"] == "closed"


def test_unknown_symbol_is_bad_symbol(emu: EmulatorHandle) -> None:
    client = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
    client.load_markets()
    with pytest.raises(ccxt.BadSymbol):
        client.publicGetTicker24hr({"symbol": "NOPEUSDT"})


def test_clocks() -> None:
    manual = ManualClock(1000)
    manual.advance(500)
    assert manual.now_ms() == 1500
    with pytest.raises(ValueError):
        manual.set_ms(1000)  # exchange time never goes back
    system = SystemClock()
    before = wall_clock_ms()
    system.advance(3_600_000)
    assert system.now_ms() >= before + 3_600_000
