"""Start and drive an emulator from a test: ``start_emulator(**config) -> EmulatorHandle``.

.. code-block:: python

    with start_emulator(api_key=key, secret=secret, balances={"USDT": 10_000}) as emu:
        emu.set_price("BTC/USDT", bid=100, ask=101)
        client = emu.ccxt(timeout_ms=2000)
        client.create_order("BTC/USDT", "market", "buy", 0.1)
        assert emu.balances()["BTC"][0] > 0

The server runs in a daemon thread on 127.0.0.1 (an ephemeral port by default); the
handle reaches the same state the HTTP side uses, so tests can assert on it directly.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal

import ccxt

from .accounts import Account
from .admin import Admin
from .book import EngineSettings, Exchange
from .client import make_ccxt_client
from .clock import DEFAULT_START_MS, Clock, ManualClock
from .faults import Fault, FaultInjector
from .marketdata import Bar
from .markets import MarketSpec, Number, dec
from .orders import Fill, Order
from .server import EmulatorServer, Served


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything ``start_emulator`` accepts; an unknown keyword is a TypeError."""

    host: str = "127.0.0.1"
    port: int = 0
    markets: Sequence[MarketSpec | str] = ("BTC/USDT",)
    api_key: str | None = None  # the default account; keys always come from the caller
    secret: str | None = None
    balances: Mapping[str, Number] = field(default_factory=dict)
    maker_rate: Number = "0.001"
    taker_rate: Number = "0.001"
    candles: Mapping[str, tuple[Sequence[Bar], str]] = field(default_factory=dict)
    clock: Clock | None = None  # default: ManualClock at the first candle, or 2024-01-01
    # signed requests: `timestamp` vs the wall clock (ccxt's default stamping), vs the
    # emulator clock (a client must sync with /api/v3/time), or unchecked
    timestamp_check: Literal["wall", "clock", "off"] = "wall"
    depth_levels: int = 5
    level_qty: Number = 1000
    limit_fill_fraction: Number = 1
    spread_ticks: int = 1
    client_id_scope: Literal["open", "account"] = "open"
    admin_token: str | None = None
    verbose: bool = False


