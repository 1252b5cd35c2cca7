"""Sanity checks across a whole compiled policy: contradictions a type checker cannot see.

Each lint is a small function registered in :data:`LINTS` under its code; it reads the
compiled policy and reports warnings or errors. They catch the mistakes that lose money
quietly: a cap that can never bind, a stop beyond the take-profit, a rule that can never
fire. Codes ``L0xx`` are documented with examples in ``docs/diagnostics.md``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from policyctl.diagnostics import Diagnostics
from policyctl.dsl.model import Setting
from policyctl.rules import catalogue as cat
from policyctl.rules.compiler import CompiledPolicy
from policyctl.rules.graph import Graph, fmt_duration
from policyctl.rules.types import Kind

Lint = Callable[[CompiledPolicy, Diagnostics], None]
LINTS: dict[str, Lint] = {}


def lint(code: str) -> Callable[[Lint], Lint]:
    def register(f: Lint) -> Lint:
        LINTS[code] = f
        return f

    return register


def run_lints(cp: CompiledPolicy, diags: Diagnostics) -> None:
    for f in LINTS.values():
        f(cp, diags)


def _const(g: Graph, node: int) -> float | None:
    n = g[node]
    return n.value if n.is_const and not math.isnan(n.value) else None


def _pct(v: float) -> str:
    return f"{v * 100:g}%"


# ---- caps -------------------------------------------------------------------------------


def _exposure_limits(cp: CompiledPolicy) -> dict[str, list[tuple[str | None, float, str]]]:
    """metric -> [(target, constant limit, cap name)] for caps with constant limits."""
    out: dict[str, list[tuple[str | None, float, str]]] = {}
    for c in cp.caps:
        v = _const(cp.graph, c.limit)
        if v is not None:
            out.setdefault(c.metric, []).append((c.target, v, c.name))
    return out


@lint("L001")
def per_asset_above_theme(cp: CompiledPolicy, diags: Diagnostics) -> None:
    limits = _exposure_limits(cp)
    themes = cp.policy.market.themes
    theme_limit: dict[str, tuple[float, str]] = {
        name: (v, f"theme `{name}`'s max_exposure") for name, v in cp.theme_caps.items()
    }
    for target, limit, name in limits.get("exposure.theme", []):
        for t in [target] if target else list(themes):
            if t in themes and (t not in theme_limit or limit < theme_limit[t][0]):
                theme_limit[t] = (limit, f"cap `{name}`")
    for c in cp.caps:
        if c.metric != "exposure.symbol":
            continue
        v = _const(cp.graph, c.limit)
        if v is None:
            continue
        for tname, theme in themes.items():
            members = [c.target] if c.target else list(theme.symbols)
            if tname in theme_limit and any(s in theme.symbols for s in members):
                tv, where = theme_limit[tname]
                if v > tv:
                    diags.warning("L001", f"per-symbol cap `{c.name}` ({_pct(v)}) is above the cap "
                                  f"of theme `{tname}` ({_pct(tv)})", c.span,
                                  f"{where} binds first for the theme's symbols; lower `{c.name}` "
                                  "or raise the theme cap")
                    break


@lint("L002")
def theme_caps_sum(cp: CompiledPolicy, diags: Diagnostics) -> None:
    caps = dict(cp.theme_caps)
    for target, v, _ in _exposure_limits(cp).get("exposure.theme", []):
        if target:
            caps[target] = min(v, caps.get(target, v))
    total = sum(caps.values())
    if len(caps) >= 2 and total > 1.0 + 1e-12:
        m = cp.policy.market
        diags.warning("L002", f"theme caps add up to {_pct(total)}, above 100% of equity",
                      m.span, "the themes can never all be full at once; the caps may not say "
                      "what you mean")


@lint("L014")
def caps_that_never_bind(cp: CompiledPolicy, diags: Diagnostics) -> None:
    limits = _exposure_limits(cp)
    total = min((v for t, v, _ in limits.get("exposure.total", []) if t is None), default=None)
    n_symbols = len(cp.symbols)
    for c in cp.caps:
        v = _const(cp.graph, c.limit)
        if v is None:
            continue
        why = None
        if c.metric.startswith("exposure.") and v >= 1.0:
            why = "exposure cannot exceed 100% of equity without leverage"
        elif c.metric in ("exposure.symbol", "exposure.theme") and total is not None and v >= total:
            why = f"the total exposure cap ({_pct(total)}) binds first"
        elif c.metric == "positions.open" and n_symbols and v >= n_symbols:
            why = f"the policy trades {n_symbols} symbol{'s' * (n_symbols != 1)}, one position each"
        elif c.metric == "exposure.theme" and cp.theme_caps:
            themes = [c.target] if c.target else list(cp.policy.market.themes)
            theme_limits = [cp.theme_caps.get(t) for t in themes]
            if theme_limits and all(x is not None and x <= v for x in theme_limits):
                why = "each theme's `max_exposure` is at or below it and binds first"
        if why:
            diags.warning("L014", f"cap `{c.name}` can never bind: {why}", c.span)


@lint("L004")
def trade_caps(cp: CompiledPolicy, diags: Diagnostics) -> None:
    caps = []
    for c in cp.caps:
        v = _const(cp.graph, c.limit)
        if c.metric == "trades" and c.window_seconds and v is not None:
            caps.append((c.window_seconds, v - (1 if c.op == "lt" else 0), c))
    caps.sort(key=lambda x: x[0])
    for i, (w1, l1, c1) in enumerate(caps):
        for w2, l2, c2 in caps[i + 1:]:
            if w2 <= w1:
                continue
            if l1 >= l2:
                diags.warning("L005", f"cap `{c1.name}` ({l1:g} per {fmt_duration(w1)}) is not "
                              f"below cap `{c2.name}` ({l2:g} per {fmt_duration(w2)})", c1.span,
                              f"`{c1.name}` can never bind; lower it or remove it")
            elif l1 * math.ceil(w2 / w1) < l2:
                reach = l1 * math.ceil(w2 / w1)
                diags.warning("L004", f"cap `{c2.name}` ({l2:g} per {fmt_duration(w2)}) can never "
                              f"bind: `{c1.name}` allows at most {reach:g} trades per "
                              f"{fmt_duration(w2)}", c2.span,
                              f"lower `{c2.name}` to {reach:g} or less, or raise `{c1.name}`")


# ---- triggers ---------------------------------------------------------------------------


@lint("L003")
def stop_beyond_take(cp: CompiledPolicy, diags: Diagnostics) -> None:
    g = cp.graph
    for t in cp.triggers:
        s = _const(g, t.stop) if t.stop is not None else None
        tp = _const(g, t.take) if t.take is not None else None
        pct = lambda n: n is not None and g[n].type.kind is Kind.PERCENT  # noqa: E731
        if s is not None and pct(t.stop) and (s <= 0 or s >= 1):
            diags.warning("L013", f"trigger `{t.name}` sets a stop {_pct(s)} from entry",
                          t.span, "a stop distance is between 0% and 100% below the entry")
        if tp is not None and pct(t.take) and tp <= 0:
            diags.warning("L013", f"trigger `{t.name}` sets a take-profit {_pct(tp)} from entry",
                          t.span, "a take-profit distance is above 0%")
        if s is not None and tp is not None and pct(t.stop) and pct(t.take) and -s >= tp:
            diags.error("L003", f"trigger `{t.name}`: the stop-loss is at or beyond the take-profit",
                        t.span, f"the stop sits at entry {-s * 100:+g}% and the take-profit "
                        f"at entry {tp * 100:+g}%")


@lint("L010")
def constant_conditions(cp: CompiledPolicy, diags: Diagnostics) -> None:
    g = cp.graph
    ranges = Ranges(g)
    for kind, name, node, span in (
        *[("trigger", t.name, t.when, t.span) for t in cp.triggers],
        *[("breaker", b.name, b.when, b.span) for b in cp.breakers],
    ):
        lo, hi = ranges.of(node)
        if lo == hi == 1.0:
            diags.warning("L010", f"the condition of {kind} `{name}` is always true", span,
                          f"the {kind} fires on every tick")
        elif lo == hi == 0.0:
            diags.warning("L010", f"the condition of {kind} `{name}` is never true", span,
                          f"the {kind} can never fire")


class Ranges:
    """Interval analysis over the graph: the range each node's value can take."""

    def __init__(self, g: Graph):
        self.g = g
        self.memo: dict[int, tuple[float, float]] = {}
        for i in g.reachable():  # ids are topological: arguments come first
            self.memo[i] = self._compute(i)

    def of(self, i: int) -> tuple[float, float]:
        return self.memo[i]

    def _compute(self, i: int) -> tuple[float, float]:
        n = self.g[i]
        inf = math.inf
        r = [self.memo[a] for a in n.args]
        if n.is_const:
            return (n.value, n.value)
        if n.op == "field":
            spec = cat.FIELDS[str(n.attr[0])]
            if spec.type.kind is Kind.BOOL:
                return (0.0, 1.0)
            return spec.range
        if n.op == "window":
            return cat.FUNCTIONS[str(n.attr[0])].range
        if n.op == "ind":
            fspec = cat.FUNCTIONS[str(n.attr[0])]
            if fspec.name in ("sma", "ema", "highest", "lowest"):
                return r[0]
            return fspec.range
        if n.op in ("cross", "any", "all", "and", "or", "not"):
            if n.op == "not":
                return (1 - r[0][1], 1 - r[0][0])
            return (0.0, 1.0)
        if n.op in ("shift",):
            return r[0]
        if n.op == "neg":
            return (-r[0][1], -r[0][0])
        if n.op == "abs":
            lo, hi = r[0]
            return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
        if n.op == "add":
            return (r[0][0] + r[1][0], r[0][1] + r[1][1])
        if n.op == "sub":
            return (r[0][0] - r[1][1], r[0][1] - r[1][0])
        if n.op == "mul":
            prods = [a * b for a in r[0] for b in r[1] if not (math.isinf(a) and b == 0)
                     and not (math.isinf(b) and a == 0)]
            return (min(prods, default=-inf), max(prods, default=inf))
        if n.op in ("min", "max", "clamp"):
            if n.op == "min":
                return (min(x[0] for x in r), min(x[1] for x in r))
            if n.op == "max":
                return (max(x[0] for x in r), max(x[1] for x in r))
            return (max(r[0][0], r[1][0]), min(r[0][1], r[2][1]))
        if n.op in ("gt", "ge", "lt", "le"):
            (alo, ahi), (blo, bhi) = r
            if n.op in ("lt", "le"):
                (alo, ahi), (blo, bhi) = (blo, bhi), (alo, ahi)
            strict = n.op in ("gt", "lt")
            if alo > bhi or (not strict and alo >= bhi):
                return (1.0, 1.0)
            if ahi < blo or (strict and ahi <= blo):
                return (0.0, 0.0)
            return (0.0, 1.0)
        if n.op in ("eq", "ne"):
            return (0.0, 1.0)
        return (-inf, inf)


