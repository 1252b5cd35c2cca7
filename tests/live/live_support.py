"""Shared helpers of the live-runtime tests: the emulator, a fast policy, the runtime, checks.

The runtime under test is the real one (``runtime.app.build``): a real ``ccxt.binance``
client talks HTTP to the loopback emulator serving the seeded synthetic market; the clock
is the emulator's (``SourceClock``, the default), and the test moves the market one bar at
a time between ticks. Client timeouts and retry delays are short so a held request costs
under a second; nothing asserts on wall-clock timings.

After every scenario :func:`check_invariants` asserts what must hold whatever happened:

* no client order id twice at the emulator;
* every emulator trade of the account is in the store's ``fills`` table exactly once, booked
  by a committed tick and known to the engine (``state.fills_seen``);
* no buy above the policy's ``max_order_notional`` or its per-asset cap (20% of equity), and
  no order sent after the kill switch;
* the engine's books (cash and positions) equal the emulator's balances;
* within a session the indicators step through strictly increasing bar times (warm-up,
  missed bars, decided bars): a bar time is never fed twice, which would be a gap for every
  symbol without a candle in the second step.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policyctl.emulator import EmulatorHandle, infer_market, start_emulator
from policyctl.emulator.__main__ import synthetic_bars
from policyctl.exchanges.ccxt_adapter import ENV_API_KEY, ENV_API_SECRET
from policyctl.exchanges.ratelimit import RateLimit
from policyctl.exchanges.retry import RetryPolicy
from policyctl.rules.compiler import CompiledPolicy, load_and_compile
from policyctl.runtime.app import LIVE_ENV, LIVE_ENV_VALUE, Options, build
from policyctl.runtime.engine import Decision
from policyctl.runtime.live import LiveRuntime

HERE = Path(__file__).resolve().parent
SYMBOLS = ("BTC/USDT", "ETH/USDT")
SEED = 7
BARS = 900  # candles the emulator can replay
START_BARS = 300  # candles already closed when a test starts
WARMUP = 120  # candles replayed through the indicators at start-up
MAX_ORDER_NOTIONAL = 1500.0
PER_ASSET = 0.20  # the policy's `per_asset` cap
CASH = "10000"
CLIENT_TIMEOUT_MS = 800  # a held ("timeout") request costs under a second
HOLD_S = 2.0  # how long a timeout fault holds the answer (> the client timeout)

# A policy that trades on most bars: in above a 5-bar mean, out below it. Limits and breakers
# are there to be checked: per-order notional, exposure caps, a loss and a drawdown breaker.
POLICY = """\
policy: live-test
description: trades often, for the live-runtime tests
market:
  exchange: binance
  symbols: [BTC/USDT, ETH/USDT]
  timeframe: 5m
triggers:
  up:
    when: not position.open and close > sma(close, 5)
    then: buy {size} of equity
  down:
    when: position.open and close < sma(close, 5)
    then: close
caps:
  total_exposure: exposure.total <= 40%
  per_asset: exposure.symbol <= 20%
breakers:
  kill: {{when: kill_switch, then: halt}}
  daily_loss: {{when: pnl(1d) <= -3%, then: halt for 24h}}
  drawdown: {{when: drawdown >= 3%, then: halt}}
guards:
  max_order_notional: {max_notional} USDT
  price_collar: 5%
  max_spread: 50bps
  max_quote_age: 30s
  bad_tick: 10%
execution:
  order_type: {order_type}
  fees: {{maker: 0.1%, taker: 0.1%}}
  maker_wait: 4m
  min_trade: 10 USDT
  cancel_on_shutdown: {cancel_on_shutdown}
