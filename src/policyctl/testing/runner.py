"""Run policy test cases through the engine and check their expectations.

For each case: compile its policy (with the case's param overrides), build the bars of
every symbol, an initial :class:`~policyctl.runtime.state.EngineState`, and one
:class:`~policyctl.runtime.model.Snapshot` per bar; tick a fresh
:class:`~policyctl.runtime.engine.Engine` once per bar, and compare the decision of the
last tick (the tested tick) with the expectations. Time is simulated (the first bar opens
at ``spec.EPOCH_MS``); nothing reads the clock, so every run is the same.

Orders decided during the history fill in full at the open of their symbol's next bar,
moved against the order by the policy's ``slippage``, paying its taker fee; a buy sized in
money spends that money at the fill price (like the simulator's market orders), a sell
sells at most what is held. The fill is reported at that bar's close. With ``fills: none``
orders vanish unfilled instead. This model is deliberately simpler than the simulator's:
tests pin down decisions, not execution costs.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policyctl.diagnostics import Diagnostic, Diagnostics, PolicyError, Span
from policyctl.lint import is_test_file
from policyctl.rules.compiler import CompiledPolicy, load_and_compile
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.model import (
    Bar,
    Fill,
    MarketRules,
    OpenOrder,
    OrderRequest,
    Quote,
    Side,
    Snapshot,
)
from policyctl.runtime.state import EngineState, PendingOrder, Position, Trip
from policyctl.testing.spec import (
    DEFAULT_VOLUME,
    EPOCH_MS,
    OTHERS,
    QUOTE_HALF_SPREAD,
    Case,
    Matcher,
    Num,
    TestFile,
    load_test_file,
)

EXIT_KINDS = ("stop_loss", "take_profit", "flatten")
OK_STATUSES = ("pass", "skip", "xfail")
GUARD_CLIP = "max_order_notional"
CASE_TRIP = "set by the test case"  # the reason of trips a case's state starts with
_POLICY_KEY = re.compile(rb"^policy\s*:", re.MULTILINE)


# ---- results ------------------------------------------------------------------------------


@dataclass
class Failure:
    """One expectation the tested tick did not meet."""

    what: str  # the expectation's key: orders, state, trips...
    message: str
    details: list[str] = field(default_factory=list)
    span: Span | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"expectation": self.what, "message": self.message, "details": self.details}
        if self.span is not None:
            out.update(file=self.span.file, line=self.span.line, col=self.span.col)
        return out


@dataclass
class Tick:
    """What the tested tick decided, in plain data (also the JSON of a result)."""

    now: int
    state: str
    reasons: list[str]
    orders: list[dict[str, Any]]
    denials: list[dict[str, Any]]
    clips: list[dict[str, Any]]
    cancels: list[dict[str, Any]]
    events: list[dict[str, Any]]
    trips: dict[str, dict[str, Any]]
    fired: list[dict[str, Any]]
    equity: float
    cash: float
    positions: dict[str, dict[str, Any]]
    ticks: int  # how many ticks the case ran, the tested one included

    def to_json(self) -> dict[str, Any]:
        def clean(x: Any) -> Any:
            if isinstance(x, float):
                return x if math.isfinite(x) else None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list | tuple):
                return [clean(v) for v in x]
            return x

        out: dict[str, Any] = clean({k: getattr(self, k) for k in self.__dataclass_fields__})
        return out


@dataclass
class CaseResult:
    case: Case
    status: str  # pass | fail | invalid | skip | crash | xfail (failed, as expected) | xpass
    failures: list[Failure] = field(default_factory=list)
    tick: Tick | None = None
    message: str = ""  # why a case is invalid, skipped or crashed
    covered: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class FileResult:
    test: TestFile
    policy: str | None = None  # the policy file, as shown
    policy_name: str | None = None
    cases: list[CaseResult] = field(default_factory=list)
    problem: str = ""  # why the file as a whole could not run

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.test.diags.sorted()


@dataclass
class Coverage:
    """Which rules, caps and breakers of one policy the passing cases exercised at their
    tested tick: a trigger that fired, a cap that clipped or blocked, a breaker active after
    the tick (not one the case's state started with)."""

    policy: str
    name: str
    items: list[tuple[str, str]]  # (kind, name): trigger | cap | breaker
    by: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # item -> case ids
    tested: bool = True

    @property
    def covered(self) -> list[tuple[str, str]]:
        return [i for i in self.items if self.by.get(i)]

    @property
    def missing(self) -> list[tuple[str, str]]:
        return [i for i in self.items if not self.by.get(i)]

    @property
    def percent(self) -> float:
        return 100.0 * len(self.covered) / len(self.items) if self.items else 100.0


@dataclass
class RunResult:
    files: list[FileResult]
    coverage: list[Coverage]
    diags: Diagnostics  # every test file's diagnostics, with the sources to show them

    def count(self, status: str) -> int:
        return sum(1 for f in self.files for c in f.cases if c.status == status)

    @property
    def broken_files(self) -> int:
        return sum(1 for f in self.files if f.problem)

    @property
    def ok(self) -> bool:
        return all(c.status in OK_STATUSES for f in self.files for c in f.cases) \
            and not self.broken_files

    @property
    def crashed(self) -> bool:
        return self.count("crash") > 0


# ---- discovery -------------------------------------------------------------------------


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(test files, policy files) under the paths; a policy named alone brings its
    ``NAME.test.yaml`` along when there is one."""
    tests: list[Path] = []
    policies: list[Path] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if not f.is_file() or f.suffix not in (".yaml", ".yml"):
                    continue
                if is_test_file(f):
                    tests.append(f)
                elif _is_policy(f):
                    policies.append(f)
        elif is_test_file(p):
            tests.append(p)
        else:
            policies.append(p)
            for suffix in (".test.yaml", ".test.yml"):
                sibling = p.with_name(p.name.rsplit(".", 1)[0] + suffix)
                if sibling.is_file():
                    tests.append(sibling)
    return _unique(tests), _unique(policies)


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            out.append(p)
    return out


def _is_policy(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return bool(_POLICY_KEY.search(fh.read(1_000_000)))
    except OSError:
        return False


# ---- running ---------------------------------------------------------------------------


class _Compiled:
    """Compiled policies by (file, param overrides): each compiles once per run."""

    def __init__(self) -> None:
        self.cache: dict[tuple[Path, tuple[tuple[str, str], ...]], CompiledPolicy | list[Diagnostic]] = {}
        self.sources: dict[str, str] = {}

    def get(self, path: Path, params: dict[str, str]) -> CompiledPolicy | list[Diagnostic]:
        key = (path.resolve(), tuple(sorted(params.items())))
        if key not in self.cache:
            diags = Diagnostics()
            try:
                self.cache[key] = load_and_compile(path, params or None, diags)
            except PolicyError:
                self.cache[key] = [d for d in diags.sorted() if d.is_error]
            self.sources.update(diags.sources)
        return self.cache[key]


def run_paths(paths: Iterable[Path], select: str | None = None) -> RunResult:
    """Run every test file under the paths (``select``: a regex over ``file::case``)."""
    tests, policies = discover(paths)
    compiled = _Compiled()
    pattern = re.compile(select) if select else None
    files = [run_file(load_test_file(t), compiled, pattern) for t in tests]
    diags = Diagnostics()
    for f in files:
        diags.extend(f.test.diags.items)
        diags.sources.update(f.test.diags.sources)
    diags.sources.update(compiled.sources)
    return RunResult(files, coverage(files, policies, compiled), diags)


def run_file(tf: TestFile, compiled: _Compiled, pattern: re.Pattern[str] | None = None) -> FileResult:
    fr = FileResult(tf)
    if not tf.valid or tf.policy is None:
        fr.problem = "the test file is not valid"
        return fr
    fr.policy = str(tf.policy)
    base = compiled.get(tf.policy, {})
    if not isinstance(base, CompiledPolicy):
        if not tf.policy.exists():
            tf.diags.error("I001", f"policy file `{tf.policy}` not found", tf.policy_span,
                           "name it with `policy:` (relative to the test file), or put the "
                           "test file beside its policy as `NAME.test.yaml`")
            fr.problem = f"policy `{tf.policy}` not found"
        else:
            tf.diags.extend(base)
            tf.diags.sources.update(compiled.sources)
            fr.problem = f"policy `{tf.policy}` has errors"
        return fr
    fr.policy_name = base.policy.name
    for case in tf.cases:
        if pattern is not None and not pattern.search(case.id):
            continue
        fr.cases.append(run_one(case, base, tf, compiled))
    return fr


def run_one(case: Case, base: CompiledPolicy, tf: TestFile, compiled: _Compiled) -> CaseResult:
    names_ok = _check_refs(case, base, tf.diags)  # reported even when the case has other problems
    if not case.valid:
        return CaseResult(case, "invalid", message="the case is not valid (see the diagnostics)")
    if not names_ok:
        return CaseResult(case, "invalid", message="the case names what its policy does not have")
    if case.skip is not None:
        return CaseResult(case, "skip", message=case.skip)
    cp = base
    if case.params:
        assert tf.policy is not None
        got = compiled.get(tf.policy, {k: v for k, (v, _) in case.params.items()})
        if isinstance(got, CompiledPolicy):
            cp = got
        else:
            for d in got:
                span = next((s for k, (_, s) in case.params.items() if f"`{k}`" in d.message),
                            next(iter(case.params.values()))[1])
                tf.diags.error(d.code, f"with the case's params: {d.message}", span, d.help)
            return CaseResult(case, "invalid", message="the policy does not compile with the case's params")
    try:
        decision, ticks = simulate(cp, case)
        tick = summarize(cp, decision, ticks)
    except Exception as e:  # the tool failed, not the policy: report and go on
        return CaseResult(case, "crash", message=f"internal error: {type(e).__name__}: {e}")
    failures = check(case, tick)
    covered = exercised(cp, tick)
    if case.xfail is not None:
        if failures:
            return CaseResult(case, "xfail", failures, tick, case.xfail, covered)
        return CaseResult(case, "xpass", [], tick, "passes, but is marked `xfail` (" + case.xfail
                          + "): if the bug is fixed, remove `xfail`", covered)
    return CaseResult(case, "fail" if failures else "pass", failures, tick, covered=covered)


def _check_refs(case: Case, cp: CompiledPolicy, diags: Diagnostics) -> bool:
    names: dict[str, list[str]] = {
        "symbol": list(cp.symbols),
        "breaker": [b.name for b in cp.breakers],
        "trigger": [t.name for t in cp.triggers],
        "rule": [t.name for t in cp.triggers] + list(EXIT_KINDS),
        "cap": [c.name for c in cp.caps] + _limits(cp) + [GUARD_CLIP],
        "param": list(cp.policy.params),
    }
    nouns = {"symbol": "symbol", "breaker": "breaker", "trigger": "trigger", "rule": "rule",
             "cap": "cap", "param": "param"}
    ok = True
    for ref in case.refs:
        known = names[ref.kind]
        if ref.name in known:
            continue
        close = difflib.get_close_matches(ref.name, known, n=1)
        listed = f"the policy's {nouns[ref.kind]}s: {', '.join(f'`{n}`' for n in known) or 'none'}"
        diags.error("S004", f"unknown {nouns[ref.kind]} `{ref.name}`: policy `{cp.policy.name}` "
                    f"has no such {nouns[ref.kind]}", ref.span,
                    f"did you mean `{close[0]}`? ({listed})" if close else listed)
        ok = False
    return ok


# ---- the simulation --------------------------------------------------------------------


def build_bars(cp: CompiledPolicy, case: Case) -> dict[str, list[tuple[float, ...] | None]]:
    """Each policy symbol's bars (open, high, low, close, volume), ``None`` for a missing
    bar, all of the case's length: series end together at the tested tick, and a shorter
    one is extended back in time with its first bar."""
    specs = {s: case.history.get(s, case.history.get(OTHERS)) for s in cp.symbols}
    n = max([1] + [h.length or 0 for h in specs.values() if h is not None])
    out: dict[str, list[tuple[float, ...] | None]] = {}
    for s, h in specs.items():
        if h is None:
            out[s] = [None] * n
            continue
        cols = {f: _stretch(v, n) for f, v in h.fields.items()}
        close = cols["close"]
        bars: list[tuple[float, ...] | None] = []
        prev: float | None = None
        for k in range(n):
            c = close[k]
            if c is None:
                bars.append(None)
                continue
            o = cols["open"][k] if "open" in cols else None
            o = o if o is not None else (prev if prev is not None else c)
            hi = cols["high"][k] if "high" in cols else None
            lo = cols["low"][k] if "low" in cols else None
            v = cols["volume"][k] if "volume" in cols else None
            bars.append((o, hi if hi is not None else max(o, c), lo if lo is not None else min(o, c), c,
                         v if v is not None else DEFAULT_VOLUME))
            prev = c
        out[s] = bars
    return out


def _stretch(v: list[float | None] | float, n: int) -> list[float | None]:
    if not isinstance(v, list):
        return [v] * n
    return [v[0]] * (n - len(v)) + v if v else [None] * n


def initial_state(cp: CompiledPolicy, case: Case, t0: int, tested_now: int,
                  first_close: dict[str, float] | None = None) -> EngineState:
    s = case.state
    tf = int(cp.timeframe_seconds * 1000)
    state = EngineState.initial(s.cash, now=t0)
    fee = cp.settings.get("fees.taker", 0.001)
    for sym, p in s.positions.items():
        opened = tested_now - int(p.age * 1000) if p.age is not None else t0
        stop = p.entry * (1 - p.stop_pct) if p.stop_pct is not None else p.stop
        take = p.entry * (1 + p.take_pct) if p.take_pct is not None else p.take
        cost = p.cost if p.cost is not None else p.qty * p.entry * (1 + fee)
        state.positions[sym] = Position(sym, p.qty, p.entry, opened, opened - (opened - t0) % tf, cost,
                                        stop, take, p.strategy, p.rule)
    breakers = {b.name: b for b in cp.breakers}
    for name, ago in s.trips.items():
        b = breakers[name]
        since = tested_now - int(ago * 1000) if ago is not None else t0
        until = since + int(b.duration_seconds * 1000) if b.duration_seconds is not None else None
        state.trips[name] = Trip(name, b.action, since, until, CASE_TRIP)
    for o in s.orders:
        ref = o.ref_price or o.price or (first_close or {}).get(o.symbol, math.nan)
        state.pending[o.client_id] = PendingOrder(
            o.client_id, o.symbol, o.side, o.qty, ref, o.kind, o.rule, tested_now - int(o.age * 1000),
            strategy=o.strategy, filled=o.filled)
    value = sum(p.qty * p.entry for p in s.positions.values())
    state.peak_equity = s.peak_equity if s.peak_equity is not None else s.cash + value
    return state


def _relative_state(case: Case, state: EngineState, now: int) -> None:
    """What the case's state says happened shortly before the tested tick."""
    s = case.state

    def at(seconds: Iterable[float]) -> list[int]:
        return [now - int(x * 1000) for x in seconds]

    state.trade_times = sorted(state.trade_times + at(s.trades))
    state.stopout_times = sorted(state.stopout_times + at(s.stoplosses))
    state.order_times = sorted(state.order_times + at(s.orders_sent))
    state.equity_marks = sorted(state.equity_marks + [(now - int(a * 1000), v) for a, v in s.equity_marks])
    for sym, left in s.cooldowns.items():
        state.cooldowns[sym] = now + int(left * 1000)


def _quote(close: float, half: float, ts: int) -> Quote:
    return Quote(close * (1 - half), close * (1 + half), close, ts)


def simulate(cp: CompiledPolicy, case: Case) -> tuple[Decision, int]:
    """Tick the engine once per bar; return the decision of the last tick and the tick count."""
    tf = int(cp.timeframe_seconds * 1000)
    bars = build_bars(cp, case)
    n = len(next(iter(bars.values()))) if bars else 1
    snap_spec = case.snapshot
    t0 = EPOCH_MS
    tested_now = t0 + n * tf + int(snap_spec.delay * 1000)
    first = {s: next(b[3] for b in seq if b is not None) for s, seq in bars.items() if any(seq)}
    state = initial_state(cp, case, t0, tested_now, first)
    resting = {o.client_id: OpenOrder(o.client_id, o.symbol, Side(o.side), o.qty, o.price, o.filled,
                                      tested_now - int(o.age * 1000), o.side == "sell")
               for o in case.state.orders}
    engine = Engine(cp)
    slip = cp.settings.get("slippage", 0.0)
    fee = cp.settings.get("fees.taker", 0.001)
    pending: dict[str, tuple[OrderRequest, int]] = {}
    last_close: dict[str, float] = {}
    decision: Decision | None = None
    for k in range(n):
        last = k == n - 1
        ts = t0 + k * tf
        closed = ts + tf
        now = tested_now if last else closed
        if last:
            _relative_state(case, state, now)
        bars_k = {s: Bar(ts, *row) for s, seq in bars.items() if (row := seq[k]) is not None}
        fills: list[Fill] = []
        open_orders: list[OpenOrder] = list(resting.values())
        for cid, (o, created) in list(pending.items()):
            b = bars_k.get(o.symbol)
            if b is not None:
                del pending[cid]
                if o.side is Side.BUY:  # a buy sized in money spends it, fee included
                    px = b.open * (1 + slip)
                    qty = o.spend / (px * (1 + fee)) if o.spend is not None else float(o.qty)
                else:
                    px = b.open * (1 - slip)
                    held = state.positions[o.symbol].qty if o.symbol in state.positions else 0.0
                    qty = min(float(o.qty), held)
                if qty > 0:
                    fills.append(Fill(f"fill-{cid}", cid, o.symbol, o.side, qty, px, qty * px * fee, b.ts))
            else:
                open_orders.append(OpenOrder(cid, o.symbol, o.side, float(o.qty), None, 0.0, created,
                                             o.reduce_only))
        for s, bar in bars_k.items():
            last_close[s] = bar.close
        quotes = {s: _quote(bar.close, QUOTE_HALF_SPREAD, closed) for s, bar in bars_k.items()}
        extra: dict[str, Any] = {}
        if last:
            for s, q in snap_spec.quotes.items():
                if q is None:
                    quotes.pop(s, None)
                    continue
                ref = last_close.get(s)
                if q.bid is not None and q.ask is not None:
                    bid, ask = q.bid, q.ask
                elif ref is not None:
                    half = q.spread / 2 if q.spread is not None else QUOTE_HALF_SPREAD
                    bid, ask = ref * (1 - half), ref * (1 + half)
                else:
                    continue  # nothing to quote around
                lastpx = q.last if q.last is not None else (ref if ref is not None else (bid + ask) / 2)
                qts = now - int(q.age * 1000) if q.age is not None else closed
                quotes[s] = Quote(bid, ask, lastpx, qts)
            open_orders += [OpenOrder(o.client_id, o.symbol, Side(o.side), o.qty, o.price, o.filled,
                                      now - int(o.age * 1000), o.side == "sell")
                            for o in snap_spec.open_orders]
            extra = {
                "markets": {s: MarketRules(**m) for s, m in snap_spec.markets.items()},
                "api_errors": tuple(now - 1000 * i for i in range(snap_spec.api_errors)),
                "kill_switch": snap_spec.kill_switch,
                "cash": snap_spec.cash,
                "balances": dict(snap_spec.balances),
            }
        snap = Snapshot(now, bars_k, quotes, open_orders=tuple(open_orders), fills=tuple(fills), **extra)
        decision = engine.tick(snap, state)
        state = decision.state
        for c in decision.cancels:
            pending.pop(c.client_id, None)
            resting.pop(c.client_id, None)
        if not last and case.fills == "next_open":
            for o in decision.orders:
                pending[o.client_id] = (o, now)
    assert decision is not None
    return decision, n


# ---- what the tested tick decided ----------------------------------------------------------


def summarize(cp: CompiledPolicy, d: Decision, ticks: int) -> Tick:
    st = d.state
    orders = [{
        "symbol": o.symbol, "side": o.side.value, "kind": o.kind, "rule": o.rule, "qty": float(o.qty),
        "notional": o.notional, "price": o.ref_price, "stop": o.stop, "take": o.take,
        "reduce_only": o.reduce_only, "strategy": o.strategy, "client_id": o.client_id,
        "type": "market" if o.price is None else "limit",
        "limit": float(o.price) if o.price is not None else None,
    } for o in d.orders]
    clips: list[dict[str, Any]] = []
    sized: dict[tuple[str, str], float] = {}
    for t in d.trace:
        key = (str(t.get("rule")), str(t.get("symbol")))
        if t["stage"] == "sizing" and "notional" in t:
            sized[key] = float(t["notional"])
        elif t["stage"] == "caps":
            for c in t["clips"]:
                clips.append({"rule": key[0], "symbol": key[1], "cap": c["cap"], "from": c["from"],
                              "to": c["to"]})
                sized[key] = float(c["to"])
        elif t["stage"] == "guard" and any(str(n).startswith("clipped to the max order notional")
                                           for n in t["notes"]):
            after = next((o["notional"] for o in orders if (o["rule"], o["symbol"]) == key), None)
            if after is not None:
                clips.append({"rule": key[0], "symbol": key[1], "cap": GUARD_CLIP,
                              "from": sized.get(key, math.nan), "to": after})
    reasons = next((list(t["reasons"]) for t in d.trace if t["stage"] == "breakers"), [])
    fired = [{"rule": t["rule"], "symbol": t["symbol"]} for t in d.trace
             if t["stage"] == "trigger" and t.get("fired")]
    positions = {}
    for s, p in sorted(st.positions.items()):
        px = st.last_price.get(s, math.nan)
        positions[s] = {"qty": p.qty, "entry": p.entry, "stop": p.stop, "take": p.take,
                        "value": p.qty * px}
    return Tick(
        now=d.now, state=d.trading_state.value, reasons=reasons, orders=orders,
        denials=[dict(x) for x in d.denials], clips=clips,
        cancels=[{"symbol": c.symbol, "reason": c.reason, "client_id": c.client_id} for c in d.cancels],
        events=[{"kind": e.kind, "message": e.message} for e in d.events],
        trips={n: {"action": t.action, "since": t.since_ms, "until": t.until_ms, "reason": t.reason}
               for n, t in sorted(st.trips.items())},
        fired=fired, equity=d.equity, cash=st.cash, positions=positions, ticks=ticks,
    )


def exercised(cp: CompiledPolicy, tick: Tick) -> set[tuple[str, str]]:
    caps = {c.name for c in cp.caps} | set(_limits(cp))
    out = {("trigger", f["rule"]) for f in tick.fired}
    out |= {("cap", c["cap"]) for c in tick.clips if c["cap"] in caps}
    out |= {("cap", d["code"][4:]) for d in tick.denials
            if str(d["code"]).startswith("cap:") and d["code"][4:] in caps}
    out |= {("breaker", n) for n, t in tick.trips.items()
            if n in {b.name for b in cp.breakers} and t["reason"] != CASE_TRIP}
    return out


def coverage(files: list[FileResult], policies: list[Path], compiled: _Compiled) -> list[Coverage]:
    by_policy: dict[Path, Coverage] = {}
    for f in files:
        if f.policy is None or f.policy_name is None:
            continue
        key = Path(f.policy).resolve()
        if key not in by_policy:
            cp = compiled.get(Path(f.policy), {})
            assert isinstance(cp, CompiledPolicy)
            by_policy[key] = Coverage(f.policy, cp.policy.name, _items(cp))
        cov = by_policy[key]
        for r in f.cases:
            if r.status != "pass":  # what failing cases reach is not what the tests verify
                continue
            for item in r.covered:
                cov.by.setdefault(item, []).append(r.case.id)
    for p in policies:
        key = p.resolve()
        if key in by_policy:
            continue
        cp = compiled.get(p, {})
        if isinstance(cp, CompiledPolicy):
            by_policy[key] = Coverage(str(p), cp.policy.name, _items(cp), tested=False)
    return sorted(by_policy.values(), key=lambda c: c.policy)


def _limits(cp: CompiledPolicy) -> list[str]:
    """The limits that act like caps without being written as one, by the engine's names:
    strategy budgets and themes' ``max_exposure``."""
    return [f"budget:{s}" for s in sorted(cp.budgets)] + [f"theme:{t}" for t in sorted(cp.theme_caps)]


def _items(cp: CompiledPolicy) -> list[tuple[str, str]]:
    return ([("trigger", t.name) for t in cp.triggers] + [("cap", c.name) for c in cp.caps]
            + [("cap", name) for name in _limits(cp)] + [("breaker", b.name) for b in cp.breakers])


# ---- checking --------------------------------------------------------------------------


def check(case: Case, t: Tick) -> list[Failure]:
    e = case.expect
    out: list[Failure] = []

    def fail(what: str, message: str, details: list[str] | None = None) -> None:
        out.append(Failure(what, message, details or [], e.spans.get(what)))

    eq = t.equity
    if e.orders is not None:
        _exact(fail, "orders", "order", e.orders, t.orders, eq, describe_order)
    if e.no_orders_for is not None:
        bad = [o for o in t.orders if o["symbol"] in e.no_orders_for]
        if bad:
            fail("no_orders_for", f"{len(bad)} order{'s' * (len(bad) != 1)} for "
                 f"{', '.join(sorted({o['symbol'] for o in bad}))}, expected none",
                 [f"produced: {describe_order(o, eq)}" for o in bad])
    if e.denials is not None:
        _exact(fail, "denials", "denial", e.denials, t.denials, eq, describe_denial)
    if e.blocked is not None:
        _at_least(fail, "blocked", "denial", e.blocked, t.denials, eq, describe_denial)
    if e.clipped is not None:
        _at_least(fail, "clipped", "clip", e.clipped, t.clips, eq, describe_clip)
    if e.cancels is not None:
        _exact(fail, "cancels", "cancel", e.cancels, t.cancels, eq, describe_cancel)
    if e.events is not None:
        _at_least(fail, "events", "event", e.events, t.events, eq, describe_event)
    if e.state is not None and e.state != t.state:
        fail("state", f"trading state is {t.state}, expected {e.state}",
             [f"because: {'; '.join(t.reasons) or 'no breaker active'}"])
    if e.trips is not None:
        _names(fail, "trips", "active trips", e.trips, list(t.trips))
    if e.fired is not None:
        _names(fail, "fired", "triggers fired", e.fired, sorted({f["rule"] for f in t.fired}))
    for key in ("equity", "cash"):
        num: Num | None = getattr(e, key)
        actual = getattr(t, key)
        if num is not None and not num.matches(actual, t.equity):
            fail(key, f"{key} is {actual:.2f}, expected {num.text}")
    if e.positions is not None:
        _positions(fail, e.positions, t.positions, eq)
    return out


Describe = Callable[[dict[str, Any], float], str]
Fail = Callable[[str, str, list[str] | None], None]


def _match(expected: list[Matcher], actual: list[dict[str, Any]], equity: float) -> dict[int, int]:
    """A maximum matching of expected items to distinct actual ones (expected -> actual)."""
    owner: dict[int, int] = {}

    def assign(i: int, seen: set[int]) -> bool:
        for j, a in enumerate(actual):
            if j in seen or not expected[i].matches(a, equity):
                continue
            seen.add(j)
            if j not in owner or assign(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(expected)):
        assign(i, set())
    return {i: j for j, i in owner.items()}


def _exact(fail: Fail, what: str, noun: str, expected: list[Matcher], actual: list[dict[str, Any]],
           equity: float, describe: Describe) -> None:
    matched = _match(expected, actual, equity)
    missing = [m for i, m in enumerate(expected) if i not in matched]
    extra = [a for j, a in enumerate(actual) if j not in matched.values()]
    if not missing and not extra:
        return
    details = [f"expected, not produced: {m.text}" for m in missing]
    details += [f"produced, not expected: {describe(a, equity)}" for a in extra]
    if missing and not actual:
        details.append(f"no {noun}s at all")
    fail(what, f"{len(actual)} {noun}{'s' * (len(actual) != 1)}, expected {len(expected)}"
         + (f" ({len(missing)} missing, {len(extra)} unexpected)" if actual and expected else ""), details)


def _at_least(fail: Fail, what: str, noun: str, expected: list[Matcher], actual: list[dict[str, Any]],
              equity: float, describe: Describe) -> None:
    missing = [m for m in expected if not any(m.matches(a, equity) for a in actual)]
    if not missing:
        return
    details = [f"expected, not found: {m.text}" for m in missing]
    details += [f"actual: {describe(a, equity)}" for a in actual] or [f"no {noun}s at all"]
    fail(what, f"{len(missing)} expected {noun}{'s' * (len(missing) != 1)} not found", details)


def _names(fail: Fail, what: str, noun: str, expected: list[str], actual: list[str]) -> None:
    missing = [n for n in expected if n not in actual]
    extra = [n for n in actual if n not in expected]
    if missing or extra:
        details = ([f"missing: {', '.join(missing)}"] if missing else []) + (
            [f"unexpected: {', '.join(extra)}"] if extra else [])
        fail(what, f"{noun}: [{', '.join(actual)}], expected [{', '.join(expected)}]", details)


def _positions(fail: Fail, expected: dict[str, Matcher | None], actual: dict[str, dict[str, Any]],
               equity: float) -> None:
    details = []
    for s, m in expected.items():
        if s not in actual:
            details.append(f"expected, not open: {s}" + (f" {m.text}" if m else ""))
        elif m is not None and not m.matches(actual[s], equity):
            details.append(f"{s}: expected {m.text}, found {describe_position(actual[s])}")
    details += [f"open, not expected: {s} {describe_position(p)}" for s, p in actual.items()
                if s not in expected]
    if details:
        fail("positions", "positions after the tick differ", details)


# ---- descriptions ----------------------------------------------------------------------


def _num(x: Any) -> str:
    if x is None:
        return "none"
    if isinstance(x, float) and not math.isfinite(x):
        return "unknown"
    return f"{x:.8g}" if isinstance(x, float) else str(x)


def describe_order(o: dict[str, Any], equity: float) -> str:
    share = f", {o['notional'] / equity:.2%} of equity" if equity > 0 and math.isfinite(equity) else ""
    how = f"limit {_num(o['limit'])}" if o.get("type") == "limit" else "market"
    text = (f"{o['side']} {o['symbol']} qty {_num(o['qty'])} {how} at {_num(o['price'])} "
            f"(notional {o['notional']:.2f}{share}) {o['kind']} by `{o['rule']}`")
    if o.get("stop") is not None:
        text += f" stop {_num(o['stop'])}"
    if o.get("take") is not None:
        text += f" take {_num(o['take'])}"
    return text


def describe_denial(d: dict[str, Any], equity: float = math.nan) -> str:
    return f"`{d['rule']}` on {d['symbol']} denied at {d['stage']}: [{d['code']}] {d['message']}"


def describe_clip(c: dict[str, Any], equity: float) -> str:
    share = f" ({c['to'] / equity:.2%} of equity)" if equity > 0 and math.isfinite(equity) else ""
    return (f"`{c['rule']}` on {c['symbol']} clipped by `{c['cap']}`: notional {_num(c['from'])} -> "
            f"{_num(c['to'])}{share}")


def describe_cancel(c: dict[str, Any], equity: float = math.nan) -> str:
    return f"cancel {c['client_id']} on {c['symbol']} ({c['reason']})"


def describe_event(e: dict[str, Any], equity: float = math.nan) -> str:
    return f"[{e['kind']}] {e['message']}"


def describe_position(p: dict[str, Any]) -> str:
    return (f"{{qty: {_num(p['qty'])}, entry: {_num(p['entry'])}, stop: {_num(p['stop'])}, "
            f"take: {_num(p['take'])}}}")
