"""Every way the engine says no, one focused test each; and the arithmetic it says yes with.

Each denial test builds the smallest policy and snapshot that produce exactly that denial
and checks its stable code and its message. The rest checks the numbers of orders it does
send (sizing, clipping, rounding), breakers and the trading state, and exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine_support import (
    T0,
    TF5,
    Exchange,
    bar,
    compile_text,
    denial_codes,
    events_of,
    only_denial,
    quote,
    snapshot,
    warm_up,
)
from policyctl.exchanges.guard import Draft, Guard, GuardContext
from policyctl.rules.compiler import CompiledPolicy
from policyctl.runtime.breakers import reset_breaker
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.model import MarketRules, OpenOrder, Quote, Side, Snapshot, TradingState
from policyctl.runtime.state import EngineState

BTC = "BTC/USDT"
ETH = "ETH/USDT"
FEE = 0.001  # the default taker fee

BUY_UP = """
triggers:
  up:
    when: close > open
    then: buy 10% of equity
"""


def policy(tmp_path: Path, extra: str = "", base: str = BUY_UP, **header: object) -> CompiledPolicy:
    header.setdefault("symbols", (BTC,))
    return compile_text(tmp_path / "p", base + extra, **header)


def entry(cp: CompiledPolicy, *, close: float = 101.0, engine: Engine | None = None,
          state: EngineState | None = None, warm: int = 3, **snap_kw: object) -> Decision:
    """Three flat bars at 100, then an up bar (100 -> ``close``): the `up` trigger fires."""
    engine = engine or Engine(cp)
    state = state or EngineState.initial(10_000.0, T0)
    state, ts = warm_up(engine, state, cp.symbols, warm)
    bars = {s: bar(ts, close, open=100.0) for s in cp.symbols}
    snap_kw.setdefault("bars", bars)
    return engine.tick(snapshot(ts + TF5, **snap_kw), state)  # type: ignore[arg-type]


def stage(d: Decision, name: str) -> dict[str, Any]:
    """The first trace entry of a stage."""
    return next(t for t in d.trace if t["stage"] == name)


def buy_orders(d: Decision) -> list[str]:
    return [o.symbol for o in d.orders if o.side is Side.BUY]


# ---- the guard's codes --------------------------------------------------------------------


def test_live_not_armed(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    d = entry(cp, engine=Engine(cp, mode="live", live_armed=False))
    den = only_denial(d)
    assert den["code"] == "live_not_armed"
    assert den["message"] == "live trading needs the explicit opt-in (flag and environment)"
    assert d.orders == []
    armed = entry(cp, engine=Engine(cp, mode="live", live_armed=True))
    assert buy_orders(armed) == [BTC] and armed.denials == []


def test_kill_switch_denies_exits_and_halts_entries(tmp_path: Path) -> None:
    cp = policy(tmp_path, base="""
triggers:
  up:
    when: close > open
    then: buy 10% of equity stop 5%
""")
    ex = Exchange(cp)
    for _ in range(3):
        ex.step({BTC: 100.0})
    assert buy_orders(ex.step({BTC: 101.0})) == [BTC]
    ex.step({BTC: 101.0})  # filled at 101, stop at 95.95
    assert BTC in ex.state.positions
    d = ex.step({BTC: 90.0}, kill_switch=True)  # the stop is hit, but the kill switch is on
    assert d.trading_state is TradingState.HALTED
    den = only_denial(d, "kill_switch")
    assert den["message"] == "the kill switch is engaged"
    assert den["rule"] == "stop_loss"
    assert d.orders == []


def test_halted_state_denies_entries_and_exits(tmp_path: Path) -> None:
    cp = policy(tmp_path, base="""
triggers:
  up:
    when: close > open
    then: buy 10% of equity stop 5%
breakers:
  crash:
    when: any(close < 92 USDT)
    then: halt