"""


def policy_text(order_type: str = "market", cancel_on_shutdown: bool = True, rise: int | None = None,
                size: str = "10%", max_notional: float = MAX_ORDER_NOTIONAL) -> str:
    """The test policy; ``rise`` changes the entry rule (a changed policy for replay)."""
    text = POLICY.format(order_type=order_type, cancel_on_shutdown=str(cancel_on_shutdown).lower(), size=size,
                         max_notional=f"{max_notional:g}")
    if rise is not None:
        text = text.replace("sma(close, 5)", f"sma(close, {rise})")
    return text


def write_policy(folder: Path, name: str = "policy.yaml", **kw: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(policy_text(**kw), encoding="utf-8")
    return path


def compile_policy(path: Path) -> CompiledPolicy:
    return load_and_compile(path)


# ---- the emulator ----------------------------------------------------------------------


_BARS_CACHE: dict[tuple[int, tuple[str, ...], int], list[Any]] = {}


def market_bars(symbols: Iterable[str] = SYMBOLS, bars: int = BARS, seed: int = SEED) -> list[Any]:
    key = (seed, tuple(symbols), bars)
    if key not in _BARS_CACHE:
        _BARS_CACHE[key] = synthetic_bars(seed, list(symbols), "5m", bars)
    return _BARS_CACHE[key]


def start_market(key: str, secret: str, symbols: Iterable[str] = SYMBOLS, bars: int = BARS,
                 start_bars: int = START_BARS, balances: Mapping[str, str] | None = None,
                 **config: Any) -> EmulatorHandle:
    """An emulator serving the synthetic market, ``start_bars`` candles already closed."""
    data = market_bars(symbols, bars)
    emu = start_emulator(
        markets=[infer_market(s, b) for s, b in data],
        candles={s: (b, "5m") for s, b in data},
        api_key=key,
        secret=secret,
        balances=dict(balances) if balances is not None else {"USDT": CASH},
        **config,
    )
    emu.advance(start_bars)
    return emu


def env_for(key: str, secret: str, live: bool = True) -> dict[str, str]:
    env = {ENV_API_KEY: key, ENV_API_SECRET: secret}
    if live:
        env[LIVE_ENV] = LIVE_ENV_VALUE
    return env


def fast_adapter(timeout_ms: int = CLIENT_TIMEOUT_MS, attempts: int = 4) -> dict[str, Any]:
    """Adapter settings for tests: short timeouts, tiny retry delays, roomy rate limits."""
    roomy = RateLimit(rate=1000.0, burst=1000.0)
    return {
        "timeout_ms": timeout_ms,
        "retry": RetryPolicy(max_attempts=attempts, base_delay=0.005, max_delay=0.02, max_total=5.0,
                             rng=random.Random(SEED)),
        "rate_limits": {"market_data": roomy, "account": roomy, "orders": roomy},
    }


class ListSink:
    """A loguru sink keeping every formatted line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, message: str) -> None:
        self.lines.append(str(message))

    @property
    def text(self) -> str:
        return "".join(self.lines)


def quiet_log(env: Mapping[str, str], sink: ListSink | None = None) -> Any:
    from policyctl.runtime.observe import configure_logging

    return configure_logging("DEBUG", sink=sink if sink is not None else ListSink(), env=env)


# ---- a session: emulator + runtime ------------------------------------------------------


@dataclass
class Session:
    emu: EmulatorHandle
    rt: LiveRuntime
    cp: CompiledPolicy
    state_dir: Path
    key: str
    secret: str
    decisions: list[Decision] = field(default_factory=list)
    kill_ms: int | None = None  # emulator time the kill switch was pulled at
    orders_at_kill: set[str] = field(default_factory=set)
    earlier_fills: set[str] = field(default_factory=set)  # stored by an earlier session (paper: gone with it)
    max_order_notional: float = MAX_ORDER_NOTIONAL

    @property
    def mode(self) -> str:
        return self.rt.cfg.mode

    def step(self, bars: int = 1) -> Decision | None:
        """Close ``bars`` more candles at the emulator, then run one tick."""
        if bars:
            self.emu.advance(bars)
        d = self.rt.tick()
        if d is not None:
            self.decisions.append(d)
        return d

    def run(self, ticks: int) -> list[Decision]:
        out = []
        for _ in range(ticks):
            d = self.step()
            if d is not None:
                out.append(d)
        return out

    def run_until(self, pred: Callable[[Decision], bool], limit: int = 60) -> Decision:
        for _ in range(limit):
            d = self.step()
            if d is not None and pred(d):
                return d
        raise AssertionError(f"nothing matched in {limit} ticks")

    def sent(self) -> list[Any]:
        """Orders at the emulator (live) or at the paper adapter (paper)."""
        if self.mode == "paper":
            return list(self.rt.adapter._orders)  # type: ignore[attr-defined]
        return self.emu.orders()

    def settle(self) -> None:
        """Ticks on the same candle until the fills of the last orders are booked."""
        for _ in range(4):
            d = self.rt.tick()
            assert d is not None
            self.decisions.append(d)
            if not d.orders and not self._unbooked():
                return
        raise AssertionError("the books did not settle")

    def _unbooked(self) -> bool:
        if self.mode == "paper":
            trades = {f.id for f in self.rt.adapter._fills}  # type: ignore[attr-defined]
        else:
            trades = {trade_id(self.emu, t) for t in self.emu.trades()}
        return not trades <= set(store_fills(self.state_dir))

    def close(self) -> None:
        self.rt.shutdown(cancel_open=False)


