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

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from policyctl.rules import indicators, numeric
from policyctl.rules.graph import Graph
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
        elif op in _CMP:
            r = _CMP[op](a[0], a[1])
        elif op == "add":
            r = a[0] + a[1]
        elif op == "sub":
            r = a[0] - a[1]
        elif op == "mul":
            r = a[0] * a[1]
        elif op == "div":
            r = _div(a[0], a[1])
        elif op == "neg":
            r = -a[0]
        elif op == "abs":
            r = np.abs(a[0])
        elif op == "and":
            r = _and(a[0], a[1])
        elif op == "or":
            r = _or(a[0], a[1])
        elif op == "not":
            r = 1.0 - a[0]
        elif op == "min":
            r = a[0]
            for x in a[1:]:
                r = np.minimum(r, x)
        elif op == "max":
            r = a[0]
            for x in a[1:]:
                r = np.maximum(r, x)
        elif op == "clamp":
            r = np.minimum(np.maximum(a[0], a[1]), a[2])
        elif op == "any":
            r = _any(a[0])
        elif op == "all":
            r = _all(a[0])
        else:  # pragma: no cover - the compiler emits no other ops
            raise ValueError(f"unknown op {op}")
        if n.per_symbol:
            r = _rows(np.asarray(r, dtype=np.float64), n_sym)
        out[i] = r
    return out


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
