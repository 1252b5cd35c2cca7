"""Bad input: the engine never crashes, never trades on bad data, and says what was wrong.

Snapshots with NaN, infinite, negative or zero prices, impossible candles, missing or
unknown symbols, duplicate and out-of-order candles, books that disagree with the
exchange, empty snapshots, and fills the engine cannot place. Known bugs are marked
``xfail(strict=True)`` with the behaviour the engine should have.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_support import (
    T0,
    TF5,
    Exchange,
    bar,
    compile_text,
    events_of,
    problems,
    quote,
    snapshot,
    warm_up,
)
from policyctl.rules.compiler import CompiledPolicy
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.model import Bar, Fill, MarketRules, OpenOrder, Quote, Side, Snapshot, TradingState
from policyctl.runtime.state import EngineState

BTC, ETH = "BTC/USDT", "ETH/USDT"
NAN, INF = math.nan, math.inf

UP = """
triggers:
  up:
    when: not position.open and close > open
    then: buy 10% of equity stop 5%
"""


def policy(tmp_path: Path, extra: str = "") -> CompiledPolicy:
    return compile_text(tmp_path / "p", UP + extra, symbols=(BTC, ETH))


def warmed(cp: CompiledPolicy) -> tuple[Engine, EngineState, int]:
    engine = Engine(cp)
    state, ts = warm_up(engine, EngineState.initial(10_000.0, T0), cp.symbols, 3)
    return engine, state, ts


def holding(tmp_path: Path, extra: str = "") -> Exchange:
    """An exchange run holding BTC bought at 101 (stop 95.95)."""
    ex = Exchange(policy(tmp_path, extra))
    for _ in range(3):
        ex.step({BTC: 100.0, ETH: 100.0})
    ex.step({BTC: 101.0, ETH: 100.0})
    ex.step({BTC: 101.0, ETH: 100.0})
    assert list(ex.state.positions) == [BTC]
    return ex


# ---- bad candles ----------------------------------------------------------------------------

BAD_BARS = {
    "nan close": (100.0, 102.0, 99.0, NAN, 1000.0),
    "infinite close": (100.0, INF, 99.0, INF, 1000.0),
    "negative open": (-5.0, 102.0, -5.0, 101.0, 1000.0),
    "zero open": (0.0, 102.0, 0.0, 101.0, 1000.0),
    "zero everything": (0.0, 0.0, 0.0, 0.0, 0.0),
    "negative volume": (100.0, 102.0, 99.0, 101.0, -1.0),
    "nan volume": (100.0, 102.0, 99.0, 101.0, NAN),
    "high below close": (100.0, 100.5, 99.0, 101.0, 1000.0),
    "low above open": (100.0, 102.0, 100.5, 101.0, 1000.0),
}


@pytest.mark.parametrize("name", list(BAD_BARS))
def test_bad_bar_is_reported_and_not_traded(tmp_path: Path, name: str) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    o, h, lo, c, v = BAD_BARS[name]
    bars = {BTC: Bar(ts, o, h, lo, c, v), ETH: bar(ts, 101.0, open=100.0)}
    d = engine.tick(snapshot(ts + TF5, bars, quotes={ETH: quote(101.0, ts + TF5)}), state)
    assert [o.symbol for o in d.orders] == [ETH]  # the good symbol still trades
    assert problems(d) == ["bad_bar"]
    (msg,) = events_of(d, "data")
    assert msg.startswith(f"{BTC}: bad bar at {ts} (") and msg.endswith("): treated as missing")
    assert d.state.last_price[BTC] == 100.0  # not a trusted price
    assert d.state.last_bar_ts[BTC] == ts



def test_rejected_bar_never_becomes_the_mark_price(tmp_path: Path) -> None:
    ex = holding(tmp_path)
    ts = ex.ts
    d = ex.step({BTC: Bar(ts, 101.0, 102.0, 99.0, 50.0, 1000.0), ETH: 100.0}, quotes={})  # low > close
    assert problems(d) == ["bad_bar"]
    assert d.orders == [], d.orders  # no stop-loss on a price nobody can vouch for
    assert d.equity == pytest.approx(ex.cash + ex.balances["BTC"] * 101.0)


def test_missing_symbol_is_not_traded_and_goes_stale(tmp_path: Path) -> None:
    cp = policy(tmp_path, """
breakers:
  stale_feed:
    when: any(data_age > 2 * timeframe)
    then: pause
