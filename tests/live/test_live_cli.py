"""``policyctl run`` as an operator starts it: scheduled ticks, SIGTERM, status afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from live_support import check_invariants, child_env, env_for, open_session, policyctl, store_orders, write_policy

from policyctl.emulator import EmulatorHandle


def _open(emu: EmulatorHandle) -> list[str]:
    return [o.client_order_id for o in emu.orders() if o.is_open]


def test_run_with_interval_then_sigterm(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> None:
    key, secret = credentials
    policy = write_policy(tmp_path, order_type="limit")
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "policyctl.cli", "run", str(policy), "--mode", "live", "--confirm-live",
           "--exchange-url", emu.url, "--state", str(state), "--interval", "0.5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(env_for(key, secret)))
    try:
        # the market moves a bar at a time until the runtime has a limit order resting
        deadline = time.monotonic() + 40
        while not _open(emu) and time.monotonic() < deadline and proc.poll() is None:
            emu.advance(1)
            time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        resting = _open(emu)
        assert resting, "no limit order rested"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "received SIGTERM" in err and "stopped cleanly" in err
    # cancel_on_shutdown: true -> nothing left open at the exchange, and the store knows it
    assert _open(emu) == []
    stored = store_orders(state)
    assert all(stored[c]["status"] == "canceled" for c in resting)
    assert not [c for c, o in stored.items() if o["status"] in ("submitting", "unknown", "open")]
    # the state was flushed: status reads it, the runtime is gone, the lock is free
    st = policyctl("status", "--state", str(state), "--format", "json")
    assert st.returncode == 0, st.stderr
    doc = json.loads(st.stdout)
    assert doc["runtime_pid"] is None and doc["open_orders"] == []
    assert doc["decisions"] and doc["trading_state"] == "active"
    human = policyctl("status", "--state", str(state))
    assert "runtime not running" in human.stdout and "open orders: 0" in human.stdout
    from policyctl.runtime.journal import Journal

    with Journal.open(state / "state.sqlite") as j:
        last = list(j.entries())[-1]
    assert last.kind == "state_set" and last.payload["reason"] == "shutdown"
    # nothing lost across the stop: a new runtime on the folder books what filled after the last tick
    s = open_session(tmp_path, key, secret, emu=emu, policy=policy, state_dir=state)
    try:
        s.run(3)
        check_invariants(s)
    finally:
        s.close()


def test_run_ticks_then_status(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> None:
    """The hand-run recipe of the runtime docs: paper mode, a few ticks, then status."""
    key, secret = credentials
    policy = write_policy(tmp_path)
    state = tmp_path / "state"
    env = env_for(key, secret, live=False)
    out = policyctl("run", str(policy), "--mode", "paper", "--exchange-url", emu.url, "--state", str(state),
                    "--ticks", "2", env=env)
    assert out.returncode == 0, out.stderr
    assert "2 tick(s); state active" in out.stdout
    st = policyctl("status", "--state", str(state))
    assert st.returncode == 0 and "trading state: active" in st.stdout
    assert emu.orders() == []
