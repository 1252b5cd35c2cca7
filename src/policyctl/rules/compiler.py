"""Compile a loaded policy into one evaluation graph plus typed rule records.

``compile_policy`` runs the checker over every param, trigger, cap, breaker and setting,
then the cross-policy lints (``rules.lints``), and returns a :class:`CompiledPolicy`: the
graph with one output per value a rule needs, and small records saying what each rule does
with those outputs. This is what the engine, the simulator and the live runtime consume.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policyctl.diagnostics import Diagnostics, PolicyError, Span
from policyctl.dsl import ast
from policyctl.dsl.loader import load_policy
from policyctl.dsl.model import Policy, Setting
from policyctl.rules import catalogue as cat
from policyctl.rules.checker import Ctx, Env, Lowerer, expect
from policyctl.rules.graph import Graph
from policyctl.rules.types import Kind

K = Kind

# Settings written with units: key -> (accepted kinds, example).
SETTINGS: dict[str, tuple[tuple[Kind, ...], str]] = {
    "max_order_notional": ((K.MONEY,), "1000 USDT"),
    "price_collar": ((K.PERCENT,), "2%"),
    "max_spread": ((K.PERCENT,), "30bps"),
    "max_quote_age": ((K.DURATION,), "30s"),
    "bad_tick": ((K.PERCENT,), "10%"),
    "bad_tick_volume": ((K.NUMBER,), "3"),
    "max_orders": ((K.NUMBER,), "10"),
    "order_window": ((K.DURATION,), "1m"),
    "fees.maker": ((K.PERCENT,), "0.1%"),
    "fees.taker": ((K.PERCENT,), "0.1%"),
    "slippage": ((K.PERCENT,), "5bps"),
    "maker_wait": ((K.DURATION,), "30s"),
    "pending_ttl": ((K.DURATION,), "2m"),
    "stale_after": ((K.DURATION,), "10m"),
    "dust": ((K.MONEY,), "1 USDT"),
    "min_trade": ((K.MONEY,), "10 USDT"),
    "after_fill": ((K.DURATION,), "15m"),
    "after_stopout": ((K.DURATION,), "1h"),
    "max_exposure": ((K.PERCENT,), "60%"),
    "budget": ((K.PERCENT,), "10%"),
}

COUNT_CAPS = frozenset({"positions.open", "orders.open", "trades"})


@dataclass(frozen=True, slots=True)
class SizeInfo:
    kind: str  # fraction | amount | risk
    base: str | None  # equity | cash
    amount: int  # node
    per: int | None


@dataclass(frozen=True, slots=True)
class TriggerInfo:
    name: str
    when: int
    action: str  # buy | sell | close
    size: SizeInfo | None
    stop: int | None
    take: int | None
    symbols: tuple[str, ...]
    strategy: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class CapInfo:
    name: str
    metric: str  # a field name or "trades"
    target: str | None  # symbol or theme named with `of`
    window_seconds: float | None  # for trades(w)
    op: str  # "le" | "lt" (the metric on the left)
    metric_node: int
    limit: int
    when: int
    mode: str  # clip | block
    strategy: str | None
    per_symbol: bool
    span: Span
    limit_per_symbol: bool = False  # the limit depends on the symbol (read from its row)


@dataclass(frozen=True, slots=True)
class BreakerInfo:
    name: str
    when: int
    action: str
    duration_seconds: float | None
    span: Span


@dataclass
class CompiledPolicy:
    policy: Policy
    graph: Graph
    triggers: list[TriggerInfo] = field(default_factory=list)
    caps: list[CapInfo] = field(default_factory=list)
    breakers: list[BreakerInfo] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)
    flags: dict[str, object] = field(default_factory=dict)  # plain YAML settings (bools, enums)
    theme_caps: dict[str, float] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    used_params: set[str] = field(default_factory=set)
    hash: str = ""
    _cap_order: dict[str | None, list[CapInfo]] = field(default_factory=dict, repr=False)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # what the runtime derives once per policy

    def caps_for(self, strategy: str | None) -> list[CapInfo]:
        """The caps an order of ``strategy`` is checked against: the strategy's own, then the global ones."""
        got = self._cap_order.get(strategy)
        if got is None:
            got = [c for c in self.caps if c.strategy is not None and c.strategy == strategy]
            got += [c for c in self.caps if c.strategy is None]
            self._cap_order[strategy] = got
        return got

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.policy.market.symbols

    @property
    def timeframe_seconds(self) -> float:
        return self.policy.market.timeframe_seconds


