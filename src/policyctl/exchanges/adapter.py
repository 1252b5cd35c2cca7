"""The execution adapter protocol: what the live runtime needs from an exchange.

Two implementations sit behind it: ``exchanges.ccxt_adapter`` (real orders through ccxt)
and ``exchanges.paper`` (fills simulated against live market data). The runtime never
branches on which one it has.

Failures are classified once, here, so the runtime can act on the class, not on a
library's exception names::

    AdapterError
    ├── Transient      retry with exponential backoff and full jitter (timeouts, 5xx, 429)
    ├── Ambiguous      the request may have taken effect (timeout or dropped connection
    │                  after an order was sent): look the order up by client id first
    ├── Rejected       the exchange refused this order (balance, filters, market closed):
    │                  the engine hears the reason; retrying the same order is pointless
    └── NeedsHuman     credentials, permissions, IP ban, unknown failures: stop and alert
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from policyctl.runtime.model import Bar, Fill, MarketRules, OpenOrder, OrderRequest, Quote


class AdapterError(Exception):
    """Base of every adapter failure; ``endpoint`` is the endpoint class that failed."""

    def __init__(self, message: str, endpoint: str = "", cause: BaseException | None = None):
        super().__init__(message)
        self.endpoint = endpoint
        self.cause = cause

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()


class Transient(AdapterError):
    def __init__(self, message: str, endpoint: str = "", cause: BaseException | None = None,
                 retry_after: float | None = None):
        super().__init__(message, endpoint, cause)
        self.retry_after = retry_after


class Ambiguous(AdapterError):
    pass


class Rejected(AdapterError):
    def __init__(self, message: str, endpoint: str = "", cause: BaseException | None = None,
                 reason: str = "rejected"):
        super().__init__(message, endpoint, cause)
        self.reason = reason  # a stable code: insufficient_funds, filter, market_closed, duplicate, ...


class NeedsHuman(AdapterError):
    pass


@dataclass(frozen=True, slots=True)
class Market:
    symbol: str
    base: str
    quote: str
    rules: MarketRules


@dataclass(frozen=True, slots=True)
class Balances:
    free: dict[str, float]
    total: dict[str, float]


@dataclass(frozen=True, slots=True)
class OrderStatus:
    """What the exchange says about one order."""

    client_id: str
    exchange_id: str
    symbol: str
    side: str
    status: str  # new | open | partially_filled | filled | canceled | expired | rejected
    qty: float
    filled: float
    avg_price: float | None
    created_ms: int


class ExchangeAdapter(Protocol):
    name: str

    def load_markets(self) -> dict[str, Market]: ...

    def time_ms(self) -> int: ...

    def fetch_candles(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list[Bar]:
        """Closed candles only, oldest first (the forming candle is left out)."""
        ...

    def fetch_quote(self, symbol: str) -> Quote: ...

    def fetch_balances(self) -> Balances: ...

    def fetch_open_orders(self, symbols: tuple[str, ...]) -> list[OpenOrder]: ...

    def fetch_fills(self, symbols: tuple[str, ...], since_ms: int | None) -> list[Fill]: ...

    def place(self, order: OrderRequest) -> OrderStatus:
        """Send an order. Raises Rejected, Transient (nothing happened), Ambiguous (it may
        have happened: look it up with :meth:`find_order` before anything else)."""
        ...

    def cancel(self, client_id: str, symbol: str) -> OrderStatus | None: ...

    def find_order(self, client_id: str, symbol: str) -> OrderStatus | None:
        """The order with this client id, or None if the exchange has never seen it."""
        ...