""")
    ex = Exchange(cp)
    for _ in range(3):
        ex.step({BTC: 100.0})
    ex.step({BTC: 101.0})
    ex.step({BTC: 101.0})
    d = ex.step({BTC: 90.0})
    assert d.trading_state is TradingState.HALTED
    den = only_denial(d, "halted")
    assert den["message"] == "trading is halted"
    assert den["rule"] == "stop_loss" and den["stage"] == "guard:trading_state"
    assert d.orders == []
    # an entry while halted is refused before sizing, with the same code
    ex.step({BTC: 91.0})
    d = ex.step({BTC: 91.5})  # an up bar: the entry fires
    assert d.trading_state is TradingState.HALTED
    entry_denial = [x for x in d.denials if x["rule"] == "up"]
    assert [x["code"] for x in entry_denial] == ["halted"]
    assert entry_denial[0]["message"] == "trading state is halted: no new entries"


@pytest.mark.parametrize("action, code", [("pause", "paused"), ("reduce_only", "reduce_only")])
def test_paused_and_reduce_only_deny_entries(tmp_path: Path, action: str, code: str) -> None:
    cp = policy(tmp_path, f"""
breakers:
  jumpy:
    when: any(close > open)
    then: {action}
""")
    d = entry(cp)
    assert d.trading_state.value == code
    den = only_denial(d)
    assert den["code"] == code
    assert den["message"] == f"trading state is {code}: no new entries"
    assert d.orders == []


@pytest.mark.parametrize("state, code", [(TradingState.PAUSED, "paused"),
                                         (TradingState.REDUCE_ONLY, "reduce_only")])
def test_guard_trading_state_code_for_an_entry(state: TradingState, code: str) -> None:
    """The guard itself refuses an entry in a restricted state (the engine's last line)."""
    ctx = GuardContext(now=T0, mode="dry-run", live_armed=False, trading_state=state, kill_switch=False,
                       settings={}, flags={}, fee=FEE, market=None, quote=None, bar=None,
                       last_trusted=None, avg_volume=None)
    v = Guard().check(Draft("id", BTC, Side.BUY, 1.0, None, 100.0, False, "entry", "up"), ctx)
    assert v.denial is not None and v.denial.code == code
    assert v.denial.message == f"trading state is {code}: only exposure-reducing orders"
    ok = Guard().check(Draft("id", BTC, Side.SELL, 1.0, None, 100.0, True, "exit", "down"), ctx)
    assert ok.ok and ok.qty_text == "1"


@pytest.mark.parametrize("status", ["halted", "cancel_only"])
def test_product_halted_and_cancel_only(tmp_path: Path, status: str) -> None:
    cp = policy(tmp_path)
    d = entry(cp, markets={BTC: MarketRules(status=status)})
    den = only_denial(d)
    assert den["code"] == f"product_{status}"
    assert den["message"] == f"the exchange reports `{BTC}` as {status}"
    assert d.orders == []


def test_product_post_only_refuses_market_orders(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    d = entry(cp, markets={BTC: MarketRules(status="post_only")})
    den = only_denial(d)
    assert den["code"] == "product_post_only"
    assert den["message"] == f"`{BTC}` accepts only post-only limit orders"


def test_no_quote(tmp_path: Path) -> None:
    cp = policy(tmp_path, "guards:\n  max_quote_age: 30s\n")
    d = entry(cp, quotes={})
    den = only_denial(d)
    assert den["code"] == "no_quote" and den["message"] == f"no quote for `{BTC}`"


def test_stale_quote(tmp_path: Path) -> None:
    cp = policy(tmp_path, "guards:\n  max_quote_age: 30s\n")
    now = T0 + 4 * TF5
    d = entry(cp, quotes={BTC: quote(101.0, now - 45_000)})
    den = only_denial(d)
    assert den["code"] == "stale_quote"
    assert den["message"] == "quote is 45s old (max 30s)"
    fresh = entry(cp, quotes={BTC: quote(101.0, now - 29_000)})
    assert buy_orders(fresh) == [BTC]


@pytest.mark.parametrize("bid, ask", [(0.0, 101.0), (101.5, 100.5)])
def test_bad_quote(tmp_path: Path, bid: float, ask: float) -> None:
    cp = policy(tmp_path, "guards:\n  max_spread: 50bps\n")
    d = entry(cp, quotes={BTC: Quote(bid, ask, 101.0, T0 + 4 * TF5)})
    den = only_denial(d)
    assert den["code"] == "bad_quote"
    assert den["message"] == f"quote is not sane (bid {bid}, ask {ask})"


def test_wide_spread(tmp_path: Path) -> None:
    cp = policy(tmp_path, "guards:\n  max_spread: 50bps\n")
    d = entry(cp, quotes={BTC: quote(101.0, T0 + 4 * TF5, spread=0.01)})
    den = only_denial(d)
    assert den["code"] == "wide_spread"
    assert den["message"] == "spread 1.0000% is above 0.5000%"
    tight = entry(cp, quotes={BTC: quote(101.0, T0 + 4 * TF5, spread=0.004)})
    assert buy_orders(tight) == [BTC]


def test_untrusted_price(tmp_path: Path) -> None:
    cp = policy(tmp_path, "guards:\n  bad_tick: 10%\n  bad_tick_volume: 3\n")
    d = entry(cp, close=120.0)  # +20% on ordinary volume
    den = only_denial(d)
    assert den["code"] == "untrusted_price"
    assert den["message"] == "price moved 20.00% from the last trusted 100 without volume confirmation"
    assert "bad_tick" in [e.data.get("problem") for e in d.events]
    # the same move on 3x the average volume is believed
    ts = T0 + 3 * TF5
    confirmed = entry(cp, close=120.0, bars={BTC: bar(ts, 120.0, open=100.0, volume=3000.0)})
    assert buy_orders(confirmed) == [BTC]


def test_no_trusted_price(tmp_path: Path) -> None:
    """A rule that needs no candle fires on a quote alone: nothing to collar against."""
    cp = policy(tmp_path, "guards:\n  price_collar: 2%\n", base="""
triggers:
  always:
    when: cash > 0
    then: buy 10% of equity
""")
    d = Engine(cp).tick(Snapshot(now=T0, quotes={BTC: quote(100.0, T0)}), EngineState.initial(10_000.0, T0))
    den = only_denial(d)
    assert den["code"] == "no_trusted_price"
    assert den["message"] == "no trusted price to collar against"


def test_price_collar(tmp_path: Path) -> None:
    """The newest price (a quote) is 5% off the last trusted close: refused."""
    cp = policy(tmp_path, "guards:\n  price_collar: 2%\n", base="""
triggers:
  always:
    when: cash > 0
    then: buy 10% of equity
""")
    engine = Engine(cp)
    state = EngineState.initial(10_000.0, T0)
    d0 = engine.tick(Snapshot(now=T0 + TF5, bars={BTC: bar(T0, 100.0)}), state)
    assert buy_orders(d0) == [BTC]  # at the trusted close
    now = T0 + TF5 + 60_000
    d = engine.tick(Snapshot(now=now, quotes={BTC: quote(105.0, now)}, new_bar=False,
                             open_orders=()), d0.state)
    den = only_denial(d, "price_collar")
    assert den["message"] == "price 105 is 5.00% from the last trusted 100 (collar 2.00%)"


def test_below_minimum(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    d = entry(cp, markets={BTC: MarketRules(step_size=0.01, min_notional=5000.0)})
    den = only_denial(d)
    assert den["code"] == "below_minimum"
    # 999.0 / 101 = 9.891 -> floored to 9.89 on the 0.01 step
    assert den["message"] == ("qty 9.89 (notional 998.9) is below the exchange minimum "
                              "(min qty 0, min notional 5000)")


def test_below_min_qty(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    d = entry(cp, markets={BTC: MarketRules(min_qty=20.0)})
    assert only_denial(d)["code"] == "below_minimum"


def test_below_min_trade(tmp_path: Path) -> None:
    cp = policy(tmp_path, "execution:\n  min_trade: 10 USDT\n", base="""
triggers:
  up:
    when: close > open
    then: buy 5 USDT
""")
    d = entry(cp)
    den = only_denial(d)
    assert den["code"] == "below_min_trade"
    assert den["message"] == f"notional {5 / (1 + FEE):.4g} is below min_trade 10"


def test_rate_limited(tmp_path: Path) -> None:
    cp = policy(tmp_path, "guards:\n  max_orders: 1\n  order_window: 1m\n", symbols=(BTC, ETH))
    d = entry(cp)
    assert buy_orders(d) == [BTC]
    den = only_denial(d)
    assert den["code"] == "rate_limited" and den["symbol"] == ETH
    assert den["message"] == "1 orders in the last 60s (max 1)"


def test_duplicate_client_id(tmp_path: Path) -> None:
    """Re-evaluating within the same bar proposes the same order: it is not sent twice."""
    cp = policy(tmp_path)
    engine = Engine(cp)
    d = entry(cp, engine=engine)
    assert len(d.orders) == 1
    cid = d.orders[0].client_id
    open_order = (_open(d),)
    again = engine.tick(Snapshot(now=d.now + 1000, bars={}, quotes={BTC: quote(101.0, d.now + 1000)},
                                 open_orders=open_order, new_bar=False), d.state)
    den = only_denial(again)
    assert den["code"] == "duplicate_client_id"
    assert den["message"] == f"client order id `{cid}` was already sent"
    assert again.orders == []


def _open(d: Decision) -> OpenOrder:
    o = d.orders[0]
    return OpenOrder(o.client_id, o.symbol, o.side, float(o.qty), None, 0.0, d.now)


# ---- the engine's own codes --------------------------------------------------------------


def test_cap_block_names_the_cap(tmp_path: Path) -> None:
    cp = policy(tmp_path, """
caps:
  one_position: positions.open <= 1
""", base="""
triggers:
  up:
    when: not position.open and close > open
    then: buy 10% of equity
""", symbols=(BTC, ETH))
    ex = Exchange(cp)
    for _ in range(3):
        ex.step({BTC: 100.0, ETH: 100.0})
    d = ex.step({BTC: 101.0, ETH: 100.0})
    assert buy_orders(d) == [BTC]
    ex.step({BTC: 101.0, ETH: 100.0})  # filled
    d = ex.step({BTC: 101.0, ETH: 101.0})
    den = only_denial(d)
    assert den["code"] == "cap:one_position" and den["symbol"] == ETH
    assert den["message"] == "cap `one_position`: would reach 2, limit 1"
    assert d.orders == []


def test_cap_clip_reports_the_margin(tmp_path: Path) -> None:
    cp = policy(tmp_path, "caps:\n  per_asset: exposure.symbol <= 5%\n")
    d = entry(cp)
    (o,) = d.orders
    assert o.notional == pytest.approx(500.0)  # 5% of 10 000, not the 999 asked for
    caps = stage(d, "caps")
    assert caps["clips"][0]["cap"] == "per_asset"
    assert caps["clips"][0]["from"] == pytest.approx(1000 / (1 + FEE))
    assert caps["clips"][0]["to"] == pytest.approx(500.0)
    assert d.margins == {"per_asset": 0.0}
    # with room to spare, the margin is what is left
    cp2 = policy(tmp_path / "2", "caps:\n  per_asset: exposure.symbol <= 25%\n")
    d2 = entry(cp2)
    assert d2.margins["per_asset"] == pytest.approx(0.25 - 1000 / (1 + FEE) / 10_000)


def test_margins_are_the_room_left_after_every_clip(tmp_path: Path) -> None:
    """The total cap passes the 999 asked for, then the per-asset cap clips it to 500: the
    total's room is what the 500 leaves, not what the 999 would have."""
    cp = policy(tmp_path, "caps:\n  total: exposure.total <= 35%\n  per_asset: exposure.symbol <= 5%\n")
    d = entry(cp)
    (o,) = d.orders
    assert o.notional == pytest.approx(500.0)
    assert d.margins["per_asset"] == 0.0
    assert d.margins["total"] == pytest.approx(0.35 - 0.05)
    # the same with a strategy budget clipping first and a cap after it
    cp2 = policy(tmp_path / "2", "caps:\n  per_asset: exposure.symbol <= 5%\n"
                 "strategies:\n  s: {budget: 8%}\n", base=BUY_UP.replace("then:", "strategy: s\n    then:"))
    d2 = entry(cp2)
    assert d2.orders[0].notional == pytest.approx(500.0)
    assert d2.margins["budget:s"] == pytest.approx(0.08 - 0.05)


def test_cap_with_no_room_blocks(tmp_path: Path) -> None:
    cp = policy(tmp_path, "caps:\n  per_asset: exposure.symbol <= 0.05%\nexecution:\n  min_trade: 10 USDT\n")
    d = entry(cp)
    den = only_denial(d)
    assert den["code"] == "cap:per_asset"
    assert den["message"] == "cap `per_asset`: no room left: 0 of 0.0005 used"


def test_count_caps_are_checked_before_exposure_caps(tmp_path: Path) -> None:
    """Both caps refuse the order; the count cap, which no size could satisfy, is named though it
    comes second in the policy, and the exposure cap it preempted reports no margin."""
    cp = policy(tmp_path, """
caps:
  per_asset: exposure.symbol <= 0.05%
  no_orders: orders.open <= 0
execution:
  min_trade: 10 USDT
""")
    d = entry(cp)
    den = only_denial(d)
    assert den["code"] == "cap:no_orders"
    assert den["message"] == "cap `no_orders`: would reach 1, limit 0"
    assert d.margins == {}
    # without the count cap, the exposure cap blocks as before
    cp2 = policy(tmp_path / "2", "caps:\n  per_asset: exposure.symbol <= 0.05%\n"
                                 "execution:\n  min_trade: 10 USDT\n")
    assert only_denial(entry(cp2))["code"] == "cap:per_asset"


def test_an_entry_a_count_cap_refuses_is_not_sized(tmp_path: Path) -> None:
    """No size could pass a count cap: the entry is refused before sizing, even one that could
    not be sized (its ATR is not available yet)."""
    base = """
triggers:
  up:
    when: close > open
    then: buy risk 1% of equity per atr(100)
"""
    cp = policy(tmp_path, "caps:\n  no_orders: orders.open <= 0\n", base=base)
    d = entry(cp)
    assert only_denial(d)["code"] == "cap:no_orders"
    assert not [e for e in d.trace if e["stage"] == "sizing"]
    assert stage(d, "caps")["blocked"] == "cap `no_orders`: would reach 1, limit 0"
    # without the cap the same entry cannot be sized
    assert only_denial(entry(policy(tmp_path / "2", base=base)))["code"] == "unsized"


def test_cooldown_after_fill(tmp_path: Path) -> None:
    cp = policy(tmp_path, "cooldowns:\n  after_fill: 1h\n")
    ex = Exchange(cp)
    for _ in range(3):
        ex.step({BTC: 100.0})
    assert buy_orders(ex.step({BTC: 101.0})) == [BTC]
    ex.step({BTC: 101.0})  # filled at the open of this bar (ts = fill time)
    fill_ts = ex.all_fills[-1].ts
    d = ex.step({BTC: 102.0})
    den = only_denial(d)
    assert den["code"] == "cap:cooldown"
    left = (fill_ts + 3_600_000 - d.now) // 1000
    assert den["message"] == f"cap `cooldown`: symbol in cooldown for {left}s more"


def test_unsized(tmp_path: Path) -> None:
    cp = policy(tmp_path, base="""
triggers:
  up:
    when: close > open
    then: buy risk 1% of equity per atr(14)
""")
    d = entry(cp)  # only four bars: ATR(14) is not known yet
    den = only_denial(d)
    assert den["code"] == "unsized" and den["stage"] == "sizing"
    assert den["message"] == "risk distance unavailable or not positive (nan)"


def test_books_mismatch(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    d = entry(cp, cash=9_000.0)
    den = only_denial(d)
    assert den["code"] == "books_mismatch"
    assert den["message"] == "books disagree with the exchange: no new entries until reconciled"
    (msg,) = events_of(d, "data")
    assert msg == ("books disagree with the exchange: cash 9000 at the exchange, 10000 in the books: "
                   "no new entries until reconciled")
    assert entry(cp, cash=10_000.0).orders  # agreeing books trade


# ---- the numbers of the orders it sends -------------------------------------------------


def test_max_order_notional_clips(tmp_path: Path) -> None:
    cp = policy(tmp_path, "guards:\n  max_order_notional: 300 USDT\n")
    d = entry(cp)
    (o,) = d.orders
    assert float(o.qty) == pytest.approx(300 / 101)
    guard = stage(d, "guard")
    assert guard["notes"][0].startswith("clipped to the max order notional 300")


def test_round_up_to_min_notional(tmp_path: Path) -> None:
    body = """
triggers:
  up:
    when: close > open
    then: buy 50 USDT
"""
    markets = {BTC: MarketRules(step_size=0.01, min_notional=100.0)}
    off = policy(tmp_path / "off", "guards:\n  round_up_min_notional: false\n", base=body)
    assert only_denial(entry(off, markets=markets))["code"] == "below_minimum"
    on = policy(tmp_path / "on", "guards:\n  round_up_min_notional: true\n", base=body)
    d = entry(on, markets=markets)
    (o,) = d.orders
    # the minimum plus the fee, over the price, rounded up to the step: 100.1 / 101 -> 1.00
    assert o.qty == "1"
    assert float(o.qty) * 101 >= 100.0


def test_increments_floor_quantity_to_step(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    d = entry(cp, markets={BTC: MarketRules(step_size=0.001, tick_size=0.01)})
    (o,) = d.orders
    # 10% of 10 000 net of the fee = 999.000999 notional / 101 = 9.891099 -> 9.891
    assert o.qty == "9.891"
    assert isinstance(o.qty, str) and "e" not in o.qty
    assert d.state.pending[o.client_id].qty == 9.891
    tiny = entry(policy(tmp_path / "t", base="""
triggers:
  up:
    when: close > open
    then: buy 0.5 USDT
"""), close=101.0, markets={BTC: MarketRules(step_size=0.00001)})
    assert tiny.orders[0].qty == "0.00494"  # 0.4995 / 101 = 0.0049456 floored, no exponent


def test_fraction_of_equity_net_of_fees(tmp_path: Path) -> None:
    cp = policy(tmp_path, "execution:\n  fees: {taker: 0.2%}\n", base="""
triggers:
  up:
    when: close > open
    then: buy 20% of equity
""")
    (o,) = entry(cp).orders
    assert float(o.qty) == pytest.approx(0.2 * 10_000 / 1.002 / 101, rel=1e-12)


def test_fraction_of_cash(tmp_path: Path) -> None:
    cp = policy(tmp_path, base="""
triggers:
  up:
    when: close > open
    then: buy 95% of cash
""")
    (o,) = entry(cp).orders
    assert float(o.qty) == pytest.approx(0.95 * 10_000 / 1.001 / 101, rel=1e-12)


def test_amount(tmp_path: Path) -> None:
    cp = policy(tmp_path, base="""
triggers:
  up:
    when: close > open
    then: buy 500 USDT
""")
    (o,) = entry(cp).orders
    assert float(o.qty) == pytest.approx(500 / 1.001 / 101, rel=1e-12)


def test_risk_with_stop(tmp_path: Path) -> None:
    cp = policy(tmp_path, base="""
triggers:
  up:
    when: close > open
    then: buy risk 1% of equity stop 2% take 4%
""")
    (o,) = entry(cp).orders
    # risk 100 over a stop distance of 2% of 101 = 2.02: 49.50495... coins
    assert float(o.qty) == pytest.approx(100 / 2.02, rel=1e-12)
    assert o.stop == pytest.approx(101 - 2.02)
    assert o.take == pytest.approx(101 + 4.04)


def test_risk_per_atr(tmp_path: Path) -> None:
    cp = policy(tmp_path, base="""
triggers:
  up:
    when: close > open
    then: buy risk 1% of equity per 2 * atr(14) stop 2 * atr(14)
""")
    engine = Engine(cp)
    state = EngineState.initial(10_000.0, T0)
    ts = T0
    for _ in range(20):  # flat bars with a range of 2: every true range is 2, ATR(14) = 2
        state = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 100.0, high=101.0, low=99.0)}), state).state
        ts += TF5
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 100.5, open=100.0, high=101.0, low=99.0)}), state)
    (o,) = d.orders
    assert float(o.qty) == pytest.approx(100 / 4.0, rel=1e-12)  # risk 100 per 2 * ATR = 4
    assert o.stop == pytest.approx(100.5 - 4.0)


