"""Incremental evaluation: one new bar at a time, O(1) per bar for every indicator.

This is what the live runtime (and the engine's per-tick path) uses. The graph is turned
into straight-line Python functions generated from the checked graph only: every name in
them is ours (``v12``, ``st7``) and every literal is a float the compiler produced, so no
user text is ever evaluated.

A bar is two calls:

* :meth:`IncrementalEvaluator.advance` feeds the new candles: it updates every stateful
  node (indicators, history, crossings) and the market values they read. Call it exactly
  once per bar.
* :meth:`IncrementalEvaluator.evaluate` computes every other node from those values and
  the account state. It may be called again within the bar (after a fill, say) without
  disturbing any indicator.

Inputs: ``market`` maps a candle field to a sequence of floats, one per symbol in the
evaluator's symbol order (NaN marks a missing bar). ``state`` holds account and engine
values: portfolio fields by name (``"equity"``), per-symbol fields by name as a per-symbol
sequence (``"position.pnl"``), a field of a named theme as ``"exposure.theme@majors"`` and
window functions as ``"trades:3600"`` (see :func:`state_key`). A missing key is
*unavailable* (NaN), and the engine fails closed on it.

Results come back as :class:`Values`: ``values.get(node)`` for portfolio-wide nodes,
``values.get(node, i)`` for per-symbol nodes. By default only what rules read (outputs) is
kept; ``evaluate(state, full=True)`` keeps every node, for explanations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from policyctl.rules import indicators, ops
from policyctl.rules.graph import GNode, Graph
from policyctl.rules.numeric import REL_TOL

NAN = math.nan
MARKET_FIELDS = ("open", "high", "low", "close", "volume")
STATEFUL = frozenset({"ind", "shift", "cross"})


def state_key(name: str, target: str | None = None, window: float | None = None) -> str:
    """The key under which a state value is looked up in an evaluation's ``state``."""
    if window is not None:
        return f"{name}:{window:g}"
    return f"{name}@{target}" if target else name


def node_state_key(n: GNode) -> str:
    if n.op == "window":
        return state_key(str(n.attr[0]), window=float(n.attr[1]))  # type: ignore[arg-type]
    name, target = n.attr
    return state_key(str(name), target if isinstance(target, str) else None)


def phases(g: Graph, nodes: Sequence[int]) -> dict[int, int]:
    """Evaluation phase of each node: even phases are portfolio-wide, odd ones run per symbol.

    A node runs in the first phase of its parity not before any of its arguments, so that
    per-symbol work is grouped into as few loops over the symbols as possible.
    """
    phase: dict[int, int] = {}
    for i in nodes:
        n = g[i]
        p = max((phase.get(a, 0) for a in n.args), default=0)
        if (n.per_symbol and p % 2 == 0) or (not n.per_symbol and p % 2 == 1):
            p += 1
        phase[i] = p
    return phase


class Values:
    """Node values of one evaluation: portfolio-wide in ``g``, per symbol in ``rows[i]``."""

    __slots__ = ("g", "graph", "rows")

    def __init__(self, graph: Graph, g: list[float], rows: list[list[float]]):
        self.graph, self.g, self.rows = graph, g, rows

    def get(self, node: int, symbol_index: int | None = None) -> float:
        if self.graph[node].per_symbol:
            if symbol_index is None:
                raise ValueError(f"node %{node} is per symbol: give a symbol index")
            return self.rows[symbol_index][node]
        return self.g[node]

    def per_symbol(self, node: int) -> list[float]:
        if self.graph[node].per_symbol:
            return [r[node] for r in self.rows]
        return [self.g[node]] * len(self.rows)


def _abs(x: str) -> str:
    return f"({x} if {x} > 0.0 else -{x})"


def _cmp_code(a: str, b: str, ka: float | None, kb: float | None, negate: bool) -> str:
    """Inline :func:`ops.gt` (``a > b``, tolerant and NaN-aware) or, with ``negate``, its
    complement ``not (a > b)`` (which is ``a <= b``). ``ka``/``kb`` are the operands' values
    when they are constants, which lets the tolerance's scale fold."""
    yes, no = ("0.0", "1.0") if negate else ("1.0", "0.0")
    if kb is not None or ka is not None:
        x, k = (a, abs(kb)) if kb is not None else (b, abs(ka))  # type: ignore[arg-type]
        scale = f"({x} if {x} > {k!r} else -{x} if -{x} > {k!r} else {k!r})"
        nan_check = f"{x} - {x} != 0.0"  # NaN or an infinity: unavailable
    else:
        scale = f"({_abs(a)} if {_abs(a)} > {_abs(b)} else {_abs(b)})"
        nan_check = f"{a} - {a} != 0.0 or {b} - {b} != 0.0"
    return f"(_nan if {nan_check} else {yes} if {a} - {b} > _T * {scale} else {no})"


