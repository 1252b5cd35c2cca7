"""Operator controls of a running runtime: the kill switch, the single-instance lock, metrics."""

from __future__ import annotations

import json
import re
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_support import (
    Session,
    check_invariants,
    env_for,
    open_session,
    policyctl,
    pull_kill,
    store_orders,
    write_policy,
)

from policyctl.emulator import EmulatorHandle
from policyctl.runtime.store import StoreLocked


@pytest.fixture
def usr1_handler() -> Iterator[None]:
    """`policyctl kill` signals the runtime's pid, which is this test process: keep the old handler."""
    old = signal.getsignal(signal.SIGUSR1)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, old)


@pytest.fixture
def limit_session(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> Iterator[Session]:
    key, secret = credentials
    s = open_session(tmp_path, key, secret, emu=emu, policy=write_policy(tmp_path, order_type="limit"))
    try:
        yield s
    finally:
        if s.rt.store._db is not None:
            s.close()


def _open_at_emulator(s: Session) -> list[str]:
    return [o.client_order_id for o in s.emu.orders() if o.is_open]


def _sample(s: Session, name: str, **labels: str) -> float | None:
    return s.rt.metrics.registry.get_sample_value(name, {"policy": "live-test", **labels})


def test_kill_switch_cancels_everything_and_halts(limit_session: Session, usr1_handler: None) -> None:
    s = limit_session
    s.rt.kill.install_signal()
    s.run_until(lambda d: len(_open_at_emulator(s)) > 0)
    open_before = _open_at_emulator(s)
    out = policyctl("kill", "--state", str(s.state_dir), "--reason", "test")
    assert out.returncode == 0, out.stderr
    assert "signalled" in out.stdout
    s.orders_at_kill = {o.client_order_id for o in s.emu.orders()}
    s.kill_ms = s.emu.clock.now_ms()
    s.rt.check_kill()
    assert _open_at_emulator(s) == [], "every open order canceled at the exchange"
    stored = store_orders(s.state_dir)
    assert all(stored[c]["status"] == "canceled" for c in open_before)
    halt = _sample(s, "policyctl_kill_switch_halt_seconds")
    cancel = _sample(s, "policyctl_kill_switch_cancel_seconds")
    assert halt is not None and cancel is not None
    assert 0 <= halt <= cancel < 60, (halt, cancel)
    assert any(a["key"] == "kill_switch" and a["level"] == "critical" for a in s.rt.alerter.sent)
    decisions = s.run(15)
    assert all(not d.orders for d in decisions) and _open_at_emulator(s) == []
    assert all(d.trading_state.value == "halted" for d in decisions)
    codes = {x["code"] for d in decisions for x in d.denials}
    assert codes and codes <= {"kill_switch", "halted"}, codes
    assert _sample(s, "policyctl_trading_state", state="halted") == 1.0
    check_invariants(s)
    st = policyctl("status", "--state", str(s.state_dir))  # the state, and why
    assert "trading state: halted" in st.stdout and "\n  because " in st.stdout, st.stdout
    doc = json.loads(policyctl("status", "--state", str(s.state_dir), "--format", "json").stdout)
    assert doc["trading_state"] == "halted" and doc["trading_state_reasons"], doc
    # released: the switch is off again (the policy's own kill breaker holds until reset)
    out = policyctl("kill", "--state", str(s.state_dir), "--off")
    assert out.returncode == 0, out.stderr
    assert s.rt.kill.engaged_since() is None
    assert all(d.trading_state.value == "halted" for d in s.run(3))
    # the operator resets the breaker while the runtime runs: it takes the request between ticks
    out = policyctl("reset", "kill_switch", "--state", str(s.state_dir))
    assert out.returncode == 2 and "breaker `kill_switch` is not tripped (tripped: kill)" in out.stderr
    out = policyctl("reset", "kill", "--state", str(s.state_dir))
    assert out.returncode == 0, out.stderr
    assert "applied within a second" in out.stdout
    assert s.rt.check_resets() == ["kill"]
    assert not list(s.state_dir.glob("RESET-*")), "the request is consumed"
    assert _sample(s, "policyctl_breaker_active", breaker="kill") == 0.0
    assert s.rt.check_resets() == []  # nothing waiting: nothing done
    from policyctl.runtime.journal import Journal

    with Journal.open(s.state_dir / "state.sqlite") as j:
        sets = [e for e in j.entries() if e.kind == "state_set"]
    assert sets and sets[-1].payload["reason"] == "operator reset: kill"
    assert all(d.trading_state.value == "active" for d in s.run(3)), "trading again"
    check_invariants(s)
    # the journal holds the reset between two ticks: a replay makes it too, and decides the same
    out = policyctl("replay", str(s.state_dir / "state.sqlite"), "--policy", str(s.state_dir.parent / "policy.yaml"))
    assert out.returncode == 0 and "all decisions identical" in out.stdout, out.stdout + out.stderr


def test_kill_switch_file_without_signal(limit_session: Session) -> None:
    """`killswitch.pull` on a state folder whose runtime runs elsewhere: the file alone works."""
    s = limit_session
    s.run_until(lambda d: len(_open_at_emulator(s)) > 0)
    (s.state_dir / "KILL").write_text("0 by hand\n")
    s.orders_at_kill = {o.client_order_id for o in s.emu.orders()}
    s.kill_ms = s.emu.clock.now_ms()
    s.rt.check_kill()
    assert _open_at_emulator(s) == []
    s.run(5)
    check_invariants(s)


def test_kill_switch_in_paper_mode(paper: Session) -> None:
    paper.run(4)
    pull_kill(paper)
    paper.rt.check_kill()
    before = len(paper.sent())
    decisions = paper.run(8)
    assert len(paper.sent()) == before and all(not d.orders for d in decisions)
    check_invariants(paper)


def test_reset_of_a_breaker_that_is_not_tripped(paper: Session) -> None:
    paper.run(2)
    out = policyctl("reset", "--all", "--state", str(paper.state_dir))
    assert out.returncode == 0, out.stderr
    assert paper.rt.check_resets() == []
    assert not list(paper.state_dir.glob("RESET-*"))
    assert all(d.trading_state.value == "active" for d in paper.run(2))


def test_second_runtime_on_the_same_state_refuses(live: Session, tmp_path: Path) -> None:
    live.run(2)
    with pytest.raises(StoreLocked) as err:
        open_session(tmp_path, live.key, live.secret, emu=live.emu, state_dir=live.state_dir)
    assert "only one runtime" in str(err.value)
    # and from the command line, in another process: refused, exit 2, the first one unharmed
    policy = tmp_path / "policy.yaml"
    out = policyctl("run", str(policy), "--mode", "live", "--confirm-live", "--exchange-url", live.emu.url,
                    "--state", str(live.state_dir), "--ticks", "1", env=env_for(live.key, live.secret))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "in use by process" in out.stderr
    live.run(3)
    check_invariants(live)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metrics_endpoint(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> None:
    key, secret = credentials
    port = _free_port()
    s = open_session(tmp_path, key, secret, emu=emu, metrics_port=port)
    try:
        s.run(6)
        emu.set_stale("ETH/USDT")  # denials: stale_quote
        s.run(6)
        emu.inject("klines", "server_error", count=10, status=503)  # past the retries: an API error
        s.run(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            text = resp.read().decode()
        check_invariants(s)
    finally:
        s.close()
    names = set(re.findall(r"^(policyctl_\w+?)(?:_total|_bucket|_count|_sum|_created)?[{ ]", text, re.M))
    for want in ("policyctl_decisions", "policyctl_orders", "policyctl_fills", "policyctl_denials",
                 "policyctl_trading_state", "policyctl_equity", "policyctl_cap_margin", "policyctl_tick_seconds",
                 "policyctl_api_errors", "policyctl_breaker_active", "policyctl_exposure", "policyctl_breaker_margin"):
        assert want in names, f"{want} missing from /metrics"
    assert re.search(r'policyctl_decisions_total\{policy="live-test"\} 13\.0', text)
    assert re.search(r'policyctl_orders_total\{kind="entry",policy="live-test",side="buy"\} [1-9]', text)
    assert re.search(r'policyctl_denials_total\{policy="live-test",reason="stale_quote"\} [1-9]', text)
    assert re.search(r'policyctl_trading_state\{policy="live-test",state="active"\} 1\.0', text)
    for stage in ("snapshot", "engine", "commit", "execute"):
        assert re.search(rf'policyctl_tick_seconds_count\{{policy="live-test",stage="{stage}"\}} 13\.0', text)
    assert re.search(r'policyctl_api_errors_total\{endpoint="market_data",kind="transient",policy="live-test"\} '
                     r'[1-9]', text)
    assert re.search(r'policyctl_cap_margin\{cap="(total_exposure|per_asset)",policy="live-test"\}', text)
    assert re.search(r'policyctl_exposure\{policy="live-test",scope="total"\} 0\.\d*[1-9]', text)  # a position is held
    assert "api_key" not in text and key not in text and secret not in text


def test_scheduler_counts_and_logs_skipped_ticks(tmp_path: Path, credentials: tuple[str, str],
                                                 emu: EmulatorHandle) -> None:
    """A tick still running when the next is due: the next is skipped (never two at once),
    counted in policyctl_missed_ticks_total and logged in the runtime's own format."""
    import threading
    import time

    from live_support import ListSink, env_for, quiet_log

    from policyctl.runtime.scheduler import run_forever

    key, secret = credentials
    sink = ListSink()
    s = open_session(tmp_path, key, secret, mode="paper", emu=emu, log=quiet_log(env_for(key, secret), sink))
    real_tick = s.rt.tick
    running = []

    def slow_tick() -> object:
        running.append(1)
        assert len(running) == 1, "two ticks at once"
        try:
            time.sleep(0.5)
            return real_tick()
        finally:
            running.pop()

    s.rt.tick = slow_tick  # type: ignore[method-assign]
    stop = threading.Event()
    threading.Timer(2.0, stop.set).start()
    assert run_forever(s.rt, cancel_on_shutdown=False, stop=stop, interval_s=0.1) == 0
    skipped = _sample(s, "policyctl_missed_ticks_total")
    assert skipped is not None and skipped >= 3, skipped
    text = sink.text
    assert "skipped: the previous tick is still running" in text
    assert "maximum number of running instances" not in text  # APScheduler's own warning stays out
    lines = [ln for ln in text.splitlines() if ln]
    assert lines and not any(ln.endswith(" {}") for ln in lines), "no empty extra on log lines"