# ---- breakers and the trading state -----------------------------------------------------


def test_breaker_margins_are_the_distance_to_tripping(tmp_path: Path) -> None:
    """Exported as policyctl_breaker_margin: a window or an account field is read in the fast
    evaluation too (it used to be left out, leaving the margin unavailable)."""
    cp = policy(tmp_path, """
breakers:
  daily_loss: {when: pnl(1d) <= -5%, then: halt}
  deep: {when: 10% <= drawdown, then: halt}
  crash:
    when: any(change(close, 3) <= -50%)
    then: pause
""")
    d = entry(cp)
    assert d.trading_state is TradingState.ACTIVE
    assert d.breaker_margins == {"daily_loss": pytest.approx(0.05), "deep": pytest.approx(0.10)}


def test_strictest_breaker_wins(tmp_path: Path) -> None:
    cp = policy(tmp_path, """
breakers:
  a_pause: {when: any(close > open), then: pause}
  b_reduce: {when: any(close > open), then: reduce_only}
  c_alert: {when: any(close > open), then: alert}
""")
    d = entry(cp)
    assert d.trading_state is TradingState.REDUCE_ONLY
    assert stage(d, "breakers")["reasons"] == ["breaker `b_reduce` (reduce_only)"]
    cp2 = policy(tmp_path / "2", """
breakers:
  a_halt: {when: any(close > open), then: halt for 1h}
  b_reduce: {when: any(close > open), then: reduce_only}
""")
    assert entry(cp2).trading_state is TradingState.HALTED


