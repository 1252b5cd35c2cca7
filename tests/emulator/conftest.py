"""Fixtures: a running emulator on 127.0.0.1 (ephemeral port) and a real ccxt client for it.

Other test folders do the same with ``policyctl.emulator.start_emulator``:
``with start_emulator(api_key=k, secret=s, balances={...}) as handle: yield handle``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import ccxt
import pytest
from emulator_support import BTC, CLIENT_TIMEOUT_MS, ETH

from policyctl.emulator import EmulatorHandle, start_emulator


@pytest.fixture
def credentials() -> tuple[str, str]:
    """Fresh API credentials per test (nothing hard-coded)."""
    return secrets.token_hex(32), secrets.token_hex(32)


@pytest.fixture
def emu(credentials: tuple[str, str]) -> Iterator[EmulatorHandle]:
    key, secret = credentials
    with start_emulator(
        markets=[BTC, ETH],
        api_key=key,
        secret=secret,
        balances={"USDT": "10000", "BTC": "1", "ETH": "10"},
    ) as handle:
        handle.set_price("BTC/USDT", bid="42000.00", ask="42000.10", last="42000.05", volume="1500")
        handle.set_price("ETH/BTC", bid="0.05200", ask="0.05201")
        yield handle


@pytest.fixture
def client(emu: EmulatorHandle) -> ccxt.binance:
    c = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
    c.load_markets()
    return c
