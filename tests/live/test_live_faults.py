"""Exchange failures under a running runtime: throttling, bans, 5xx, timeouts, drops, bad data,
halted symbols and rejections. After each: the invariants of ``live_support.check_invariants``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from live_support import (
    HOLD_S,
    Session,
    check_books,
    check_invariants,
    env_for,
    journal_denials,
    journal_events,
    journal_kinds,
    open_session,
    store_fills,
    store_orders,
    write_policy,
)

from policyctl.emulator import EmulatorHandle
from policyctl.runtime.engine import Decision


def _orders_for(d: Decision, symbol: str | None = None) -> list[Any]:
    return [o for o in d.orders if symbol is None or o.symbol == symbol]


def _next_order_tick(s: Session, limit: int = 40) -> Decision:
    """Tick until a tick decides at least one order (faults armed before it hit that order)."""
    return s.run_until(lambda d: bool(d.orders), limit)


def _metric(s: Session, name: str, **labels: str) -> float:
    v = s.rt.metrics.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def _emu_cids(emu: EmulatorHandle) -> list[str]:
    return [o.client_order_id for o in emu.orders()]


# ---- throttling ---------------------------------------------------------------------------


def test_429_on_reads_is_retried(live: Session) -> None:
    live.run(3)
    live.emu.inject("all", "rate_limit", count=3, retry_after=0)
    d = live.step()
    assert d is not None
    assert len(live.emu.faults.fired) == 3
    assert not live.emu.faults.pending()
    # retried inside the adapter: the tick saw a complete snapshot, nothing failed for the runtime
    assert _metric(live, "policyctl_api_errors_total", policy="live-test", kind="transient",
                   endpoint="market_data") == 0
    live.run(10)
    check_invariants(live)


def test_429_on_placement_sends_nothing_twice(live: Session) -> None:
    live.emu.inject("order_create", "rate_limit", count=1, retry_after=0)
    d = _next_order_tick(live)
    refused = d.orders[0].client_id
    assert refused not in _emu_cids(live.emu), "a throttled order never reaches the matching engine"
    stored = store_orders(live.state_dir)[refused]
    assert stored["status"] in ("unknown", "lost")
    assert _metric(live, "policyctl_api_errors_total", policy="live-test", kind="transient",
                   endpoint="orders") == 1
    live.rt.reconcile()
    live.run(8)
    live.rt.reconcile()
    assert store_orders(live.state_dir)[refused]["status"] == "lost"
    assert refused not in _emu_cids(live.emu)
    # a human hears of it: the engine does not decide a lost order again by itself
    lost = [a for a in live.rt.alerter.sent if a["key"].startswith("order_lost:")]
    assert len(lost) == 1 and refused in lost[0]["message"], live.rt.alerter.sent
    assert lost[0]["level"] == ("critical" if d.orders[0].side.value == "sell" else "warning")
    check_invariants(live)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        type(self).received.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_418_halts_for_a_human(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle,
                               webhook: tuple[str, list[dict[str, Any]]]) -> None:
    from policyctl.runtime.app import WEBHOOK_ENV

    key, secret = credentials
    url, received = webhook
    s = open_session(tmp_path, key, secret, emu=emu, env=env_for(key, secret) | {WEBHOOK_ENV: url})
    try:
        _next_order_tick(s)
        before = set(_emu_cids(emu))
        emu.inject("all", "ip_ban", count=10_000, retry_after=120)  # banned: every request refused
        s.run(3)
        assert s.rt.halted_for_human is not None and "IP banned" in s.rt.halted_for_human
        for _ in range(200):  # the webhook is posted to from a thread of its own
            if any(a["key"] == "needs_human" for a in received):
                break
            threading.Event().wait(0.05)
        alerts = [a for a in received if a["key"] == "needs_human"]
        assert len(alerts) == 1 and alerts[0]["level"] == "critical"
        assert _metric(s, "policyctl_api_errors_total", policy="live-test", kind="needshuman",
                       endpoint="market_data") >= 1
        emu.clear_faults()  # the ban is lifted: still nothing goes out until a human restarts it
        decisions = s.run(15)
        assert set(_emu_cids(emu)) == before, "no order after the ban"
        assert all(d.trading_state.value == "halted" for d in decisions)
        assert any(x["code"] in ("halted", "kill_switch") for d in decisions for x in d.denials)
        # the engine's clock never jumped to the wall clock while the exchange was unreachable
        nows = [d["now"] for d in journal_kinds(s.state_dir, "decision")]
        assert nows == sorted(nows) and nows[-1] - nows[0] < 86_400_000
        check_invariants(s)
    finally:
        s.close()


# ---- 5xx, timeouts, drops ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_burst_on_reads(live: Session, status: int) -> None:
    live.run(2)
    live.emu.inject("all", "server_error", count=3, status=status)
    live.step()
    assert len(live.emu.faults.fired) == 3
    live.run(8)
    check_invariants(live)


@pytest.mark.parametrize("apply", [False, True], ids=["not-executed", "executed"])
def test_5xx_on_placement(live: Session, apply: bool) -> None:
    live.emu.inject("order_create", "server_error", count=1, status=503, apply=apply)
    d = _next_order_tick(live)
    cid = d.orders[0].client_id
    assert _emu_cids(live.emu).count(cid) == 1, "looked up by client id, then placed at most once more"
    assert store_orders(live.state_dir)[cid]["status"] == "filled"
    live.run(8)
    check_invariants(live)


@pytest.mark.parametrize("apply", [False, True], ids=["not-executed", "executed"])
def test_timeout_on_placement(live: Session, apply: bool) -> None:
    live.emu.inject("order_create", "timeout", count=1, delay=HOLD_S, apply=apply)
    d = _next_order_tick(live)
    cid = d.orders[0].client_id
    assert ("timeout" in {k for _, k, _ in live.emu.faults.fired})
    assert _emu_cids(live.emu).count(cid) == 1
    assert store_orders(live.state_dir)[cid]["status"] == "filled"
    live.run(8)
    check_invariants(live)


def test_timeouts_on_reads(live: Session) -> None:
    live.run(2)
    live.emu.inject("klines", "timeout", count=2, delay=HOLD_S)
    live.step()
    live.run(6)
    check_invariants(live)


def test_drop_after_accept_is_found_by_client_id(live: Session) -> None:
    live.emu.inject("order_create", "drop", count=1)  # executed, then the connection is cut
    d = _next_order_tick(live)
    cid = d.orders[0].client_id
    assert _emu_cids(live.emu).count(cid) == 1
    assert store_orders(live.state_dir)[cid]["status"] == "filled"
    live.run(8)
    check_invariants(live)


def test_drop_and_failed_lookup_is_reconciled(live: Session) -> None:
    """The order went through, the answer was lost and so was every lookup: the store says
    `unknown`; the next reconciliation finds it by client id. Nothing is sent twice."""
    live.emu.inject("order_create", "drop", count=1)
    live.emu.inject("order_query", "server_error", count=50, status=502)
    d = _next_order_tick(live)
    cid = d.orders[0].client_id
    assert store_orders(live.state_dir)[cid]["status"] == "unknown"
    assert _emu_cids(live.emu).count(cid) == 1
    live.emu.clear_faults()
    live.rt.reconcile()
    assert store_orders(live.state_dir)[cid]["status"] == "filled"
    live.run(8)
    assert _emu_cids(live.emu).count(cid) == 1
    check_invariants(live)


# ---- bad market data ----------------------------------------------------------------------------


def test_stale_ticker_denies_entries(live: Session) -> None:
    live.run(2)
    live.emu.set_stale("BTC/USDT")
    decisions = live.run(25)
    btc = [o for d in decisions for o in _orders_for(d, "BTC/USDT")]
    assert btc == [], "no order on a stale quote"
    stale = [x for d in decisions for x in d.denials if x["code"] == "stale_quote"]
    assert stale and {x["symbol"] for x in stale} == {"BTC/USDT"}
    assert any(_orders_for(d, "ETH/USDT") for d in decisions), "the fresh symbol keeps trading"
    live.emu.set_stale("BTC/USDT", False)
    later = live.run(25)
    assert any(_orders_for(d, "BTC/USDT") for d in later), "a fresh quote again: trading resumes"
    check_invariants(live)


def _btc_trips(s: Session) -> list[dict[str, Any]]:
    return [e for e in journal_events(s.state_dir) if e["kind"] == "breaker_trip"]


@pytest.mark.parametrize("factor", ["3", "0.3"], ids=["spike-up", "spike-down"])
def test_bad_tick_is_not_trusted(live: Session, factor: str) -> None:
    # hold a BTC position, then the ticker prints a wild price once
    live.run_until(lambda d: "BTC/USDT" in live.rt.state.positions
                   and live.rt.state.positions["BTC/USDT"].qty > 1e-4 and not _orders_for(d, "BTC/USDT"))
    equity = live.decisions[-1].equity
    quote = live.emu.exchange.feeds["BTCUSDT"].quote
    assert quote is not None
    spike = (quote.last * Decimal(factor)).quantize(Decimal("0.01"))
    live.emu.bad_tick("BTC/USDT", spike, count=1)
    d = live.step(0)
    assert d is not None
    assert any(e.data.get("problem") == "bad_tick" for e in d.events)
    assert abs(d.equity / equity - 1) < 0.01, "the bad print never marks the account"
    assert not d.orders
    assert _btc_trips(live) == [], "a bad print tripped a breaker"
    # a run of bad prints: no order on them, and no entry anywhere (exposure is not known)
    live.emu.bad_tick("BTC/USDT", spike, count=10)
    decisions = live.run(10)
    assert not any(_orders_for(d, "BTC/USDT") for d in decisions)
    assert not any(o.side.value == "buy" for d in decisions for o in d.orders)
    codes = {(x["symbol"], x["code"]) for d in decisions for x in d.denials}
    assert ("BTC/USDT", "untrusted_price") in codes or ("ETH/USDT", "untrusted_price") in codes
    assert _btc_trips(live) == []
    assert all(d.trading_state.value == "active" for d in decisions)
    later = live.run(10)
    assert any(o.side.value == "buy" for d in later for o in d.orders), "trusted prints again: trading resumes"
    check_invariants(live)


# ---- the exchange refuses -------------------------------------------------------------------


def test_halted_symbol(live: Session) -> None:
    live.run(2)
    live.emu.set_symbol_status("BTC/USDT", "HALT")
    # before the runtime reloads the markets the exchange says no: rejected, market closed
    d = live.run_until(lambda d: bool(_orders_for(d, "BTC/USDT")))
    refused = [o.client_id for o in _orders_for(d, "BTC/USDT")]
    stored = store_orders(live.state_dir)
    assert all(stored[c]["status"] == "rejected" and stored[c]["reason"] == "market_closed" for c in refused)
    assert not set(refused) & set(_emu_cids(live.emu))
    # the reconciliation reloads the markets: the guard knows, nothing more goes out for BTC
    live.rt.reconcile()
    decisions = live.run(20)
    assert not any(_orders_for(d, "BTC/USDT") for d in decisions)
    halted = [x for d in decisions for x in d.denials if x["code"] == "product_halted"]
    assert halted and {x["symbol"] for x in halted} == {"BTC/USDT"}
    live.emu.set_symbol_status("BTC/USDT", "TRADING")
    live.rt.reconcile()
    later = live.run(25)
    assert any(_orders_for(d, "BTC/USDT") for d in later), "trading again once the symbol trades"
    check_invariants(live)


def test_insufficient_balance_is_rejected(live: Session) -> None:
    live.run(2)
    check_invariants(live)
    # the cash is there, but locked elsewhere: the books agree with the total, the exchange refuses
    free, locked = live.emu.balances()["USDT"]
    live.emu.set_balance("USDT", free=Decimal("1"), locked=free + locked - 1)
    decisions = live.run(12)
    stored = store_orders(live.state_dir)
    rejected = {c: o for c, o in stored.items() if o["status"] == "rejected"}
    buys = [o.client_id for d in decisions for o in d.orders if o.side.value == "buy"]
    assert rejected and set(rejected) <= set(buys), "only buys run out of free cash"
    assert {o["reason"] for o in rejected.values()} == {"insufficient_funds"}
    assert not set(rejected) & set(_emu_cids(live.emu)), "a rejected order leaves no trace"
    # a buy goes through only once a sale has freed cash
    assert all(stored[c]["status"] == "filled" for c in set(buys) - set(rejected))
    assert _metric(live, "policyctl_denials_total", policy="live-test", reason="exchange:insufficient_funds") \
        == len(rejected)
    statuses = [e for e in journal_kinds(live.state_dir, "order_status") if e["client_id"] in rejected]
    assert len(statuses) == len(rejected)
    assert all(e["to"] == "rejected" and e["reason"] == "insufficient_funds" for e in statuses)
    heard = {e["data"]["client_id"]: e["data"].get("reason") for e in journal_events(live.state_dir)
             if e["kind"] == "order_rejected"}
    assert set(rejected) - {buys[-1]} <= set(heard), "the engine hears of a rejection on the next tick"
    assert {heard[c] for c in set(rejected) & set(heard)} == {"insufficient_funds"}, "with the reason"
    free, locked = live.emu.balances()["USDT"]
    live.emu.set_balance("USDT", free=free + locked, locked=0)
    check_invariants(live)


def _tighten(emu: EmulatorHandle, symbol: str, **rules: str) -> None:
    ex = emu.exchange
    sid = ex.symbol_id(symbol)
    with ex.lock:
        ex.markets[sid] = replace(ex.markets[sid], **{k: Decimal(v) for k, v in rules.items()})


def test_min_notional_rejection(live: Session) -> None:
    live.run(2)
    for sym in ("BTC/USDT", "ETH/USDT"):  # the exchange raised its minimum after we loaded the rules
        _tighten(live.emu, sym, min_notional="5000")
    decisions = live.run(12)
    sent = [o.client_id for d in decisions for o in d.orders]
    stored = store_orders(live.state_dir)
    assert sent and all(stored[c]["status"] == "rejected" and stored[c]["reason"] == "min_notional"
                        for c in sent)
    assert not set(sent) & set(_emu_cids(live.emu))
    assert _metric(live, "policyctl_denials_total", policy="live-test", reason="exchange:min_notional") \
        == len(sent)
    check_invariants(live)


def test_lot_size_rejection(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> None:
    key, secret = credentials
    s = open_session(tmp_path, key, secret, emu=emu, policy=write_policy(tmp_path, order_type="limit"))
    try:
        s.run(2)
        for sym in ("BTC/USDT", "ETH/USDT"):
            _tighten(emu, sym, min_qty="5", step_size="1")
        decisions = s.run(12)
        sent = [o.client_id for d in decisions for o in d.orders]
        stored = store_orders(s.state_dir)
        assert sent and all(stored[c]["status"] == "rejected" and stored[c]["reason"] == "filter" for c in sent)
        assert _metric(s, "policyctl_denials_total", policy="live-test", reason="exchange:filter") == len(sent)
        check_invariants(s)
    finally:
        s.close()


def test_denials_are_journaled(live: Session) -> None:
    live.run(3)
    live.emu.set_stale("ETH/USDT")
    live.run(15)
    assert any(x["code"] == "stale_quote" for x in journal_denials(live.state_dir))
    check_invariants(live)


def _last_snapshot_bars(s: Session) -> dict[str, int]:
    from policyctl.runtime.journal import Journal, snapshot_from_dict

    with Journal.open(s.state_dir / "state.sqlite") as j:
        snap = snapshot_from_dict(j.last(("snapshot",), 1)[0].payload["snapshot"])
    return {sym: b.ts for sym, b in snap.bars.items()}


def test_a_late_candle_is_waited_for(live: Session) -> None:
    """The exchange has not closed ETH's newest candle yet when the tick asks: the runtime asks
    again and decides on both symbols' candle, so ETH's indicators see no gap."""
    live.run(3)
    live.emu.set_late("ETH/USDT", bars=1, requests=1)
    d = live.step()
    assert d is not None and d.trading_state.value == "active"
    bars = _last_snapshot_bars(live)
    assert set(bars) == {"BTC/USDT", "ETH/USDT"} and len(set(bars.values())) == 1, bars
    last = live.rt.state.last_bar_ts
    assert last["BTC/USDT"] == last["ETH/USDT"]
    live.run(3)
    check_invariants(live)


def test_a_candle_later_than_the_wait_is_a_gap_not_a_second_step(live: Session) -> None:
    """ETH's candle stays missing past the wait: the tick decides on BTC's alone (ETH's bar is
    unavailable: a gap its indicators restart after). When the late candle comes, the
    indicators have moved past its time: it is not fed, not even as a missed bar, which would
    step every other symbol through that time a second time, with a gap."""
    live.run(3)
    live.emu.set_late("ETH/USDT", bars=1, requests=1000)
    live.step()
    bars = _last_snapshot_bars(live)
    assert set(bars) == {"BTC/USDT"}, bars
    behind = live.rt.state.last_bar_ts["ETH/USDT"]
    assert behind < live.rt.state.last_bar_ts["BTC/USDT"]
    live.emu.set_late("ETH/USDT", bars=0, requests=0)
    live.step()
    bars = _last_snapshot_bars(live)
    assert set(bars) == {"BTC/USDT", "ETH/USDT"} and len(set(bars.values())) == 1, bars
    live.run(5)
    check_invariants(live)  # (bar times strictly increasing: the late candle was never fed)



def test_a_fresh_state_on_an_account_that_traded_books_nothing_twice(live: Session, tmp_path: Path) -> None:
    """The state folder is lost (or moved away) and the runtime starts afresh on the same
    account: it adopts the positions from the balances, and the account's earlier fills,
    which those balances include, are never booked again."""
    live.run_until(lambda d: any(p.qty > 0 for p in live.rt.state.positions.values()))
    live.settle()
    live.close()
    s2 = open_session(tmp_path, live.key, live.secret, emu=live.emu, state_dir=tmp_path / "fresh")
    try:
        assert all(p.rule == "adopted" for p in s2.rt.state.positions.values())
        s2.run(4)
        s2.settle()
        check_books(s2)  # cash and positions equal the exchange's balances
        booked = store_fills(s2.state_dir)
        assert all(rows == 1 and applied == 1 for rows, applied in booked.values())
    finally:
        s2.close()


def test_a_fresh_live_state_needs_the_balances(tmp_path: Path, credentials: tuple[str, str],
                                               emu: EmulatorHandle) -> None:
    """Unreadable balances (wrong credentials) would start the books at 0 cash, saved for good."""
    key, _ = credentials
    with pytest.raises(RuntimeError, match="could not read the account's balances"):
        open_session(tmp_path, key, "wrong-secret-123456", emu=emu)
    assert not (tmp_path / "state" / "state.sqlite").exists() or store_fills(tmp_path / "state") == {}


def test_the_kill_switch_does_not_wait_for_the_alert_webhook(tmp_path: Path, credentials: tuple[str, str],
                                                             emu: EmulatorHandle) -> None:
    """A webhook that accepts and never answers: the kill switch cancels all the same, and the
    alert goes out behind it."""
    from policyctl.runtime.app import WEBHOOK_ENV

    release = threading.Event()
    open_when_alerted: list[bool] = []

    class Hang(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            open_when_alerted.append(any(o.is_open for o in emu.orders()))
            release.wait(30)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    key, secret = credentials
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    s = open_session(tmp_path, key, secret, emu=emu, env=env_for(key, secret) | {WEBHOOK_ENV: url},
                     policy=write_policy(tmp_path, order_type="limit"))
    try:
        s.run_until(lambda d: any(o.is_open for o in emu.orders()))
        (s.state_dir / "KILL").write_text("0 test\n")
        s.orders_at_kill = {o.client_order_id for o in emu.orders()}
        s.kill_ms = emu.clock.now_ms()
        done = threading.Thread(target=s.rt.check_kill)
        done.start()
        done.join(20)  # (the webhook holds every post for 30 s)
        assert not done.is_alive(), "the kill switch waited for the webhook"
        assert not any(o.is_open for o in emu.orders()), "every order canceled"
        assert s.rt.kill_times is not None and s.rt.kill_times.canceled_ms is not None
        assert any(a["key"] == "kill_switch" for a in s.rt.alerter.sent)
        for _ in range(200):  # the alert reaches the webhook behind the cancels
            if open_when_alerted:
                break
            threading.Event().wait(0.05)
        assert open_when_alerted and not open_when_alerted[-1], "alerted before the orders were canceled"
    finally:
        release.set()
        s.close()
        server.shutdown()
        server.server_close()


def test_books_that_disagree_with_the_exchange_are_logged_and_alerted(live: Session) -> None:
    """Entries stop while the books disagree with the balances: the operator hears why, once a
    mismatch outlasts a tick (a fill in flight explains one tick)."""
    live.run(3)
    free, locked = live.emu.balances()["USDT"]
    live.emu.set_balance("USDT", free=Decimal("5"), locked=locked)  # money gone behind the runtime's back
    live.run(1)
    assert not [a for a in live.rt.alerter.sent if a["key"] == "books_mismatch"]
    live.run(1)
    alerts = [a for a in live.rt.alerter.sent if a["key"] == "books_mismatch"]
    assert len(alerts) == 1 and "books disagree with the exchange" in alerts[0]["message"]
    live.emu.set_balance("USDT", free=free, locked=locked)