def trade_id(emu: EmulatorHandle, t: Any) -> str:
    """The store's id of an emulator trade (``{exchange symbol}:{trade id}``)."""
    return f"{t.symbol}:{t.trade_id}"


def open_session(tmp: Path, key: str, secret: str, mode: str = "live", emu: EmulatorHandle | None = None,
                 policy: Path | None = None, state_dir: Path | None = None, log: Any = None,
                 adapter: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 **opts: Any) -> Session:
    emu = emu if emu is not None else start_market(key, secret)
    policy = policy if policy is not None else write_policy(tmp)
    cp = compile_policy(policy)
    state_dir = state_dir if state_dir is not None else tmp / "state"
    env = dict(env) if env is not None else env_for(key, secret)
    options = Options(mode=mode, state_dir=state_dir, exchange_url=emu.url, confirm_live=mode == "live",
                      warmup_bars=WARMUP, **opts)
    earlier = set(store_fills(state_dir)) if (state_dir / "state.sqlite").exists() else set()
    rt = build(cp, options, env=env, log=log if log is not None else quiet_log(env),
               adapter_kwargs=adapter if adapter is not None else fast_adapter())
    return Session(emu, rt, cp, state_dir, key, secret, earlier_fills=earlier)


# ---- reading the store -------------------------------------------------------------------


