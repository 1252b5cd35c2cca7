"""Fixtures: a running emulator on 127.0.0.1 (ephemeral port) and a real ccxt client for it.

Other test folders do the same with ``policyctl.emulator.start_emulator``:
``with start_emulator(api_key=k, secret=s, balances={...}) as handle: yield handle``.
"""

from __future__ import annotations

import ccxt
import pytest

from emulator_markets import CLIENT_TIMEOUT_MS
from policyctl.emulator import EmulatorHandle


@pytest.fixture
def client(emu: EmulatorHandle) -> ccxt.binance:
    c = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
    c.load_markets()
    return c
