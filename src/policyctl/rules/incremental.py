"""Incremental evaluation: one new bar at a time, O(1) per bar for every indicator.

This is what the live runtime (and the engine's per-tick path) uses. The graph is turned
into one straight-line Python function, generated from the checked graph only: every name
in it is ours (``v12``, ``st7``) and every literal is a float the compiler produced, so no
user text is ever evaluated. Indicator nodes keep their state in objects from
``rules.indicators``; each :meth:`IncrementalEvaluator.step` advances them by one bar.

Inputs of a step:

* ``market``: candle field -> a sequence of floats, one per symbol in the evaluator's
  symbol order (``{"close": [42000.0, 2300.0], ...}``). NaN marks a missing bar.
* ``state``: account and engine values. Portfolio fields by name (``"equity"``), per-symbol
  fields by name as a per-symbol sequence (``"position.pnl"``), a field for a named theme as
  ``"exposure.theme@majors"``, window functions as ``"trades:3600"`` (see :func:`state_key`).
  A missing key is *unavailable* (NaN): the engine fails closed on it.

The result is a list indexed by node id: a float for portfolio-wide nodes, a list of floats
(one per symbol) for per-symbol nodes, ``None`` for nodes no output needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from policyctl.rules import indicators, ops
from policyctl.rules.graph import GNode, Graph

NAN = math.nan
MARKET_FIELDS = ("open", "high", "low", "close", "volume")

_INLINE = {
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1} if {1} else _nan)",
    "neg": "(-{0})",
    "abs": "abs({0})",
}
_CALLS = {
    "gt": "_gt", "ge": "_ge", "lt": "_lt", "le": "_le", "eq": "_eq", "ne": "_ne",
    "and": "_and", "or": "_or", "not": "_not", "min": "_min", "max": "_max", "clamp": "_clamp",
}


def state_key(name: str, target: str | None = None, window: float | None = None) -> str:
    """The key under which a state value is looked up in a step's ``state`` mapping."""
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
        p = max((phase[a] for a in n.args), default=0)
        if n.per_symbol and p % 2 == 0:
            p += 1
        elif not n.per_symbol and p % 2 == 1:
            p += 1
        phase[i] = p
    return phase


class IncrementalEvaluator:
    def __init__(self, graph: Graph, symbols: Sequence[str], nodes: Sequence[int] | None = None):
        self.graph = graph
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.nodes = list(nodes) if nodes is not None else graph.reachable()
        self.source = ""
        self._namespace: dict[str, Any] = {}
        self._build()

    # -- code generation --
    def _ref(self, a: int, current_phase: int) -> str:
        n = self.graph[a]
        if n.per_symbol and self._phase[a] != current_phase:
            return f"L{a}[i]"
        return f"v{a}"

    def _expr(self, n: GNode, ph: int) -> str:
        args = [self._ref(a, ph) for a in n.args]
        op = n.op
        if op == "const":
            v = n.value
            return "_nan" if math.isnan(v) else repr(float(v))
        if op == "field":
            name, target = n.attr
            name = str(name)
            if name in MARKET_FIELDS:
                col = f"m_{name}"
                self._markets.add(name)
                idx = "i" if target is None else str(self.index[str(target)])
                return f"{col}[{idx}]"
            if n.per_symbol or (target is not None and target in self.index):
                var = f"s_{len(self._state_vars)}"
                self._state_vars.setdefault(name, var)
                var = self._state_vars[name]
                idx = "i" if target is None else str(self.index[str(target)])
                return f"{var}[{idx}]"
            return f"_get(S, {node_state_key(n)!r})"
        if op == "window":
            return f"_get(S, {node_state_key(n)!r})"
        if op in ("ind", "shift", "cross"):
            holder = f"st{n.id}"
            if n.op == "ind":
                name, window = n.attr
                factory = indicators.INCREMENTAL[str(name)]
                make = lambda f=factory, w=window: f(w)  # noqa: E731
            elif n.op == "shift":
                make = lambda w=n.attr[0]: indicators.Shift(w)  # type: ignore[misc]  # noqa: E731
            else:
                cls = indicators.CrossesAbove if n.attr[0] == "above" else indicators.CrossesBelow
                make = cls
            if n.per_symbol:
                self._namespace[holder] = [make() for _ in self.symbols]
                self._namespace[holder + "_u"] = [s.update for s in self._namespace[holder]]
                return f"{holder}_u[i]({', '.join(args)})"
            self._namespace[holder] = make()
            self._namespace[holder + "_u"] = self._namespace[holder].update
            return f"{holder}_u({', '.join(args)})"
        if op in ("any", "all"):
            return f"_{op}(L{n.args[0]})"
        if op in _INLINE:
            return _INLINE[op].format(*args)
        return f"{_CALLS[op]}({', '.join(args)})"

    def _build(self) -> None:
        g = self.graph
        self._phase = phases(g, self.nodes)
        self._markets: set[str] = set()
        self._state_vars: dict[str, str] = {}
        body: list[str] = []
        by_phase: dict[int, list[int]] = {}
        for i in self.nodes:
            by_phase.setdefault(self._phase[i], []).append(i)
        for ph in sorted(by_phase):
            ids = by_phase[ph]
            if ph % 2 == 0:
                body += [f"    v{i} = {self._expr(g[i], ph)}" for i in ids]
            else:
                body += [f"    L{i} = [_nan] * _N" for i in ids]
                body.append("    for i in _R:")
                for i in ids:
                    body.append(f"        v{i} = {self._expr(g[i], ph)}")
                    body.append(f"        L{i}[i] = v{i}")
        head = ["def _step(M, S):"]
        head += [f"    m_{f} = M.get({f!r}) or _NANS" for f in sorted(self._markets)]
        head += [f"    {var} = S.get({name!r}) or _NANS" for name, var in self._state_vars.items()]
        out = ", ".join(
            (f"L{i}" if g[i].per_symbol else f"v{i}") if i in self._phase else "None"
            for i in range(len(g))
        )
        tail = [f"    return [{out}]"]
        self.source = "\n".join(head + body + tail) + "\n"
        ns = self._namespace
        ns.update(
            _nan=NAN, _N=len(self.symbols), _R=range(len(self.symbols)),
            _NANS=[NAN] * len(self.symbols), _get=_get,
            _gt=ops.gt, _ge=ops.ge, _lt=ops.lt, _le=ops.le, _eq=ops.eq, _ne=ops.ne,
            _and=ops.and_, _or=ops.or_, _not=ops.not_, _min=ops.min_, _max=ops.max_,
            _clamp=ops.clamp, _any=ops.any_, _all=ops.all_,
        )
        code = compile(self.source, "<policyctl graph>", "exec")
        exec(code, ns)  # generated from the checked graph: no user text is evaluated
        self._step = ns["_step"]

    # -- evaluation --
    def step(self, market: Mapping[str, Sequence[float]], state: Mapping[str, Any] | None = None) -> list[Any]:
        """Advance every indicator by one bar and return all node values (see module doc)."""
        return self._step(market, state or {})  # type: ignore[no-any-return]


def _get(state: Mapping[str, Any], key: str) -> float:
    v = state.get(key)
    if v is None:
        return NAN
    try:
        return float(v)
    except (TypeError, ValueError):
        return NAN
