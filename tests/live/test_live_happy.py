"""The happy path, paper and live, and the live opt-in that refuses to start half-armed."""

from __future__ import annotations

from pathlib import Path

import pytest
from live_support import (
    Session,
    check_invariants,
    compile_policy,
    env_for,
    fast_adapter,
    journal_events,
    quiet_log,
    store_orders,
    write_policy,
)

from policyctl.emulator import EmulatorHandle
from policyctl.exchanges.adapter import NeedsHuman
from policyctl.exchanges.ccxt_adapter import ENV_API_KEY, ENV_API_SECRET
from policyctl.runtime.app import LIVE_ENV, Options, StartError, build

TICKS = 30


def _books_never_disagreed(s: Session) -> None:
    bad = [e for e in journal_events(s.state_dir) if e.get("data", {}).get("problem") == "books_mismatch"]
    assert not bad, bad[:3]


def test_paper_happy_path(paper: Session) -> None:
    decisions = paper.run(TICKS)
    assert sum(len(d.orders) for d in decisions) >= 6, "the test policy should trade often"
    check_invariants(paper)
    sides = {o.side.value for o in paper.sent()}
    assert sides == {"buy", "sell"}
    assert all(o.status == "filled" for o in paper.sent())
    # the store knows every order as filled, each under its client id
    stored = store_orders(paper.state_dir)
    assert {o.client_id for o in paper.sent()} == set(stored)
    assert {o["status"] for o in stored.values()} == {"filled"}
    _books_never_disagreed(paper)


def test_live_happy_path(live: Session) -> None:
    decisions = live.run(TICKS)
    assert sum(len(d.orders) for d in decisions) >= 6, "the test policy should trade often"
    check_invariants(live)
    orders = live.emu.orders()
    assert {o.side for o in orders} == {"BUY", "SELL"}
    assert all(o.status == "FILLED" for o in orders)
    stored = store_orders(live.state_dir)
    assert {o.client_order_id for o in orders} == set(stored)
    for o in orders:
        rec = stored[o.client_order_id]
        assert rec["status"] == "filled" and rec["exchange_id"] == str(o.order_id)
    _books_never_disagreed(live)
    # dust left by fees paid in the base asset is no open position: entries keep coming
    later = live.run(TICKS)
    assert sum(len(d.orders) for d in later) >= 4
    check_invariants(live)


@pytest.mark.parametrize("missing", ["flag", "env", "credentials"])
def test_live_refuses_to_start_half_armed(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle,
                                          missing: str) -> None:
    key, secret = credentials
    cp = compile_policy(write_policy(tmp_path))
    env = env_for(key, secret)
    confirm = True
    if missing == "flag":
        confirm = False
    elif missing == "env":
        del env[LIVE_ENV]
    else:
        del env[ENV_API_KEY], env[ENV_API_SECRET]
    opts = Options(mode="live", state_dir=tmp_path / "state", exchange_url=emu.url, confirm_live=confirm)
    with pytest.raises((StartError, NeedsHuman)) as err:
        build(cp, opts, env=env, log=quiet_log(env), adapter_kwargs=fast_adapter())
    text = str(err.value)
    if missing == "flag":
        assert "--confirm-live" in text
    elif missing == "env":
        assert f"{LIVE_ENV}=yes" in text
    else:
        assert ENV_API_KEY in text and ENV_API_SECRET in text
    assert emu.orders() == []
    # nothing was started: no state, no lock held
    assert not (tmp_path / "state" / "state.sqlite").exists()


def test_live_env_var_must_say_yes(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> None:
    key, secret = credentials
    cp = compile_policy(write_policy(tmp_path))
    env = env_for(key, secret) | {LIVE_ENV: "true"}
    opts = Options(mode="live", state_dir=tmp_path / "state", exchange_url=emu.url, confirm_live=True)
    with pytest.raises(StartError):
        build(cp, opts, env=env, log=quiet_log(env), adapter_kwargs=fast_adapter())


def test_paper_never_needs_the_opt_in(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> None:
    """Paper mode starts without the flag, the env var or credentials, and sends nothing."""
    cp = compile_policy(write_policy(tmp_path))
    opts = Options(mode="paper", state_dir=tmp_path / "state", exchange_url=emu.url, warmup_bars=60)
    rt = build(cp, opts, env={}, log=quiet_log({}), adapter_kwargs=fast_adapter())
    try:
        for _ in range(5):
            emu.advance(1)
            rt.tick()
        assert not rt.cfg.live_armed
    finally:
        rt.shutdown(cancel_open=False)
    assert emu.orders() == []


def test_caps_clip_every_order(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> None:
    """Entries ask for 35% of equity: the per-asset cap (20%) clips each one, no fill passes it."""
    from live_support import open_session

    key, secret = credentials
    policy = write_policy(tmp_path, size="35%", max_notional=5000)
    s = open_session(tmp_path, key, secret, emu=emu, policy=policy)
    s.max_order_notional = 5000
    try:
        decisions = s.run(TICKS)
        clips = [c for d in decisions for t in d.trace if t.get("stage") == "caps" for c in t["clips"]]
        assert clips and {c["cap"] for c in clips} <= {"per_asset", "total_exposure"}
        buys = [o for o in emu.orders() if o.side == "BUY"]
        assert buys and all(float(o.cum_quote) > 1500 for o in buys), "clipped, not blocked"
        check_invariants(s)  # every buy within 20% of equity
        for d in decisions:  # the engine's view: margins never negative after an order
            assert all(m >= -1e-9 for m in d.margins.values()), d.margins
    finally:
        s.close()