class _Gen:
    """Generates one function computing ``compute`` from given node values."""

    def __init__(self, ev: IncrementalEvaluator, compute: list[int], stores: set[int]):
        self.ev = ev
        self.g = ev.graph
        self.compute = compute
        self.compute_set = set(compute)
        self.stores = stores
        self.loaded: set[int] = set()

    def ref(self, a: int, in_loop: bool, lines: list[str], indent: str) -> str:
        n = self.g[a]
        if n.is_const:
            return "_nan" if math.isnan(n.value) else repr(n.value)
        if a in self.compute_set and self.ev.phase[a] == self.cur_phase:
            return f"v{a}"
        key = (a, self.cur_phase, in_loop)
        if key not in self._loaded:
            self._loaded.add(key)
            src = "r" if n.per_symbol else "G"
            lines.append(f"{indent}v{a} = {src}[{a}]")
        return f"v{a}"

    def expr(self, n: GNode, in_loop: bool, lines: list[str], indent: str) -> str:
        op = n.op
        if op == "field":
            name, target = str(n.attr[0]), n.attr[1]
            tix = self.ev.index.get(target) if isinstance(target, str) else None
            if name in MARKET_FIELDS:
                self.ev._markets.add(name)
                return f"m_{name}[{'i' if tix is None else tix}]"
            if n.per_symbol or tix is not None:
                var = self.ev._state_vars.setdefault(name, f"s_{len(self.ev._state_vars)}")
                return f"{var}[{'i' if tix is None else tix}]"
            return f"_get(S, {node_state_key(n)!r})"
        if op == "window":
            return f"_get(S, {node_state_key(n)!r})"
        if op in ("any", "all"):
            return f"_{op}([row[{n.args[0]}] for row in ROWS])"
        args = [self.ref(a, in_loop, lines, indent) for a in n.args]
        if op in STATEFUL:
            holder = self.ev._holder(n)
            if op == "cross" and n.attr[0] == "below":  # a crossing below b is b crossing above a
                args.reverse()
            return f"{holder}[i].update({', '.join(args)})" if n.per_symbol else f"{holder}({', '.join(args)})"
        kids = [self.g[a] for a in n.args]
        if op == "add":
            return f"({args[0]} + {args[1]})"
        if op == "sub":
            return f"({args[0]} - {args[1]})"
        if op == "mul":
            return f"({args[0]} * {args[1]})"
        if op == "div":
            return f"({args[0]} / {args[1]} if {args[1]} else _nan)"
        if op == "neg":
            return f"(-{args[0]})"
        if op == "abs":
            return f"abs({args[0]})"
        if op in ("gt", "lt", "ge", "le"):
            a, b = args
            ka, kb = (k.value if k.is_const else None for k in kids)
            if op in ("lt", "ge"):  # a < b is b > a;  a >= b is not (b > a)
                a, b, ka, kb = b, a, kb, ka
            return _cmp_code(a, b, ka, kb, negate=op in ("ge", "le"))
        if op == "and":
            a, b = args
            return f"(0.0 if {a} == 0.0 or {b} == 0.0 else _nan if {a} != {a} or {b} != {b} else 1.0)"
        if op == "or":
            a, b = args
            return f"(1.0 if {a} == 1.0 or {b} == 1.0 else _nan if {a} != {a} or {b} != {b} else 0.0)"
        if op == "not":
            return f"({args[0]} if {args[0]} != {args[0]} else 1.0 - {args[0]})"
        fn = {"eq": "_eq", "ne": "_ne", "min": "_min", "max": "_max", "clamp": "_clamp"}[op]
        return f"{fn}({', '.join(args)})"

    def build(self, name: str) -> str:
        self._loaded: set[tuple[int, int, bool]] = set()
        by_phase: dict[int, list[int]] = {}
        for i in self.compute:
            if not self.g[i].is_const:
                by_phase.setdefault(self.ev.phase[i], []).append(i)
        body: list[str] = []
        for ph in sorted(by_phase):
            self.cur_phase = ph
            ids = by_phase[ph]
            if ph % 2 == 0:
                for i in ids:
                    body.append(f"    v{i} = {self.expr(self.g[i], False, body, '    ')}")
                    if i in self.stores:
                        body.append(f"    G[{i}] = v{i}")
            else:
                body.append("    for i in _R:")
                body.append("        r = ROWS[i]")
                for i in ids:
                    body.append(f"        v{i} = {self.expr(self.g[i], True, body, '        ')}")
                    if i in self.stores:
                        body.append(f"        r[{i}] = v{i}")
        head = [f"def {name}(G, ROWS, M, S):"]
        head += [f"    m_{f} = M.get({f!r}) or _NANS" for f in sorted(self.ev._markets)]
        head += [f"    {var} = S.get({nm!r}) or _NANS" for nm, var in self.ev._state_vars.items()]
        return "\n".join(head + body + ["    return None"]) + "\n"


