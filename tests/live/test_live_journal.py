"""The journal of a live session replays identically; secrets never reach a log or the state."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from live_support import (
    HOLD_S,
    ListSink,
    Session,
    check_invariants,
    env_for,
    journal_kinds,
    open_session,
    policyctl,
    quiet_log,
    write_policy,
)

from policyctl.emulator import EmulatorHandle


def _eventful_session(s: Session) -> None:
    """Trading, with a fault of every kind on the way."""
    emu = s.emu
    s.run(4)
    s.step(3)  # candles missed between two ticks: coalesced, journaled as `missed`
    emu.inject("all", "rate_limit", count=2, retry_after=0)
    s.run(2)
    emu.inject("order_create", "drop", count=1)
    emu.inject("market_data", "server_error", count=3, status=502)
    s.run(4)
    emu.inject("order_create", "timeout", count=1, delay=HOLD_S)
    s.run(4)
    emu.set_stale("ETH/USDT")
    s.run(3)
    emu.set_stale("ETH/USDT", False)
    emu.inject("account", "server_error", count=8, status=500)  # past the retries: a tick without balances
    s.run(4)


def test_live_journal_replays_identically(live: Session, tmp_path: Path) -> None:
    _eventful_session(live)
    check_invariants(live)
    assert len(live.emu.orders()) >= 4
    live.close()
    # a second session on the same state: a restart is a new session in the journal
    s2 = open_session(tmp_path, live.key, live.secret, emu=live.emu, state_dir=live.state_dir)
    s2.run(8)
    check_invariants(s2)
    s2.close()
    db = str(live.state_dir / "state.sqlite")
    policy = str(tmp_path / "policy.yaml")
    out = policyctl("replay", db, "--policy", policy)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 sessions" in out.stdout and "all decisions identical" in out.stdout
    doc = json.loads(policyctl("replay", db, "--policy", policy, "--format", "json").stdout)
    assert doc["identical"] and doc["ticks"] >= 30 and doc["unpaired"] == 0
    missed = [p["missed"] for p in journal_kinds(live.state_dir, "snapshot") if p["missed"]]
    assert any(len(m) == 2 for m in missed)
    # a changed policy (a slower mean) decides differently on the same market
    other = write_policy(tmp_path / "candidate", rise=12)
    out = policyctl("replay", db, "--policy", str(other))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "with different decisions" in out.stdout
    doc = json.loads(policyctl("replay", db, "--policy", str(other), "--format", "json").stdout)
    assert not doc["identical"] and doc["differing_ticks"] >= 1


def test_secrets_never_logged(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle,
                              caplog: pytest.LogCaptureFixture) -> None:
    key, secret = credentials
    sink = ListSink()
    env = env_for(key, secret)
    caplog.set_level(logging.DEBUG)  # ccxt's wire log (scrubbed by the adapter) and anything else
    s = open_session(tmp_path, key, secret, emu=emu, log=quiet_log(env, sink), policy=write_policy(tmp_path))
    try:
        _eventful_session(s)
        emu.inject("all", "ip_ban", count=40, retry_after=60)
        s.run(2)
        emu.clear_faults()
        s.rt.reconcile()
    finally:
        s.close()
    text = sink.text
    assert "failed" in text and "needshuman" in text, "the faults were logged"
    for word in (key, secret):
        assert word not in text, "a secret in the runtime's log"
        assert word not in caplog.text, "a secret in a standard-library log"
    assert "***" not in text, "a secret reached the logger (it was only masked on the way out)"
    raw = b"".join(p.read_bytes() for p in s.state_dir.iterdir() if p.is_file())
    assert key.encode() not in raw and secret.encode() not in raw, "a secret in the state folder"
