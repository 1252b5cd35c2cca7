"""Driving the emulator from another process: the ``/_emulator/...`` admin API and the CLI."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from emulator_markets import BTC, CLIENT_TIMEOUT_MS
from policyctl.emulator import (
    EmulatorHandle,
    describe_file,
    infer_market,
    make_ccxt_client,
    read_csv,
    start_emulator,
)


def _admin(
    url: str, path: str, payload: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
    if token:
        req.add_header("X-Emulator-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_admin_api_drives_prices_faults_and_status(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    assert (
        _admin(
            emu.url, "/_emulator/price", {"symbol": "BTC/USDT", "bid": "41000", "ask": "41000.5"}
        )[0]
        == 200
    )
    assert client.fetch_ticker("BTC/USDT")["ask"] == 41000.5
    status, armed = _admin(
        emu.url, "/_emulator/fault", {"endpoint": "order_create", "kind": "drop", "count": 1}
    )
    assert status == 200 and armed["id"] >= 1
    with pytest.raises(ccxt.NetworkError):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "adm-1"})
    assert _admin(emu.url, "/_emulator/status", {"symbol": "BTCUSDT", "status": "HALT"})[0] == 200
    with pytest.raises(ccxt.MarketClosed):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)
    _admin(emu.url, "/_emulator/clock", {"advance_ms": 5000})
    _admin(emu.url, "/_emulator/stale", {"symbol": "BTC/USDT"})
    _admin(emu.url, "/_emulator/bad_tick", {"symbol": "BTC/USDT", "price": 1, "count": 2})
    _admin(
        emu.url,
        "/_emulator/balance",
        {"api_key": emu.account().api_key, "asset": "ETH", "free": "3.5"},
    )
    assert emu.balances()["ETH"] == (Decimal("3.5"), Decimal(0))
    status, state = _admin(emu.url, "/_emulator/state")
    assert status == 200 and state["markets"]["BTCUSDT"] == "HALT"
    assert [o["clientOrderId"] for o in state["orders"]] == ["adm-1"]
    assert state["now"] == emu.clock.now_ms()


def test_admin_errors(emu: EmulatorHandle) -> None:
    assert _admin(emu.url, "/_emulator/nope", {})[0] == 404
    assert _admin(emu.url, "/_emulator/fault", {"endpoint": "ticker", "kind": "meteor"})[0] == 400
    assert _admin(emu.url, "/_emulator/fault", {"endpoint": "tickr", "kind": "drop"})[0] == 400
    assert (
        _admin(emu.url, "/_emulator/price", {"symbol": "BTC/USDT", "bid": "2", "ask": "1"})[0]
        == 400
    )
    assert _admin(emu.url, "/_emulator/status", {"symbol": "BTC/USDT", "status": "NAP"})[0] == 400
    assert emu.faults.pending() == []


def test_admin_token(credentials: tuple[str, str]) -> None:
    key, secret = credentials
    with start_emulator(markets=[BTC], api_key=key, secret=secret, admin_token="t0k") as emu:
        assert _admin(emu.url, "/_emulator/state")[0] == 403
        assert _admin(emu.url, "/_emulator/state", token="t0k")[0] == 200


def test_unknown_path_is_404_and_logged(emu: EmulatorHandle, client: ccxt.binance) -> None:
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.sapiGetCapitalConfigGetall()  # never leaves loopback, never succeeds
    assert emu.served[-1].path == "/sapi/v1/capital/config/getall"
    assert emu.served[-1].endpoint is None


def _write_csv(path: Path) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(6):
        minute = f"2024-03-01T00:{i:02d}:00Z"
        rows.append(f"{minute},{10 + i}.5,{11 + i}.25,{8 + i}.75,{10 + i}.75,{100 + i}.125")
    path.write_text("\n".join(rows) + "\n")


def test_csv_loading_and_market_inference(tmp_path: Path) -> None:
    csv_path = tmp_path / "test_ABC-USDT_1m.csv"
    _write_csv(csv_path)
    assert describe_file(csv_path) == ("ABC/USDT", "1m")
    bars = read_csv(csv_path)
    assert len(bars) == 6 and bars[0].open_time == 1_709_251_200_000
    spec = infer_market("ABC/USDT", bars)
    assert str(spec.tick_size) == "0.01" and str(spec.step_size) == "0.001"
    with pytest.raises(ValueError, match="not an emulated kline interval"):
        describe_file(tmp_path / "index_BTC-USD_1M.csv")


def test_cli_serves_and_replays_candles(tmp_path: Path, credentials: tuple[str, str]) -> None:
    csv_path = tmp_path / "test_ABC-USDT_1m.csv"
    _write_csv(csv_path)
    key, secret = credentials
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "policyctl.emulator",
            "--port",
            "0",
            "--data",
            str(csv_path),
            "--speed",
            "0",
            "--api-key",
            key,
            "--secret",
            secret,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert match, first
        url = match.group(0)
        client = make_ccxt_client(url, key, secret, timeout_ms=2000)
        assert list(client.load_markets()) == ["ABC/USDT"]
        assert len(client.fetch_ohlcv("ABC/USDT", "1m")) == 1
        assert _admin(url, "/_emulator/advance", {"bars": 2})[1] == {"advanced": 2}
        assert [r[4] for r in client.fetch_ohlcv("ABC/USDT", "1m")] == [10.75, 11.75, 12.75]
        assert client.fetch_balance()["USDT"]["free"] == 10000.0
        order = client.create_order("ABC/USDT", "limit", "buy", 1, 12)
        _admin(url, "/_emulator/advance", {"bars": 1})  # low 11.75 crosses 12
        assert client.fetch_order(order["id"], "ABC/USDT")["status"] == "closed"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_shared_candle_file_replays(credentials: tuple[str, str]) -> None:
    path = Path("/work/shared/data/ohlcv/binance_XRP-ETH_5m.csv")
    if not path.exists():
        pytest.skip("shared candle data not available")
    symbol, interval = describe_file(path)
    bars = read_csv(path)
    key, secret = credentials
    with start_emulator(
        markets=[infer_market(symbol, bars)],
        candles={symbol: (bars, interval)},
        api_key=key,
        secret=secret,
    ) as emu:
        client = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
        market = client.load_markets()["XRP/ETH"]
        assert market["precision"]["price"] <= 1e-6
        emu.advance(99)
        rows = client.fetch_ohlcv("XRP/ETH", "5m", limit=1000)
        assert len(rows) == 100 and rows[-1][4] == float(bars[99].close)
        hourly = client.fetch_ohlcv("XRP/ETH", "1h")
        assert 8 <= len(hourly) <= 10
