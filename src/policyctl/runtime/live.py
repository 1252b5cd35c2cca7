"""The live runtime: the engine on a real clock, against an exchange, with durable state.

One decision cycle (:meth:`LiveRuntime.tick`), never two at once:

1. gather a snapshot from the adapter: the newest closed candles (older missed ones only
   advance the indicators), quotes, balances, open orders, new fills (stored once each);
2. ``Engine.tick`` decides (the same engine as the simulator);
3. write-ahead: the new state, the orders about to be sent (as ``submitting``) and the
   journal entries are committed in one SQLite transaction;
4. cancels, then orders go out through the adapter. A timeout or a dropped connection after
   sending is resolved by looking the order up by its client id, never by sending it again;
5. metrics, alerts.

A cold start loads the stored state (or builds one from the exchange's balances), resolves
every order left ``submitting`` by a crash, and replays recent candles through the
indicators before the first decision. The kill switch and the operator's breaker resets
(``policyctl reset``) are polled every 200 ms.
"""

from __future__ import annotations

import gc
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policyctl.clock import Clock, monotonic, wall_ms
from policyctl.exchanges.adapter import AdapterError, ExchangeAdapter, Market, NeedsHuman, Rejected
from policyctl.exchanges.retry import real_sleep
from policyctl.rules.compiler import CompiledPolicy
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.killswitch import KillSwitch
from policyctl.runtime.metrics import Metrics
from policyctl.runtime.model import Bar, Fill, OpenOrder, OrderRequest, Quote, Snapshot
from policyctl.runtime.observe import Alerter
from policyctl.runtime.operator import apply_resets, pending_resets
from policyctl.runtime.state import EngineState
from policyctl.runtime.store import OrderRecord, StateStore

WARMUP_BARS = 500
CANDLE_PAGE = 1000  # candles a request asks for (Binance's most)
CATCH_UP_PAGES = 20  # at most this many pages of missed candles in one tick
LATE_RETRIES = 3  # a symbol one candle behind the others is asked again this many times ...
LATE_WAIT_S = 0.25  # ... this far apart, before the tick decides without it


@dataclass
class RuntimeConfig:
    mode: str = "dry-run"  # dry-run | paper | live
    state_dir: Path = Path("state")
    live_armed: bool = False
    cash: float | None = None  # starting cash for a fresh dry-run state (default: the exchange's)
    warmup_bars: int = WARMUP_BARS
    late_retries: int = LATE_RETRIES
    late_wait_s: float = LATE_WAIT_S


@dataclass
class KillTimes:
    pulled_ms: int
    halted_ms: int | None = None
    canceled_ms: int | None = None


