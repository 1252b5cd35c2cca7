"""Execution arithmetic: walking depth, booking a fill, releasing what an order locked.

Pure functions over an :class:`Order`, an :class:`Account` and price levels; the
:class:`~policyctl.emulator.book.Exchange` decides when they run.  Commission follows
Binance's default (no BNB discount): a BUY pays it in the base asset it receives, a SELL
in the quote asset it receives, at the maker or taker rate, rounded to eight places.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .accounts import Account
from .marketdata import Level
from .markets import EIGHT, MarketSpec, floor_to_step
from .orders import Fill, Order


def walk(
    levels: list[Level],
    step: Decimal,
    *,
    qty: Decimal | None = None,
    quote_qty: Decimal | None = None,
    limit_price: Decimal | None = None,
    is_buy: bool = True,
) -> list[Level]:
    """Take liquidity from ``levels`` (best first) for ``qty`` base or ``quote_qty`` quote.

    Stops at ``limit_price`` (a BUY takes asks <= it, a SELL bids >= it).  Quantities taken
    for a quote amount are floored to the lot step, as Binance does for ``quoteOrderQty``.
    """
    taken: list[Level] = []
    left_qty = qty
    left_quote = quote_qty
    for price, size in levels:
        if limit_price is not None and (price > limit_price if is_buy else price < limit_price):
            break
        if left_qty is not None:
            take = min(size, left_qty)
        elif left_quote is not None:
            take = min(size, floor_to_step(left_quote / price, step))
        else:
            raise ValueError("walk needs qty or quote_qty")
        if take <= 0:
            break
        taken.append((price, take))
        if left_qty is not None:
            left_qty -= take
            if left_qty <= 0:
                break
        elif left_quote is not None:
            left_quote -= take * price
    return taken


def book_fill(
    order: Order,
    spec: MarketSpec,
    account: Account,
    price: Decimal,
    qty: Decimal,
    *,
    is_maker: bool,
    trade_id: int,
    now: int,
) -> Fill:
    """Execute ``qty`` of ``order`` at ``price``: move balances, record the fill."""
    quote_qty = price * qty
    rate = account.maker_rate if is_maker else account.taker_rate
    if order.is_buy:
        commission = (qty * rate).quantize(EIGHT, rounding=ROUND_HALF_UP)
        fee_asset = spec.base
        if order.locked > 0:
            reserved = min(order.locked, qty * order.price)
            order.locked -= reserved
            account.spend_locked(spec.quote, reserved)
            account.credit(spec.quote, reserved - quote_qty)  # price improvement comes back
        else:
            account.debit(spec.quote, quote_qty)
        account.credit(spec.base, qty - commission)
    else:
        commission = (quote_qty * rate).quantize(EIGHT, rounding=ROUND_HALF_UP)
        fee_asset = spec.quote
        if order.locked > 0:
            order.locked -= qty
            account.spend_locked(spec.base, qty)
        else:
            account.debit(spec.base, qty)
        account.credit(spec.quote, quote_qty - commission)
    fill = Fill(
        trade_id=trade_id,
        order_id=order.order_id,
        symbol=order.symbol,
        price=price,
        qty=qty,
        quote_qty=quote_qty,
        commission=commission,
        commission_asset=fee_asset,
        time=now,
        is_buyer=order.is_buy,
        is_maker=is_maker,
    )
    order.fills.append(fill)
    order.executed_qty += qty
    order.cum_quote += quote_qty
    order.update_time = now
    order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
    return fill


def close_order(order: Order, spec: MarketSpec, account: Account, status: str, now: int) -> None:
    """Move an order to a final status and give back whatever it still had locked."""
    if order.locked > 0:
        account.unlock(spec.quote if order.is_buy else spec.base, order.locked)
        order.locked = Decimal(0)
    order.status = status
    order.update_time = now