# ---- params, settings -------------------------------------------------------------------


@lint("L015")
def unused_params(cp: CompiledPolicy, diags: Diagnostics) -> None:
    for name, p in cp.policy.params.items():
        if name not in cp.used_params:
            diags.warning("L015", f"param `{name}` is never used", p.name_span or p.span,
                          "remove it, or use it in a rule")


class _SettingSpans:
    """The settings by key, whatever section they are written in: a setting in another
    section than its own (which the schema reports) must not make a lint fail."""

    def __init__(self, cp: CompiledPolicy):
        p = cp.policy
        self.groups = (p.execution, p.guards, p.cooldowns)

    def __getitem__(self, key: str) -> Setting:
        for group in self.groups:
            if key in group:
                return group[key]
        raise KeyError(key)


@lint("L006")
def fees(cp: CompiledPolicy, diags: Diagnostics) -> None:
    s, ex = cp.settings, _SettingSpans(cp)
    for key in ("fees.maker", "fees.taker"):
        v = s.get(key)
        if v is not None and not -0.001 <= v <= 0.01:
            diags.warning("L006", f"`{key}` of {_pct(v)} is outside plausible bounds (-0.1% to 1%)",
                          ex[key].span, "exchange fees are a fraction of a percent: `0.1%`")
    mk, tk = s.get("fees.maker"), s.get("fees.taker")
    if mk is not None and tk is not None and mk > tk:
        diags.warning("L006", f"maker fee ({_pct(mk)}) is above the taker fee ({_pct(tk)})",
                      ex["fees.maker"].span, "exchanges charge makers less than takers")
    sl = s.get("slippage")
    if sl is not None and not 0 <= sl <= 0.05:
        diags.warning("L006", f"`slippage` of {_pct(sl)} is outside plausible bounds (0% to 5%)",
                      ex["slippage"].span)


