"""CcxtAdapter against the loopback Binance emulator, over HTTP, with the real ccxt client."""

from __future__ import annotations

import logging
import subprocess
import sys
from decimal import Decimal
from typing import Literal

import ccxt
import pytest
from exchange_support import BTC, CLIENT_TIMEOUT_MS, HOLD_S, RNG_SEED, FakeTime, make_retry, roomy_limiter

from policyctl.emulator import Bar as EmuBar
from policyctl.emulator import EmulatorHandle, ManualClock, start_emulator
from policyctl.exchanges.adapter import AdapterError, Ambiguous, NeedsHuman, Rejected, Transient
from policyctl.exchanges.ccxt_adapter import (
    DECIMAL_PLACES,
    ENV_API_KEY,
    ENV_API_SECRET,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    CcxtAdapter,
    market_rules,
)
from policyctl.exchanges.errors import classify, scrub
from policyctl.exchanges.ratelimit import RateLimit, RateLimiter
from policyctl.exchanges.retry import RetryPolicy
from policyctl.runtime.model import OrderRequest, Side

SYM = "BTC/USDT"
D = Decimal


def order(
    cid: str,
    side: Side = Side.BUY,
    qty: str = "0.01",
    price: str | None = None,
    symbol: str = SYM,
    spend: float | None = None,
) -> OrderRequest:
    return OrderRequest(
        client_id=cid,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        kind="entry",
        rule="test",
        reduce_only=False,
        ref_price=42000.0,
        spend=spend,
    )


def served(emu: EmulatorHandle, endpoint: str) -> int:
    return sum(1 for s in emu.served if s.endpoint == endpoint)


# -- construction ---------------------------------------------------------------------------


def test_from_env_needs_both_variables(emu: EmulatorHandle, credentials: tuple[str, str]) -> None:
    key, _ = credentials
    with pytest.raises(NeedsHuman, match=ENV_API_SECRET) as info:
        CcxtAdapter.from_env("binance", env={ENV_API_KEY: key}, base_url=emu.url)
    assert key not in str(info.value)
    with pytest.raises(NeedsHuman, match=f"{ENV_API_KEY} and {ENV_API_SECRET}"):
        CcxtAdapter.from_env("binance", env={}, base_url=emu.url)
    public = CcxtAdapter.from_env("binance", env={}, base_url=emu.url, require_credentials=False)
    assert public.fetch_quote(SYM).bid == 42000.0


