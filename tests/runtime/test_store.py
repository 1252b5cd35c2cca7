"""The state store: round trips, WAL, write-ahead orders, fills once, order transitions, the lock."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from policyctl.runtime import journal as jr
from policyctl.runtime.model import Fill, OrderRequest, Side, TradingState
from policyctl.runtime.state import EngineState, Position, Trip
from policyctl.runtime.store import (
    ORDER_STATUSES,
    TRANSITIONS,
    StateStore,
    StoreError,
    StoreLocked,
)

T0 = 1_704_067_200_000


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path) -> Iterator[StateStore]:
    s = StateStore(db, "store-test", "hash-a")
    yield s
    s.close()


@pytest.fixture
def logs() -> Iterator[list[str]]:
    messages: list[str] = []
    handler = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    yield messages
    logger.remove(handler)


def a_state() -> EngineState:
    s = EngineState.initial(10_000.0, T0)
    s.cash = 7_500.25
    s.positions["BTC/USDT"] = Position("BTC/USDT", 0.05, 42_000.0, T0, T0, 2_102.1, 40_000.0, 45_000.0, "trend",
                                       "enter")
    s.trips["daily_loss"] = Trip("daily_loss", "halt", T0, None, "pnl(1d) <= -3%")
    s.trading_state = TradingState.HALTED
    s.equity_marks.append((T0, 9_999.5))
    s.remember(s.fills_seen, "f1", T0)
    s.bars_seen = 12
    return s


def order(cid: str, side: Side = Side.BUY, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(cid, "BTC/USDT", side, qty, None, "entry", "enter", side is Side.SELL, 42_000.0,
                        40_000.0, 45_000.0, "trend", 420.5)


def fill(fid: str, cid: str = "c1", ts: int = T0) -> Fill:
    return Fill(fid, cid, "BTC/USDT", Side.BUY, 0.01, 42_000.0, 0.42, ts)


def kinds(store: StateStore) -> list[str]:
    with store.journal() as j:
        return [r.kind for r in j.entries()]


# ---- state ----------------------------------------------------------------------------------


def test_new_store_has_no_state(store: StateStore) -> None:
    assert store.load_state() is None
    assert store.state_info() is None
    assert store.stored_policy_hash is None
    assert store.schema_version() == 1


def test_state_round_trip_across_reopen(db: Path) -> None:
    s = a_state()
    with StateStore(db, "store-test", "hash-a") as store:
        store.journal_initial(EngineState.initial(10_000.0, T0), T0)
        store.commit(s, T0 + 300_000, [], [])
    with StateStore(db, "store-test", "hash-b") as store:
        back = store.load_state()
        assert back is not None
        assert back.to_json() == s.to_json()
        assert back.trips["daily_loss"].until_ms is None and back.trading_state is TradingState.HALTED
        assert store.stored_policy_hash == "hash-a"  # the policy that saved it (this one is hash-b)
        info = store.state_info()
        assert info is not None and (info.policy_hash, info.tick_ms) == ("hash-a", T0 + 300_000)


def test_wal_mode_and_full_sync(store: StateStore, db: Path) -> None:
    store.commit(a_state(), T0, [], [])
    other = sqlite3.connect(db)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    assert store._c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL after a commit that matters


def test_journal_initial_and_save_state_are_journaled(store: StateStore) -> None:
    s = a_state()
    store.journal_initial(s, T0, mode="live", live_armed=True)
    s.trips.clear()
    store.save_state(s, T0 + 5, reason="operator reset")
    loaded = store.load_state()
    assert loaded is not None and loaded.trips == {}
    with store.journal() as j:
        init, saved = list(j.entries())
    assert init.kind == "state_initial" and init.payload["mode"] == "live" and init.payload["live_armed"] is True
    assert init.payload["reason"] == "fresh" and init.payload["policy"] == "store-test"
    assert EngineState.from_json(init.payload["state"]).to_json() == a_state().to_json()
    assert saved.kind == "state_set" and saved.payload["reason"] == "operator reset"


def test_another_policys_database_is_refused(db: Path) -> None:
    StateStore(db, "one", "h").close()
    with pytest.raises(StoreError, match="policy `one`"):
        StateStore(db, "two", "h")
    StateStore(db, "one", "h").close()  # the refusal released the lock


def test_newer_schema_is_refused(db: Path) -> None:
    StateStore(db, "p", "h").close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        StateStore(db, "p", "h")


def test_foreign_database_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE something (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a policyctl state database"):
        StateStore(db, "p", "h")


# ---- write-ahead ----------------------------------------------------------------------------


def test_orders_are_recorded_as_submitting_before_sending(db: Path) -> None:
    store = StateStore(db, "store-test", "hash-a")
    to_send = store.commit(a_state(), T0, [order("c1"), order("c2", Side.SELL)],
                           [jr.note_entry("tick")], equity=9_999.0)
    assert [o.client_id for o in to_send] == ["c1", "c2"]
    # nothing was sent yet and the process dies: the orders are there, as submitting
    store.close()
    with StateStore(db, "store-test", "hash-a") as again:
        left = again.orders_in(["submitting"])
        assert [(o.client_id, o.status, o.qty, o.side, o.created_ms) for o in left] == [
            ("c1", "submitting", "0.01", "buy", T0), ("c2", "submitting", "0.01", "sell", T0)]
        assert again.order_request("c1") == order("c1")
        assert again.marks() == [(T0, 9_999.0)]
        assert kinds(again) == ["note", "order", "order"]


def test_an_order_is_never_recorded_twice(store: StateStore, logs: list[str]) -> None:
    assert store.commit(a_state(), T0, [order("c1")], []) == [order("c1")]
    assert store.mark_order("c1", "open", exchange_id="x1", now_ms=T0 + 1)
    assert store.commit(a_state(), T0 + 2, [order("c1"), order("c3")], []) == [order("c3")]
    rec = store.order("c1")
    assert rec is not None and rec.status == "open" and rec.exchange_id == "x1"
    assert any("not sent again" in m for m in logs)


def test_commit_is_one_transaction(store: StateStore) -> None:
    store.commit(a_state(), T0, [order("c1")], [])
    s = a_state()
    s.cash = 1.0
    with pytest.raises(ValueError, match="unknown journal entry kind"):
        store.commit(s, T0 + 1, [order("c2")], [jr.Entry("nonsense", {})])
    loaded = store.load_state()
    assert loaded is not None and loaded.cash == a_state().cash  # the state was not saved either
    assert store.order("c2") is None


def test_commit_tick_journals_snapshot_and_decision(store: StateStore) -> None:
    from policyctl.runtime.engine import Decision
    from policyctl.runtime.model import Bar, Snapshot

    s = a_state()
    snap = Snapshot(now=T0 + 300_000, bars={"BTC/USDT": Bar(T0, 1.0, 2.0, 0.5, 1.5, 10.0)},
                    fills=(fill("f9"),))
    d = Decision(snap.now, orders=[order("c1")], state=s, equity=123.0,
                 denials=[{"stage": "cap", "rule": "r", "symbol": "BTC/USDT", "code": "cap:x", "message": "m"}])
    missed = [{"BTC/USDT": Bar(T0 - 300_000, 1.0, 1.0, 1.0, 1.0, 1.0)}]
    assert store.commit_tick(s, snap, d, d.orders, missed=missed) == [order("c1")]
    with store.journal() as j:
        recs = list(j.entries())
    assert [r.kind for r in recs] == ["snapshot", "decision", "fill", "order"]
    assert jr.snapshot_from_dict(recs[0].payload["snapshot"]) == snap
    assert jr.bars_from_dict(recs[0].payload["missed"][0]) == missed[0]
    dec = recs[1].payload
    assert dec["orders"] == [jr.order_to_dict(order("c1"))] and dec["denials"][0]["code"] == "cap:x"
    assert dec["state_digest"] == jr.state_digest(s.to_json())
    assert store.record_fills([fill("f9")]) == []  # booked by the tick
    assert store.marks() == [(T0 + 300_000, 123.0)]


# ---- fills -------------------------------------------------------------------------------------


def test_fills_are_stored_once(store: StateStore) -> None:
    assert store.record_fills([fill("f1"), fill("f2", ts=T0 + 1)]) == [fill("f1"), fill("f2", ts=T0 + 1)]
    store.commit(a_state(), T0 + 2, [], [], fills=[fill("f1"), fill("f2", ts=T0 + 1)])  # the engine booked them
    assert store.record_fills([fill("f1"), fill("f2", ts=T0 + 1), fill("f3", ts=T0 + 3)]) == [fill("f3", ts=T0 + 3)]
    assert store.record_fills([fill("f3", ts=T0 + 3)]) == [fill("f3", ts=T0 + 3)]  # still not booked
    store.commit(a_state(), T0 + 4, [], [], fills=[fill("f3", ts=T0 + 3)])
    assert store.record_fills([fill("f1"), fill("f3", ts=T0 + 3)]) == []
    assert [f.id for f in store.fills()] == ["f1", "f2", "f3"]
    assert [f.id for f in store.fills(since_ts=T0 + 1)] == ["f2", "f3"]
    assert kinds(store).count("fill") == 3


def test_a_fill_stored_before_a_crash_is_not_lost(db: Path) -> None:
    store = StateStore(db, "store-test", "hash-a")
    assert store.record_fills([fill("f1")]) == [fill("f1")]
    store.close()  # died before the tick that would have booked it was committed
    with StateStore(db, "store-test", "hash-a") as again:
        assert again.record_fills([]) == [fill("f1")]  # handed to the engine again
        assert again.record_fills([fill("f1")]) == [fill("f1")]


# ---- order statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize("start", ORDER_STATUSES)
def test_transitions(store: StateStore, start: str, logs: list[str]) -> None:
    for target in ORDER_STATUSES:
        cid = f"{start}-{target}"
        store.commit(a_state(), T0, [order(cid)], [])
        if start != "submitting":
            assert store.mark_order(cid, start, now_ms=T0 + 1)
        ok = store.mark_order(cid, target, reason="test", now_ms=T0 + 2)
        allowed = target == start or target in TRANSITIONS[start]
        assert ok is allowed, (start, target)
        rec = store.order(cid)
        assert rec is not None and rec.status == (target if allowed else start)


def test_illegal_transition_is_logged_and_ignored(store: StateStore, logs: list[str]) -> None:
    store.commit(a_state(), T0, [order("c1")], [])
    assert store.mark_order("c1", "new", exchange_id="x1", now_ms=T0 + 1)  # the adapter's `new` is `open`
    assert store.mark_order("c1", "partially_filled", filled=0.004, avg_price=42_000.0, now_ms=T0 + 2)
    assert store.mark_order("c1", "filled", filled=0.01, avg_price=42_001.0, now_ms=T0 + 3)
    assert not store.mark_order("c1", "open", now_ms=T0 + 4)
    assert not store.mark_order("c1", "canceled", now_ms=T0 + 5)
    assert not store.mark_order("nope", "open", now_ms=T0 + 6)
    assert not store.mark_order("c1", "vaporized", now_ms=T0 + 7)
    rec = store.order("c1")
    assert rec is not None
    assert (rec.status, rec.exchange_id, rec.filled, rec.avg_price, rec.updated_ms) == (
        "filled", "x1", 0.01, 42_001.0, T0 + 3)
    assert rec.final
    assert any("illegal transition filled -> open" in m for m in logs)
    assert any("not in the store" in m for m in logs)
    with store.journal() as j:
        moves = [(r.payload["from"], r.payload["to"]) for r in j.entries(kinds=["order_status"])]
    assert moves == [("submitting", "open"), ("open", "partially_filled"), ("partially_filled", "filled")]


def test_same_status_updates_figures_without_regressing(store: StateStore, logs: list[str]) -> None:
    store.commit(a_state(), T0, [order("c1")], [])
    store.mark_order("c1", "partially_filled", filled=0.005, now_ms=T0 + 1)
    assert store.mark_order("c1", "partially_filled", filled=0.007, now_ms=T0 + 2)
    assert store.mark_order("c1", "partially_filled", filled=0.003, now_ms=T0 + 3)  # less filled: kept
    assert store.mark_order("c1", "partially_filled", filled=math.nan, now_ms=T0 + 4)
    rec = store.order("c1")
    assert rec is not None and rec.filled == 0.007 and rec.updated_ms == T0 + 2
    assert any("less than" in m for m in logs)
    with store.journal() as j:
        assert len(list(j.entries(kinds=["order_status"]))) == 2  # repeats with nothing new are not journaled


def test_orders_in(store: StateStore) -> None:
    store.commit(a_state(), T0, [order("a"), order("b"), order("c")], [])
    store.mark_order("b", "open", now_ms=T0 + 1)
    store.mark_order("c", "unknown", now_ms=T0 + 1)
    assert [o.client_id for o in store.orders_in(("submitting", "unknown"))] == ["a", "c"]
    assert [o.client_id for o in store.orders_in(["new"])] == ["b"]
    assert store.orders_in([]) == []


def test_marks(store: StateStore) -> None:
    store.add_marks([(T0, 1.0), (T0 + 1, math.nan), (T0 + 2, 2.0)])
    assert store.marks() == [(T0, 1.0), (T0 + 2, 2.0)]
    assert store.marks(since_ts=T0 + 1) == [(T0 + 2, 2.0)]


def test_closed_store_refuses_work(db: Path) -> None:
    store = StateStore(db, "p", "h")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.commit(a_state(), T0, [], [])


# ---- the single-instance lock ------------------------------------------------------------------

HOLD = """
import sys
from policyctl.runtime.store import StateStore
store = StateStore(sys.argv[1], "p", "h")
print("ready", flush=True)
sys.stdin.read()  # hold the store until killed
"""

TRY = """
import sys
from policyctl.runtime.store import StateStore, StoreLocked
try:
    StateStore(sys.argv[1], "p", "h").close()
except StoreLocked as e:
    print("locked", e.pid, flush=True)
    sys.exit(3)
print("opened", flush=True)
"""


def test_second_store_in_process_is_refused(db: Path) -> None:
    first = StateStore(db, "p", "h")
    with pytest.raises(StoreLocked) as info:
        StateStore(db, "p", "h")
    assert info.value.pid == os.getpid()
    assert str(os.getpid()) in str(info.value) and str(db) in str(info.value)
    first.close()
    StateStore(db, "p", "h").close()  # released by close


def test_second_process_is_refused(db: Path) -> None:
    with StateStore(db, "p", "h"):
        out = subprocess.run([sys.executable, "-c", TRY, str(db)], capture_output=True, text=True, check=False)
        assert out.returncode == 3, out.stderr
        assert out.stdout.split() == ["locked", str(os.getpid())]
    out = subprocess.run([sys.executable, "-c", TRY, str(db)], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "opened", out.stderr


def test_lock_is_released_when_its_holder_is_killed(db: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked) as info:
            StateStore(db, "p", "h")
        assert info.value.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()
    assert holder.returncode == -signal.SIGKILL
    with StateStore(db, "p", "h") as store:  # the kernel dropped the dead holder's lock
        assert store.load_state() is None