@lint("L007")
def ttl_order(cp: CompiledPolicy, diags: Diagnostics) -> None:
    s, ex = cp.settings, _SettingSpans(cp)
    keys = [k for k in ("maker_wait", "pending_ttl", "stale_after") if k in s]
    for a, b in itertools.pairwise(keys):
        if s[a] >= s[b]:
            diags.error("L007", f"`{a}` ({fmt_duration(s[a])}) must be shorter than `{b}` "
                        f"({fmt_duration(s[b])})", ex[a].span,
                        "an order waits as a maker, then is pending, then is stale: "
                        "maker_wait < pending_ttl < stale_after")


@lint("L008")
def cooldown_vs_lookback(cp: CompiledPolicy, diags: Diagnostics) -> None:
    g = cp.graph
    for b in cp.breakers:
        if b.duration_seconds is None:
            continue
        windows = [float(g[i].attr[1]) for i in _descendants(g, b.when)  # type: ignore[arg-type]
                   if g[i].op == "window"]
        if windows and b.duration_seconds > max(windows):
            diags.warning("L008", f"breaker `{b.name}` pauses for "
                          f"{fmt_duration(b.duration_seconds)}, longer than its lookback of "
                          f"{fmt_duration(max(windows))}", b.span,
                          "by the time it ends, the events that tripped it are out of the window; "
                          "a shorter pause or a longer lookback says what you likely mean")


def _descendants(g: Graph, root: int) -> set[int]:
    seen: set[int] = set()
    stack = [root]
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(g[i].args)
    return seen


@lint("L009")
def dust_vs_min_trade(cp: CompiledPolicy, diags: Diagnostics) -> None:
    s, ex = cp.settings, _SettingSpans(cp)
    if "dust" in s and "min_trade" in s and s["dust"] > s["min_trade"]:
        cur = f" {cp.policy.market.quote}" if cp.policy.market.quote else ""
        diags.error("L009", f"the dust threshold ({s['dust']:g}{cur}) is above the minimum trade size "
                    f"({s['min_trade']:g}{cur})", ex["dust"].span,
                    "positions smaller than the minimum trade could never be closed")
