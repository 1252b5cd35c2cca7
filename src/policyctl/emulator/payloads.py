"""JSON bodies in Binance's spot REST shapes.

Shapes follow the real API (and ccxt's static fixtures of it): decimals as strings with
eight places, ids and times as integers, ``orderListId: -1`` for plain orders, FULL order
responses with a ``fills`` list.  Every function here is pure: state in, dict out.
"""

from __future__ import annotations

from decimal import Decimal

from .accounts import Account
from .marketdata import DAY_MS, Bar, Feed, Level
from .markets import MarketSpec, fmt8
from .orders import Fill, Order

Json = dict[str, object]
ZERO = Decimal(0)

RATE_LIMITS: list[Json] = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def _filters(spec: MarketSpec) -> list[Json]:
    notional: Json
    if spec.notional_filter == "NOTIONAL":
        notional = {
            "filterType": "NOTIONAL",
            "minNotional": fmt8(spec.min_notional),
            "applyMinToMarket": True,
            "maxNotional": fmt8(spec.max_notional),
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        }
    else:
        notional = {
            "filterType": "MIN_NOTIONAL",
            "minNotional": fmt8(spec.min_notional),
            "applyToMarket": True,
            "avgPriceMins": 5,
        }
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": fmt8(spec.min_price),
            "maxPrice": fmt8(spec.max_price),
            "tickSize": fmt8(spec.tick_size),
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": fmt8(spec.min_qty),
            "maxQty": fmt8(spec.max_qty),
            "stepSize": fmt8(spec.step_size),
        },
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": fmt8(ZERO),
            "maxQty": fmt8(spec.market_max_qty),
            "stepSize": fmt8(ZERO),
        },
        notional,
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": spec.max_num_orders},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
    ]


def symbol_info(spec: MarketSpec) -> Json:
    return {
        "symbol": spec.symbol,
        "status": spec.status,
        "baseAsset": spec.base,
        "baseAssetPrecision": spec.base_precision,
        "quoteAsset": spec.quote,
        "quotePrecision": spec.quote_precision,
        "quoteAssetPrecision": spec.quote_precision,
        "baseCommissionPrecision": spec.base_precision,
        "quoteCommissionPrecision": spec.quote_precision,
        "orderTypes": list(spec.order_types),
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": _filters(spec),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def exchange_info(specs: list[MarketSpec], now: int) -> Json:
    return {
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [symbol_info(s) for s in specs],
    }


def ticker_24h(spec: MarketSpec, feed: Feed, now: int, spike: Decimal | None = None) -> Json:
    """``GET /api/v3/ticker/24hr``; ``spike`` replaces last/bid/ask for one bad tick."""
    q = feed.quote
    if q is None:
        last = bid = ask = bid_qty = ask_qty = open_ = high = low = volume = ZERO
        count = 0
    else:
        last, bid, ask, bid_qty, ask_qty = q.last, q.bid, q.ask, q.bid_qty, q.ask_qty
        if feed.current_bar() is not None:
            open_, high, low, volume = feed.window_stats(now)
        else:
            open_, high, low, volume = q.open_24h, q.high_24h, q.low_24h, q.volume
        count = q.updates
    if spike is not None:
        last = bid = ask = spike
        high = max(high, spike)
        low = min(low, spike) if low > 0 else spike
    change = last - open_
    pct = (change / open_ * 100) if open_ > 0 else ZERO
    return {
        "symbol": spec.symbol,
        "priceChange": fmt8(change),
        "priceChangePercent": f"{pct.quantize(Decimal('0.001')):f}",
        "weightedAvgPrice": fmt8(last),
        "prevClosePrice": fmt8(open_),
        "lastPrice": fmt8(last),
        "lastQty": fmt8(ZERO),
        "bidPrice": fmt8(bid),
        "bidQty": fmt8(bid_qty),
        "askPrice": fmt8(ask),
        "askQty": fmt8(ask_qty),
        "openPrice": fmt8(open_),
        "highPrice": fmt8(high),
        "lowPrice": fmt8(low),
        "volume": fmt8(volume),
        "quoteVolume": fmt8(volume * last),
        "openTime": now - DAY_MS,
        "closeTime": now,
        "firstId": 0 if count else -1,
        "lastId": count - 1 if count else -1,
        "count": count,
    }


def depth(bids: list[Level], asks: list[Level], limit: int, update_id: int) -> Json:
    return {
        "lastUpdateId": update_id,
        "bids": [[fmt8(p), fmt8(q)] for p, q in bids[:limit]],
        "asks": [[fmt8(p), fmt8(q)] for p, q in asks[:limit]],
    }


def kline(bar: Bar, bar_ms: int) -> list[object]:
    return [
        bar.open_time,
        fmt8(bar.open),
        fmt8(bar.high),
        fmt8(bar.low),
        fmt8(bar.close),
        fmt8(bar.volume),
        bar.open_time + bar_ms - 1,
        fmt8(bar.volume * bar.close),
        0,
        fmt8(ZERO),
        fmt8(ZERO),
        "0",
    ]


def account_info(account: Account, now: int, omit_zero: bool) -> Json:
    balances = [
        {"asset": asset, "free": fmt8(b.free), "locked": fmt8(b.locked)}
        for asset, b in sorted(account.balances.items())
        if not (omit_zero and b.total == 0)
    ]
    return {
        "makerCommission": int(account.maker_rate * 10000),
        "takerCommission": int(account.taker_rate * 10000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": fmt8(account.maker_rate),
            "taker": fmt8(account.taker_rate),
            "buyer": fmt8(ZERO),
            "seller": fmt8(ZERO),
        },
        "canTrade": account.can_trade,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": account.uid,
    }


def _order_core(order: Order) -> Json:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
    }