""")
    engine, state, ts = warmed(cp)
    d = engine.tick(snapshot(ts + TF5, {ETH: bar(ts, 101.0, open=100.0)}), state)
    assert [o.symbol for o in d.orders] == [ETH]
    assert d.trading_state is TradingState.ACTIVE  # BTC's last price is 10 minutes old
    ts += TF5
    d = engine.tick(snapshot(ts + TF5, {ETH: bar(ts, 101.0)}), d.state)
    assert d.trading_state is TradingState.PAUSED  # now 15 minutes: more than two bars
    assert events_of(d, "state_change") == ["trading state active -> paused: breaker `stale_feed` (pause)"]


def test_bar_for_an_unknown_symbol_is_ignored(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    d = engine.tick(snapshot(ts + TF5, {"DOGE/USDT": bar(ts, 2.0, open=1.0), BTC: bar(ts, 100.0)}), state)
    assert d.orders == [] and d.denials == []
    assert "DOGE/USDT" not in d.state.last_price


@pytest.mark.parametrize("offset", [0, -TF5], ids=["duplicate", "out_of_order"])
def test_duplicate_and_out_of_order_candles_are_dropped(tmp_path: Path, offset: int) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    last = ts - TF5
    old = bar(last + offset, 101.0, open=100.0)  # an up bar: would fire if it were believed
    d = engine.tick(snapshot(ts, {BTC: old, ETH: bar(last + offset, 100.0)}), state)
    assert d.orders == []
    assert problems(d) == ["duplicate_or_out_of_order"] * 2
    assert events_of(d, "data")[0] == f"{BTC}: bar at {last + offset} is not newer than {last}: ignored"
    assert d.state.last_bar_ts == {BTC: last, ETH: last}



def test_a_repeated_candle_does_not_change_later_decisions(tmp_path: Path) -> None:
    cp = compile_text(tmp_path / "sma", """
triggers:
  cross:
    when: crosses_above(close, sma(close, 5))
    then: buy 10% of equity
""", symbols=(BTC,))
    prices = [100.0, 99.0, 98.0, 97.0, 96.0, 95.0, 94.0, 93.0, 95.0, 97.0]

    def run(repeat_at: int | None) -> list[list[str]]:
        engine, state, ts, out = Engine(cp), EngineState.initial(10_000.0, T0), T0, []
        for k, p in enumerate(prices):
            b = bar(ts, p, open=prices[k - 1] if k else p)
            d = engine.tick(snapshot(ts + TF5, {BTC: b}), state)
            out.append([o.client_id for o in d.orders])
            if k == repeat_at:  # the same candle polled again a second later
                again = engine.tick(snapshot(ts + TF5 + 1000, {BTC: b}), d.state)
                assert problems(again) == ["duplicate_or_out_of_order"] and again.orders == []
            state, ts = d.state, ts + TF5
        return out

    plain = run(None)
    assert sum(map(len, plain)) == 1  # the cross on the bar at 95
    assert run(6) == plain


# ---- books ----------------------------------------------------------------------------------


def test_balance_disagreeing_with_positions_stops_entries_not_exits(tmp_path: Path) -> None:
    ex = holding(tmp_path)
    ts = ex.ts
    bars = {BTC: bar(ts, 90.0, open=101.0), ETH: bar(ts, 101.0, open=100.0)}
    balances = {"BTC": ex.balances["BTC"] / 2}  # the exchange says half of it is gone
    d = ex.engine.tick(snapshot(ts + TF5, bars, cash=ex.cash, balances=balances), ex.state)
    (msg,) = events_of(d, "data")
    assert msg.startswith("books disagree with the exchange: BTC ")
    assert msg.endswith("in the books: no new entries until reconciled")
    assert [(o.symbol, o.kind) for o in d.orders] == [(BTC, "stop_loss")]  # the stop still works
    assert [(x["symbol"], x["code"]) for x in d.denials] == [(ETH, "books_mismatch")]


def test_empty_snapshots(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    engine = Engine(cp)
    state = EngineState.initial(10_000.0, T0)
    for k in range(5):
        d = engine.tick(Snapshot(now=T0 + k * TF5), state)
        assert d.orders == [] and d.cancels == [] and d.denials == []
        assert d.equity == 10_000.0
        state = d.state
    engine, state, ts = warmed(cp)
    d = engine.tick(Snapshot(now=ts + TF5), state)
    assert d.orders == [] and d.state.cash == 10_000.0


def test_fill_for_an_unknown_order_is_booked(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    f = Fill("manual-1", "not-ours", BTC, Side.BUY, 2.0, 100.0, 0.2, ts)
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 100.0)}, fills=(f,)), state)
    assert events_of(d, "fill") == [f"buy 2 {BTC} at 100"]
    assert d.state.cash == pytest.approx(10_000.0 - 200.2)
    assert d.state.positions[BTC].qty == 2.0 and d.state.positions[BTC].stop is None
    assert d.state.trade_times == [ts]
    # reported again after a reconnect: not booked twice
    d = engine.tick(snapshot(ts + 2 * TF5, {BTC: bar(ts + TF5, 100.0)}, fills=(f,)), d.state)
    assert events_of(d, "fill") == [] and d.state.positions[BTC].qty == 2.0


def test_an_open_order_the_engine_never_sent_is_left_alone(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    foreign = OpenOrder("manual-7", BTC, Side.BUY, 1.0, 90.0, 0.0, ts)
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 100.0)}, open_orders=(foreign,)), state)
    assert d.cancels == [] and d.state.pending == {}



def test_zero_quantity_fill_does_not_crash(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    f = Fill("z", "not-ours", BTC, Side.BUY, 0.0, 100.0, 0.0, ts)
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 100.0)}, fills=(f,)), state)
    assert BTC not in d.state.positions



@pytest.mark.parametrize("qty, price, fee", [(1.0, NAN, 0.1), (1.0, 100.0, NAN), (-1.0, 100.0, 0.1),
                                             (1.0, -100.0, 0.1)],
                         ids=["nan price", "nan fee", "negative qty", "negative price"])
def test_malformed_fill_is_refused_and_reported(tmp_path: Path, qty: float, price: float, fee: float) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    f = Fill("bad", "not-ours", BTC, Side.BUY, qty, price, fee, ts)
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 100.0)}, fills=(f,)), state)
    assert d.state.cash == 10_000.0 and BTC not in d.state.positions
    assert any(e.kind == "data" for e in d.events)



def test_fill_for_a_symbol_outside_the_policy(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    f = Fill("doge", "not-ours", "DOGE/USDT", Side.BUY, 10.0, 1.0, 0.01, ts)
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 101.0, open=100.0)}, fills=(f,)), state)
    assert math.isfinite(d.equity)
    assert any("DOGE/USDT" in e.message for e in d.events if e.kind == "data")



@pytest.mark.parametrize("field", ["cash", "balance"])
def test_nan_books_from_the_exchange_are_a_mismatch(tmp_path: Path, field: str) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    kw: dict[str, object] = {"cash": NAN} if field == "cash" else {"balances": {"BTC": NAN}}
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 101.0, open=100.0)}, **kw), state)
    assert d.orders == []
    assert "books_mismatch" in problems(d)



def test_nan_market_rules_never_give_a_nan_order(tmp_path: Path) -> None:
    cp = policy(tmp_path)
    engine, state, ts = warmed(cp)
    markets = {BTC: MarketRules(step_size=NAN, min_notional=NAN)}
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 101.0, open=100.0)}, markets=markets), state)
    assert all(math.isfinite(float(o.qty)) and float(o.qty) > 0 for o in d.orders), d.orders


def test_nan_quote_is_a_bad_quote(tmp_path: Path) -> None:
    cp = policy(tmp_path, "guards:\n  max_spread: 50bps\n")
    engine, state, ts = warmed(cp)
    d = engine.tick(snapshot(ts + TF5, {BTC: bar(ts, 101.0, open=100.0)},
                             quotes={BTC: Quote(NAN, NAN, NAN, ts + TF5)}), state)
    assert d.orders == []
    assert [x["code"] for x in d.denials] == ["bad_quote"]


# ---- fuzz: garbage in, no crash, no entry on a bad candle -------------------------------

_price = st.one_of(st.floats(50.0, 150.0), st.sampled_from([NAN, INF, -INF, 0.0, -1.0, 1e-300, 1e300]))
_bar = st.tuples(_price, _price, _price, _price, st.one_of(st.floats(0, 1e4), st.sampled_from([NAN, -1.0])))
_quote = st.one_of(st.none(), st.tuples(_price, _price, _price, st.integers(-600_000, 600_000)))
_tick = st.tuples(
    st.dictionaries(st.sampled_from([BTC, ETH, "DOGE/USDT"]), st.tuples(_bar, st.integers(-2, 1))),
    st.dictionaries(st.sampled_from([BTC, ETH]), _quote),
    st.one_of(st.none(), _price),  # cash reported
    st.booleans(),  # kill switch
)


@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_tick, min_size=1, max_size=25))
def test_garbage_never_crashes_nor_buys_on_a_bad_candle(ticks: list[tuple]) -> None:  # type: ignore[type-arg]
    cp = _fuzz_policy()
    engine = Engine(cp)
    state = EngineState.initial(10_000.0, T0)
    ts = T0
    for bars_in, quotes_in, cash, kill in ticks:
        bars = {s: Bar(ts + shift * TF5, *values) for s, (values, shift) in bars_in.items()}
        quotes = {s: Quote(q[0], q[1], q[2], ts + TF5 + q[3]) for s, q in quotes_in.items() if q is not None}
        d: Decision = engine.tick(Snapshot(now=ts + TF5, bars=bars, quotes=quotes, cash=cash,
                                           kill_switch=kill), state)
        bad = {str(e.data["symbol"]) for e in d.events if e.kind == "data" and "symbol" in e.data}
        for o in d.orders:
            assert o.side is Side.SELL or o.symbol not in bad, (o, d.events)
            assert math.isfinite(float(o.qty)) and float(o.qty) > 0
            assert math.isfinite(o.ref_price) and o.ref_price > 0
        if kill:
            assert d.orders == []
        state, ts = d.state, ts + TF5


_FUZZ: list[CompiledPolicy] = []
_TMP = tempfile.TemporaryDirectory(prefix="engine-fuzz-")  # removed when the session ends


def _fuzz_policy() -> CompiledPolicy:
    if not _FUZZ:
        folder = Path(_TMP.name)
        _FUZZ.append(compile_text(folder, UP + """
caps:
  total: exposure.total <= 50%
""", symbols=(BTC, ETH)))
    return _FUZZ[0]
