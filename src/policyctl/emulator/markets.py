"""Symbol definitions and Binance's symbol filters (PRICE_FILTER, LOT_SIZE, NOTIONAL, ...).

A :class:`MarketSpec` is what ``/api/v3/exchangeInfo`` publishes for one symbol and what the
matching engine checks every new order against, in Binance's order: status, PRICE_FILTER,
LOT_SIZE, MARKET_LOT_SIZE, then the notional filter (``NOTIONAL`` as on today's spot
symbols, or the legacy ``MIN_NOTIONAL``).  Quantities and prices are ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

from .errors import filter_failure, market_closed

Number = Decimal | int | float | str
SymbolStatus = Literal["TRADING", "HALT", "BREAK", "END_OF_DAY", "PRE_TRADING", "POST_TRADING"]
SYMBOL_STATUSES: tuple[str, ...] = (
    "TRADING",
    "HALT",
    "BREAK",
    "END_OF_DAY",
    "PRE_TRADING",
    "POST_TRADING",
)
EIGHT = Decimal("0.00000001")


def dec(value: Number) -> Decimal:
    """A ``Decimal`` from any number; floats go through ``repr`` so 0.1 stays 0.1."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def fmt8(value: Decimal) -> str:
    """Binance spot's decimal string: eight places, e.g. ``"241.00000000"``."""
    return f"{value.quantize(EIGHT):f}"


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def on_grid(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


@dataclass(frozen=True)
class MarketSpec:
    """One spot symbol: assets, filters and trading status."""

    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    max_qty: Decimal = Decimal("9000")
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    min_notional: Decimal = Decimal("5")
    max_notional: Decimal = Decimal("9000000")
    market_max_qty: Decimal = Decimal("100")
    notional_filter: Literal["NOTIONAL", "MIN_NOTIONAL"] = "NOTIONAL"
    max_num_orders: int = 200
    status: str = "TRADING"
    base_precision: int = 8
    quote_precision: int = 8
    order_types: tuple[str, ...] = field(default=("LIMIT", "LIMIT_MAKER", "MARKET"))

    @property
    def symbol(self) -> str:
        """Binance's id, e.g. ``BTCUSDT``."""
        return f"{self.base}{self.quote}"

    @property
    def unified(self) -> str:
        """ccxt's symbol, e.g. ``BTC/USDT``."""
        return f"{self.base}/{self.quote}"

    @classmethod
    def create(cls, symbol: str, **values: Any) -> MarketSpec:
        """Build from ``"BTC/USDT"`` and plain numbers: ``create("BTC/USDT", tick_size="0.1")``."""
        if "/" not in symbol:
            raise ValueError(f"market symbol {symbol!r} must be BASE/QUOTE")
        base, quote = symbol.split("/", 1)
        unknown = set(values) - _FIELDS
        if unknown:
            raise TypeError(f"unknown market settings: {sorted(unknown)}")
        converted: dict[str, Any] = {
            k: dec(v) if k in _DECIMAL_FIELDS else v for k, v in values.items()
        }
        if "status" in converted and converted["status"] not in SYMBOL_STATUSES:
            raise ValueError(f"unknown symbol status {converted['status']!r}")
        return replace(cls(base=base, quote=quote), **converted)

    def with_status(self, status: str) -> MarketSpec:
        if status not in SYMBOL_STATUSES:
            raise ValueError(f"unknown symbol status {status!r}; expected one of {SYMBOL_STATUSES}")
        return replace(self, status=status)

    # -- checks, in the order Binance applies them -------------------------------------

    def check_trading(self) -> None:
        if self.status != "TRADING":
            raise market_closed()

    def check_price(self, price: Decimal) -> None:
        if (
            (self.min_price > 0 and price < self.min_price)
            or (self.max_price > 0 and price > self.max_price)
            or not on_grid(price, self.tick_size)
        ):
            raise filter_failure("PRICE_FILTER")

    def check_quantity(self, qty: Decimal, is_market: bool) -> None:
        if qty < self.min_qty or qty > self.max_qty or not on_grid(qty, self.step_size):
            raise filter_failure("LOT_SIZE")
        if is_market and qty > self.market_max_qty:
            raise filter_failure("MARKET_LOT_SIZE")

    def check_notional(self, notional: Decimal, is_market: bool) -> None:
        """Limit orders: price * qty; market orders: last price * qty, or quoteOrderQty."""
        name = self.notional_filter
        if notional < self.min_notional:
            raise filter_failure(name)
        if name == "NOTIONAL" and not is_market and notional > self.max_notional:
            raise filter_failure(name)


_FIELDS = frozenset(f.name for f in fields(MarketSpec)) - {"base", "quote"}
_DECIMAL_FIELDS = frozenset(f.name for f in fields(MarketSpec) if f.type == "Decimal")