def _order_amounts(order: Order) -> Json:
    return {
        "price": fmt8(order.price),
        "origQty": fmt8(order.orig_qty),
        "executedQty": fmt8(order.executed_qty),
        "cummulativeQuoteQty": fmt8(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
    }


def new_order(order: Order, resp_type: str) -> Json:
    """``POST /api/v3/order`` answer for ``newOrderRespType`` ACK, RESULT or FULL."""
    body = _order_core(order) | {"transactTime": order.time}
    if resp_type == "ACK":
        return body
    body |= _order_amounts(order) | {
        "origQuoteOrderQty": fmt8(order.orig_quote_qty),
        "workingTime": order.time,
        "selfTradePreventionMode": "NONE",
    }
    if resp_type == "FULL":
        body["fills"] = [
            {
                "price": fmt8(f.price),
                "qty": fmt8(f.qty),
                "commission": fmt8(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in order.fills
        ]
    return body


def order_status(order: Order) -> Json:
    """``GET /api/v3/order`` / ``openOrders`` / ``allOrders`` element."""
    return (
        _order_core(order)
        | _order_amounts(order)
        | {
            "stopPrice": fmt8(ZERO),
            "icebergQty": fmt8(ZERO),
            "time": order.time,
            "updateTime": order.update_time,
            "isWorking": True,
            "workingTime": order.time,
            "origQuoteOrderQty": fmt8(order.orig_quote_qty),
            "selfTradePreventionMode": "NONE",
        }
    )


def canceled(order: Order, cancel_client_id: str, now: int) -> Json:
    """``DELETE /api/v3/order``: ``clientOrderId`` is the cancel's id, the original moves."""
    return (
        {
            "symbol": order.symbol,
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_client_id,
            "transactTime": now,
        }
        | _order_amounts(order)
        | {
            "origQuoteOrderQty": fmt8(order.orig_quote_qty),
            "selfTradePreventionMode": "NONE",
        }
    )


def trade(fill: Fill) -> Json:
    """``GET /api/v3/myTrades`` element."""
    return {
        "symbol": fill.symbol,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": -1,
        "price": fmt8(fill.price),
        "qty": fmt8(fill.qty),
        "quoteQty": fmt8(fill.quote_qty),
        "commission": fmt8(fill.commission),
        "commissionAsset": fill.commission_asset,
        "time": fill.time,
        "isBuyer": fill.is_buyer,
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }
