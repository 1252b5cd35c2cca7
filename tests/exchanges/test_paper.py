"""PaperAdapter: fills against live emulator quotes, its own balances, exchange-like checks."""

from __future__ import annotations

import pytest
from exchange_support import CLIENT_TIMEOUT_MS, FakeTime, roomy_limiter

from policyctl.emulator import EmulatorHandle
from policyctl.exchanges.adapter import Balances, Market, NeedsHuman, OrderStatus, Rejected
from policyctl.exchanges.ccxt_adapter import CcxtAdapter
from policyctl.exchanges.paper import Fees, PaperAdapter
from policyctl.runtime.model import Bar, Fill, MarketRules, OpenOrder, OrderRequest, Quote, Side

SYM = "BTC/USDT"
FEES = Fees(maker=0.001, taker=0.002)


def order(
    cid: str,
    side: Side = Side.BUY,
    qty: str = "0.01",
    price: str | None = None,
    symbol: str = SYM,
    spend: float | None = None,
) -> OrderRequest:
    return OrderRequest(cid, symbol, side, qty, price, "entry", "test", side is Side.SELL, 42000.0, spend=spend)


@pytest.fixture
def market_data(emu: EmulatorHandle) -> CcxtAdapter:
    """Public market data only: the paper adapter never needs credentials."""
    return CcxtAdapter.from_env(
        "binance",
        env={},
        base_url=emu.url,
        require_credentials=False,
        timeout_ms=CLIENT_TIMEOUT_MS,
        rate_limits=roomy_limiter(FakeTime()),
    )


@pytest.fixture
def paper(market_data: CcxtAdapter) -> PaperAdapter:
    p = PaperAdapter(market_data, cash=10_000.0, fees=FEES, seed=1)
    p.load_markets()
    return p


def test_market_data_comes_from_the_real_adapter(paper: PaperAdapter, emu: EmulatorHandle) -> None:
    assert paper.name == "paper:binance"
    assert set(paper.load_markets()) == {"BTC/USDT", "ETH/BTC"}
    q = paper.fetch_quote(SYM)
    assert (q.bid, q.ask) == (42000.0, 42000.1)
    assert paper.time_ms() == emu.clock.now_ms()
    assert paper.fetch_candles(SYM, "1m", None, 5) == []  # no candles loaded at the emulator


def test_market_buy_fills_at_ask_plus_taker_fee(paper: PaperAdapter, emu: EmulatorHandle) -> None:
    status = paper.place(order("pb-1", qty="0.1"))
    assert (status.status, status.filled, status.avg_price) == ("filled", 0.1, 42000.1)
    (fill,) = paper.fetch_fills((SYM,), None)
    assert (fill.client_id, fill.side, fill.qty, fill.price) == ("pb-1", Side.BUY, 0.1, 42000.1)
    assert fill.fee == pytest.approx(0.1 * 42000.1 * 0.002)
    assert fill.ts == emu.clock.now_ms()
    b = paper.fetch_balances()
    assert b.free["BTC"] == pytest.approx(0.1)
    assert b.free["USDT"] == pytest.approx(10_000 - 4200.01 * 1.002)
    assert emu.orders() == []  # nothing reached the exchange


def test_market_sell_fills_at_bid(paper: PaperAdapter) -> None:
    paper.place(order("ps-0", qty="0.2"))
    status = paper.place(order("ps-1", side=Side.SELL, qty="0.05"))
    assert status.avg_price == 42000.0
    fills = paper.fetch_fills((SYM,), None)
    assert [f.price for f in fills] == [42000.1, 42000.0]
    assert fills[1].fee == pytest.approx(0.05 * 42000.0 * 0.002)
    assert paper.fetch_balances().free["BTC"] == pytest.approx(0.15)
    assert len({f.id for f in fills}) == 2


def test_buy_by_spend_includes_the_fee(paper: PaperAdapter) -> None:
    status = paper.place(order("sp-1", qty="0.01", spend=500.0))
    assert status.filled == pytest.approx(0.01188)  # 500 / (42000.1 * 1.002), floored to the step
    (fill,) = paper.fetch_fills((SYM,), None)
    assert fill.qty * fill.price + fill.fee <= 500.0
    assert paper.fetch_balances().free["USDT"] == pytest.approx(10_000 - fill.qty * fill.price - fill.fee)


def test_limit_order_rests_then_fills_when_the_quote_crosses(paper: PaperAdapter, emu: EmulatorHandle) -> None:
    status = paper.place(order("pl-1", qty="0.02", price="41000"))
    assert status.status == "open"
    locked = 0.02 * 41000 * 1.002  # the worse of the two fees is set aside
    b = paper.fetch_balances()
    assert b.free["USDT"] == pytest.approx(10_000 - locked) and b.total["USDT"] == pytest.approx(10_000)
    emu.set_price(SYM, bid="41000.4", ask="41000.5")  # close, not crossed
    (still,) = paper.fetch_open_orders((SYM,))
    assert (still.client_id, still.price, still.qty) == ("pl-1", 41000.0, 0.02)
    emu.set_price(SYM, bid="40990", ask="40995")  # crossed
    assert paper.fetch_open_orders((SYM,)) == []
    (fill,) = paper.fetch_fills((SYM,), None)
    assert fill.price == 41000.0 and fill.fee == pytest.approx(0.02 * 41000 * 0.001)  # maker
    b = paper.fetch_balances()
    assert b.free["USDT"] == pytest.approx(10_000 - 820 - 0.82) and "USDT" in b.total
    assert b.free["BTC"] == pytest.approx(0.02)
    found = paper.find_order("pl-1", SYM)
    assert found is not None and found.status == "filled" and found.avg_price == 41000.0


def test_limit_sell_fills_on_poll(paper: PaperAdapter, emu: EmulatorHandle) -> None:
    paper.place(order("own", qty="0.1"))
    paper.place(order("pls-1", side=Side.SELL, qty="0.1", price="43000"))
    assert paper.fetch_balances().free.get("BTC", 0.0) == 0.0  # locked
    assert paper.poll() == []
    emu.set_price(SYM, bid="43000", ask="43000.1")
    (fill,) = paper.poll()
    assert (fill.client_id, fill.price) == ("pls-1", 43000.0)
    assert paper.poll() == []


def test_marketable_limit_takes_at_the_quote(paper: PaperAdapter) -> None:
    status = paper.place(order("pt-1", qty="0.01", price="42100"))
    assert status.status == "filled" and status.avg_price == 42000.1
    (fill,) = paper.fetch_fills((SYM,), None)
    assert fill.fee == pytest.approx(0.01 * 42000.1 * 0.002)  # taker


def test_cancel_releases_the_funds(paper: PaperAdapter) -> None:
    paper.place(order("pc-1", qty="0.02", price="41000"))
    canceled = paper.cancel("pc-1", SYM)
    assert canceled is not None and canceled.status == "canceled"
    assert paper.fetch_balances() == Balances(free={"USDT": 10_000.0}, total={"USDT": 10_000.0})
    assert paper.cancel("pc-1", SYM) is None
    assert paper.find_order("unknown", SYM) is None


def test_duplicate_client_ids_are_rejected_like_an_exchange(paper: PaperAdapter, market_data: CcxtAdapter) -> None:
    paper.place(order("pd-1", qty="0.01", price="40000"))
    with pytest.raises(Rejected) as info:
        paper.place(order("pd-1", qty="0.01", price="40000"))
    assert info.value.reason == "duplicate"
    assert len(paper.fetch_open_orders((SYM,))) == 1
    # Binance's scope: unique among open orders; a filled order's id may come back
    paper.place(order("pd-2", qty="0.001"))
    paper.place(order("pd-2", qty="0.001"))
    strict = PaperAdapter(market_data, cash=10_000.0, fees=FEES, client_id_scope="account")
    strict.place(order("pd-3", qty="0.001"))
    with pytest.raises(Rejected, match="duplicate"):
        strict.place(order("pd-3", qty="0.001"))


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (order("r-funds", qty="1"), "insufficient_funds"),
        (order("r-funds-limit", qty="1", price="41000"), "insufficient_funds"),
        (order("r-nothing", side=Side.SELL, qty="0.1"), "insufficient_funds"),
        (order("r-step", qty="0.000015", price="41000"), "filter"),
        (order("r-tick", qty="0.01", price="41000.005"), "filter"),
        (order("r-notional", qty="0.0001", price="41000"), "min_notional"),
        (order("r-spend", spend=2.0), "min_notional"),
    ],
)
def test_rejections(paper: PaperAdapter, request_: OrderRequest, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        paper.place(request_)
    assert info.value.reason == reason
    assert paper.fetch_balances().free == {"USDT": 10_000.0}


def test_halted_market(paper: PaperAdapter, emu: EmulatorHandle) -> None:
    paper.place(order("h-1", qty="0.01", price="41000"))
    emu.set_symbol_status(SYM, "HALT")
    paper.load_markets()
    with pytest.raises(Rejected) as info:
        paper.place(order("h-2", qty="0.01", price="41000"))
    assert info.value.reason == "market_closed"
    emu.set_price(SYM, bid="40000", ask="40001")
    assert len(paper.fetch_open_orders((SYM,))) == 1  # nothing fills while halted
    emu.set_symbol_status(SYM, "TRADING")
    paper.load_markets()
    assert paper.fetch_open_orders((SYM,)) == []


def test_unknown_symbol_needs_a_human(paper: PaperAdapter) -> None:
    with pytest.raises(NeedsHuman):
        paper.place(order("u-1", symbol="DOGE/USDT"))


class ScriptedQuotes:
    """Market data that replays a fixed list of quotes (one per fetch_quote)."""

    name = "script"

    def __init__(self, quotes: list[Quote]) -> None:
        self.quotes = list(quotes)
        self.rules = MarketRules(tick_size=0.01, step_size=0.001, min_qty=0.001, min_notional=1.0)

    def load_markets(self) -> dict[str, Market]:
        return {SYM: Market(SYM, "BTC", "USDT", self.rules)}

    def time_ms(self) -> int:
        return self.quotes[0].ts

    def fetch_candles(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list[Bar]:
        return []

    def fetch_quote(self, symbol: str) -> Quote:
        return self.quotes.pop(0) if len(self.quotes) > 1 else self.quotes[0]

    # the account side is never asked of a market-data source
    def fetch_balances(self) -> Balances:
        raise NotImplementedError

    def fetch_open_orders(self, symbols: tuple[str, ...]) -> list[OpenOrder]:
        raise NotImplementedError

    def fetch_fills(self, symbols: tuple[str, ...], since_ms: int | None) -> list[Fill]:
        raise NotImplementedError

    def place(self, order: OrderRequest) -> OrderStatus:
        raise NotImplementedError

    def cancel(self, client_id: str, symbol: str) -> OrderStatus | None:
        raise NotImplementedError

    def find_order(self, client_id: str, symbol: str) -> OrderStatus | None:
        raise NotImplementedError


def _run(seed: int) -> tuple[list[Fill], Balances]:
    quotes = [Quote(97.0 + i % 7, 97.1 + i % 7, 97.05 + i % 7, 1_000 * (i + 1)) for i in range(60)]
    p = PaperAdapter(ScriptedQuotes(quotes), cash={"USDT": 1000.0}, fees=0.001, seed=seed)
    p.load_markets()
    for i in range(10):
        if i % 2 == 0:
            p.place(order(f"lim{i}", qty="0.5", price=f"{97 + i % 3}.00"))
        else:
            p.place(order(f"mkt{i}", qty="0.1"))
        p.poll()
    return p.fetch_fills((SYM,), None), p.fetch_balances()


def test_deterministic_given_the_quotes() -> None:
    fills, balances = _run(seed=5)
    assert (fills, balances) == _run(seed=5)
    assert [f.client_id for f in fills] == ["mkt1", "mkt3", "lim2", "mkt5", "mkt7", "mkt9"]
    assert len({f.id for f in fills}) == len(fills)
    assert [f.ts for f in fills] == sorted(f.ts for f in fills)
    other, other_balances = _run(seed=6)
    assert [f.id for f in other] != [f.id for f in fills] and other_balances == balances
