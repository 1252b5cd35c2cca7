"""Fixtures shared by the test folders: fresh credentials and a loopback exchange emulator.

A folder that needs another market (``tests/live``) overrides ``emu`` in its own conftest.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from emulator_markets import BTC, ETH
from policyctl.emulator import EmulatorHandle, start_emulator


@pytest.fixture
def credentials() -> tuple[str, str]:
    """Fresh API credentials per test (nothing hard-coded)."""
    return secrets.token_hex(32), secrets.token_hex(32)


@pytest.fixture
def emu(credentials: tuple[str, str]) -> Iterator[EmulatorHandle]:
    """The emulator on 127.0.0.1 (ephemeral port) with BTC/USDT and ETH/BTC quoted."""
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
