"""Invariants of the matching engine under random order flow (no HTTP: the engine itself),
and consistency under concurrent HTTP clients."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import ccxt
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.emulator import (
    Account,
    EmulatorHandle,
    EngineSettings,
    Exchange,
    ManualClock,
    MarketSpec,
)
from policyctl.emulator.errors import BinanceError
from policyctl.emulator.orders import NewOrder

D = Decimal
START = {"USDT": D("5000"), "BTC": D("0.1")}

prices = st.integers(min_value=9_000, max_value=11_000).map(lambda c: D(c) / 100)  # 90.00..110.00
qtys = st.integers(min_value=1, max_value=50_000).map(lambda n: D(n) / 100_000)  # ..0.5
place = st.tuples(
    st.just("place"),
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(["LIMIT", "MARKET"]),
    prices,
    qtys,
)
move = st.tuples(st.just("price"), prices)
cancel = st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=40))
steps = st.lists(st.one_of(place, move, cancel), min_size=1, max_size=40)


def _check(ex: Exchange, account: Account) -> None:
    open_orders = [o for o in ex.orders.values() if o.is_open]
    locked_quote = sum((o.locked for o in open_orders if o.is_buy), D(0))
    locked_base = sum((o.locked for o in open_orders if not o.is_buy), D(0))
    assert account.balance("USDT").locked == locked_quote
    assert account.balance("BTC").locked == locked_base
    for bal in account.balances.values():
        assert bal.free >= 0 and bal.locked >= 0
    fills = [f for o in ex.orders.values() for f in o.fills]
    bought = sum((f.qty for f in fills if f.is_buyer), D(0))
    sold = sum((f.qty for f in fills if not f.is_buyer), D(0))
    spent = sum((f.quote_qty for f in fills if f.is_buyer), D(0))
    earned = sum((f.quote_qty for f in fills if not f.is_buyer), D(0))
    base_fees = sum((f.commission for f in fills if f.is_buyer), D(0))
    quote_fees = sum((f.commission for f in fills if not f.is_buyer), D(0))
    assert account.balance("BTC").total == START["BTC"] + bought - sold - base_fees
    assert account.balance("USDT").total == START["USDT"] - spent + earned - quote_fees
    for o in ex.orders.values():
        assert D(0) <= o.executed_qty <= o.orig_qty
        assert (o.status == "FILLED") == (o.executed_qty == o.orig_qty and o.orig_qty > 0)
        if not o.is_open:
            assert o.locked == 0


@settings(max_examples=150, deadline=None)
@given(steps=steps, fraction=st.sampled_from([D(1), D("0.5"), D("0.3")]))
def test_balances_and_locks_stay_consistent(
    steps: list[tuple[Any, ...]], fraction: Decimal
) -> None:
    ex = Exchange(ManualClock(), EngineSettings(limit_fill_fraction=fraction, level_qty=D("0.02")))
    ex.add_market(MarketSpec.create("BTC/USDT", min_notional="1"))
    account = Account("k", "s")
    for asset, amount in START.items():
        account.set_balance(asset, amount)
    ex.add_account(account)
    ex.set_price("BTC/USDT", D(100), D("100.01"))
    for step in steps:
        try:
            if step[0] == "place":
                _, side, otype, price, qty = step
                ex.place_order(
                    account,
                    NewOrder(
                        symbol="BTCUSDT",
                        side=side,
                        type=otype,
                        time_in_force="GTC" if otype == "LIMIT" else "",
                        quantity=qty,
                        quote_order_qty=None,
                        price=price if otype == "LIMIT" else None,
                        client_order_id=None,
                        resp_type="FULL",
                    ),
                )
            elif step[0] == "price":
                ex.set_price("BTC/USDT", step[1], step[1] + D("0.01"))
            else:
                ids = sorted(ex.orders)
                if ids:  # any order, open or not: cancelling a closed one is -2011
                    ex.cancel_order(account, "BTCUSDT", ids[step[1] % len(ids)], None)
        except BinanceError:
            pass  # a rejection (filter, funds, order not open) must leave the state consistent
        _check(ex, account)


def test_concurrent_clients_keep_the_book_consistent(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        c = emu.ccxt(timeout_ms=5000)
        c.markets, c.markets_by_id = client.markets, client.markets_by_id
        try:
            for i in range(5):
                c.create_order(
                    "BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": f"w{n}-{i}"}
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(client.fetch_open_orders("BTC/USDT")) == 40
    assert emu.balances()["USDT"] == (D("10000") - D("1600"), D("1600"))
    assert len({o.order_id for o in emu.orders()}) == 40