class Compiler:
    def __init__(self, policy: Policy, diags: Diagnostics):
        self.policy = policy
        self.diags = diags
        self.graph = Graph()
        m = policy.market
        self.env = Env(m.symbols, {t.name: t.symbols for t in m.themes.values()},
                       m.timeframe_seconds, m.quote, policy.params)
        self.low = Lowerer(self.graph, self.env, diags)
        self.out = CompiledPolicy(policy, self.graph)

    def run(self) -> CompiledPolicy:
        p = self.policy
        self.check_names()
        self.check_market()
        for name in p.params:
            node = self.low.param(name, p.params[name].span)
            if node is not None:
                self.out.params[name] = self.graph[node].value
        self.low.used_params.clear()
        for t in p.triggers:
            self.trigger(t)
        for c in p.caps:
            self.cap(c)
        for b in p.breakers:
            self.breaker(b)
        self.settings()
        used, todo = set(self.low.used_params), list(self.low.used_params)
        while todo:  # a param read by a used param's definition is used too
            for dep in self.low.param_deps.get(todo.pop(), ()):
                if dep not in used:
                    used.add(dep)
                    todo.append(dep)
        self.out.used_params = used
        self.out.hash = policy_hash(p)
        return self.out

    # -- names and market --
    def check_names(self) -> None:
        for kind, name, where, first in self.policy.duplicates:
            self.diags.error("L011", f"duplicate {kind} name `{name}`", where,
                             f"first defined at {first}")
        named: list[tuple[str, str, Span]] = [
            ("param", n, p.name_span or p.span) for n, p in self.policy.params.items()
        ]
        named += [("trigger", t.name, t.name_span or t.span) for t in self.policy.triggers]
        named += [("cap", c.name, c.name_span or c.span) for c in self.policy.caps]
        named += [("breaker", b.name, b.name_span or b.span) for b in self.policy.breakers]
        for kind, name, span in named:
            if name in cat.KEYWORDS:
                self.diags.error("T015", f"`{name}` is a reserved word and cannot name a {kind}",
                                 span)
            elif kind == "param" and (name in cat.FIELDS or name in cat.FUNCTIONS
                                      or name in cat.CONSTANTS or name.split(".")[0] in
                                      {f.split(".")[0] for f in cat.FIELDS}):
                self.diags.warning("L012", f"param `{name}` shadows the builtin `{name}`", span,
                                   "the param wins inside this policy; rename it to avoid confusion")

    def check_market(self) -> None:
        m = self.policy.market
        symbols = set(m.symbols)
        # the account is kept in one currency: every symbol's prices must be in it
        quotes = {s: s.split("/")[-1].split(":")[0] for s in m.symbols if "/" in s}
        if m.quote is None and len(set(quotes.values())) > 1:
            first = next(iter(quotes.values()))
            odd = next(sym for sym, q in quotes.items() if q != first)  # the first symbol that differs
            self.diags.error("T005", "the symbols are quoted in several currencies ("
                             + ", ".join(sorted(set(quotes.values()))) + "): the account is kept in one",
                             m.symbol_spans.get(odd, m.span),
                             "trade symbols of one quote currency (one policy per quote currency)")
        elif m.quote is not None:
            for sym, q in quotes.items():
                if q != m.quote:
                    self.diags.error("T005", f"`{sym}` is quoted in {q}, the account in {m.quote}: its prices, "
                                     "orders and exposure would mix currencies", m.symbol_spans.get(sym, m.span),
                                     f"trade symbols quoted in {m.quote} (one policy per quote currency)")
        for theme in m.themes.values():
            for s in theme.symbols:
                if s not in symbols:
                    self.diags.error("T018", f"theme `{theme.name}` lists `{s}`, which is not "
                                     "among the market's symbols", theme.span)
            if theme.max_exposure is not None:
                v = self.setting_value(theme.max_exposure, "max_exposure")
                if v is not None:
                    self.out.theme_caps[theme.name] = v
        for strat in self.policy.strategies.values():
            if strat.budget is not None:
                v = self.setting_value(strat.budget, "budget")
                if v is not None:
                    self.out.budgets[strat.name] = v

    # -- rules --
    def trigger(self, t: ast.Trigger) -> None:
        ctx = Ctx("trigger", t.name, per_symbol=True, runs_on=tuple(t.symbols) or None)
        rid = t.name
        for s in t.symbols:
            if s not in self.env.symbols:
                self.diags.error("T018", f"trigger `{t.name}` runs on `{s}`, which is not among "
                                 "the market's symbols", t.name_span or t.span)
        if t.strategy is not None and t.strategy not in self.policy.strategies:
            self.diags.error("T018", f"unknown strategy `{t.strategy}`", t.name_span or t.span,
                             "declare it under `strategies:`")
        when = expect(self.low, t.when, ctx, (K.BOOL,), "a trigger's `when`", "close > sma(close, 20)")
        a = t.action
        size = stop = take = None
        ok = when is not None
        if isinstance(a, ast.Buy | ast.Sell):
            size = self.size(a.size, ctx)
            ok = ok and size is not None
            if isinstance(a, ast.Buy):
                if a.stop is not None:
                    stop = expect(self.low, a.stop, ctx, (K.PERCENT, K.MONEY), "a stop distance",
                                  "stop 3%")
                    ok = ok and stop is not None and self._positive_distance(stop, a.stop, "stop")
                if a.take is not None:
                    take = expect(self.low, a.take, ctx, (K.PERCENT, K.MONEY), "a take-profit distance",
                                  "take 6%")
                    ok = ok and take is not None and self._positive_distance(take, a.take, "take")
                if a.size.kind == "risk" and a.size.per is None and a.stop is None:
                    self.diags.error("T012", "sizing by risk needs a stop distance", a.size.span,
                                     "add `stop 3%`, or say the distance: `risk 1% of equity per "
                                     "2 * atr(14)`")
                    ok = False
            elif a.size.kind == "risk":  # a sell has no stop to measure a risk from
                self.diags.error("T012", "a sell cannot be sized by risk: it has no stop distance", a.size.span,
                                 "sell a share of equity or cash (`sell 5% of equity`), an amount "
                                 "(`sell 500 USDT`), or `close` the whole position")
                ok = False
        if not ok or when is None:
            return
        kind = "buy" if isinstance(a, ast.Buy) else "sell" if isinstance(a, ast.Sell) else "close"
        self.graph.output("trigger", rid, "when", when)
        for role, node in (("stop", stop), ("take", take)):
            if node is not None:
                self.graph.output("trigger", rid, role, node)
        if size is not None:
            self.graph.output("trigger", rid, "size", size.amount)
            if size.per is not None:
                self.graph.output("trigger", rid, "per", size.per)
        self.out.triggers.append(TriggerInfo(t.name, when, kind, size, stop, take, t.symbols,
                                             t.strategy, t.span))

    def size(self, s: ast.Size, ctx: Ctx) -> SizeInfo | None:
        if s.kind == "amount":
            amount = expect(self.low, s.amount, ctx, (K.MONEY,), "an order size", "500 USDT")
            cur = self.graph[amount].type.currency if amount is not None else None
            if cur and self.env.quote and cur != self.env.quote:
                self.diags.error("T005", f"the order size is in `{cur}`, but the policy trades in "
                                 f"`{self.env.quote}`", s.amount.span,
                                 f"give the size in `{self.env.quote}`")
                return None
            self._positive_size(amount, s)
            return SizeInfo("amount", None, amount, None) if amount is not None else None
        amount = expect(self.low, s.amount, ctx, (K.PERCENT,),
                        f"a size {'at risk ' if s.kind == 'risk' else ''}as a share of {s.base}",
                        f"2% of {s.base}")
        self._positive_size(amount, s)
        if amount is not None and self.graph[amount].is_const and s.kind == "fraction" \
                and self.graph[amount].value > 1.0:
            self.diags.error("S004", f"an order of {ast.to_source(s.amount)} of {s.base} spends more than the "
                             "account has (a spot account does not borrow)", s.amount.span,
                             f"at most `100% of {s.base}`")
        per = None
        if s.per is not None:
            per = expect(self.low, s.per, ctx, (K.MONEY,), "the price distance after `per`",
                         "per 2 * atr(14)")
            if per is None:
                return None
        return SizeInfo(s.kind, s.base, amount, per) if amount is not None else None

    def _positive_size(self, amount: int | None, s: ast.Size) -> None:
        """A constant size must be positive: an order of nothing, or less, is never sent."""
        if amount is not None and self.graph[amount].is_const and not self.graph[amount].value > 0:
            self.diags.error("S004", f"the order size `{ast.to_source(s.amount)}` is not positive", s.amount.span,
                             "an order size is more than zero: `2% of equity`, `500 USDT`")

    def _positive_distance(self, node: int, e: ast.Expr, what: str) -> bool:
        """A constant stop or take-profit distance must be positive (it is measured away from the
        entry, below it for the stop, above it for the take-profit)."""
        n = self.graph[node]
        if n.is_const and n.type.kind is K.MONEY and not n.value > 0:  # (a percentage: lints L003, L013)
            self.diags.error("S004", f"the {what} distance `{ast.to_source(e)}` is not positive", e.span,
                             f"a distance from the entry price, more than zero: `{what} 3%`, "
                             f"`{what} 2 * atr(14)`")
            return False
        return True

    def cap(self, c: ast.Cap) -> None:
        e = c.expr
        if not (isinstance(e, ast.Binary) and e.op in ("<=", "<", ">=", ">")):
            self.diags.error("T013", f"cap `{c.name}` must compare a limited quantity with a limit",
                             e.span, "for example `exposure.total <= 25%` or `trades(1h) <= 5`")
            return
        metric_e, limit_e, op = e.left, e.right, e.op
        if not _is_metric(metric_e) and _is_metric(limit_e):
            metric_e, limit_e = limit_e, metric_e
            op = {">=": "<=", ">": "<"}.get(op, op)
        elif op in (">=", ">"):
            op = "bad"
        if not _is_metric(metric_e) or op == "bad":
            capped = ", ".join(f"`{n}`" for n in sorted(cat.CAPPABLE_FIELDS)) + ", `trades(window)`"
            self.diags.error("T013", f"cap `{c.name}` must put an upper limit on one of {capped}",
                             e.span, "write it as `quantity <= limit`")
            return
        per_symbol_ok = True
        ctx = Ctx("cap", c.name, per_symbol=per_symbol_ok)
        metric = self.low.expr(metric_e, ctx)
        limit = self.low.expr(limit_e, ctx)
        when = self.low.expr(e, ctx)
        if metric is None or limit is None or when is None:
            return
        name, target, window = _metric_parts(metric_e)
        default_mode = "block" if name in COUNT_CAPS else "clip"
        mode = c.mode or default_mode
        if mode not in ("clip", "block"):
            self.diags.error("T014", f"`on_breach` must be `clip` or `block`, found `{mode}`", c.span)
            return
        if mode == "clip" and name in COUNT_CAPS:
            self.diags.error("T014", f"cap `{c.name}` limits a count, so it can only block",
                             c.span, "remove `clip`, or write `block`")
            return
        if self.graph[limit].per_symbol and not self.graph[metric].per_symbol:
            self.diags.error("T007", "the limit of a portfolio-wide cap cannot depend on the symbol",
                             limit_e.span)
            return
        if c.strategy is not None and c.strategy not in self.policy.strategies:
            self.diags.error("T018", f"unknown strategy `{c.strategy}`", c.name_span or c.span,
                             "declare it under `strategies:`")
        for role, node in (("metric", metric), ("limit", limit), ("when", when)):
            self.graph.output("cap", c.name, role, node)
        self.out.caps.append(CapInfo(
            c.name, name, target, window, "le" if op == "<=" else "lt", metric, limit, when, mode,
            c.strategy, self.graph[metric].per_symbol, c.span, self.graph[limit].per_symbol,
        ))

    def breaker(self, b: ast.Breaker) -> None:
        ctx = Ctx("breaker", b.name, per_symbol=False)
        when = expect(self.low, b.when, ctx, (K.BOOL,), "a breaker's `when`", "pnl(1d) <= -3%")
        duration = None
        if b.action.duration is not None:
            d = expect(self.low, b.action.duration, ctx, (K.DURATION,), "a breaker's duration",
                       "halt for 24h")
            if d is None:
                return
            if not self.graph[d].is_const or not self.graph[d].value > 0:  # NaN too
                self.diags.error("T008", "a breaker's duration must be a positive constant",
                                 b.action.duration.span)
                return
            duration = self.graph[d].value
        if when is None:
            return
        self.graph.output("breaker", b.name, "when", when)
        n = self.graph[when]
        if n.op in ("le", "lt", "ge", "gt") and not any(self.graph[a].per_symbol for a in n.args):
            # the runtime exports the distance to tripping, read from both sides of the comparison
            self.graph.output("breaker", b.name, "lhs", n.args[0])
            self.graph.output("breaker", b.name, "rhs", n.args[1])
        self.out.breakers.append(BreakerInfo(b.name, when, b.action.kind, duration, b.span))

    # -- settings --
    def setting_value(self, s: Setting, key: str) -> float | None:
        kinds, example = SETTINGS[key]
        if s.expr is None:
            self.diags.error("T003", f"`{key}` must be {_kinds(kinds)}, found `{s.raw}`", s.span,
                             f"for example `{example}`")
            return None
        node = expect(self.low, s.expr, Ctx("setting", key, per_symbol=False), kinds, f"`{key}`",
                      example)
        if node is None:
            return None
        n = self.graph[node]
        if isinstance(s.raw, float) and not math.isfinite(s.raw):
            return None  # `.inf`, `.nan`: the YAML reader has reported it (Y011)
        if not n.is_const or not math.isfinite(n.value):
            self.diags.error("T016", f"`{key}` must be a finite constant", s.span, f"for example `{example}`")
            return None
        if kinds[0] is K.MONEY and n.type.currency and self.env.quote and n.type.currency != self.env.quote:
            self.diags.error("T005", f"`{key}` is in `{n.type.currency}`, but the policy trades in "
                             f"`{self.env.quote}`", s.span)
            return None
        return n.value

    def settings(self) -> None:
        p = self.policy
        for group in (p.guards, p.execution, p.cooldowns):
            for key, s in group.items():
                if key in SETTINGS:
                    v = self.setting_value(s, key)
                    if v is not None:
                        self.out.settings[key] = v
                else:
                    self.out.flags[key] = s.raw


