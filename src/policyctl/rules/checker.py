"""The checker: resolve names, check arity, types and units, and lower into the graph.

Checking and lowering are one pass: each expression is typed bottom-up and, if it is well
typed, added to the policy's :class:`~policyctl.rules.graph.Graph` (where it is shared and
folded). A sub-expression with an error lowers to ``None`` and its parents stay quiet, so
one mistake gives one diagnostic. Codes ``T0xx`` are documented in ``docs/diagnostics.md``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from functools import cached_property

from policyctl.diagnostics import Diagnostics, Span
from policyctl.dsl import ast
from policyctl.dsl.parser import MAX_DEPTH
from policyctl.rules import catalogue as cat
from policyctl.rules.graph import Graph, fmt_duration
from policyctl.rules.ops import BINARY_OPS, COMPARISONS
from policyctl.rules.types import (
    BOOL,
    DURATION,
    MONEY,
    NUMBER,
    PERCENT,
    Kind,
    Type,
    UnitError,
    arith,
    comparable,
    money,
)

MAX_WINDOW = 1_000_000  # bars an indicator window or a history offset may span

LITERAL_TYPES = {
    ast.Unit.NUMBER: NUMBER,
    ast.Unit.PERCENT: PERCENT,
    ast.Unit.DURATION: DURATION,
}


@dataclass(frozen=True, slots=True)
class Ctx:
    """Where an expression is evaluated."""

    kind: str  # trigger | cap | breaker | param | setting
    rule: str
    per_symbol: bool  # may the expression depend on "the current symbol"?
    symbol: str | None = None  # bound by `of "SYM"`
    theme: str | None = None  # bound by `of "theme"`
    runs_on: tuple[str, ...] | None = None  # the symbols a per-symbol rule is evaluated for (None: all)

    def bind(self, symbol: str | None, theme: str | None) -> Ctx:
        return Ctx(self.kind, self.rule, self.per_symbol, symbol, theme, self.runs_on)


@dataclass
class Env:
    symbols: tuple[str, ...]
    themes: dict[str, tuple[str, ...]]
    timeframe_seconds: float
    quote: str | None
    params: dict[str, ast.Param]


def _a(name: str) -> str:
    return f"`{name}`"


def _suggest(name: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class Lowerer:
    def __init__(self, graph: Graph, env: Env, diags: Diagnostics):
        self.g = graph
        self.env = env
        self.diags = diags
        self.param_nodes: dict[str, int | None] = {}
        self._param_stack: list[str] = []
        self.used_params: set[str] = set()
        self.param_deps: dict[str, set[str]] = {}  # the params each param's definition reads

    # -- helpers --
    def err(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.diags.error(code, message, span, help)

    def type_of(self, node: int) -> Type:
        return self.g[node].type

    def is_zero(self, node: int) -> bool:
        n = self.g[node]
        return n.is_const and n.value == 0.0 and n.type.kind in (Kind.NUMBER, Kind.PERCENT)

    def symbol_quote(self, symbol: str | None) -> str | None:
        if symbol is not None:
            return symbol.split("/")[-1].split(":")[0]
        return self._common_quote

    @cached_property
    def _common_quote(self) -> str | None:
        quotes = {s.split("/")[-1].split(":")[0] for s in self.env.symbols}
        return quotes.pop() if len(quotes) == 1 else None

    # -- params --
    def param(self, name: str, span: Span) -> int | None:
        self.used_params.add(name)
        if self._param_stack:  # a param defined in terms of another
            self.param_deps.setdefault(self._param_stack[-1], set()).add(name)
        if name in self.param_nodes:
            return self.param_nodes[name]
        if name in self._param_stack:
            self.err("T017", f"param {_a(name)} is defined in terms of itself", span)
            return None
        p = self.env.params[name]
        reads = [n for n in ast.walk(p.value) if isinstance(n, ast.Call) or (
            isinstance(n, ast.Name) and n.dotted not in self.env.params and n.dotted != "timeframe")]
        if reads:
            self.err("T016", f"param {_a(name)} must be a constant", reads[0].span,
                     "params hold values like `20`, `3%` or `1000 USDT`; put market and account "
                     "values in rules")
            self.param_nodes[name] = None
            return None
        nesting = p.value.depth + sum(self.env.params[q].value.depth for q in self._param_stack)
        if nesting > MAX_DEPTH:  # each level recurses: bound params of params like expressions
            self.err("P004", f"param {_a(name)} is nested too deeply (more than {MAX_DEPTH} "
                     "levels through params)", span, "define it with fewer intermediate params")
            return None
        self._param_stack.append(name)
        node = self.expr(p.value, Ctx("param", name, per_symbol=False))
        self._param_stack.pop()
        if node is not None and not self.g[node].is_const:
            self.err("T016", f"param {_a(name)} must be a constant", p.value.span,
                     "params hold values like `20`, `3%` or `1000 USDT`; put logic in rules")
            node = None
        self.param_nodes[name] = node
        return node

    # -- expressions --
    def expr(self, e: ast.Expr, ctx: Ctx) -> int | None:
        if isinstance(e, ast.Literal):
            t = money(e.currency) if e.unit is ast.Unit.MONEY else LITERAL_TYPES[e.unit]
            return self.g.const(e.value, t, e.span)
        if isinstance(e, ast.BoolLit):
            return self.g.const(1.0 if e.value else 0.0, BOOL, e.span)
        if isinstance(e, ast.StrLit):
            self.err("T010", "a string is not a value here", e.span,
                     'strings name a symbol or theme after `of`: `close of "BTC/USDT"`')
            return None
        if isinstance(e, ast.Name):
            return self.name(e, ctx)
        if isinstance(e, ast.Call):
            return self.call(e, ctx)
        if isinstance(e, ast.Index):
            return self.index(e, ctx)
        if isinstance(e, ast.Of):
            return self.of(e, ctx)
        if isinstance(e, ast.Unary):
            return self.unary(e, ctx)
        return self.binary(e, ctx)

    def name(self, e: ast.Name, ctx: Ctx) -> int | None:
        dotted = e.dotted
        if len(e.parts) == 1 and dotted in self.env.params:
            node = self.param(dotted, e.span)
            if node is not None:
                n = self.g[node]
                return self.g.const(n.value, n.type, e.span)
            return None
        if dotted == "timeframe":
            return self.g.const(self.env.timeframe_seconds, DURATION, e.span)
        spec = cat.FIELDS.get(dotted)
        if spec is None:
            if dotted in cat.FUNCTIONS:
                f = cat.FUNCTIONS[dotted]
                self.err("T001", f"{_a(dotted)} is a function, not a value", e.span,
                         f"call it: `{f.example}`")
                return None
            names = [*cat.FIELDS, *cat.CONSTANTS, *self.env.params]
            self.err("T001", f"unknown name {_a(dotted)}", e.span,
                     _suggest(dotted, names) or "see `docs/language.md` for the names a policy can use")
            return None
        return self.field(spec, e.span, ctx)

    def field(self, spec: cat.FieldSpec, span: Span, ctx: Ctx) -> int | None:
        target: str | None = None
        if spec.scope is cat.Scope.SYMBOL:
            if spec.of == "theme":
                target = ctx.theme
                if target is None and ctx.symbol is not None:
                    themes = [t for t, syms in self.env.themes.items() if ctx.symbol in syms]
                    if len(themes) != 1:
                        self.err("T011", f"`{ctx.symbol}` belongs to no theme" if not themes else
                                 f"`{ctx.symbol}` belongs to {len(themes)} themes, so {_a(spec.name)} of it is "
                                 "ambiguous", span, 'name the theme: `exposure.theme of "majors"`')
                        return None
                    target = themes[0]
                elif target is None and ctx.per_symbol:  # the theme of each symbol the rule runs on
                    for sym in ctx.runs_on or self.env.symbols:
                        themes = [t for t, syms in self.env.themes.items() if sym in syms]
                        if len(themes) > 1:
                            self.err("T011", f"{_a(spec.name)} is the theme of the symbol evaluated, but `{sym}` "
                                     f"belongs to {len(themes)} themes ({', '.join(themes)})", span,
                                     f'name the theme: `exposure.theme of "{themes[0]}"`')
                            return None
            else:
                if ctx.theme is not None:
                    self.err("T011", f"{_a(spec.name)} needs a symbol, but `{ctx.theme}` is a theme",
                             span)
                    return None
                target = ctx.symbol
            if target is None and not ctx.per_symbol:
                self.err("T007", f"{_a(spec.name)} is a per-symbol value, but a {ctx.kind} is "
                         "evaluated once for the whole portfolio", span,
                         'name a symbol with `of "BTC/USDT"`, or wrap the condition in `any(...)`')
                return None
        t = spec.type
        if t.kind is Kind.MONEY:
            price = spec.source is cat.Source.MARKET or spec.name == "position.entry"
            t = money(self.symbol_quote(target) if price else self.env.quote)
        return self.g.add(
            "field", (), (spec.name, target), t, span,
            per_symbol=spec.scope is cat.Scope.SYMBOL and target is None,
            market=spec.source is cat.Source.MARKET,
        )

    def of(self, e: ast.Of, ctx: Ctx) -> int | None:
        target = e.target
        if target in self.env.symbols:
            return self.expr(e.base, ctx.bind(target, None))
        if target in self.env.themes:
            return self.expr(e.base, ctx.bind(None, target))
        hint = _suggest(target, [*self.env.symbols, *self.env.themes])
        self.err("T011", f"unknown symbol or theme `{target}`", e.target_span or e.span,
                 hint or f"the policy's symbols are {', '.join(self.env.symbols) or 'none'}")
        return None

    def window(self, e: ast.Expr, fname: str, ctx: Ctx) -> int | None:
        """A window argument: a whole number of bars, or a duration (converted to bars)."""
        node = self.expr(e, ctx)
        if node is None:
            return None
        n = self.g[node]
        if not n.is_const:
            self.err("T008", f"the window of {_a(fname)} must be a constant", e.span,
                     "write a number of bars (`20`) or a duration (`1h`)")
            return None
        v = n.value
        if not math.isfinite(v):  # e.g. `1h / 0`, or a param of `.inf`
            self.err("T008", f"the window of {_a(fname)} is not a finite number", e.span)
            return None
        if n.type.kind is Kind.DURATION:
            tf = self.env.timeframe_seconds
            bars = v / tf
            if abs(bars - round(bars)) > 1e-9 or round(bars) < 1:
                self.err("T008", f"window `{ast.to_source(e)}` is not a whole number of "
                         f"{fmt_duration(tf)} bars", e.span,
                         "use a multiple of the policy's timeframe")
                return None
            if round(bars) > MAX_WINDOW:
                self.err("T008", f"window `{ast.to_source(e)}` is {round(bars):,} bars of {fmt_duration(tf)}, more "
                         f"than the {MAX_WINDOW:,} a window may hold", e.span,
                         "use a shorter duration, or a longer timeframe")
                return None
            return round(bars)
        if n.type.kind is not Kind.NUMBER or v != int(v) or v < 1 or v > MAX_WINDOW:
            self.err("T008", f"the window of {_a(fname)} must be a whole number of bars from 1 "
                     f"to {MAX_WINDOW}, or a duration", e.span)
            return None
        return int(v)

    def series(self, e: ast.Expr, fname: str, ctx: Ctx) -> int | None:
        node = self.expr(e, ctx)
        if node is None:
            return None
        n = self.g[node]
        if not n.market or n.is_const:
            what = "a constant" if n.is_const else "account state"
            self.err("T006", f"{_a(fname)} needs a market series, but this is {what}", e.span,
                     "indicators and history apply to candle data: `close`, `high - low`, ...")
            return None
        if not n.type.numeric:
            self.err("T003", f"{_a(fname)} needs a numeric series, found {n.type}", e.span)
            return None
        return node

    def call(self, e: ast.Call, ctx: Ctx) -> int | None:
        spec = cat.FUNCTIONS.get(e.func)
        span = e.name_span or e.span
        if spec is None:
            if e.func in cat.FIELDS or e.func in self.env.params:
                self.err("T001", f"{_a(e.func)} is a value, not a function", span,
                         f"write `{e.func}` without parentheses")
            else:
                self.err("T001", f"unknown function {_a(e.func)}", span,
                         _suggest(e.func, list(cat.FUNCTIONS)) or "see `docs/language.md`")
            return None
        n_args = len(e.args)
        if (spec.variadic and n_args < spec.min_args) or (not spec.variadic and n_args != len(spec.args)):
            sig = ", ".join(a.name for a in spec.args) + (", ..." if spec.variadic else "")
            self.err("T002", f"{_a(e.func)} takes {spec.arity} argument"
                     f"{'s' if spec.arity != '1' else ''}, found {n_args}", e.span,
                     f"`{e.func}({sig})`, for example `{spec.example}`")
            return None
        if spec.category == "indicator":
            return self.indicator(e, spec, ctx)
        if spec.category == "window":
            arg = self.expr(e.args[0], ctx)
            if arg is None:
                return None
            a = self.g[arg]
            if a.type.kind is not Kind.DURATION or not a.is_const or not a.value > 0:  # NaN too
                self.err("T008", f"{_a(e.func)} takes a positive constant duration, like "
                         f"`{spec.example}`", e.args[0].span)
                return None
            t = spec.result
            assert isinstance(t, Type)
            if t.kind is Kind.MONEY:
                t = money(self.env.quote)
            return self.g.add("window", (), (e.func, a.value), t, e.span, per_symbol=False, market=False)
        if spec.category == "aggregate":
            arg = self.expr(e.args[0], Ctx(ctx.kind, ctx.rule, True, ctx.symbol, ctx.theme, ctx.runs_on))
            if arg is None:
                return None
            if self.type_of(arg).kind is not Kind.BOOL:
                self.err("T009", f"{_a(e.func)} needs a condition, found {self.type_of(arg)}", e.args[0].span)
                return None
            if not self.g[arg].per_symbol:
                return arg  # the same for every symbol: nothing to aggregate
            return self.g.add(e.func, (arg,), (), BOOL, e.span, per_symbol=False)
        # math
        args = [self.expr(a, ctx) for a in e.args]
        if any(a is None for a in args):
            return None
        nodes = [a for a in args if a is not None]
        types = [self.type_of(a) for a in nodes]
        for arg_e, t in zip(e.args, types, strict=True):
            if not t.numeric:
                self.err("T003", f"{_a(e.func)} needs numbers, found {t}", arg_e.span)
                return None
        result = types[0]
        if spec.result == "common":
            for arg_e, t, node in zip(e.args[1:], types[1:], nodes[1:], strict=True):
                try:
                    comparable(result, t, b_is_zero=self.is_zero(node))
                except UnitError as ue:
                    self.err("T004", f"arguments of {_a(e.func)} must share one unit: {ue.message}",
                             arg_e.span, ue.help)
                    return None
        return self.g.add(e.func, tuple(nodes), (), result, e.span)

    def indicator(self, e: ast.Call, spec: cat.FunctionSpec, ctx: Ctx) -> int | None:
        fname = e.func
        if fname in ("crosses_above", "crosses_below"):
            # a series against a series, or against a constant level: crosses_above(rsi(close, 14), 30)
            level = [self._is_constant(x) for x in e.args]
            if all(level):
                self.err("T006", f"{_a(fname)} needs at least one market series", e.span,
                         "for example `crosses_above(rsi(close, 14), 30)`")
                return None
            a = self.expr(e.args[0], ctx) if level[0] else self.series(e.args[0], fname, ctx)
            b = self.expr(e.args[1], ctx) if level[1] else self.series(e.args[1], fname, ctx)
            if a is None or b is None:
                return None
            try:
                comparable(self.type_of(a), self.type_of(b))
            except UnitError as ue:
                self.err("T004", f"{_a(fname)} compares its arguments: {ue.message}", e.span, ue.help)
                return None
            return self.g.add("cross", (a, b), (fname.split("_")[1],), BOOL, e.span)
        if fname == "atr":
            n = self.window(e.args[0], fname, ctx)
            if n is None:
                return None
            fields = [self.field(cat.FIELDS[f], e.span, ctx) for f in ("high", "low", "close")]
            if any(f is None for f in fields):
                return None
            hlc = tuple(f for f in fields if f is not None)
            return self.g.add("ind", hlc, ("atr", n), self.type_of(hlc[2]), e.span)
        x = self.series(e.args[0], fname, ctx)
        n = self.window(e.args[1], fname, ctx)
        if x is None or n is None:
            return None
        t = self.type_of(x) if spec.result == "arg0" else spec.result
        assert isinstance(t, Type)
        return self.g.add("ind", (x,), (fname, n), t, e.span)

    def _is_constant(self, e: ast.Expr) -> bool:
        """Whether an expression is a literal or built only from literals and params."""
        return all(isinstance(n, ast.Literal | ast.Unary | ast.Binary) or
                   (isinstance(n, ast.Name) and n.dotted in self.env.params) for n in ast.walk(e))

    def index(self, e: ast.Index, ctx: Ctx) -> int | None:
        base = self.series(e.base, ast.to_source(e), ctx)
        n = self.window(e.offset, ast.to_source(e), ctx) if not _is_zero_literal(e.offset) else 0
        if base is None or n is None:
            return None
        if n == 0:
            return base
        return self.g.add("shift", (base,), (n,), self.type_of(base), e.span)

    def unary(self, e: ast.Unary, ctx: Ctx) -> int | None:
        x = self.expr(e.operand, ctx)
        if x is None:
            return None
        t = self.type_of(x)
        if e.op == "not":
            if t.kind is not Kind.BOOL:
                self.err("T009", f"`not` needs a condition, found {t}", e.operand.span)
                return None
            return self.g.add("not", (x,), (), BOOL, e.span)
        if not t.numeric:
            self.err("T003", f"`{e.op}` needs a number, found {t}", e.operand.span)
            return None
        return x if e.op == "+" else self.g.add("neg", (x,), (), t, e.span)

    def binary(self, e: ast.Binary, ctx: Ctx) -> int | None:
        a = self.expr(e.left, ctx)
        b = self.expr(e.right, ctx)
        if a is None or b is None:
            return None
        op = BINARY_OPS[e.op]
        ta, tb = self.type_of(a), self.type_of(b)
        span = e.op_span or e.span
        if op in ("and", "or"):
            for side, t in ((e.left, ta), (e.right, tb)):
                if t.kind is not Kind.BOOL:
                    self.err("T009", f"`{e.op}` needs conditions on both sides, found {t}", side.span,
                             "compare the value with something: `x > 0`")
                    return None
            return self.g.add(op, (a, b), (), BOOL, e.span)
        try:
            if op in COMPARISONS:
                comparable(ta, tb, self.is_zero(a), self.is_zero(b))
                if ta.kind is Kind.BOOL and op not in ("eq", "ne"):
                    raise UnitError(f"cannot order conditions with `{e.op}`")
                return self.g.add(op, (a, b), (), BOOL, e.span)
            t = arith(e.op, ta, tb, b_is_zero=self.is_zero(b), a_is_zero=self.is_zero(a))
        except UnitError as ue:
            self.err("T004", ue.message, span, ue.help)
            return None
        return self.g.add(op, (a, b), (), t, e.span)


def _is_zero_literal(e: ast.Expr) -> bool:
    return isinstance(e, ast.Literal) and e.value == 0 and e.unit is ast.Unit.NUMBER


def expect(
    low: Lowerer, e: ast.Expr, ctx: Ctx, kinds: tuple[Kind, ...], what: str, example: str
) -> int | None:
    """Lower ``e`` and require one of ``kinds``; T003 names what was expected."""
    node = low.expr(e, ctx)
    if node is None:
        return None
    t = low.type_of(node)
    if t.kind not in kinds:
        low.err("T003", f"{what} must be {' or '.join(_kind_words(k) for k in kinds)}, found {t}",
                e.span, f"for example `{example}`")
        return None
    return node


def _kind_words(k: Kind) -> str:
    return {
        Kind.NUMBER: "a number",
        Kind.PERCENT: "a percentage",
        Kind.DURATION: "a duration",
        Kind.MONEY: "money",
        Kind.BOOL: "a condition",
        Kind.STRING: "a string",
    }[k]


__all__ = ["BOOL", "MONEY", "Ctx", "Env", "Lowerer", "expect"]