class IncrementalEvaluator:
    def __init__(self, graph: Graph, symbols: Sequence[str], nodes: Sequence[int] | None = None):
        self.graph = graph
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.nodes = list(nodes) if nodes is not None else graph.reachable()
        self.phase = phases(graph, self.nodes)
        self._namespace: dict[str, Any] = {}
        self._markets: set[str] = set()
        self._state_vars: dict[str, str] = {}
        self._per_symbol_makers: dict[str, Any] = {}
        n, n_sym = len(graph), len(self.symbols)
        self._g: list[float] = [NAN] * n
        self._rows: list[list[float]] = [[NAN] * n for _ in range(n_sym)]
        for i in self.nodes:  # constants are stored once, never recomputed
            node = graph[i]
            if node.is_const:
                self._g[i] = node.value
                for r in self._rows:
                    r[i] = node.value
        self._build()

    def _holder(self, n: GNode) -> str:
        holder = f"st{n.id}"
        if holder in self._namespace or holder in self._per_symbol_makers:
            return holder
        if n.op == "ind":
            name, window = n.attr
            factory = indicators.INCREMENTAL[str(name)]
            make: Any = lambda: factory(window)  # noqa: E731
        elif n.op == "shift":
            make = lambda: indicators.Shift(n.attr[0])  # type: ignore[arg-type]  # noqa: E731
        else:
            make = indicators.CrossesAbove  # for crosses below too, called with the arguments swapped
        if n.per_symbol:
            self._per_symbol_makers[holder] = make  # made in _build, symbol by symbol
        else:
            self._namespace[holder] = make().update
        return holder

    def _build(self) -> None:
        g = self.graph
        # advance: every stateful node, and the market values they (transitively) read
        adv: set[int] = set()
        stack = [i for i in self.nodes if g[i].op in STATEFUL or
                 (g[i].op == "field" and g[i].market)]
        while stack:
            i = stack.pop()
            if i not in adv:
                adv.add(i)
                stack.extend(a for a in g[i].args if not g[a].is_const)
        advance = [i for i in self.nodes if i in adv]
        self.advance_nodes = advance
        rest = [i for i in self.nodes if i not in adv and not g[i].is_const]
        needed: set[int] = {o.node for o in g.outputs}
        for i in rest:
            for a in g[i].args:
                if a in adv or self.phase.get(a) != self.phase[i] or g[i].op in ("any", "all"):
                    needed.add(a)
        self.source_advance = _Gen(self, advance, set(advance)).build("_advance")
        self.source_fast = _Gen(self, rest, needed).build("_evaluate")
        self.source_full = _Gen(self, rest, set(rest)).build("_evaluate_full")
        ns = self._namespace
        # one symbol's indicators are made together, in the order a bar updates them, so that
        # the objects one pass of the per-symbol loop touches lie close together in memory
        made: dict[str, list[Any]] = {h: [] for h in self._per_symbol_makers}
        for _ in self.symbols:
            for h, make in self._per_symbol_makers.items():
                made[h].append(make())
        ns.update(made)
        ns.update(
            _nan=NAN, _T=REL_TOL, _R=range(len(self.symbols)), _NANS=[NAN] * len(self.symbols),
            _get=_get, _gt=ops.gt, _not=ops.not_, _eq=ops.eq, _ne=ops.ne, _min=ops.min_,
            _max=ops.max_, _clamp=ops.clamp, _any=ops.any_, _all=ops.all_,
        )
        for src in (self.source_advance, self.source_fast, self.source_full):
            # generated from the checked graph: names and literals are all ours
            exec(compile(src, "<policyctl graph>", "exec"), ns)
        self._advance = ns["_advance"]
        self._evaluate = ns["_evaluate"]
        self._evaluate_full = ns["_evaluate_full"]

    @property
    def source(self) -> str:
        return "\n".join([self.source_advance, self.source_full])

    # -- evaluation --
    def advance(self, market: Mapping[str, Sequence[float]]) -> None:
        """Feed one new bar to every indicator (exactly once per bar)."""
        self._advance(self._g, self._rows, market, {})

    def evaluate(self, state: Mapping[str, Any] | None = None, full: bool = False) -> Values:
        """Compute rule values for the current bar from the account ``state``."""
        f = self._evaluate_full if full else self._evaluate
        f(self._g, self._rows, {}, state or {})
        return Values(self.graph, self._g, self._rows)

    def step(self, market: Mapping[str, Sequence[float]], state: Mapping[str, Any] | None = None) -> Values:
        """``advance`` then ``evaluate(full=True)``: one bar, every node's value."""
        self.advance(market)
        return self.evaluate(state, full=True)


def _get(state: Mapping[str, Any], key: str) -> float:
    v = state.get(key)
    if v is None:
        return NAN
    try:
        return float(v)
    except (TypeError, ValueError):
        return NAN
