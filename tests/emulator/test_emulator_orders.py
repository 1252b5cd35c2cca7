"""Orders through the real ccxt client: placement, lifecycle, queries, rejections."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from emulator_markets import BTC, CLIENT_TIMEOUT_MS
from policyctl.emulator import EmulatorHandle, start_emulator

D = Decimal


def test_market_buy_fills_at_ask_with_fee_in_base(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    order = client.create_order("BTC/USDT", "market", "buy", 0.01)
    assert order["status"] == "closed" and order["filled"] == 0.01
    assert order["average"] == 42000.1
    assert order["fee"] == {"currency": "BTC", "cost": 0.00001}
    assert order["clientOrderId"].startswith("x-")  # ccxt's broker-prefixed id is kept
    assert emu.balances()["BTC"] == (D("1.00999"), D(0))
    assert emu.balances()["USDT"] == (D("10000") - D("420.001"), D(0))


def test_market_sell_fills_at_bid_with_fee_in_quote(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    order = client.create_order("BTC/USDT", "market", "sell", 0.1)
    assert order["average"] == 42000.0 and order["fee"]["currency"] == "USDT"
    assert emu.balances()["USDT"][0] == D("10000") + D("4200") - D("4.2")
    assert emu.balances()["BTC"][0] == D("0.9")


def test_market_buy_with_price_sends_quote_order_qty(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    # ccxt turns amount * price into quoteOrderQty; the emulator spends at most that much
    order = client.create_order("BTC/USDT", "market", "buy", 0.01, 42000)
    assert order["info"]["origQuoteOrderQty"] == "420.00000000"
    assert order["filled"] == 0.00999  # floored to the step at 42000.10
    assert order["cost"] <= 420.0


def test_market_order_walks_configured_depth(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.set_balance("USDT", "100000")
    emu.set_depth("BTC/USDT", bids=[("41990", "1")], asks=[("42010", "0.1"), ("42020", "0.2")])
    order = client.create_order("BTC/USDT", "market", "buy", 0.25)
    assert [(t["price"], t["amount"]) for t in order["trades"]] == [(42010.0, 0.1), (42020.0, 0.15)]
    thin = client.create_order("BTC/USDT", "market", "buy", 0.5)  # only 0.3 on the book
    assert thin["info"]["status"] == "EXPIRED" and thin["filled"] == 0.3


def test_limit_order_rests_then_fills_on_price_cross(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    order = client.create_order("BTC/USDT", "limit", "buy", 0.02, 41000)
    assert order["status"] == "open" and order["filled"] == 0.0
    assert emu.balances()["USDT"] == (D("10000") - D("820"), D("820"))
    emu.set_price("BTC/USDT", bid="40990", ask="40995")
    done = client.fetch_order(order["id"], "BTC/USDT")
    assert done["status"] == "closed" and done["average"] == 41000.0
    trades = client.fetch_my_trades("BTC/USDT")
    assert trades[-1]["takerOrMaker"] == "maker" and trades[-1]["order"] == order["id"]
    assert emu.balances()["USDT"] == (D("10000") - D("820"), D(0))


def test_limit_partial_fills_follow_the_fraction(credentials: tuple[str, str]) -> None:
    key, secret = credentials
    with start_emulator(
        markets=[BTC], api_key=key, secret=secret, balances={"BTC": "1"}, limit_fill_fraction="0.4"
    ) as emu:
        emu.set_price("BTC/USDT", bid="100", ask="100.01")
        client = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
        order = client.create_order("BTC/USDT", "limit", "sell", 0.1, 105)
        statuses = []
        for _ in range(3):
            emu.set_price("BTC/USDT", bid="106", ask="106.01")
            fetched = client.fetch_order(order["id"], "BTC/USDT")
            statuses.append((fetched["info"]["status"], fetched["filled"]))
        assert statuses == [("PARTIALLY_FILLED", 0.04), ("PARTIALLY_FILLED", 0.08), ("FILLED", 0.1)]
        assert len(client.fetch_my_trades("BTC/USDT")) == 3


def test_marketable_limit_takes_liquidity_at_book_price(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    order = client.create_order("BTC/USDT", "limit", "buy", 0.01, 42050)
    assert order["status"] == "closed" and order["average"] == 42000.1
    assert [f.is_maker for f in emu.trades()] == [False]
    assert emu.balances()["USDT"] == (D("10000") - D("420.001"), D(0))  # improvement refunded


def test_ioc_fok_and_post_only(emu: EmulatorHandle, client: ccxt.binance) -> None:
    emu.set_balance("USDT", "100000")
    emu.set_depth("BTC/USDT", bids=[("41990", "1")], asks=[("42010", "0.1")])
    ioc = client.create_order("BTC/USDT", "limit", "buy", 0.3, 42010, {"timeInForce": "IOC"})
    assert ioc["info"]["status"] == "EXPIRED" and ioc["filled"] == 0.1
    fok = client.create_order("BTC/USDT", "limit", "buy", 0.3, 42010, {"timeInForce": "FOK"})
    assert fok["info"]["status"] == "EXPIRED" and fok["filled"] == 0.0
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 42010, {"postOnly": True})
    maker = client.create_order("BTC/USDT", "limit", "buy", 0.01, 42000, {"postOnly": True})
    assert maker["info"]["type"] == "LIMIT_MAKER" and maker["status"] == "open"
    assert emu.balances()["USDT"][1] == D("420")  # only the resting maker locks funds
    assert emu.balances()["USDT"][0] == D("100000") - D("4201") - D("420")


def test_fetch_by_id_and_by_client_id_cancel_and_open_orders(client: ccxt.binance) -> None:
    a = client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "rt-a"})
    b = client.create_order("BTC/USDT", "limit", "sell", 0.01, 45000, {"clientOrderId": "rt-b"})
    assert client.fetch_order(a["id"], "BTC/USDT")["clientOrderId"] == "rt-a"
    assert client.fetch_order(None, "BTC/USDT", {"clientOrderId": "rt-b"})["id"] == b["id"]
    assert {o["id"] for o in client.fetch_open_orders("BTC/USDT")} == {a["id"], b["id"]}
    canceled = client.cancel_order(None, "BTC/USDT", {"clientOrderId": "rt-a"})
    assert canceled["status"] == "canceled" and canceled["id"] == a["id"]
    assert [o["id"] for o in client.fetch_open_orders("BTC/USDT")] == [b["id"]]
    assert client.fetch_order(a["id"], "BTC/USDT")["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):  # -2011 Unknown order sent.
        client.cancel_order(a["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):  # -2013 Order does not exist.
        client.fetch_order("999999", "BTC/USDT")
    client.cancel_all_orders("BTC/USDT")
    assert client.fetch_open_orders("BTC/USDT") == []


def test_my_trades_and_closed_orders(client: ccxt.binance) -> None:
    first = client.create_order("BTC/USDT", "market", "buy", 0.001)
    client.create_order("BTC/USDT", "market", "sell", 0.002)
    trades = client.fetch_my_trades("BTC/USDT")
    assert [t["side"] for t in trades] == ["buy", "sell"]
    assert trades[0]["order"] == first["id"] and trades[0]["fee"]["currency"] == "BTC"
    assert trades[1]["fee"] == {"currency": "USDT", "cost": 0.084}
    assert len(client.fetch_my_trades("BTC/USDT", limit=1)) == 1
    assert [o["status"] for o in client.fetch_closed_orders("BTC/USDT")] == ["closed", "closed"]


def test_duplicate_client_id_among_open_orders_is_rejected(client: ccxt.binance) -> None:
    client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "dup-1"})


def test_client_id_reuse_after_fill_follows_binance(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    # Binance: "A unique id among open orders"; a filled order's id may be sent again.
    client.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "again"})
    second = client.create_order(
        "BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "again"}
    )
    assert client.fetch_order(None, "BTC/USDT", {"clientOrderId": "again"})["id"] == second["id"]
    assert len(emu.orders("BTC/USDT")) == 2


def test_client_id_scope_account_rejects_any_reuse(credentials: tuple[str, str]) -> None:
    key, secret = credentials
    with start_emulator(
        markets=[BTC],
        api_key=key,
        secret=secret,
        balances={"USDT": "100"},
        client_id_scope="account",
    ) as emu:
        emu.set_price("BTC/USDT", bid="100", ask="100.01")
        other = emu.add_account("other-key", secret + "x", {"USDT": "100"})
        client = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS)
        client.create_order("BTC/USDT", "market", "buy", 0.1, None, {"clientOrderId": "once"})
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            client.create_order("BTC/USDT", "market", "buy", 0.1, None, {"clientOrderId": "once"})
        theirs = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS, api_key=other.api_key)
        theirs.create_order("BTC/USDT", "market", "buy", 0.1, None, {"clientOrderId": "once"})


def test_insufficient_funds(client: ccxt.binance) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order("BTC/USDT", "limit", "buy", 1, 41000)
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order("BTC/USDT", "market", "sell", 2)


def test_filter_failures(client: ccxt.binance) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: LOT_SIZE"):
        client.create_order("BTC/USDT", "limit", "buy", 10000, 1)  # above maxQty
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: PRICE_FILTER"):
        client.create_order("BTC/USDT", "limit", "sell", 0.01, 2_000_000)
    # ccxt maps -1013 "Filter failure: NOTIONAL" by its code: BadRequest, not InvalidOrder
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        client.create_order("BTC/USDT", "limit", "buy", 0.0001, 41000)
    with pytest.raises(ccxt.BadRequest, match="Filter failure: MIN_NOTIONAL"):
        client.create_order("ETH/BTC", "limit", "buy", 0.001, 0.052)
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: MARKET_LOT_SIZE"):
        client.create_order("BTC/USDT", "market", "sell", 150)


def test_halted_symbol(emu: EmulatorHandle, client: ccxt.binance) -> None:
    resting = client.create_order("BTC/USDT", "limit", "buy", 0.01, 41000)
    for status in ("HALT", "BREAK"):
        emu.set_symbol_status("BTC/USDT", status)
        markets = client.load_markets(reload=True)
        assert markets["BTC/USDT"]["active"] is False
        assert markets["BTC/USDT"]["info"]["status"] == status
        with pytest.raises(ccxt.MarketClosed, match="Market is closed"):
            client.create_order("BTC/USDT", "limit", "buy", 0.01, 41000)
        emu.set_price("BTC/USDT", bid="40000", ask="40001")  # no fills while halted
        assert client.fetch_order(resting["id"], "BTC/USDT")["status"] == "open"
    assert client.cancel_order(resting["id"], "BTC/USDT")["status"] == "canceled"
    emu.set_symbol_status("BTC/USDT", "TRADING")
    assert client.load_markets(reload=True)["BTC/USDT"]["active"] is True


def test_exchange_side_expiry_releases_funds(emu: EmulatorHandle, client: ccxt.binance) -> None:
    order = client.create_order("BTC/USDT", "limit", "buy", 0.01, 41000)
    emu.expire_order(int(order["id"]))
    fetched = client.fetch_order(order["id"], "BTC/USDT")
    assert fetched["status"] == "expired" and fetched["info"]["status"] == "EXPIRED"
    assert emu.balances()["USDT"] == (D("10000"), D(0))
    rejected = client.create_order("BTC/USDT", "limit", "sell", 0.01, 45000)
    emu.expire_order(int(rejected["id"]), "REJECTED")
    assert client.fetch_order(rejected["id"], "BTC/USDT")["status"] == "rejected"