def test_trips_expire_after_their_duration(tmp_path: Path) -> None:
    cp = policy(tmp_path, """
breakers:
  jumpy: {when: any(close > open), then: pause for 10m}
""")
    engine = Engine(cp)
    d = entry(cp, engine=engine)
    assert d.trading_state is TradingState.PAUSED
    assert d.state.trips["jumpy"].until_ms == d.now + 600_000
    state, ts = d.state, d.now
    states = []
    for _ in range(3):
        d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 101.0)}), state)
        state, ts = d.state, ts + TF5
        states.append(d.trading_state)
    assert states == [TradingState.PAUSED, TradingState.ACTIVE, TradingState.ACTIVE]
    assert "jumpy" not in state.trips


def test_breaker_without_duration_stays_until_reset(tmp_path: Path) -> None:
    cp = policy(tmp_path, """
breakers:
  jumpy: {when: any(close > open), then: reduce_only}
""")
    engine = Engine(cp)
    d = entry(cp, engine=engine)
    state, ts = d.state, d.now
    for _ in range(30):
        d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 101.0)}), state)
        state, ts = d.state, ts + TF5
        assert d.trading_state is TradingState.REDUCE_ONLY
    assert reset_breaker(state, "jumpy") == ["jumpy"]
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 101.0)}), state)
    assert d.trading_state is TradingState.ACTIVE
    assert events_of(d, "state_change") == ["trading state reduce_only -> active: no breaker active"]