def _kinds(kinds: tuple[Kind, ...]) -> str:
    return " or ".join({K.MONEY: "money", K.PERCENT: "a percentage", K.DURATION: "a duration",
                        K.NUMBER: "a number", K.BOOL: "true or false", K.STRING: "a string"}[k]
                       for k in kinds)


def _is_metric(e: ast.Expr) -> bool:
    if isinstance(e, ast.Of):
        e = e.base
    if isinstance(e, ast.Name):
        return e.dotted in cat.CAPPABLE_FIELDS
    return isinstance(e, ast.Call) and e.func in cat.CAPPABLE_FUNCTIONS


def _metric_parts(e: ast.Expr) -> tuple[str, str | None, float | None]:
    target = None
    if isinstance(e, ast.Of):
        target, e = e.target, e.base
    if isinstance(e, ast.Name):
        return e.dotted, target, None
    assert isinstance(e, ast.Call)
    arg = e.args[0] if e.args else None
    window = arg.value if isinstance(arg, ast.Literal) else None
    return e.func, target, window


def policy_hash(p: Policy) -> str:
    h = hashlib.sha256()
    for f in sorted(p.sources):
        h.update(Path(f).name.encode())
        h.update(b"\0")
        h.update(p.sources[f].encode())
        h.update(b"\0")
    for k in sorted(p.param_overrides):
        h.update(f"{k}={p.param_overrides[k]}\0".encode())
    return h.hexdigest()[:16]


def compile_policy(policy: Policy, diags: Diagnostics, lint: bool = True) -> CompiledPolicy:
    compiled = Compiler(policy, diags).run()
    if lint:
        from policyctl.rules.lints import run_lints

        run_lints(compiled, diags)
    return compiled


def load_and_compile(
    path: str | Path, params: dict[str, str] | None = None, diags: Diagnostics | None = None
) -> CompiledPolicy:
    """Load, check and compile a policy; raise :class:`PolicyError` if it has errors."""
    diags = diags if diags is not None else Diagnostics()
    policy = load_policy(path, diags, params)
    if policy is None or diags.has_errors:
        raise PolicyError(diags.sorted())
    compiled = compile_policy(policy, diags)
    if diags.has_errors:
        raise PolicyError(diags.sorted())
    return compiled
