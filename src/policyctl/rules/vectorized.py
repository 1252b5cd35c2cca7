"""Vectorized evaluation: the whole graph over a whole series at once, with numpy.

This is what the simulator uses: every node becomes an array over bars, per-symbol nodes a
2-D array (symbols x bars), portfolio-wide nodes a 1-D array. The semantics are those of
``rules.ops`` and ``rules.indicators`` exactly (NaN is *unavailable*, Kleene logic, tolerant
comparisons), and ``tests/test_evaluators.py`` holds the incremental evaluator to the same
values to 1e-9 on real candles.

Inputs: ``market`` maps a candle field to a ``(symbols, bars)`` array; ``state`` maps the
keys of :func:`~policyctl.rules.incremental.state_key` to a scalar, a ``(bars,)`` array
(portfolio-wide) or a ``(symbols, bars)`` array (per-symbol). Missing keys are unavailable.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from policyctl.rules import indicators, numeric, ops
from policyctl.rules.graph import GNode, Graph
from policyctl.rules.incremental import MARKET_FIELDS, node_state_key

Array = npt.NDArray[np.float64]
NAN = np.nan

_CMP = {"gt": numeric.vgt, "ge": numeric.vge, "lt": numeric.vlt, "le": numeric.vle,
        "eq": numeric.veq, "ne": numeric.vne}


def _and(a: Array, b: Array) -> Array:
    out = np.where(np.isnan(a) | np.isnan(b), NAN, 1.0)
    return np.where((a == 0.0) | (b == 0.0), 0.0, out)


def _or(a: Array, b: Array) -> Array:
    out = np.where(np.isnan(a) | np.isnan(b), NAN, 0.0)
    return np.where((a == 1.0) | (b == 1.0), 1.0, out)


def _any(x: Array) -> Array:
    out = np.where(np.isnan(x).any(axis=0), NAN, 0.0)
    return np.where((x == 1.0).any(axis=0), 1.0, out)


def _all(x: Array) -> Array:
    out = np.where(np.isnan(x).any(axis=0), NAN, 1.0)
    return np.where((x == 0.0).any(axis=0), 0.0, out)


def _div(a: Array, b: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0.0, NAN, a / np.where(b == 0.0, 1.0, b))


def _rows(x: Array, n_sym: int) -> Array:
    return x if x.ndim == 2 else np.broadcast_to(x, (n_sym, x.shape[-1]))


def evaluate(
    graph: Graph,
    symbols: Sequence[str],
    market: Mapping[str, Array],
    state: Mapping[str, Any] | None = None,
    nodes: Sequence[int] | None = None,
    bars: int | None = None,
    given: Mapping[int, Array] | None = None,
    complete: bool = False,
) -> list[Array | None]:
    """Evaluate ``nodes`` (default: every node an output needs) over all bars.

    ``given`` supplies values of some nodes already computed (market nodes computed once over
    the whole series, sliced to a segment): they are used as they are, not recomputed.
    ``complete`` says ``nodes`` already holds every constant argument (callers that evaluate the
    same node list many times compute it once)."""
    state = state or {}
    n_sym = len(symbols)
    index = {s: i for i, s in enumerate(symbols)}
    if bars is None:
        bars = next(iter(market.values())).shape[-1] if market else 1
    T = bars
    if nodes is None:
        nodes = graph.reachable()
    elif not complete:  # constant arguments are cheap and always needed
        nodes = sorted({*nodes, *(a for i in nodes for a in graph[i].args if graph[a].is_const)})
    out: list[Array | None] = [None] * len(graph)
    nan_row = np.full(T, NAN)

    def state_value(key: str, per_symbol: bool, target_index: int | None) -> Array:
        v = state.get(key)
        if v is None:
            return np.full((n_sym, T), NAN) if per_symbol else nan_row
        arr = np.asarray(v, dtype=np.float64)
        if arr.ndim == 2:
            return arr[target_index] if target_index is not None else arr
        if per_symbol:
            return np.broadcast_to(arr if arr.ndim else np.full(T, float(arr)), (n_sym, T))
        return arr if arr.ndim else np.full(T, float(arr))

    if given is not None:
        for i, arr in given.items():
            out[i] = arr
    for i in nodes:
        n = graph[i]
        if given is not None and i in given:
            continue
        a = [cast(Array, out[j]) for j in n.args]  # arguments come first in id order
        op = n.op
        r: Array
        if op == "const":
            r = np.full(T, n.value)
        elif op == "field":
            name, target = str(n.attr[0]), n.attr[1]
            tix = index.get(target) if isinstance(target, str) else None
            if name in MARKET_FIELDS:
                m = market.get(name)
                if m is None:
                    m = np.full((n_sym, T), NAN)
                r = m[tix] if tix is not None else m
            elif target is not None and tix is None:  # a named theme
                r = state_value(node_state_key(n), False, None)
            else:
                r = state_value(name, n.per_symbol, tix)
        elif op == "window":
            r = state_value(node_state_key(n), False, None)
        elif op in ("ind", "shift", "cross"):
            r = _series_op(n.op, n.attr, a, n.per_symbol, n_sym)
        else:
            r = _pure(op, a)
        if n.per_symbol:
            r = _rows(np.asarray(r, dtype=np.float64), n_sym)
        out[i] = r
    return out


def _minimum(*xs: Any) -> Array:
    r = xs[0]
    for x in xs[1:]:
        r = np.minimum(r, x)
    return cast(Array, r)


def _maximum(*xs: Any) -> Array:
    r = xs[0]
    for x in xs[1:]:
        r = np.maximum(r, x)
    return cast(Array, r)


# The pure operators, element-wise (arguments are arrays, or floats that broadcast).
_VECTOR: dict[str, Callable[..., Any]] = {
    **_CMP, "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": _div,
    "neg": operator.neg, "abs": np.abs, "and": _and, "or": _or, "not": lambda x: 1.0 - x,
    "min": _minimum, "max": _maximum, "clamp": lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
    "any": _any, "all": _all,
}


def _pure(op: str, a: Sequence[Any]) -> Array:
    """A pure operator, element-wise (arguments are arrays, or floats that broadcast)."""
    f = _VECTOR.get(op)
    if f is None:
        raise ValueError(f"unknown op {op}")  # pragma: no cover - the compiler emits no other ops
    return cast(Array, f(*a))


def _sdiv(a: float, b: float) -> float:
    return NAN if b == 0.0 else a / b


def _extreme(f: Any) -> Callable[..., float]:
    return lambda *xs: float(functools.reduce(f, xs))


# The pure operators on one value each, equal to the vectorized ones above bit for bit at
# every input (``tests/test_vectorized_partial.py``): comparisons and logic are ``rules.ops``
# (non-finite compares unavailable, Kleene logic); arithmetic is plain IEEE arithmetic, as
# numpy's, which keeps an overflow's infinity (``rules.ops.PURE`` folds it to NaN, the
# evaluators do not); min and max are numpy's (which zero of 0.0 and -0.0 they keep).
_SCALAR: dict[str, Callable[..., float]] = {
    "gt": ops.gt, "ge": ops.ge, "lt": ops.lt, "le": ops.le, "eq": ops.eq, "ne": ops.ne,
    "and": ops.and_, "or": ops.or_, "not": ops.not_,
    "any": lambda x: ops.any_([x]), "all": lambda x: ops.all_([x]),
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": _sdiv,
    "neg": operator.neg, "abs": abs,
    "min": _extreme(np.minimum), "max": _extreme(np.maximum),
    "clamp": lambda x, lo, hi: float(np.minimum(np.maximum(x, lo), hi)),
}
_DECISIVE = {"and": 0.0, "or": 1.0}  # 0 and x = 0, 1 or x = 1, for every x (unavailable too)
_LOGICAL = frozenset({*_CMP, "and", "or", "any", "all", "cross"})  # values 1, 0 or NaN only, whatever the inputs

Value = Array | float
"""A node's value over a segment of bars: a float when it is the same at every bar (and for
every symbol), else an array broadcasting against ``(symbols, bars)``: ``(bars,)`` for a
portfolio-wide value, ``(symbols, bars)`` or ``(symbols, 1)`` (the same at every bar) for a
per-symbol one."""


class Partial:
    """Partial evaluation over a segment of bars, on demand, from the values asked for.

    Inputs come from ``source(i)``: the value of node ``i`` as it is read (a state field, a
    window, a market value computed beforehand over the whole series), or None to compute it
    from its arguments. Inputs that are constant over the segment are floats, and an operator
    on floats alone is computed once with the scalar functions; any array makes it the
    vectorized operator, the floats broadcasting. Either way, every bar gets the value
    :func:`evaluate` gives it. ``and`` with a constant false operand is false and ``or`` with
    a constant true one is true without evaluating the other operand (Kleene: ``false and
    unavailable`` is false), so a condition gated by a constant (``not position.open and ...``
    while a position is held) costs nothing; and ``true and x`` is ``x`` itself when ``x`` can
    only be 1, 0 or NaN.

    With ``record``, the evaluation also keeps a trace of how each value was obtained, in the
    order they were (``trace``), and of every test of a constant that chose the way (a guard):
    :func:`compile_plan` turns it into straight-line code for every segment of the same shape.
    """

    def __init__(self, graph: Graph, n_sym: int, bars: int, source: Callable[[int], Value | None],
                 record: bool = False):
        self.nodes, self.n_sym, self.bars, self.source = graph.nodes, n_sym, bars, source
        self.values: dict[int, Value] = {}
        self.trace: list[Step] | None = [] if record else None

    def value(self, i: int) -> Value:
        v = self.values.get(i)
        if v is None:
            v = self.source(i)
            if v is not None:
                self._note(("source", i))
            else:
                n = self.nodes[i]
                d = _DECISIVE.get(n.op)
                if n.is_const:
                    v = n.value
                    self._note(("const", i))
                elif d is None:
                    v = self._apply(n, [self.value(a) for a in n.args])
                else:  # one operand at a time: a constant one may decide
                    x = self.value(n.args[0])
                    if self._is(n.args[0], x, d):
                        v = d
                        self._note(("const", i))
                    else:
                        y = self.value(n.args[1])
                        if self._is(n.args[1], y, d):
                            v = d
                            self._note(("const", i))
                        else:
                            v = self._logic(n, x, y, 1.0 - d)
            self.values[i] = v
        return v

    def shape(self) -> tuple[object, ...]:
        """What a plan of this (recorded) evaluation depends on: its trace, and the shape of every
        input it read (bars as -1, floats as None)."""
        assert self.trace is not None
        return (tuple(self.trace), tuple(_dims(self.values[s[1]], self.bars) for s in self.trace if s[0] == "source"))

    def _note(self, step: Step) -> None:
        if self.trace is not None:
            self.trace.append(step)

    def _is(self, j: int, x: Value, c: float) -> bool:
        """Whether ``x``, the value of node ``j``, is the constant ``c`` (at every bar)."""
        if isinstance(x, np.ndarray):
            return False
        r = bool(x == c)
        self._note(("guard", j, c, r))
        return r

    def _logic(self, n: GNode, x: Value, y: Value, neutral: float) -> Value:
        """``x and y`` (``neutral`` 1) or ``x or y`` (``neutral`` 0): with a neutral constant,
        the other operand, when an operator that only gives 1, 0 or NaN computed it."""
        a, b = n.args
        if self.nodes[b].op in _LOGICAL and self._is(a, x, neutral):
            return self._alias(n, b, y)
        if self.nodes[a].op in _LOGICAL and self._is(b, y, neutral):
            return self._alias(n, a, x)
        return self._apply(n, [x, y])

    def _alias(self, n: GNode, j: int, v: Value) -> Value:
        r, post = self._shaped(n, v)
        self._note(("alias", n.id, j, post))
        return r

    def _apply(self, n: GNode, a: list[Value]) -> Value:
        op = n.op
        if op in _SCALAR and not any(isinstance(x, np.ndarray) for x in a):
            self._note(("scalar", n.id))
            return _SCALAR[op](*a)
        kind = "array"
        if op in ("ind", "shift", "cross"):  # never over a segment in practice: series are market values
            full = [np.broadcast_to(x, np.broadcast_shapes(np.shape(x), (self.bars,))) for x in a]
            r = _series_op(op, n.attr, full, n.per_symbol, self.n_sym)
            kind = "series"
        else:
            r = _pure(op, a)
        v, post = self._shaped(n, r)
        self._note((kind, n.id, post))
        return v

    def _shaped(self, n: GNode, r: Value) -> tuple[Value, str]:
        """A one-element array as a float; a per-symbol value that came out per bar only
        (from a constant per-symbol operand) as a row per symbol, for ``any``/``all``. And how
        (``post``): ``"float"``, ``"rows"`` or ``""`` (as it is)."""
        if not isinstance(r, np.ndarray):
            return r, ""
        if r.size == 1:
            return float(r.reshape(-1)[0]), "float"
        if n.per_symbol and r.ndim == 1:
            return _rows(r, self.n_sym), "rows"
        return r, ""


Step = tuple[Any, ...]
"""One entry of a :class:`Partial`'s trace: ``("source", i)``, ``("const", i)``, ``("scalar",
i)``, ``("array", i, post)``, ``("series", i, post)``, ``("alias", i, j, post)`` (node ``i``'s
value is node ``j``'s), or ``("guard", j, c, outcome)`` (whether node ``j``'s value equals ``c``
decided the way)."""


def _dims(v: Any, bars: int) -> tuple[int, ...] | None:
    return tuple(-1 if d == bars else int(d) for d in v.shape) if isinstance(v, np.ndarray) else None


def _series_op(op: str, attr: tuple[Any, ...], a: list[Array], per_symbol: bool, n_sym: int) -> Array:
    def apply(f: Any, *rows: Array) -> Array:
        if not per_symbol:
            return f(*rows)
        cols = [_rows(x, n_sym) for x in rows]
        return np.stack([f(*(c[k] for c in cols)) for k in range(n_sym)])

    if op == "ind":
        name, window = attr
        fn = indicators.VECTOR[name]
        return apply(lambda *xs: fn(*xs, window), *a)
    if op == "shift":
        return apply(lambda x: indicators.shift(x, attr[0]), *a)
    fn = indicators.crosses_above if attr[0] == "above" else indicators.crosses_below
    return apply(fn, *a)