def test_unevaluable_breaker_holds_paused(tmp_path: Path) -> None:
    cp = policy(tmp_path, """
breakers:
  slump:
    when: any(change(close, 20) <= -5%)
    then: halt
""")
    d = entry(cp)  # four bars: change over 20 bars is unknown
    assert d.trading_state is TradingState.PAUSED
    assert stage(d, "breakers")["reasons"] == [
        "breaker `slump` cannot be evaluated (inputs unavailable)"]
    assert denial_codes(d) == ["paused"]
    assert d.state.trips == {}  # it does not latch


# ---- exits --------------------------------------------------------------------------------


def _bought(tmp_path: Path, extra: str, action: str = "buy 10% of equity stop 5% take 10%",
            symbols: tuple[str, ...] = (BTC,)) -> Exchange:
    cp = policy(tmp_path, extra, base=f"""
triggers:
  up:
    when: not position.open and close > open
    then: {action}
""", symbols=symbols)
    ex = Exchange(cp)
    flat = dict.fromkeys(symbols, 100.0)
    for _ in range(3):
        ex.step(flat)
    d = ex.step(dict.fromkeys(symbols, 101.0))
    assert sorted(buy_orders(d)) == sorted(symbols)
    ex.step(dict.fromkeys(symbols, 101.0))  # filled at 101
    assert sorted(ex.state.positions) == sorted(symbols)
    return ex


