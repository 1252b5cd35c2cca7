"""``kill -9`` in the middle of placing an order, then a restart on the same state folder.

The runtime runs in a subprocess (``live_child.py``). The emulator holds the next order
request (a ``timeout`` fault with a long delay, executed first or not at all); while the
child waits for the answer the test SIGKILLs it. A new runtime on the same state folder must
find the order left ``submitting`` by its client id, never place it again, book its fill
exactly once, and go on trading.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from live_support import (
    Child,
    check_invariants,
    env_for,
    journal_kinds,
    open_session,
    policyctl,
    store_fills,
    store_orders,
    wait_for,
    write_policy,
)

from policyctl.emulator import EmulatorHandle

HOLD_S = 120.0  # the held request outlives the child by far


def _crash_mid_order(emu: EmulatorHandle, policy: Path, state: Path, env: dict[str, str], apply: bool
                     ) -> str:
    """Tick a child until it sends an order, SIGKILL it while the order is in flight; the
    order's client id."""
    emu.inject("order_create", "timeout", count=1, delay=HOLD_S, apply=apply)
    child = Child.start(policy, state, emu.url, env, timeout_ms=60_000)
    try:
        before = len(emu.orders())
        for _ in range(60):
            emu.advance(1)
            child.send("tick")
            while True:
                line = child.poll_line(0.02)
                if emu.faults.fired:
                    break
                if line is not None:
                    assert line.startswith("done"), line
                    break
            if emu.faults.fired:
                break
        else:
            raise AssertionError("the child never placed an order")
        # in flight: executed at the emulator (apply) or held unexecuted; the answer never comes
        assert wait_for(lambda: any(x.fault == "timeout" for x in emu.served), timeout=10)
        if apply:
            assert wait_for(lambda: len(emu.orders()) == before + 1, timeout=10)
        child.kill9()
        assert child.proc.returncode == -9
    finally:
        child.close()
    in_flight = [c for c, o in store_orders(state).items() if o["status"] == "submitting"]
    assert len(in_flight) >= 1, "written ahead as `submitting` before it was sent"
    held = [o for o in emu.orders()[before:]]
    if apply:
        assert [o.client_order_id for o in held] == [in_flight[0]]
    else:
        assert held == []
    return in_flight[0]


@pytest.mark.parametrize("apply", [True, False], ids=["order-executed", "order-never-executed"])
def test_restart_after_kill9_mid_order(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle,
                                       apply: bool) -> None:
    key, secret = credentials
    policy = write_policy(tmp_path)
    state = tmp_path / "state"
    env = env_for(key, secret)
    cid = _crash_mid_order(emu, policy, state, env, apply)

    s = open_session(tmp_path, key, secret, emu=emu, policy=policy, state_dir=state)
    try:
        stored = store_orders(state)[cid]
        cids = [o.client_order_id for o in emu.orders()]
        if apply:
            assert stored["status"] == "filled", stored
            assert cids.count(cid) == 1
        else:
            assert stored["status"] == "lost", stored
            assert cid not in cids
        assert not [c for c, o in store_orders(state).items() if o["status"] in ("submitting", "unknown")]
        decisions = s.run(25)
        assert sum(len(d.orders) for d in decisions) >= 3, "trading goes on after the restart"
        cids = [o.client_order_id for o in emu.orders()]
        assert cids.count(cid) == (1 if apply else 0), "never placed twice"
        if apply:
            trades = [f"{t.symbol}:{t.trade_id}" for t in emu.trades()
                      if t.order_id == next(o.order_id for o in emu.orders() if o.client_order_id == cid)]
            assert trades and all(store_fills(state)[t] == (1, 1) for t in trades)
            booked = [e for e in journal_kinds(state, "fill") if e["id"] in trades]
            assert len(booked) == len(trades), "each fill stored once"
        check_invariants(s)
    finally:
        s.close()
    # the journal of both sessions, crash included, replays identically
    out = policyctl("replay", str(state / "state.sqlite"), "--policy", str(policy))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all decisions identical" in out.stdout
    assert "2 sessions" in out.stdout


def test_kill9_between_ticks_resumes(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> None:
    """A crash at rest: the restart restores the state and the books, nothing is lost."""
    key, secret = credentials
    policy = write_policy(tmp_path)
    state = tmp_path / "state"
    child = Child.start(policy, state, emu.url, env_for(key, secret), timeout_ms=2_000)
    try:
        for _ in range(12):
            emu.advance(1)
            child.send("tick")
            child.expect("done")
        child.kill9()
    finally:
        child.close()
    assert emu.orders(), "the child traded"
    s = open_session(tmp_path, key, secret, emu=emu, policy=policy, state_dir=state)
    try:
        s.run(10)
        check_invariants(s)
    finally:
        s.close()


def test_paper_restart_continues_the_simulated_account(tmp_path: Path, credentials: tuple[str, str],
                                                        emu: EmulatorHandle) -> None:
    """The paper account lives in memory: a restart rebuilds it from the durable books, and new
    fill ids never collide with the earlier session's."""
    key, secret = credentials
    s = open_session(tmp_path, key, secret, mode="paper", emu=emu)
    s.run_until(lambda d: bool(s.rt.state.positions) and not d.orders)
    check_invariants(s)
    s.close()
    s2 = open_session(tmp_path, key, secret, mode="paper", emu=emu, state_dir=s.state_dir)
    try:
        decisions = s2.run(20)
        assert sum(len(d.orders) for d in decisions) >= 3
        check_invariants(s2)
        mismatch = [e for d in decisions for e in d.events if e.data.get("problem") == "books_mismatch"]
        assert mismatch == []
    finally:
        s2.close()


def test_restart_after_a_long_stop_decides_on_the_newest_candle(tmp_path: Path, credentials: tuple[str, str],
                                                                emu: EmulatorHandle) -> None:
    """Candles missed while stopped feed the indicators; the decision is on the newest one."""
    key, secret = credentials
    s = open_session(tmp_path, key, secret, emu=emu)
    s.run(3)
    check_invariants(s)
    s.close()
    emu.advance(250)  # ~21 hours of 5m candles while nobody watched
    s2 = open_session(tmp_path, key, secret, emu=emu, state_dir=s.state_dir)
    try:
        d = s2.step(0)
        assert d is not None
        newest = emu.clock.now_ms() - 300_000  # open time of the last closed candle
        assert set(s2.rt.state.last_bar_ts.values()) == {newest}
        snap = journal_kinds(s2.state_dir, "snapshot")[-1]
        assert len(snap["missed"]) == 249 and {b["ts"] for b in snap["snapshot"]["bars"].values()} == {newest}
        s2.run(5)
        check_invariants(s2)
    finally:
        s2.close()