@dataclass
class LiveRuntime:
    cp: CompiledPolicy
    adapter: ExchangeAdapter
    store: StateStore
    cfg: RuntimeConfig
    clock: Clock
    metrics: Metrics
    alerter: Alerter
    log: Any
    engine: Engine = field(init=False)
    state: EngineState = field(init=False)
    markets: dict[str, Market] = field(default_factory=dict)
    kill: KillSwitch = field(init=False)
    kill_times: KillTimes | None = None
    halted_for_human: str | None = None
    last_decision: Decision | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _api_errors: deque[int] = field(default_factory=lambda: deque(maxlen=10_000))
    _rejections: list[tuple[str, str]] = field(default_factory=list)  # told to the engine next tick
    _last_fill_ms: int | None = None
    _mismatched: int = 0  # consecutive ticks whose books disagreed with the exchange

    def __post_init__(self) -> None:
        self.engine = Engine(self.cp, mode=self.cfg.mode, live_armed=self.cfg.live_armed)
        self.kill = KillSwitch(self.cfg.state_dir)

    # ---- adapter calls, counted ------------------------------------------------------------
    def _call(self, what: str, f: Callable[..., Any], *args: Any, default: Any = None) -> Any:
        try:
            return f(*args)
        except AdapterError as e:
            now = self.clock.now_ms()
            self._api_errors.append(now)
            self.metrics.api_errors.labels(self.cp.policy.name, e.kind, e.endpoint or what).inc()
            self.log.warning(f"{what} failed: {e.kind}: {e}")
            if isinstance(e, NeedsHuman):
                self._needs_human(f"{what}: {e}")
            return default

    def _needs_human(self, why: str) -> None:
        if self.halted_for_human is None:
            self.halted_for_human = why
            self.alerter.alert("needs_human", f"trading halted, a human is needed: {why}",
                               self.clock.now_ms(), level="critical")

    # ---- start ------------------------------------------------------------------------------
    def start(self) -> None:
        """Cold start: markets, state, crash leftovers, indicator warm-up."""
        self.markets = self._call("load_markets", self.adapter.load_markets, default={}) or {}
        missing = [s for s in self.cp.symbols if s not in self.markets]
        if missing:
            if not self.markets:
                raise RuntimeError("could not load the exchange's markets (is it reachable? see the log)")
            raise RuntimeError(f"the exchange does not list {', '.join(missing)}")
        stored = self.store.load_state()
        if stored is not None:
            self.state = stored
            self.log.info(f"state restored: {len(stored.positions)} positions, {len(stored.pending)} pending")
        else:
            self.state = self._fresh_state()
        self.store.journal_initial(self.state, self.clock.now_ms(), mode=self.cfg.mode,
                                   live_armed=self.cfg.live_armed,
                                   reason="restored" if stored is not None else "fresh")
        self._resolve_leftovers()
        self._warm_up()
        self.metrics.set_state(self.state.trading_state)
        # everything loaded so far (ccxt, markets, the compiled policy) lives for the whole run:
        # keep it out of the garbage collector's scans, which would otherwise pause ticks
        gc.collect()
        gc.freeze()

    def _fresh_state(self) -> EngineState:
        quote = self.cp.policy.market.quote or "USDT"
        bal = self._call("fetch_balances", self.adapter.fetch_balances)
        if bal is None and self.cfg.cash is None:  # a state of 0 cash would be saved, and wrong for good
            raise RuntimeError("could not read the account's balances, which a fresh state starts from "
                               "(are the credentials right? see the log)")
        cash = self.cfg.cash if self.cfg.cash is not None else (bal.total.get(quote, 0.0) if bal else 0.0)
        state = EngineState.initial(cash, self.clock.now_ms())
        if bal is not None:  # positions the account already holds are adopted, cost unknown
            for s in self.cp.symbols:
                base = self.markets[s].base
                qty = bal.total.get(base, 0.0)
                if qty > 0:
                    q = self._call("fetch_quote", self.adapter.fetch_quote, s)
                    px = q.last if q is not None else math.nan
                    from policyctl.runtime.state import Position

                    state.positions[s] = Position(s, qty, px, state.now, state.now, qty * px, rule="adopted")
            # the account's past fills are in those balances already: known, never booked again
            history = self._call("fetch_fills", self.adapter.fetch_fills, self.cp.symbols, None) or []
            adopted = self.store.adopt_fills(history, state.now)
            if adopted:
                self.log.info(f"{adopted} earlier fills of the account adopted with its balances")
        return state

    def _resolve_leftovers(self) -> None:
        """Orders a crash left as `submitting`: the exchange says whether they exist."""
        for o in self.store.orders_in(("submitting", "unknown")):
            found = self._call("find_order", self.adapter.find_order, o.client_id, o.symbol)
            now = self.clock.now_ms()
            if found is None:
                self._lost(o, "not found at the exchange after restart (a crash before it left)", now)
            else:
                self.store.mark_order(o.client_id, found.status, exchange_id=found.exchange_id,
                                      filled=found.filled, avg_price=found.avg_price, now_ms=now)
                self.log.info(f"order {o.client_id} found at the exchange after restart: {found.status}")

    def _warm_up(self) -> None:
        """Replay recent candles through the indicators: one step per bar time, all symbols at once."""
        tf = self.cp.policy.market.timeframe
        by_time: dict[int, dict[str, Bar]] = {}
        fetched = {s: self._call("fetch_candles", self.adapter.fetch_candles, s, tf, None, self.cfg.warmup_bars)
                   or [] for s in self.cp.symbols}
        newest = max((b[-1].ts for b in fetched.values() if b), default=None)
        for s, bars in fetched.items():
            last = self.state.last_bar_ts.get(s)
            for b in bars:
                # bars already decided on (restored state), or, fresh, all but the newest: the
                # first tick decides on the newest bar
                if (last is not None and b.ts <= last) or (last is None and b.ts != newest):
                    by_time.setdefault(b.ts, {})[s] = b
        calls = [by_time[ts] for ts in sorted(by_time)]
        for bars_at in calls:
            self.engine.source.on_bar(bars_at)
            for s, b in bars_at.items():
                if s not in self.state.last_bar_ts or self.state.last_bar_ts[s] < b.ts:
                    self.state.last_bar_ts[s] = b.ts
        self.store.journal_warmup(calls, self.clock.now_ms())
        self.log.info(f"indicators warmed up on {len(calls)} bars")

    # ---- the decision cycle ------------------------------------------------------------------
    def tick(self) -> Decision | None:
        if not self._lock.acquire(blocking=False):
            self.log.warning("a tick is still running: this one is skipped")
            self.metrics.missed.labels(self.cp.policy.name).inc()
            return None
        try:
            return self._tick()
        finally:
            self._lock.release()

    def _tick(self) -> Decision:
        name = self.cp.policy.name
        t0 = monotonic()
        snap, missed = self._snapshot()
        t1 = monotonic()
        d = self.engine.tick(snap, self.state)
        t2 = monotonic()
        wanted = [] if self.cfg.mode == "dry-run" or self._blocked() else d.orders
        to_send = self.store.commit_tick(self.state, snap, d, wanted, missed=missed)  # write-ahead
        t3 = monotonic()
        self._execute(d, to_send)
        t4 = monotonic()
        for stage, dt in (("snapshot", t1 - t0), ("engine", t2 - t1), ("commit", t3 - t2), ("execute", t4 - t3)):
            self.metrics.latency.labels(name, stage).observe(dt)
        self._export(d)
        self.last_decision = d
        return d

    def _blocked(self) -> bool:
        return self.halted_for_human is not None or self.kill.engaged_since() is not None

    def _snapshot(self) -> tuple[Snapshot, list[dict[str, Bar]]]:
        """The snapshot of this tick, and the missed bars fed to the indicators before it."""
        now = self.clock.now_ms()
        tf = self.cp.policy.market.timeframe
        # the indicators have advanced to this bar time: a candle at or before it comes too late
        # to be fed (a second step at a time they passed would be a gap for every other symbol)
        advanced = max(self.state.last_bar_ts.values(), default=None)
        fresh: dict[str, list[Bar]] = {}
        quotes: dict[str, Quote] = {}
        for s in self.cp.symbols:
            fresh[s] = self._fresh_candles(s, tf, advanced)
            q = self._call("fetch_quote", self.adapter.fetch_quote, s)
            if q is not None:
                quotes[s] = q
        self._wait_for_late(fresh, tf, advanced)
        newest = max((b[-1].ts for b in fresh.values() if b), default=None)
        bars = {s: b[-1] for s, b in fresh.items() if b and b[-1].ts == newest}
        # missed bars: the indicators see them (one step per bar time), no decision is made on them
        by_time: dict[int, dict[str, Bar]] = {}
        for s, bs in fresh.items():
            for b in bs:
                if b.ts != newest:
                    by_time.setdefault(b.ts, {})[s] = b
        missed = [by_time[ts] for ts in sorted(by_time)]
        for bars_at in missed:
            self.engine.source.on_bar(bars_at)
            for s, b in bars_at.items():
                self.state.last_bar_ts[s] = b.ts
        if missed:
            self.log.info(f"{len(missed)} missed bars coalesced into this tick")
        bal = self._call("fetch_balances", self.adapter.fetch_balances)
        quote_ccy = self.cp.policy.market.quote or "USDT"
        cash = bal.total.get(quote_ccy) if bal is not None else None
        balances = {self.markets[s].base: bal.total.get(self.markets[s].base, 0.0) for s in self.cp.symbols} \
            if bal is not None else {}
        open_orders: list[OpenOrder] = self._call("fetch_open_orders", self.adapter.fetch_open_orders, self.cp.symbols)
        if open_orders is None:  # unknown: keep what the engine believes, decide nothing new on it
            open_orders = [OpenOrder(p.client_id, p.symbol, _side(p.side), p.qty, None, p.filled, p.created_ms)
                           for p in self.state.pending.values()]
        fills: list[Fill] = self._call("fetch_fills", self.adapter.fetch_fills, self.cp.symbols,
                                       self._last_fill_ms) or []
        new_fills = self.store.record_fills(fills)
        if fills:
            self._last_fill_ms = max(f.ts for f in fills) - 60_000  # a minute of overlap; fills are idempotent
        markets = {s: m.rules for s, m in self.markets.items() if s in self.cp.symbols}
        snap = Snapshot(now=now, bars=bars, quotes=quotes, cash=cash, balances=balances,
                        open_orders=tuple(open_orders), fills=tuple(new_fills), markets=markets,
                        api_errors=tuple(self._api_errors), kill_switch=self._blocked(), new_bar=bool(bars),
                        rejections=tuple(self._rejections))
        self._rejections = []
        return snap, missed

    def _fresh_candles(self, s: str, tf: str, advanced: int | None) -> list[Bar]:
        """The closed candles of ``s`` the indicators have not seen, newer than ``advanced``."""
        last = self.state.last_bar_ts.get(s)
        floor = max((x for x in (last, advanced) if x is not None), default=None)
        return [b for b in self._candles_since(s, tf, last) if floor is None or b.ts > floor]

    def _wait_for_late(self, fresh: dict[str, list[Bar]], tf: str, advanced: int | None) -> None:
        """A symbol one candle behind the others (the exchange has not closed it yet, or the market
        moved during the snapshot) is asked again, briefly: decided without it, that bar would be a
        gap in its indicators. A symbol further behind (halted, delisted) is not waited for."""
        step = int(self.cp.timeframe_seconds * 1000)
        for _ in range(self.cfg.late_retries):
            tops = {s: (b[-1].ts if b else self.state.last_bar_ts.get(s)) for s, b in fresh.items()}
            newest = max((t for t in tops.values() if t is not None), default=None)
            late = [s for s, t in tops.items() if t is not None and newest is not None and newest - t == step]
            if not late:
                return
            self.log.info(f"candle at {newest} not yet there for {', '.join(late)}: asking again")
            real_sleep(self.cfg.late_wait_s)
            for s in late:
                have = {b.ts for b in fresh[s]}
                fresh[s] += [b for b in self._fresh_candles(s, tf, advanced) if b.ts not in have]
                fresh[s].sort(key=lambda b: b.ts)

    def _candles_since(self, symbol: str, tf: str, last: int | None) -> list[Bar]:
        """Every closed candle after ``last`` (the newest page without it), page by page: after
        a long stop the decision is made on the newest candle, the others are missed bars."""
        since = last + 1 if last is not None else None
        out: list[Bar] = []
        for _ in range(CATCH_UP_PAGES):
            page: list[Bar] = self._call("fetch_candles", self.adapter.fetch_candles, symbol, tf, since,
                                         CANDLE_PAGE) or []
            out += page
            if since is None or len(page) < CANDLE_PAGE:
                break
            since = page[-1].ts + 1
        return out

    def _execute(self, d: Decision, to_send: list[OrderRequest]) -> None:
        for c in d.cancels:
            if self.cfg.mode == "dry-run":
                continue
            got = self._call("cancel", self.adapter.cancel, c.client_id, c.symbol)
            if got is not None:
                self.store.mark_order(c.client_id, got.status, filled=got.filled, now_ms=self.clock.now_ms())
        for o in to_send:
            now = self.clock.now_ms()
            try:
                status = self.adapter.place(o)
            except Rejected as e:
                self.store.mark_order(o.client_id, "rejected", reason=e.reason, now_ms=now)
                self._rejections.append((o.client_id, e.reason))
                self.metrics.denials.labels(self.cp.policy.name, f"exchange:{e.reason}").inc()
                self.log.warning(f"order {o.client_id} rejected by the exchange: {e.reason}")
                continue
            except AdapterError as e:
                self._api_errors.append(now)
                self.metrics.api_errors.labels(self.cp.policy.name, e.kind, "orders").inc()
                self.store.mark_order(o.client_id, "unknown", reason=str(e)[:200], now_ms=now)
                self.log.warning(f"order {o.client_id}: {e.kind}; the reconciliation will look it up")
                if isinstance(e, NeedsHuman):
                    self._needs_human(f"place: {e}")
                continue
            self.store.mark_order(o.client_id, status.status, exchange_id=status.exchange_id,
                                  filled=status.filled, avg_price=status.avg_price, now_ms=now)
            self.metrics.orders.labels(self.cp.policy.name, o.side.value, o.kind).inc()

    def _export(self, d: Decision) -> None:
        m, name = self.metrics, self.cp.policy.name
        m.decisions.labels(name).inc()
        for x in d.denials:
            if not str(x["code"]).startswith("exchange:"):  # counted when the exchange refused it
                m.denials.labels(name, x["code"]).inc()
        m.set_state(d.trading_state)
        if math.isfinite(d.equity):
            m.equity.labels(name).set(d.equity)
        for scope, share in d.exposure.items():
            if math.isfinite(share):
                m.exposure.labels(name, scope).set(share)
        for cap, margin in d.margins.items():
            m.cap_margin.labels(name, cap).set(margin)
        for breaker, margin in d.breaker_margins.items():
            if math.isfinite(margin):
                m.breaker_margin.labels(name, breaker).set(margin)
        for b in self.cp.breakers:
            m.breaker_active.labels(name, b.name).set(1.0 if b.name in self.state.trips else 0.0)
        mismatch = [ev for ev in d.events if ev.data.get("problem") == "books_mismatch"]
        self._mismatched = self._mismatched + 1 if mismatch else 0
        if mismatch:  # entries are blocked meanwhile: say so; a fill in flight explains one tick, not two
            self.log.warning(mismatch[0].message)
            if self._mismatched >= 2:
                self.alerter.alert("books_mismatch", mismatch[0].message, self.clock.now_ms())
        for ev in d.events:
            if ev.kind == "fill":
                m.fills.labels(name, str(ev.data.get("side"))).inc()
            if ev.kind in ("breaker_trip", "state_change", "alert"):
                recovered = ev.kind == "state_change" and ev.data.get("to") == "active"  # good news: never escalated
                self.alerter.alert(f"{ev.kind}:{ev.data.get('breaker', ev.data.get('to', ''))}", ev.message,
                                   self.clock.now_ms(), level="info" if recovered else "warning")

    # ---- background jobs -----------------------------------------------------------------------
    def reconcile(self) -> None:
        """Bring the store in line with the exchange: order statuses, and the markets' rules and
        status (a symbol the exchange halts reaches the guard and the breakers)."""
        with self._lock:
            markets = self._call("load_markets", self.adapter.load_markets)
            if markets:
                self.markets.update(markets)
            for o in self.store.orders_in(("submitting", "unknown", "open", "partially_filled")):
                found = self._call("find_order", self.adapter.find_order, o.client_id, o.symbol)
                now = self.clock.now_ms()
                if found is not None:
                    self.store.mark_order(o.client_id, found.status, exchange_id=found.exchange_id,
                                          filled=found.filled, avg_price=found.avg_price, now_ms=now)
                elif o.status in ("submitting", "unknown") and now - o.created_ms > 60_000:
                    self._lost(o, "never reached the exchange", now)

    def _lost(self, o: OrderRecord, why: str, now: int) -> None:
        """An order that never reached the exchange. The engine does not decide it again by itself
        (a rule that fires on a crossing fires once): an exit lost leaves a position open, so a
        human hears of it at once."""
        self.store.mark_order(o.client_id, "lost", reason=why, now_ms=now)
        what = f"{o.kind} {o.side} {o.qty} {o.symbol} (order {o.client_id}, rule `{o.rule}`)"
        exit_lost = o.side == "sell"
        self.log.error(f"order lost: {what}: {why}" + ("; the position stays open" if exit_lost else ""))
        self.alerter.alert(f"order_lost:{o.symbol}:{o.side}", f"order lost: {what}: {why}"
                           + ("; the position stays open until an exit fires again or a human closes it"
                              if exit_lost else ""), now, level="critical" if exit_lost else "warning")

    def check_kill(self) -> None:
        """Poll the kill switch; on engagement cancel everything at once and time it."""
        since = self.kill.engaged_since()
        if since is None:
            self.kill_times = None
            return
        if self.kill_times is not None:
            return
        # the switch is stamped with the wall clock (`policyctl kill`): time the halt on the same clock
        self.kill_times = KillTimes(since, halted_ms=wall_ms())
        with self._lock:  # cancel first: nothing, not even the alert, comes before that
            if self.cfg.mode != "dry-run":
                self._cancel_all()
            left = self._call("fetch_open_orders", self.adapter.fetch_open_orders, self.cp.symbols)
            if left == [] or self.cfg.mode == "dry-run":
                self.kill_times.canceled_ms = wall_ms()
        self.alerter.alert("kill_switch", "kill switch engaged: every open order canceled"
                           if self.kill_times.canceled_ms is not None else
                           "kill switch engaged: open orders are left at the exchange", self.clock.now_ms(),
                           level="critical")
        name = self.cp.policy.name
        halted = self.kill_times.halted_ms or since
        self.metrics.kill_halt.labels(name).set((halted - since) / 1000)
        if self.kill_times.canceled_ms is not None:
            self.metrics.kill_cancel.labels(name).set((self.kill_times.canceled_ms - since) / 1000)
        self.log.warning(f"kill switch: halted {halted - since} ms after it was pulled")

    def check_resets(self) -> list[str]:
        """Apply the breaker resets an operator left in the state folder (``policyctl reset``),
        between ticks: the state is saved and the reset journaled (``state_set``, which a replay
        applies too). The next tick decides without the cleared trips; a breaker whose condition
        still holds trips again at once. Polled with the kill switch. Returns the breakers cleared."""
        if not pending_resets(self.cfg.state_dir):
            return []
        with self._lock:
            cleared = apply_resets(self.state, self.cfg.state_dir)
            reason = "operator reset: " + (", ".join(cleared) or "nothing tripped")
            self.store.save_state(self.state, self.clock.now_ms(), reason=reason)
        name = self.cp.policy.name
        for b in cleared:
            self.metrics.breaker_active.labels(name, b).set(0.0)
        if cleared:
            self.alerter.alert(f"breaker_reset:{','.join(cleared)}", f"breaker reset by an operator: "
                               f"{', '.join(cleared)}", self.clock.now_ms())
        self.log.warning(reason)
        return cleared

    def _cancel_all(self) -> None:
        """Cancel every open order at the exchange; the store records each cancel."""
        for o in self._call("fetch_open_orders", self.adapter.fetch_open_orders, self.cp.symbols) or []:
            got = self._call("cancel", self.adapter.cancel, o.client_id, o.symbol)
            if got is not None:
                self.store.mark_order(o.client_id, got.status, filled=got.filled, now_ms=self.clock.now_ms())

    def shutdown(self, cancel_open: bool) -> None:
        with self._lock:
            if cancel_open and self.cfg.mode != "dry-run":
                self._cancel_all()
            self.store.save_state(self.state, self.clock.now_ms(), reason="shutdown")
            self.store.close()


def _side(s: str) -> Any:
    from policyctl.runtime.model import Side

    return Side(s)