def test_stop_loss_exit(tmp_path: Path) -> None:
    ex = _bought(tmp_path, "")
    assert ex.state.positions[BTC].stop == pytest.approx(101 - 5.05)
    assert ex.step({BTC: 96.5}).orders == []  # above the stop
    d = ex.step({BTC: 95.9})
    (o,) = d.orders
    assert (o.kind, o.rule, o.side, o.reduce_only) == ("stop_loss", "stop_loss", Side.SELL, True)
    assert float(o.qty) == pytest.approx(ex.state.positions[BTC].qty)


def test_take_profit_exit(tmp_path: Path) -> None:
    ex = _bought(tmp_path, "")
    assert ex.step({BTC: 111.0}).orders == []  # just under 111.1
    d = ex.step({BTC: 111.2})
    (o,) = d.orders
    assert (o.kind, o.side) == ("take_profit", Side.SELL)


def test_stop_out_starts_the_cooldown(tmp_path: Path) -> None:
    ex = _bought(tmp_path, "cooldowns:\n  after_stopout: 1h\n")
    assert ex.step({BTC: 90.0}).orders[0].kind == "stop_loss"
    d = ex.step({BTC: 95.0})  # the stop-loss fills at this bar's open (90)
    assert BTC not in d.state.positions
    stop_ts = ex.all_fills[-1].ts
    assert d.state.stopout_times == [stop_ts]
    assert d.state.cooldowns[BTC] == stop_ts + 3_600_000
    d = ex.step({BTC: 96.0})  # up bar: the entry fires and is refused
    den = only_denial(d)
    assert den["code"] == "cap:cooldown"
    for _ in range(10):
        d = ex.step({BTC: 96.0})
    d = ex.step({BTC: 97.0})
    assert d.now >= stop_ts + 3_600_000
    assert buy_orders(d) == [BTC]