def test_repr_and_errors_never_show_credentials(
    emu: EmulatorHandle, credentials: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    key, secret = credentials
    caplog.set_level(logging.DEBUG)
    wrong = "f" * 64
    a = CcxtAdapter.from_env(
        "binance",
        env={ENV_API_KEY: key, ENV_API_SECRET: wrong},
        base_url=emu.url,
        timeout_ms=CLIENT_TIMEOUT_MS,
        retry=RetryPolicy(max_attempts=1),
    )
    assert key not in repr(a) and wrong not in repr(a)
    with pytest.raises(NeedsHuman) as info:  # -1022 bad signature
        a.fetch_balances()
    emu.inject("account", "timeout", delay=HOLD_S)
    good = CcxtAdapter.from_env(
        "binance",
        env={ENV_API_KEY: key, ENV_API_SECRET: secret},
        base_url=emu.url,
        timeout_ms=CLIENT_TIMEOUT_MS,
        retry=RetryPolicy(max_attempts=1),
    )
    with pytest.raises(Transient) as timeout:
        good.fetch_balances()
    assert "ccxt.base.exchange" not in caplog.text  # ccxt's wire log goes through the scrubber
    assert "policyctl.exchanges.wire" in caplog.text
    for text in (str(info.value), str(timeout.value), caplog.text):
        for secret_text in (key, secret, wrong):
            assert secret_text not in text
    for text in (str(info.value), str(timeout.value)):
        assert "signature=" not in text


def test_scrub_cuts_queries_and_masks_secrets() -> None:
    text = "binance GET http://127.0.0.1:1/api/v3/account?timestamp=1&signature=abc failed for KEY123"
    out = scrub(text, ["KEY123"])
    assert "signature" not in out and "KEY123" not in out
    assert "http://127.0.0.1:1/api/v3/account?<query>" in out
    assert len(scrub("x" * 5000)) < 500


def test_importing_the_adapters_does_not_import_ccxt() -> None:
    code = (
        "import sys, policyctl.exchanges.ccxt_adapter, policyctl.exchanges.paper, policyctl.exchanges.errors; "
        "sys.exit(1 if 'ccxt' in sys.modules or 'policyctl.emulator' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_base_url_is_binance_only() -> None:
    with pytest.raises(ValueError, match="binance"):
        CcxtAdapter("kraken", None, None, base_url="http://127.0.0.1:9")


# -- markets, candles, quotes, balances ------------------------------------------------------


def test_markets_and_rules(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    markets = adapter.load_markets()
    assert set(markets) == {"BTC/USDT", "ETH/BTC"}
    btc = markets["BTC/USDT"]
    assert (btc.base, btc.quote) == ("BTC", "USDT")
    assert btc.rules.tick_size == 0.01 and btc.rules.step_size == 0.00001
    assert btc.rules.min_qty == 0.00001 and btc.rules.min_notional == 5.0
    assert btc.rules.status == "trading"
    eth = markets["ETH/BTC"].rules  # legacy MIN_NOTIONAL filter
    assert (eth.tick_size, eth.step_size, eth.min_notional) == (0.00001, 0.0001, 0.0001)
    for status in ("HALT", "BREAK"):
        emu.set_symbol_status(SYM, status)
        assert adapter.load_markets()[SYM].rules.status == "halted"
    emu.set_symbol_status(SYM, "TRADING")
    assert adapter.load_markets()[SYM].rules.status == "trading"


def test_market_rules_in_both_precision_modes() -> None:
    market = {
        "precision": {"price": 0.01, "amount": 0.001},
        "limits": {"amount": {"min": 0.001}, "cost": {"min": 10}},
        "active": True,
        "info": {},
    }
    rules = market_rules(market, TICK_SIZE)
    assert (rules.tick_size, rules.step_size, rules.min_qty, rules.min_notional) == (0.01, 0.001, 0.001, 10.0)
    decimals = {**market, "precision": {"price": 2, "amount": 5}}
    rules = market_rules(decimals, DECIMAL_PLACES)
    assert (rules.tick_size, rules.step_size) == (0.01, 0.00001)
    assert market_rules({**market, "precision": {"price": 0, "amount": 8}}, DECIMAL_PLACES).tick_size == 1.0
    assert market_rules(decimals, SIGNIFICANT_DIGITS).tick_size == 0.0  # no fixed increment
    assert market_rules({**market, "active": False}, TICK_SIZE).status == "halted"
    assert market_rules({"info": {"status": "BREAK"}, "active": None}, TICK_SIZE).status == "halted"
    bare = market_rules({}, TICK_SIZE)
    assert (bare.tick_size, bare.min_qty, bare.min_notional, bare.status) == (0.0, 0.0, 0.0, "trading")


def _bars(n: int) -> list[EmuBar]:
    start = 1_700_000_000_000 // 900_000 * 900_000  # aligned to 15 minutes
    out = []
    for i in range(n):
        o = D(100 + i)
        out.append(EmuBar(start + i * 300_000, o, o + 2, o - 1, o + 1, D("10.5")))
    return out


def test_candles_leave_out_the_forming_one(credentials: tuple[str, str], env: dict[str, str]) -> None:
    bars = _bars(12)
    key, secret = credentials
    with start_emulator(markets=[BTC], candles={SYM: (bars, "5m")}, api_key=key, secret=secret) as emu:
        emu.advance(3)  # 4 bars applied; the clock is at the close of the 4th
        a = CcxtAdapter.from_env("binance", env=env, base_url=emu.url, timeout_ms=CLIENT_TIMEOUT_MS)
        five = a.fetch_candles(SYM, "5m", None, 10)
        assert [b.ts for b in five] == [b.open_time for b in bars[:4]]
        assert (five[-1].open, five[-1].high, five[-1].low, five[-1].close, five[-1].volume) == (
            103.0, 105.0, 102.0, 104.0, 10.5,
        )
        assert [b.ts for b in a.fetch_candles(SYM, "5m", None, 2)] == [bars[2].open_time, bars[3].open_time]
        since = a.fetch_candles(SYM, "5m", bars[1].open_time, 2)
        assert [b.ts for b in since] == [bars[1].open_time, bars[2].open_time]
        # 15m: the exchange answers the closed bucket and the one still forming (1 of 3 bars)
        raw = emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS).fetch_ohlcv(SYM, "15m")
        assert len(raw) == 2
        fifteen = a.fetch_candles(SYM, "15m", None, 10)
        assert [b.ts for b in fifteen] == [bars[0].open_time]
        assert (fifteen[0].open, fifteen[0].close, fifteen[0].high) == (100.0, 103.0, 104.0)
        emu.advance(2)  # the second bucket closes
        assert [b.ts for b in a.fetch_candles(SYM, "15m", None, 10)] == [bars[0].open_time, bars[3].open_time]


def test_quote(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    emu.set_price(SYM, bid="42100.00", ask="42100.50", last="42100.25")
    q = adapter.fetch_quote(SYM)
    assert (q.bid, q.ask, q.last) == (42100.0, 42100.5, 42100.25)
    assert q.ts == emu.clock.now_ms()
    assert adapter.time_ms() == emu.clock.now_ms()


def test_balances(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    b = adapter.fetch_balances()
    assert b.free == {"USDT": 10000.0, "BTC": 1.0, "ETH": 10.0}
    adapter.place(order("lock-1", price="40000"))
    b = adapter.fetch_balances()
    assert b.free["USDT"] == 9600.0 and b.total["USDT"] == 10000.0


# -- orders ------------------------------------------------------------------------------------


def test_market_orders_with_client_ids(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    buy = adapter.place(order("mkt-buy-1", qty="0.01"))
    assert (buy.client_id, buy.status, buy.filled, buy.avg_price) == ("mkt-buy-1", "filled", 0.01, 42000.1)
    assert buy.side == "buy" and buy.symbol == SYM and buy.created_ms == emu.clock.now_ms()
    sell = adapter.place(order("mkt-sell-1", side=Side.SELL, qty="0.1"))
    assert (sell.status, sell.avg_price) == ("filled", 42000.0)
    assert [o.client_order_id for o in emu.orders()] == ["mkt-buy-1", "mkt-sell-1"]
    found = adapter.find_order("mkt-buy-1", SYM)
    assert found is not None and found.exchange_id == buy.exchange_id and found.status == "filled"

    fills = adapter.fetch_fills((SYM,), None)
    assert [(f.client_id, f.side) for f in fills] == [("mkt-buy-1", Side.BUY), ("mkt-sell-1", Side.SELL)]
    assert len({f.id for f in fills}) == 2
    # the buy's fee was charged in BTC: net quantity, fee in USDT at the fill price
    assert fills[0].qty == pytest.approx(0.01 - 0.00001)
    assert fills[0].fee == pytest.approx(0.00001 * 42000.1)
    assert fills[1].qty == pytest.approx(0.1) and fills[1].fee == pytest.approx(4.2)
    assert adapter.fetch_fills((SYM,), fills[1].ts + 1) == []


def test_market_buy_by_spend_uses_quote_order_qty(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    status = adapter.place(order("spend-1", qty="0.01", spend=421.0))
    (placed,) = emu.orders()
    assert placed.client_order_id == "spend-1"
    assert placed.orig_quote_qty == D("421")
    assert status.status == "filled"
    assert status.filled == pytest.approx(0.01002)  # 421 / 42000.10 floored to the step
    assert emu.balances()["USDT"][0] >= D("10000") - D("421")


def test_limit_order_lifecycle(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    rest = adapter.place(order("lim-1", qty="0.02", price="41000"))
    assert rest.status == "open" and rest.filled == 0.0
    other = adapter.place(order("lim-2", side=Side.SELL, qty="0.01", price="45000"))
    opened = adapter.fetch_open_orders((SYM, "ETH/BTC"))
    assert {(o.client_id, o.price, o.side) for o in opened} == {
        ("lim-1", 41000.0, Side.BUY),
        ("lim-2", 45000.0, Side.SELL),
    }
    emu.set_price(SYM, bid="40990", ask="40995")  # crosses the buy
    done = adapter.find_order("lim-1", SYM)
    assert done is not None and done.status == "filled" and done.avg_price == 41000.0
    (fill,) = adapter.fetch_fills((SYM,), None)
    assert fill.client_id == "lim-1" and fill.price == 41000.0
    canceled = adapter.cancel("lim-2", SYM)
    assert canceled is not None and canceled.status == "canceled" and canceled.client_id == "lim-2"
    assert canceled.exchange_id == other.exchange_id
    assert adapter.cancel("lim-2", SYM) is None  # already gone: not an error
    assert adapter.cancel("never-sent", SYM) is None
    assert adapter.find_order("never-sent", SYM) is None
    assert adapter.fetch_open_orders((SYM,)) == []


def test_fill_of_an_order_placed_elsewhere_gets_its_client_id(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    emu.ccxt(timeout_ms=CLIENT_TIMEOUT_MS).create_order(SYM, "market", "buy", 0.001, None, {"clientOrderId": "manual"})
    (fill,) = adapter.fetch_fills((SYM,), None)
    assert fill.client_id == "manual"


# -- the classifier, fault by fault -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "body", "expected"),
    [
        ("rate_limit", None, "html", Transient),
        ("ip_ban", None, "html", NeedsHuman),
        ("server_error", 500, "html", Transient),
        ("server_error", 502, "html", Transient),
        ("server_error", 503, "html", Transient),
        ("server_error", 504, "html", Transient),
        ("server_error", 500, "json", Transient),
        ("server_error", 503, "json", Transient),
        ("server_error", 504, "json", Transient),
        ("timeout", None, "html", Transient),
        ("drop", None, "html", Transient),
    ],
)
def test_read_faults_are_classified(
    one_shot: CcxtAdapter,
    emu: EmulatorHandle,
    kind: str,
    status: int | None,
    body: Literal["html", "json"],
    expected: type[AdapterError],
) -> None:
    emu.inject("ticker", kind, status=status, body=body, delay=HOLD_S)
    with pytest.raises(expected) as info:
        one_shot.fetch_quote(SYM)
    assert type(info.value) is expected
    assert info.value.endpoint == "market_data"
    assert isinstance(info.value.cause, ccxt.BaseError)
    assert one_shot.fetch_quote(SYM).bid == 42000.0  # the fault is spent


def test_5xx_burst_is_retried_with_full_jitter(
    adapter: CcxtAdapter, emu: EmulatorHandle, retry_time: FakeTime
) -> None:
    import random

    emu.inject("market_data", "server_error", count=3, status=502)
    assert adapter.fetch_quote(SYM).ask == 42000.1
    assert served(emu, "ticker") == 4
    replay = random.Random(RNG_SEED)
    caps = [0.5, 1.0, 2.0]  # base 0.5 doubling, max 4
    assert retry_time.sleeps == [replay.uniform(0.0, c) for c in caps]
    assert all(0.0 <= d <= c for d, c in zip(retry_time.sleeps, caps, strict=True))


def test_5xx_longer_than_the_attempts_gives_up(
    adapter: CcxtAdapter, emu: EmulatorHandle, retry_time: FakeTime
) -> None:
    emu.inject("ticker", "server_error", count=10, status=503, body="json")  # -1008
    with pytest.raises(Transient, match="OperationFailed"):
        adapter.fetch_quote(SYM)
    assert served(emu, "ticker") == 5 and len(retry_time.sleeps) == 4


def test_429_honours_retry_after(adapter: CcxtAdapter, emu: EmulatorHandle, retry_time: FakeTime) -> None:
    emu.inject("ticker", "rate_limit", count=2, retry_after=3)
    assert adapter.fetch_quote(SYM).bid == 42000.0
    assert served(emu, "ticker") == 3
    assert retry_time.sleeps == [3.0, 3.0]  # jitter (< 1 s here) never undercuts Retry-After


def test_429_with_retry_after_beyond_the_budget(
    emu: EmulatorHandle, env: dict[str, str], retry_time: FakeTime, limiter_time: FakeTime
) -> None:
    a = CcxtAdapter.from_env(
        "binance",
        env=env,
        base_url=emu.url,
        timeout_ms=CLIENT_TIMEOUT_MS,
        retry=make_retry(retry_time, max_total=10.0),
        rate_limits=roomy_limiter(limiter_time),
    )
    a.load_markets()
    emu.inject("ticker", "rate_limit", retry_after=120)
    with pytest.raises(Transient) as info:
        a.fetch_quote(SYM)
    assert info.value.retry_after == 120.0 and retry_time.sleeps == []


def test_418_needs_a_human_and_is_not_retried(
    adapter: CcxtAdapter, emu: EmulatorHandle, retry_time: FakeTime
) -> None:
    emu.inject("all", "ip_ban", count=5, retry_after=600)
    with pytest.raises(NeedsHuman, match="IP banned"):
        adapter.fetch_quote(SYM)
    assert served(emu, "ticker") == 1 and retry_time.sleeps == []


def test_rejected_timestamp_is_transient(credentials: tuple[str, str], env: dict[str, str]) -> None:
    key, secret = credentials
    with start_emulator(
        markets=[BTC], api_key=key, secret=secret, timestamp_check="clock", clock=ManualClock(1_500_000_000_000)
    ) as emu:
        a = CcxtAdapter.from_env(
            "binance", env=env, base_url=emu.url, timeout_ms=CLIENT_TIMEOUT_MS, retry=RetryPolicy(max_attempts=1)
        )
        with pytest.raises(Transient) as info:
            a.fetch_balances()
        assert isinstance(info.value.cause, ccxt.InvalidNonce)


def test_authentication_failures_need_a_human(emu: EmulatorHandle, credentials: tuple[str, str]) -> None:
    key, _ = credentials
    for env in ({ENV_API_KEY: key, ENV_API_SECRET: "0" * 64}, {ENV_API_KEY: "unknown", ENV_API_SECRET: "0" * 64}):
        a = CcxtAdapter.from_env("binance", env=env, base_url=emu.url, timeout_ms=CLIENT_TIMEOUT_MS)
        with pytest.raises(NeedsHuman, match="credentials"):
            a.fetch_balances()


@pytest.mark.parametrize(
    ("exc", "kind", "reason"),
    [
        (ccxt.PermissionDenied("binance -2015"), NeedsHuman, None),
        (ccxt.AccountSuspended("binance suspended"), NeedsHuman, None),
        (ccxt.AuthenticationError("binance -1022"), NeedsHuman, None),
        (ccxt.DDoSProtection("binance 429 Too Many Requests {}"), Transient, None),
        (ccxt.DDoSProtection("binance 418 I'm a teapot {}"), NeedsHuman, None),
        (ccxt.DDoSProtection('binance {"code":-2015}'), NeedsHuman, None),
        (ccxt.RateLimitExceeded("slow down"), Transient, None),
        (ccxt.InvalidNonce("-1021"), Transient, None),
        (ccxt.OnMaintenance("system maintenance"), Transient, None),
        (ccxt.BadResponse("garbled"), Transient, None),
        (ccxt.InsufficientFunds("-2010"), Rejected, "insufficient_funds"),
        (ccxt.MarketClosed("Market is closed."), Rejected, "market_closed"),
        (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'), Rejected, "duplicate"),
        (ccxt.DuplicateOrderId("dup"), Rejected, "duplicate"),
        (ccxt.InvalidOrder("Filter failure: LOT_SIZE"), Rejected, "filter"),
        (ccxt.InvalidOrder("Filter failure: PRICE_FILTER"), Rejected, "filter"),
        (ccxt.InvalidOrder("Filter failure: MARKET_LOT_SIZE"), Rejected, "filter"),
        (ccxt.BadRequest("Filter failure: NOTIONAL"), Rejected, "min_notional"),
        (ccxt.BadRequest("Filter failure: MIN_NOTIONAL"), Rejected, "min_notional"),
        (ccxt.OrderImmediatelyFillable("would match"), Rejected, "would_take"),
        (ccxt.OrderNotFound("-2013"), Rejected, "not_found"),
        (ccxt.OrderNotFillable("fok"), Rejected, "not_fillable"),
        (ccxt.BadRequest("-1102 mandatory"), Rejected, "bad_request"),
        (ccxt.BadSymbol("NOPE/USDT"), NeedsHuman, None),
        (ccxt.NotSupported("no"), NeedsHuman, None),
        (ccxt.ExchangeError("something new"), NeedsHuman, None),
        (RuntimeError("a bug"), NeedsHuman, None),
    ],
)
def test_classify_table(exc: BaseException, kind: type[AdapterError], reason: str | None) -> None:
    err = classify(exc, "orders")
    assert type(err) is kind
    assert err.endpoint == "orders" and err.cause is exc
    if reason is not None:
        assert isinstance(err, Rejected) and err.reason == reason


@pytest.mark.parametrize(
    "exc",
    [
        ccxt.RequestTimeout("504"),
        ccxt.ExchangeNotAvailable("502"),
        ccxt.NetworkError("dropped"),
        ccxt.OperationFailed("-1001"),
    ],
)
def test_network_failures_of_placement_are_ambiguous(exc: BaseException) -> None:
    assert type(classify(exc, "orders")) is Transient
    assert type(classify(exc, "orders", placing=True)) is Ambiguous


def test_throttling_of_placement_stays_what_it_is() -> None:
    assert type(classify(ccxt.DDoSProtection("429"), "orders", placing=True, retry_after=2.0)) is Transient
    assert type(classify(ccxt.InvalidNonce("-1021"), "orders", placing=True)) is Transient


# -- placement under faults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "apply", "creates"),
    [
        ("timeout", True, 1),  # executed, then the answer never came
        ("timeout", False, 2),  # never executed: the lookup says absent, sent once more
        ("drop", True, 1),  # accept then drop
        ("server_error", True, 1),  # 503 after execution
        ("server_error", False, 2),  # 503 before execution
    ],
)
@pytest.mark.parametrize("price", [None, "40000"])
def test_ambiguous_placement_is_resolved_by_client_id(
    adapter: CcxtAdapter, emu: EmulatorHandle, kind: str, apply: bool, creates: int, price: str | None
) -> None:
    emu.inject("order_create", kind, apply=apply, delay=HOLD_S, status=503 if kind == "server_error" else None)
    status = adapter.place(order("amb-1", qty="0.01", price=price))
    assert status.client_id == "amb-1"
    assert status.status == ("filled" if price is None else "open")
    orders = emu.orders()
    assert [o.client_order_id for o in orders] == ["amb-1"]  # exactly one order exists
    assert served(emu, "order_create") == creates
    assert served(emu, "order_query") >= 1


def test_ambiguous_twice_stays_ambiguous(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    emu.inject("order_create", "timeout", count=2, apply=False, delay=HOLD_S)
    with pytest.raises(Ambiguous, match="look it up"):
        adapter.place(order("amb-2", price="40000"))
    assert emu.orders() == [] and served(emu, "order_create") == 2


def test_ambiguous_with_a_failing_lookup_stays_ambiguous(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    emu.inject("order_create", "drop")
    emu.inject("order_query", "ip_ban")
    with pytest.raises(Ambiguous, match="lookup failed"):
        adapter.place(order("amb-3", price="40000"))
    assert served(emu, "order_create") == 1  # no blind resend
    assert len(emu.orders()) == 1


def test_duplicate_client_id_returns_the_existing_order(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    first = adapter.place(order("dup-1", price="40000"))
    again = adapter.place(order("dup-1", price="40000"))
    assert again.exchange_id == first.exchange_id and again.status == "open"
    assert len(emu.orders()) == 1
    assert served(emu, "order_create") == 2


def test_placement_is_not_retried_on_throttling(
    adapter: CcxtAdapter, emu: EmulatorHandle, retry_time: FakeTime
) -> None:
    emu.inject("order_create", "rate_limit", retry_after=2)
    with pytest.raises(Transient) as info:
        adapter.place(order("thr-1", price="40000"))
    assert info.value.retry_after == 2.0
    assert served(emu, "order_create") == 1 and emu.orders() == [] and retry_time.sleeps == []


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (order("rj-funds", qty="1", price="41000"), "insufficient_funds"),
        (order("rj-funds-sell", side=Side.SELL, qty="2"), "insufficient_funds"),
        (order("rj-lot", qty="10000", price="1"), "filter"),
        (order("rj-tick", side=Side.SELL, qty="0.01", price="2000000"), "filter"),
        (order("rj-market-lot", side=Side.SELL, qty="150"), "filter"),
        (order("rj-notional", qty="0.0001", price="41000"), "min_notional"),
        (order("rj-min-notional", qty="0.001", price="0.052", symbol="ETH/BTC"), "min_notional"),
    ],
)
def test_rejections_carry_the_reason(
    adapter: CcxtAdapter, emu: EmulatorHandle, request_: OrderRequest, reason: str
) -> None:
    with pytest.raises(Rejected) as info:
        adapter.place(request_)
    assert info.value.reason == reason
    assert emu.orders() == [] and served(emu, "order_create") == 1


@pytest.mark.parametrize("status", ["HALT", "BREAK"])
def test_halted_market_is_market_closed(adapter: CcxtAdapter, emu: EmulatorHandle, status: str) -> None:
    emu.set_symbol_status(SYM, status)
    with pytest.raises(Rejected) as info:
        adapter.place(order("halted-1", price="41000"))
    assert info.value.reason == "market_closed"


# -- rate limiting through the adapter ----------------------------------------------------------

_CLASS_OF = {
    "time": "market_data",
    "exchange_info": "market_data",
    "ticker": "market_data",
    "klines": "market_data",
    "account": "account",
    "my_trades": "account",
    "order_create": "orders",
    "order_query": "orders",
    "order_cancel": "orders",
    "open_orders": "orders",
}


def test_every_request_takes_a_token_of_its_class(adapter: CcxtAdapter, emu: EmulatorHandle) -> None:
    adapter.fetch_quote(SYM)
    adapter.fetch_candles(SYM, "5m", None, 5)
    adapter.fetch_balances()
    adapter.place(order("tok-1", price="40000"))
    adapter.fetch_open_orders((SYM,))
    adapter.cancel("tok-1", SYM)
    adapter.find_order("tok-1", SYM)
    adapter.fetch_fills((SYM,), None)
    emu.inject("ticker", "server_error", count=2)
    adapter.fetch_quote(SYM)  # retries take tokens too
    for cls in ("market_data", "account", "orders"):
        sent = sum(1 for s in emu.served if _CLASS_OF[s.endpoint or ""] == cls)
        assert adapter.limiter.granted(cls) == sent, cls


def test_the_limiter_holds_the_request_rate(emu: EmulatorHandle, env: dict[str, str]) -> None:
    clock = FakeTime()
    limiter = RateLimiter(
        {"market_data": RateLimit(rate=2.0, burst=3.0)}, clock=clock.monotonic, sleep=clock.sleep
    )
    a = CcxtAdapter.from_env(
        "binance", env=env, base_url=emu.url, timeout_ms=CLIENT_TIMEOUT_MS, rate_limits=limiter
    )
    start = clock.now
    for _ in range(10):
        a.fetch_quote(SYM)
    requests = sum(1 for s in emu.served if _CLASS_OF.get(s.endpoint or "") == "market_data")
    assert requests == 11  # exchangeInfo + 10 tickers
    assert limiter.granted("market_data") == 11
    # 3 from the burst, then one every 0.5 s of (fake) time
    assert clock.sleeps == [0.5] * 8
    assert clock.now - start == pytest.approx((11 - 3) / 2.0)
