"""A loopback exchange emulator speaking Binance's spot REST API, for tests of real ccxt.

Where it sits: test infrastructure for the live runtime and the ccxt adapter.  The real
``ccxt.binance`` client talks HTTP to a stdlib server on 127.0.0.1 that keeps markets,
balances, orders and fills, and fails on demand the way Binance fails.

* :func:`start_emulator` -> :class:`EmulatorHandle` (context manager): ``.url``, ``.port``,
  ``.stop()``, ``.exchange`` (the state), price path, faults, ``.ccxt()`` client;
* :func:`make_ccxt_client` - the documented spot-only ccxt construction;
* ``python -m policyctl.emulator --data FILE.csv`` - serve and replay candles for humans.

Modules: ``server`` (HTTP, auth, faults), ``endpoints`` (the REST routes), ``book``
(exchange state and matching), ``matching`` (fills and balances), ``markets`` (symbol
filters), ``marketdata`` (prices, depth, candles), ``payloads`` (JSON shapes), ``faults``,
``admin`` (``/_emulator/...``), ``clock``, ``candles`` (CSV replay), ``client`` (ccxt).
"""

from .accounts import Account, Balance
from .book import EngineSettings, Exchange
from .candles import describe_file, infer_market, read_csv
from .client import make_ccxt_client
from .clock import Clock, ManualClock, SystemClock, wall_clock_ms
from .faults import ENDPOINTS, FAULT_KINDS, GROUPS, Fault, FaultInjector
from .handle import EmulatorConfig, EmulatorHandle, start_emulator
from .marketdata import Bar
from .markets import MarketSpec
from .orders import Fill, Order

__all__ = [
    "ENDPOINTS",
    "FAULT_KINDS",
    "GROUPS",
    "Account",
    "Balance",
    "Bar",
    "Clock",
    "EmulatorConfig",
    "EmulatorHandle",
    "EngineSettings",
    "Exchange",
    "Fault",
    "FaultInjector",
    "Fill",
    "ManualClock",
    "MarketSpec",
    "Order",
    "SystemClock",
    "describe_file",
    "infer_market",
    "make_ccxt_client",
    "read_csv",
    "start_emulator",
    "wall_clock_ms",
]