def test_flatten_closes_every_position(tmp_path: Path) -> None:
    ex = _bought(tmp_path, """
breakers:
  slide: {when: any(close < 99 USDT), then: flatten}
""", action="buy 10% of equity", symbols=(BTC, ETH))
    d = ex.step({BTC: 98.0, ETH: 100.0})
    assert d.trading_state is TradingState.REDUCE_ONLY
    assert sorted((o.symbol, o.kind) for o in d.orders) == [(BTC, "flatten"), (ETH, "flatten")]
    assert all(o.side is Side.SELL and o.reduce_only for o in d.orders)
    assert {o.symbol: float(o.qty) for o in d.orders} == {s: p.qty for s, p in ex.state.positions.items()}
    ex.step({BTC: 98.0, ETH: 100.0})
    assert ex.state.positions == {}



def test_flatten_is_retried_until_flat(tmp_path: Path) -> None:
    """A flatten sell refused on the tick the breaker trips (stale quote) must be retried."""
    ex = _bought(tmp_path, """
guards:
  max_quote_age: 30s
breakers:
  slide: {when: any(close < 99 USDT), then: flatten}
""", action="buy 10% of equity")
    now = ex.ts + TF5
    d = ex.step({BTC: 98.0}, quotes={BTC: quote(98.0, now - 120_000)})
    assert denial_codes(d) == ["stale_quote"]
    later = [ex.step({BTC: 98.0}) for _ in range(3)]
    assert any(o.kind == "flatten" for x in later for o in x.orders)