def _db(state_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{state_dir / 'state.sqlite'}?mode=ro", uri=True)


def store_fills(state_dir: Path) -> dict[str, tuple[int, int]]:
    """fill id -> (rows with that id, applied)."""
    con = _db(state_dir)
    try:
        rows = con.execute("SELECT id, count(*), max(applied) FROM fills GROUP BY id").fetchall()
    finally:
        con.close()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def store_orders(state_dir: Path) -> dict[str, dict[str, Any]]:
    con = _db(state_dir)
    try:
        cur = con.execute("SELECT client_id, symbol, side, qty, status, reason, exchange_id, filled FROM orders")
        names = [c[0] for c in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    finally:
        con.close()


def journal_kinds(state_dir: Path, kind: str) -> list[dict[str, Any]]:
    from policyctl.runtime.journal import Journal

    with Journal.open(state_dir / "state.sqlite") as j:
        return [r.payload for r in j.entries(kinds=(kind,))]


def journal_events(state_dir: Path) -> list[dict[str, Any]]:
    return [e for d in journal_kinds(state_dir, "decision") for e in d.get("events", [])]


def journal_denials(state_dir: Path) -> list[dict[str, Any]]:
    return [x for d in journal_kinds(state_dir, "decision") for x in d.get("denials", [])]


# ---- the invariants ------------------------------------------------------------------------


def check_invariants(s: Session, settle: bool = True) -> None:
    """See the module docstring. ``settle`` first books the fills of the last tick's orders."""
    if settle:
        s.settle()
    rt, emu = s.rt, s.emu
    fills = store_fills(s.state_dir)
    # 1. no duplicate order
    if s.mode == "paper":
        assert emu.orders() == [], "paper mode sent orders to the exchange"
        cids = [o.client_id for o in s.sent()]
    else:
        cids = [o.client_order_id for o in emu.orders()]
    dupes = [c for c, n in collections.Counter(cids).items() if n > 1]
    assert not dupes, f"client ids sent more than once: {dupes}"
    # 2. no lost fill, none booked twice
    trades = [f.id for f in rt.adapter._fills] if s.mode == "paper" else [  # type: ignore[attr-defined]
        trade_id(emu, t) for t in emu.trades()]
    for tid in trades:
        assert tid in fills, f"trade {tid} at the exchange is not in the store"
        rows, applied = fills[tid]
        assert rows == 1 and applied == 1, f"trade {tid}: {rows} rows, applied={applied}"
        assert tid in rt.state.fills_seen, f"trade {tid} not booked by the engine"
    made = set(fills) - s.earlier_fills
    assert made <= set(trades), f"fills the exchange never made: {made - set(trades)}"
    # 3. no order past a cap (the per-order notional, the per-asset exposure), none after the kill switch
    equity = max([d.equity for d in s.decisions if math.isfinite(d.equity)] + [float(CASH)])
    limit = min(s.max_order_notional, PER_ASSET * equity) * 1.02  # fills may be a little above the decision
    for cid, side, notional in sent_notionals(s):
        if side == "buy":
            assert notional <= limit, f"order {cid}: {notional:.2f} > {limit:.2f}"
        if s.kill_ms is not None and cid not in s.orders_at_kill:
            raise AssertionError(f"order {cid} sent after the kill switch")
    # 4. the books equal the balances
    check_books(s)
    # 5. the indicators never step back or twice through a bar time
    for session in advance_times(s.state_dir):
        assert all(a < b for a, b in itertools.pairwise(session)), f"bar times fed out of order: {session}"


def advance_times(state_dir: Path) -> list[list[int]]:
    """The bar time of every step of the indicators, per session, as the journal tells them."""
    from policyctl.runtime.journal import Journal, bars_from_dict, snapshot_from_dict

    sessions: list[list[int]] = []
    with Journal.open(state_dir / "state.sqlite") as j:
        for r in j.entries(kinds=("state_initial", "warmup", "snapshot")):
            if r.kind == "state_initial":
                sessions.append([])
                continue
            steps = r.payload["bars"] if r.kind == "warmup" else r.payload["missed"]
            times = [max(b.ts for b in bars_from_dict(c).values()) for c in steps]
            if r.kind == "snapshot":
                snap = snapshot_from_dict(r.payload["snapshot"])
                if snap.new_bar and snap.bars:
                    times.append(max(b.ts for b in snap.bars.values()))
            sessions[-1] += times
    return sessions


def sent_notionals(s: Session) -> list[tuple[str, str, float]]:
    """(client id, side, notional) of every order sent: filled value, or limit value while unfilled."""
    if s.mode == "paper":
        return [(o.client_id, o.side.value, o.cost if o.filled else (o.price or 0.0) * o.qty) for o in s.sent()]
    return [(o.client_order_id, o.side.lower(),
             float(o.cum_quote if o.executed_qty > 0 else o.price * o.orig_qty)) for o in s.emu.orders()]


def exchange_totals(s: Session) -> dict[str, float]:
    if s.mode == "paper":
        b = s.rt.adapter.fetch_balances()
        return dict(b.total)
    return {a: float(f + lk) for a, (f, lk) in s.emu.balances().items()}


def check_books(s: Session) -> None:
    totals = exchange_totals(s)
    st = s.rt.state
    assert abs(totals.get("USDT", 0.0) - st.cash) <= 1e-6 * max(1.0, st.cash), (totals, st.cash)
    for sym in s.cp.symbols:
        base = sym.split("/")[0]
        held = st.positions[sym].qty if sym in st.positions else 0.0
        assert abs(totals.get(base, 0.0) - held) <= 1e-9 * max(1.0, held), (sym, totals.get(base), held)


def pull_kill(s: Session, reason: str = "test") -> None:
    from policyctl.runtime.killswitch import pull

    s.orders_at_kill = {cid for cid, _, _ in sent_notionals(s)}
    s.kill_ms = s.emu.clock.now_ms()
    # `pull` signals the pid holding the state's lock: this very process, here. SIGUSR1 would end
    # it unless the runtime's handler is installed, as `policyctl run` does.
    s.rt.kill.install_signal()
    pull(s.state_dir, reason)


# ---- subprocesses --------------------------------------------------------------------------


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYCTL_")}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Child:
    """A runtime in a subprocess (``live_child.py``), driven line by line over stdin/stdout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("<eof>")

    @classmethod
    def start(cls, policy: Path, state_dir: Path, url: str, env: Mapping[str, str], mode: str = "live",
              timeout_ms: int = 30_000) -> Child:
        cmd = [sys.executable, str(HERE / "live_child.py"), str(policy), str(state_dir), url, mode,
               str(timeout_ms), str(WARMUP)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=child_env(env))
        child = cls(proc)
        child.expect("ready")
        return child

    def poll_line(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def expect(self, word: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.poll_line(max(0.0, deadline - time.monotonic()))
            if line == "<eof>":
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"child exited ({self.proc.wait()}): {err[-3000:]}")
            if line is not None and line.startswith(word):
                return line
        raise AssertionError(f"child said no {word!r} in {timeout} s")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return pred()


def policyctl(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "policyctl.cli", *args], capture_output=True, text=True,
                          env=child_env(env or {}), timeout=timeout)
