"""The markets and client timeout the emulator and adapter tests share."""

from __future__ import annotations

from policyctl.emulator import MarketSpec

# Short client timeout: a held (timeout) request costs well under a second.
CLIENT_TIMEOUT_MS = 400

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