# ---- known bugs: the behaviour the engine should have --------------------------------------



def test_positions_cap_counts_entries_of_the_same_tick(tmp_path: Path) -> None:
    cp = policy(tmp_path, "caps:\n  one_position: positions.open <= 1\n", symbols=(BTC, ETH, "SOL/USDT"))
    d = entry(cp)  # all three symbols fire on the same bar
    assert len(buy_orders(d)) == 1, buy_orders(d)
    assert [x["code"] for x in d.denials] == ["cap:one_position"] * 2



def test_theme_max_exposure_is_enforced(tmp_path: Path) -> None:
    cp = policy(tmp_path, symbols=(BTC, ETH), themes="majors: {symbols: [BTC/USDT, ETH/USDT], "
                "max_exposure: 5%}")
    d = entry(cp)
    assert sum(o.notional for o in d.orders) <= 0.05 * 10_000 * (1 + 1e-9), d.orders



def test_round_up_respects_the_caps(tmp_path: Path) -> None:
    cp = policy(tmp_path, "caps:\n  per_asset: exposure.symbol <= 1%\nguards:\n  round_up_min_notional: true\n")
    d = entry(cp, markets={BTC: MarketRules(min_notional=500.0, step_size=0.001)})
    # the cap leaves room for 100; the exchange wants 500: the order cannot be placed
    assert d.orders == [], [(o.qty, o.notional) for o in d.orders]
    assert denial_codes(d) == ["below_minimum"]



def test_round_up_respects_the_max_order_notional(tmp_path: Path) -> None:
    cp = policy(tmp_path, "guards:\n  max_order_notional: 300 USDT\n  round_up_min_notional: true\n")
    d = entry(cp, markets={BTC: MarketRules(min_notional=500.0)})
    assert all(o.notional <= 300 * (1 + 1e-9) for o in d.orders), [o.notional for o in d.orders]
