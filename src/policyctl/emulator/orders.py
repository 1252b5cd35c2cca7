"""Orders and fills, and the parsing of ``POST /api/v3/order`` parameters.

The order status lifecycle is Binance's: ``NEW -> PARTIALLY_FILLED -> FILLED``, or
``CANCELED`` / ``EXPIRED`` (market or IOC/FOK remainder that found no liquidity) /
``REJECTED``.  Parameter errors carry Binance's codes (-1100, -1102, -1106, -1115..-1117).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .errors import BinanceError, illegal_chars, invalid_enum, mandatory_param

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})
FINAL_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "LIMIT_MAKER",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
CLIENT_ID_RULE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_CLIENT_ID_RE = re.compile(CLIENT_ID_RULE)
_DECIMAL_RULE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_DECIMAL_RE = re.compile(_DECIMAL_RULE)


@dataclass
class Fill:
    """One execution of one order (a row of ``/api/v3/myTrades``)."""

    trade_id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


@dataclass
class Order:
    order_id: int
    symbol: str
    client_order_id: str
    api_key: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    status: str = "NEW"
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    update_time: int = 0
    fills: list[Fill] = field(default_factory=list)
    # Amount still locked for this order: quote asset for a BUY, base asset for a SELL.
    locked: Decimal = Decimal(0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_buy(self) -> bool:
        return self.side == "BUY"


@dataclass(frozen=True)
class NewOrder:
    """A validated ``POST /api/v3/order`` request."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal | None
    quote_order_qty: Decimal | None
    price: Decimal | None
    client_order_id: str | None
    resp_type: str


def _decimal_param(params: dict[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not _DECIMAL_RE.match(raw):
        raise illegal_chars(name, _DECIMAL_RULE)
    try:
        return Decimal(raw)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise illegal_chars(name, _DECIMAL_RULE) from exc


def _not_required(name: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")


def parse_new_order(params: dict[str, str]) -> NewOrder:
    """Validate the parameters of a new order the way Binance's API layer does."""
    for name in ("symbol", "side", "type"):
        if not params.get(name):
            raise mandatory_param(name)
    side = params["side"]
    if side not in ("BUY", "SELL"):
        raise invalid_enum(-1117, "Invalid side.")
    otype = params["type"]
    if otype not in ORDER_TYPES:
        raise invalid_enum(-1116, "Invalid orderType.")
    if otype not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
        raise BinanceError(-2010, _unsupported_type_message(otype))
    quantity = _decimal_param(params, "quantity")
    quote_qty = _decimal_param(params, "quoteOrderQty")
    price = _decimal_param(params, "price")
    tif = params.get("timeInForce", "")
    if otype == "MARKET":
        if price is not None:
            raise _not_required("price")
        if tif:
            raise BinanceError(-1114, "TimeInForce parameter sent when not required.")
        if quantity is None and quote_qty is None:
            raise BinanceError(
                -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
            )
        if quantity is not None and quote_qty is not None:
            raise _not_required("quoteOrderQty")
    else:
        if quote_qty is not None:
            raise _not_required("quoteOrderQty")
        if quantity is None:
            raise mandatory_param("quantity")
        if price is None:
            raise mandatory_param("price")
        if otype == "LIMIT":
            if not tif:
                raise mandatory_param("timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise invalid_enum(-1115, "Invalid timeInForce.")
        elif tif:
            raise BinanceError(-1114, "TimeInForce parameter sent when not required.")
    client_id = params.get("newClientOrderId")
    if client_id is not None and not _CLIENT_ID_RE.match(client_id):
        raise illegal_chars("newClientOrderId", CLIENT_ID_RULE)
    resp_type = params.get("newOrderRespType", "FULL")
    if resp_type not in ("ACK", "RESULT", "FULL"):
        raise invalid_enum(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
    return NewOrder(
        symbol=params["symbol"],
        side=side,
        type=otype,
        time_in_force=tif,
        quantity=quantity,
        quote_order_qty=quote_qty,
        price=price,
        client_order_id=client_id or None,
        resp_type=resp_type,
    )


def _unsupported_type_message(otype: str) -> str:
    words = {
        "STOP_LOSS": "Stop loss orders",
        "STOP_LOSS_LIMIT": "Stop loss limit orders",
        "TAKE_PROFIT": "Take profit orders",
        "TAKE_PROFIT_LIMIT": "Take profit limit orders",
    }
    return f"{words[otype]} are not supported for this symbol."
