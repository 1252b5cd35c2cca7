"""New orders: Binance's checks in Binance's order, then immediate execution.

Order of checks: symbol status (-1013 "Market is closed."), account permission, order type,
PRICE_FILTER, LOT_SIZE / MARKET_LOT_SIZE, the notional filter, MAX_NUM_ORDERS, duplicate
client id (-2010 "Duplicate order sent."), post-only crossing, balance (-2010
"Account has insufficient balance for requested action.").  A rejected order leaves no
trace: no id is consumed and no balance moves.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from . import matching
from .accounts import Account
from .errors import DUPLICATE_ORDER, WOULD_MATCH, filter_failure, new_order_rejected
from .marketdata import Level
from .markets import MarketSpec
from .orders import NewOrder, Order

if TYPE_CHECKING:
    from .book import Exchange

ZERO = Decimal(0)


def _validate(ex: Exchange, account: Account, spec: MarketSpec, req: NewOrder) -> None:
    spec.check_trading()
    if not account.can_trade:
        raise new_order_rejected("This account may not place or cancel orders.")
    if req.type not in spec.order_types:
        raise new_order_rejected(
            "Market orders are not supported for this symbol."
            if req.type == "MARKET"
            else "Unsupported order combination"
        )
    if req.type != "MARKET":
        assert req.price is not None and req.quantity is not None
        spec.check_price(req.price)
        spec.check_quantity(req.quantity, is_market=False)
        spec.check_notional(req.price * req.quantity, is_market=False)
        if len(ex.open_orders(account, spec.symbol)) >= spec.max_num_orders:
            raise filter_failure("MAX_NUM_ORDERS")
    elif req.quantity is not None:
        spec.check_quantity(req.quantity, is_market=True)
        quote = ex.feeds[spec.symbol].quote
        spec.check_notional(req.quantity * (quote.last if quote else ZERO), is_market=True)
    else:
        assert req.quote_order_qty is not None
        spec.check_notional(req.quote_order_qty, is_market=True)
    if req.client_order_id is not None:
        for o in ex.orders.values():
            same = o.api_key == account.api_key and o.client_order_id == req.client_order_id
            if same and (ex.settings.client_id_scope == "account" or o.is_open):
                raise new_order_rejected(DUPLICATE_ORDER)


def _would_take(spec: MarketSpec, req: NewOrder, book_side: list[Level]) -> list[Level]:
    """The liquidity the order takes on arrival (exact: the book is static)."""
    is_buy = req.side == "BUY"
    if req.type == "LIMIT_MAKER":
        if book_side:
            assert req.price is not None
            best = book_side[0][0]
            if (req.price >= best) if is_buy else (req.price <= best):
                raise new_order_rejected(WOULD_MATCH)
        return []
    return matching.walk(
        book_side,
        spec.step_size,
        qty=req.quantity,
        quote_qty=req.quote_order_qty,
        limit_price=None if req.type == "MARKET" else req.price,
        is_buy=is_buy,
    )


def place(ex: Exchange, account: Account, req: NewOrder) -> Order:
    """Validate, reserve funds, execute what crosses, and rest or expire the remainder."""
    spec = ex.listed(req.symbol)
    _validate(ex, account, spec, req)
    bids, asks = ex.depth(spec.symbol)
    taken = _would_take(spec, req, asks if req.side == "BUY" else bids)
    taken_qty = sum((q for _, q in taken), ZERO)
    is_market = req.type == "MARKET"
    # Funds: a resting order locks its whole size, a market order needs what it takes.
    if is_market:
        lock_asset, lock_amount = None, ZERO
        if req.side == "BUY":
            account.require_free(spec.quote, sum((p * q for p, q in taken), ZERO))
        else:
            account.require_free(spec.base, taken_qty)
    else:
        assert req.price is not None and req.quantity is not None
        if req.side == "BUY":
            lock_asset, lock_amount = spec.quote, req.price * req.quantity
        else:
            lock_asset, lock_amount = spec.base, req.quantity
        account.require_free(lock_asset, lock_amount)
    now = ex.clock.now_ms()
    oid = ex.new_order_id()
    order = Order(
        order_id=oid,
        symbol=spec.symbol,
        client_order_id=req.client_order_id or f"emu{oid:019d}",
        api_key=account.api_key,
        side=req.side,
        type=req.type,
        time_in_force=req.time_in_force,
        price=req.price if req.price is not None else ZERO,
        orig_qty=req.quantity if req.quantity is not None else taken_qty,
        orig_quote_qty=req.quote_order_qty or ZERO,
        time=now,
        update_time=now,
    )
    if lock_asset is not None:
        account.lock(lock_asset, lock_amount)
        order.locked = lock_amount
    ex.orders[oid] = order
    if req.time_in_force == "FOK" and taken_qty < order.orig_qty:
        taken = []  # fill-or-kill: all of it now, or nothing
    for price, qty in taken:
        matching.book_fill(
            order, spec, account, price, qty, is_maker=False, trade_id=ex.new_trade_id(), now=now
        )
    if order.is_open and (is_market or req.time_in_force in ("IOC", "FOK")):
        matching.close_order(order, spec, account, "EXPIRED", now)
    return order