class EmulatorHandle:
    """A running emulator: its URL, its state, and the knobs a test turns."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        if config.clock is not None:
            self.clock: Clock = config.clock
        else:
            firsts = [min(b.open_time for b in bars) for bars, _ in config.candles.values() if bars]
            self.clock = ManualClock(min(firsts) if firsts else DEFAULT_START_MS)
        fraction = dec(config.limit_fill_fraction)
        if not Decimal(0) < fraction <= 1:
            raise ValueError("limit_fill_fraction must be in (0, 1]")
        settings = EngineSettings(
            depth_levels=config.depth_levels,
            level_qty=dec(config.level_qty),
            limit_fill_fraction=fraction,
            spread_ticks=config.spread_ticks,
            client_id_scope=config.client_id_scope,
        )
        self.exchange = Exchange(self.clock, settings)
        for market in config.markets:
            spec = MarketSpec.create(market) if isinstance(market, str) else market
            self.exchange.add_market(spec)
        for symbol, (bars, interval) in config.candles.items():
            if symbol.replace("/", "") not in self.exchange.markets:
                raise ValueError(f"candles for {symbol!r}, which is not among the markets")
            self.exchange.load_candles(symbol, list(bars), interval)
        if config.api_key is not None:
            if not config.secret:
                raise ValueError("an api_key needs its secret")
            self.add_account(
                config.api_key,
                config.secret,
                config.balances,
                maker_rate=config.maker_rate,
                taker_rate=config.taker_rate,
            )
        self.faults = FaultInjector()
        self._server = EmulatorServer(
            (config.host, config.port),
            self.exchange,
            self.faults,
            Admin(self.exchange, self.faults),
            timestamp_check=config.timestamp_check,
            admin_token=config.admin_token,
            verbose=config.verbose,
        )
        address = self._server.server_address
        self.host: str = str(address[0])
        self.port: int = int(address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"policyctl-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving (idempotent); requests held by a timeout fault are released."""
        if self._stopped:
            return
        self._stopped = True
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients and accounts ------------------------------------------------------------

    def ccxt(self, timeout_ms: int = 10_000, api_key: str | None = None) -> ccxt.binance:
        """A ccxt client for the default account (or ``api_key``), see ``make_ccxt_client``."""
        account = self.account(api_key) if (api_key or self.config.api_key) else None
        return make_ccxt_client(
            self.url,
            account.api_key if account else None,
            account.secret if account else None,
            timeout_ms=timeout_ms,
        )

    def add_account(
        self,
        api_key: str,
        secret: str,
        balances: Mapping[str, Number] | None = None,
        *,
        maker_rate: Number = "0.001",
        taker_rate: Number = "0.001",
    ) -> Account:
        account = Account(
            api_key,
            secret,
            maker_rate=dec(maker_rate),
            taker_rate=dec(taker_rate),
            uid=len(self.exchange.accounts) + 1,
        )
        for asset, amount in (balances or {}).items():
            account.set_balance(asset, amount)
        self.exchange.add_account(account)
        return account

    def account(self, api_key: str | None = None) -> Account:
        key = api_key or self.config.api_key
        if key is None:
            raise KeyError("no default account: pass api_key")
        return self.exchange.accounts[key]

    def set_balance(
        self, asset: str, free: Number, locked: Number = 0, api_key: str | None = None
    ) -> None:
        with self.exchange.lock:
            self.account(api_key).set_balance(asset, free, locked)

    def balances(self, api_key: str | None = None) -> dict[str, tuple[Decimal, Decimal]]:
        """``{asset: (free, locked)}``."""
        with self.exchange.lock:
            return self.account(api_key).snapshot()

    def orders(self, symbol: str | None = None, api_key: str | None = None) -> list[Order]:
        with self.exchange.lock:
            key = self.account(api_key).api_key
            sid = self.exchange.symbol_id(symbol) if symbol else None
            return sorted(
                (
                    o
                    for o in self.exchange.orders.values()
                    if o.api_key == key and (sid is None or o.symbol == sid)
                ),
                key=lambda o: o.order_id,
            )

    def trades(self, symbol: str | None = None, api_key: str | None = None) -> list[Fill]:
        return sorted(
            (f for o in self.orders(symbol, api_key) for f in o.fills), key=lambda f: f.trade_id
        )

    @property
    def served(self) -> list[Served]:
        """Every request served so far (method, path, endpoint, status, fault)."""
        return list(self._server.served)

    # -- the market ----------------------------------------------------------------------

    def set_price(
        self,
        symbol: str,
        bid: Number,
        ask: Number,
        last: Number | None = None,
        volume: Number | None = None,
        bid_qty: Number | None = None,
        ask_qty: Number | None = None,
    ) -> None:
        self.exchange.set_price(symbol, bid, ask, last, volume, bid_qty, ask_qty)

    def set_depth(
        self,
        symbol: str,
        bids: Sequence[tuple[Number, Number]],
        asks: Sequence[tuple[Number, Number]],
    ) -> None:
        self.exchange.set_depth(symbol, bids, asks)

    def load_candles(self, symbol: str, bars: Sequence[Bar], interval: str) -> None:
        self.exchange.load_candles(symbol, list(bars), interval)

    def advance(self, bars: int = 1) -> int:
        return self.exchange.advance(bars)

    def advance_time(self, ms: int) -> int:
        self.clock.advance(ms)
        return self.clock.now_ms()

    def expire_order(self, order_id: int, status: str = "EXPIRED") -> Order:
        """End an open order from the exchange side (funds it locked come back)."""
        return self.exchange.expire_order(order_id, status)

    def set_symbol_status(self, symbol: str, status: str) -> None:
        self.exchange.set_status(symbol, status)

    def set_stale(self, symbol: str, stale: bool = True) -> None:
        self.exchange.set_stale(symbol, stale)

    def set_late(self, symbol: str, bars: int = 1, requests: int = 1) -> None:
        self.exchange.set_late(symbol, bars, requests)

    def bad_tick(self, symbol: str, price: Number, count: int = 1) -> None:
        self.exchange.bad_tick(symbol, price, count)

    # -- faults --------------------------------------------------------------------------

    def inject(
        self,
        endpoint: str,
        kind: str,
        count: int = 1,
        *,
        status: int | None = None,
        retry_after: int = 1,
        delay: float = 3.0,
        apply: bool | None = None,
        body: Literal["html", "json"] = "html",
    ) -> Fault:
        """Arm a fault for the next ``count`` requests of ``endpoint`` (see ``faults``)."""
        return self.faults.add(
            endpoint,
            kind,
            count,
            status=status,
            retry_after=retry_after,
            delay=delay,
            apply=apply,
            body=body,
        )

    def clear_faults(self) -> None:
        self.faults.clear()


def start_emulator(**config: Any) -> EmulatorHandle:
    """Start an emulator in a background thread; see :class:`EmulatorConfig` for keywords."""
    return EmulatorHandle(EmulatorConfig(**config))
