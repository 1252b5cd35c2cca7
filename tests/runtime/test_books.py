"""The books: an order that is done with a partial fill is a trade, with its cooldowns."""

from __future__ import annotations

from policyctl.runtime.books import apply_fill, forget_vanished
from policyctl.runtime.model import Fill, OpenOrder, Side
from policyctl.runtime.state import EngineState, PendingOrder

T0 = 1_704_067_200_000
HOUR = 3_600_000
COOL = {"after_fill": 3600.0, "after_stopout": 7200.0}


def _state(kind: str = "entry", side: str = "buy") -> EngineState:
    s = EngineState.initial(10_000.0, T0)
    s.pending["c1"] = PendingOrder("c1", "BTC/USDT", side, 1.0, 100.0, kind, "r", T0)
    return s


def _fill(qty: float, side: Side = Side.BUY) -> Fill:
    return Fill("f1", "c1", "BTC/USDT", side, qty, 100.05, 0.1, T0 + 1000)


def test_a_market_buy_filled_short_of_its_quantity_still_starts_the_cooldown() -> None:
    """Sized in money, a market buy fills a little less than asked when the price moved up: it
    never reaches its quantity, and leaves the open orders with that fill. It is a trade."""
    s = _state()
    apply_fill(s, _fill(0.9995), T0, COOL)
    assert "c1" in s.pending and s.cooldowns == {}  # not done yet: more may fill
    events = forget_vanished(s, (), T0 + 300_000, COOL)
    assert "c1" not in s.pending and [e.kind for e in events] == ["order_gone"]
    # counted from the fill, not from when the engine found the order gone
    assert s.trade_times == [T0 + 1000]
    assert s.cooldowns == {"BTC/USDT": T0 + 1000 + HOUR}


def test_a_partly_filled_stop_loss_that_ends_is_a_stop_out() -> None:
    s = _state(kind="stop_loss", side="sell")
    apply_fill(s, _fill(0.5, Side.SELL), T0, COOL)
    forget_vanished(s, (), T0 + 300_000, COOL)
    assert s.stopout_times == [T0 + 1000]
    assert s.cooldowns == {"BTC/USDT": T0 + 1000 + 2 * HOUR}


def test_trade_times_stay_in_time_order() -> None:
    """An order found gone counts from its fill, earlier than trades booked since: the windows
    count by bisection, so the times are kept in order."""
    s = _state()
    apply_fill(s, _fill(0.9995), T0, COOL)
    s.pending["c2"] = PendingOrder("c2", "ETH/USDT", "buy", 1.0, 10.0, "entry", "r", T0 + 2000)
    apply_fill(s, Fill("f2", "c2", "ETH/USDT", Side.BUY, 1.0, 10.0, 0.01, T0 + 200_000), T0, COOL)
    forget_vanished(s, (), T0 + 300_000, COOL)
    assert s.trade_times == [T0 + 1000, T0 + 200_000]


def test_the_fill_time_of_a_pending_order_survives_a_restart() -> None:
    s = _state()
    assert '"last_fill_ms"' not in s.to_json()  # an order never filled is written as before
    apply_fill(s, _fill(0.4), T0, COOL)
    back = EngineState.from_json(s.to_json())
    assert back.pending["c1"].last_fill_ms == T0 + 1000
    assert EngineState.from_json(_state().to_json()).pending["c1"].last_fill_ms is None


def test_an_order_gone_unfilled_is_no_trade_and_one_still_open_stays() -> None:
    s = _state()
    forget_vanished(s, (), T0 + 300_000, COOL)
    assert s.trade_times == [] and s.cooldowns == {}
    s = _state()
    apply_fill(s, _fill(0.4), T0, COOL)
    still = (OpenOrder("c1", "BTC/USDT", Side.BUY, 1.0, 100.0, 0.4, T0),)
    assert forget_vanished(s, still, T0 + 300_000, COOL) == []
    assert "c1" in s.pending and s.cooldowns == {}


def test_a_full_fill_is_done_at_once() -> None:
    s = _state()
    apply_fill(s, _fill(1.0), T0, COOL)
    assert "c1" not in s.pending and s.trade_times == [T0 + 1000]
    assert s.cooldowns == {"BTC/USDT": T0 + 1000 + HOUR}
