"""Compiled partial evaluation: the simulator's scan plans.

A Partial's control flow depends only on which inputs are floats or arrays (and their shapes),
and on the tests of floats its trace records as guards; not on the arrays' contents. So the
trace of one evaluation, with those checks in front, is straight-line code that evaluates any
other segment of the same shape: the same operators on the same kinds of values, only the
values differ. compile_plan generates that code (every name and literal in it is ours: node
ids, 0.0 and 1.0; values are bound by name), and what the evaluation does not need to do on
every segment it does once:

* values that do not depend on the segment (fixed inputs given over the whole series, constants,
  operators on them: ``and``'s other operand when the shape made one side neutral) are computed
  once over the whole series, and each segment takes its slice;
* a condition's mask is asked of its operands where the operator allows it, so the operator's
  value is not computed: ``x or y`` is 1 exactly where ``x`` or ``y`` is 1, and ``x and y`` is
  not 0 exactly where neither is 0 (``_or``/``_and``); ``x or y`` is not 0 where ``x`` or ``y``
  is not 0, and ``x and y`` is 1 where both are 1, when ``x`` and ``y`` can only be 1, 0 or NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from policyctl.rules.vectorized import _CMP, _LOGICAL, _SCALAR, _VECTOR, Array, Partial, Step, Value, _rows

TRUE = "true"
NOT_FALSE = "not false"
# operators a plan computes together when independent: costly ones (a handful of numpy calls each,
# of a fixed cost on a segment's few bars); ``a >= b`` is ``b <= a`` and ``a < b`` is ``b > a`` bit
# for bit (the difference changes sign exactly, the tolerance is symmetric)
_BATCHED = frozenset({*_CMP, "and", "or"})
_FLIPPED = {"ge": "le", "lt": "gt"}


@dataclass(frozen=True)
class Condition:
    """Where a node's value holds: is 1 (``TRUE``), or is not 0 (``NOT_FALSE``: true or
    unavailable). For a per-symbol value, ``rows`` are the symbols asked (any of them; None:
    all)."""

    node: int
    holds: str
    rows: tuple[int, ...] | None = None


class Plan:
    """A compiled evaluation of conditions over a segment: ``plan(read, a, b, event)`` ORs into
    the boolean ``event`` (one per bar of [a, b)) where each condition holds, and returns True
    (once the first bar is an event, it may stop: nothing comes earlier); or returns False,
    ``event`` untouched, when the segment's shape is not the plan's. ``read(i)`` gives the
    value of input ``i`` over the segment."""

    def __init__(self, source: str, namespace: dict[str, Any]):
        self.source, self.namespace = source, namespace
        # generated from the trace of a checked graph: names and literals are all ours
        exec(compile(source, "<policyctl scan plan>", "exec"), namespace)
        self.run: Callable[[Callable[[int], Value], int, int, npt.NDArray[np.bool_]], bool] = namespace["_plan"]

    def __call__(self, read: Callable[[int], Value], a: int, b: int, event: npt.NDArray[np.bool_]) -> bool:
        return self.run(read, a, b, event)


def compile_plan(p: Partial, conditions: Sequence[Condition], fixed: Mapping[int, Value],
                 whole: dict[tuple[Any, ...], Any]) -> Plan | None:
    """The plan for segments shaped as the recorded evaluation ``p`` was, after it evaluated every
    condition; None if it cannot be compiled (a series operator over a segment).

    ``fixed`` holds the value over the whole series of the inputs that do not depend on the
    segment (``p`` read their slice); every other input is ``read(i)``. ``whole`` caches values
    over the whole series, shared between plans."""
    if p.trace is None or p.bars <= max(1, p.n_sym):  # shapes must tell bars from symbols
        return None
    if any(step[0] == "series" for step in p.trace):
        return None
    return _Compiler(p, conditions, fixed, whole).build()


def _kind_check(v: Any, bars: int) -> str:
    """The test that a read value is not of the kind (and shape) of ``v``: an expression of ``x``."""
    if not isinstance(v, np.ndarray):
        return "isinstance(x, _A)"
    dims = ", ".join("n" if d == bars else str(int(d)) for d in v.shape)
    return f"not isinstance(x, _A) or x.shape != ({dims}{',' if v.ndim == 1 else ''})"


class _Compiler:
    def __init__(self, p: Partial, conditions: Sequence[Condition], fixed: Mapping[int, Value],
                 whole: dict[tuple[Any, ...], Any]):
        self.p, self.nodes, self.conditions, self.given, self.whole = p, p.nodes, conditions, fixed, whole
        assert p.trace is not None
        self.trace = p.trace
        self.how: dict[int, Step] = {s[1]: s for s in self.trace if s[0] != "guard"}
        self.ns: dict[str, Any] = {"_A": np.ndarray, "_rows": _rows, "K": p.n_sym, "_empty": np.empty,
                                   "_any_row": np.logical_or.reduce}
        # the values that are the same for every segment of this shape, by a key naming how
        # they are computed (values over the whole series are shared by plans through it)
        self.key: dict[int, tuple[Any, ...]] = {}
        for s in self.trace:
            kind, i = s[0], s[1]
            if kind == "guard":
                continue
            if kind == "source":
                if i in fixed:
                    v = fixed[i]
                    self.key[i] = ("given", i) if isinstance(v, np.ndarray) else _const_key(v)
            elif kind == "const":
                self.key[i] = _const_key(p.values[i])
            elif all(a in self.key for a in self._deps(i)):
                v = p.values[i]
                if not isinstance(v, np.ndarray):
                    self.key[i] = _const_key(v)  # the same inputs, the same float
                elif kind == "alias":
                    self.key[i] = ("rows", self.key[s[2]]) if s[3] == "rows" else self.key[s[2]]
                else:
                    self.key[i] = (self.nodes[i].op, s[2], *(self.key[a] for a in self.nodes[i].args))

    def _deps(self, i: int) -> tuple[int, ...]:
        s = self.how[i]
        if s[0] == "alias":
            return (s[2],)
        if s[0] in ("scalar", "array"):
            return self.nodes[i].args
        return ()

    def _whole(self, i: int) -> Any:
        """The value of the segment-independent node ``i`` over the whole series."""
        key = self.key[i]
        if key in self.whole:
            return self.whole[key]
        s = self.how[i]
        v = self.p.values[i]
        if not isinstance(v, np.ndarray):
            r: Any = v
        elif s[0] == "source":
            r = self.given[i]
        elif s[0] == "alias":
            r = self._whole(s[2])
            r = _rows(r, self.p.n_sym) if s[3] == "rows" else r
        else:
            with np.errstate(all="ignore"):
                r = _VECTOR[self.nodes[i].op](*(self._whole(a) for a in self.nodes[i].args))
            r = _rows(r, self.p.n_sym) if s[2] == "rows" else r
        self.whole[key] = r
        return r

    def _closure(self, roots: Iterable[int], into: set[int]) -> None:
        stack = [i for i in roots if i not in self.key]
        while stack:
            i = stack.pop()
            if i not in into:
                into.add(i)
                stack.extend(a for a in self._deps(i) if a not in self.key)

    # a condition's mask: a disjunction of conjunctions of node values tested
    def _any_of(self, i: int, holds: str) -> list[list[int]]:
        s = self.how[i]
        if i not in self.key:
            if s[0] == "alias" and s[3] != "float":
                return self._any_of(s[2], holds)
            if self._splits(i, "or", holds == TRUE):
                x, y = self.nodes[i].args
                return self._any_of(x, holds) + self._any_of(y, holds)
        return [self._all_of(i, holds)]

    def _all_of(self, i: int, holds: str) -> list[int]:
        s = self.how[i]
        if i not in self.key:
            if s[0] == "alias" and s[3] != "float":
                return self._all_of(s[2], holds)
            if self._splits(i, "and", holds == NOT_FALSE):
                x, y = self.nodes[i].args
                return self._all_of(x, holds) + self._all_of(y, holds)
        return [i]

    def _splits(self, i: int, op: str, always: bool) -> bool:
        s, n = self.how[i], self.nodes[i]
        if s[0] != "array" or n.op != op or not all(isinstance(self.p.values[a], np.ndarray) for a in n.args):
            return False
        return always or all(self.nodes[a].op in _LOGICAL for a in n.args)

    def build(self) -> Plan:
        p, values = self.p, self.p.values
        pre_roots = [s[1] for s in self.trace if s[0] == "guard" and s[1] not in self.key]
        scalar_conds: list[Condition] = []
        terms: list[tuple[list[int], str, tuple[int, ...]]] = []  # (leaves, holds, rows)
        for c in self.conditions:
            if not isinstance(values[c.node], np.ndarray):
                scalar_conds.append(c)
                pre_roots.append(c.node)
            else:
                rows = c.rows if c.rows is not None else tuple(range(p.n_sym))
                terms += [(leaves, c.holds, rows) for leaves in self._any_of(c.node, c.holds)]
        pre: set[int] = set()
        self._closure(pre_roots, pre)
        body: set[int] = set()
        self._closure((i for leaves, _, _ in terms for i in leaves), body)
        pre |= {i for i in body if self.how[i][0] == "source"}  # every input is checked first
        body -= pre

        self.lines = ["def _plan(read, a, b, event):", "    n = b - a"]
        self.loaded: set[int] = set()
        self.batched: dict[int, tuple[str, int, int]] = {}  # node -> its batch, first row, rows
        self.batch_rows: dict[str, int] = {}
        for s in self.trace:  # the checks, and what they need
            if s[0] == "guard":
                j, c, outcome = s[1], s[2], s[3]
                if j not in self.key:
                    self._line(f"if v{j} {'!=' if outcome else '=='} {float(c)!r}: return False")
            elif s[1] in pre:
                self._compute(s[1])
        for c in scalar_conds:  # conditions that are the same at every bar
            if c.node in self.key:
                if _holds(values[c.node], c.holds):
                    self._line("event[0] = True")
                    self._line("return True")
            else:
                test = "== 1.0" if c.holds == TRUE else "!= 0.0"
                self._line(f"if {self._ref(c.node)} {test}: event[0] = True; return True")
        hoisted = [t for t in terms if all(i in self.key for i in t[0])]
        for k, (leaves, holds, rows) in enumerate(hoisted):  # masks over the whole series
            name = f"m{k}"
            self.ns[name] = self._whole_mask(leaves, holds, rows)
            self._line(f"event |= {name}[a:b]")
        if hoisted:
            self._line("if event[0]: return True")
        self._body(body)
        # a test of rows of one batch is one test (the rows asked of a per-symbol value among them)
        tested: dict[tuple[str, str], list[int]] = {}
        for k, (leaves, holds, rows) in enumerate(t for t in terms if t not in hoisted):
            i = leaves[0]
            if len(leaves) == 1 and i in self.batched:
                name, j, _ = self.batched[i]
                tested.setdefault((name, holds), []).extend(
                    [j] if values[i].ndim == 1 else [j + r for r in rows])  # type: ignore[union-attr]
            else:
                self._line(f"event |= {self._mask(k, leaves, holds, rows)}")
        for k, ((name, holds), at) in enumerate(tested.items()):
            test = "== 1.0" if holds == TRUE else "!= 0.0"
            at = sorted(set(at))
            if len(at) == 1:
                self._line(f"event |= ({name}[{at[0]}] {test})")
                continue
            if at == list(range(self.batch_rows[name])):
                rows_of = name
            elif at == list(range(at[0], at[-1] + 1)):
                rows_of = f"{name}[{at[0]}:{at[-1] + 1}]"
            else:
                self.ns[f"t{k}"] = at
                rows_of = f"{name}[t{k}]"
            self._line(f"event |= _any_row({rows_of} {test}, axis=0)")
        self._line("return True")
        return Plan("\n".join(self.lines) + "\n", self.ns)

    def _line(self, text: str) -> None:
        self.lines.append("    " + text)

    def _body(self, body: set[int]) -> None:
        """The array work, level by level (a level's arrays come from the levels before). The
        costly operators of a level that are the same function run as one call, on their operands
        stacked row over row: they are element-wise, so each row gets the value it gets alone."""
        order = [s[1] for s in self.trace if s[0] != "guard" and s[1] in body]
        level: dict[int, int] = {}
        for i in order:  # floats are computed at once, in order, before the level's arrays
            level[i] = max((level[d] + isinstance(self.p.values[d], np.ndarray) for d in self._deps(i) if d in body),
                           default=0)
        for lv in sorted(set(level.values())):
            batches: dict[str, list[int]] = {}
            for i in order:
                if level[i] == lv:
                    op = self._batched_op(i)
                    if op is None:
                        self._compute(i)
                    else:
                        batches.setdefault(op, []).append(i)
            for op, ids in batches.items():
                if len(ids) == 1:
                    self._compute(ids[0])
                else:
                    self._batch(op, ids)

    def _batched_op(self, i: int) -> str | None:
        """The function node ``i`` is computed with in a batch, if it may be."""
        s, op, v = self.how[i], self.nodes[i].op, self.p.values[i]
        if s[0] != "array" or s[2] or op not in _BATCHED or not isinstance(v, np.ndarray):
            return None
        if v.ndim not in (1, 2) or v.shape[-1] != self.p.bars:
            return None
        return _FLIPPED.get(op, op)

    def _batch(self, op: str, ids: list[int]) -> None:
        values = self.p.values
        rows = [1 if values[i].ndim == 1 else values[i].shape[0] for i in ids]  # type: ignore[union-attr]
        at = [sum(rows[:k]) for k in range(len(ids))]
        name = f"B{ids[0]}"
        sides = []
        for side in (0, 1):  # whole rows: broadcasting a column costs more than filling it
            args = [self.nodes[i].args[1 - side if self.nodes[i].op in _FLIPPED else side] for i in ids]
            fixed = {j: values[x] for x, j in zip(args, at, strict=True)
                     if x in self.key and not isinstance(values[x], np.ndarray)}
            x_name = f"X{side}_{name}"
            if fixed:  # rows of constants: filled once for each length
                fill = [(j, k, fixed[j]) for j, k in zip(at, rows, strict=True) if j in fixed]
                self.ns[f"F{side}_{name}"] = _Filled(sum(rows), fill)
                self._line(f"{x_name} = F{side}_{name}(n){'' if len(fixed) == len(args) else '.copy()'}")
            else:
                self._line(f"{x_name} = _empty(({sum(rows)}, n))")
            for x, j, k, i in zip(args, at, rows, ids, strict=True):
                if j not in fixed:
                    where = f"{j}" if values[i].ndim == 1 else f"{j}:{j + k}"  # type: ignore[union-attr]
                    self._line(f"{x_name}[{where}] = {self._ref(x)}")
            sides.append(x_name)
        self.ns[f"V_{op}"] = _VECTOR[op]
        self._line(f"{name} = V_{op}({sides[0]}, {sides[1]})")
        self.batch_rows[name] = sum(rows)
        for j, k, i in zip(at, rows, ids, strict=True):
            self.batched[i] = (name, j, k)  # its rows, taken when asked

    def _ref(self, i: int) -> str:
        if i in self.batched and i not in self.loaded:
            self.loaded.add(i)
            name, j, k = self.batched[i]
            self._line(f"v{i} = {name}[{j if self.p.values[i].ndim == 1 else f'{j}:{j + k}'}]")  # type: ignore[union-attr]
        if i in self.key:
            v = self.p.values[i]
            if not isinstance(v, np.ndarray):
                self.ns[f"k{i}"] = v
                return f"k{i}"
            if i not in self.loaded:  # this segment's slice
                self.loaded.add(i)
                w = self._whole(i)
                self.ns[f"w{i}"] = w
                self._line(f"v{i} = w{i}[{':, ' if w.ndim == 2 else ''}a:b]")
        return f"v{i}"

    def _compute(self, i: int) -> None:
        s, n = self.how[i], self.nodes[i]
        if s[0] == "source":
            self._line(f"v{i} = x = read({i})")
            self._line(f"if {_kind_check(self.p.values[i], self.p.bars)}: return False")
            return
        if s[0] == "alias":
            self._line(f"v{i} = {self._ref(s[2])}")
        else:
            table = "S" if s[0] == "scalar" else "V"
            self.ns[f"{table}_{n.op}"] = (_SCALAR if s[0] == "scalar" else _VECTOR)[n.op]
            self._line(f"v{i} = {table}_{n.op}({', '.join(self._ref(a) for a in n.args)})")
        post = s[2] if s[0] == "array" else s[3] if s[0] == "alias" else ""
        if post == "rows":
            self._line(f"v{i} = _rows(v{i}, K)")
        elif post == "float":
            self._line(f"v{i} = float(v{i}.reshape(-1)[0])")

    def _mask(self, k: int, leaves: list[int], holds: str, rows: tuple[int, ...]) -> str:
        test = "== 1.0" if holds == TRUE else "!= 0.0"
        refs = [(self._ref(i), self.p.values[i].ndim == 2) for i in leaves]  # type: ignore[union-attr]
        if not any(two for _, two in refs):
            return " & ".join(f"({r} {test})" for r, _ in refs)
        if len(rows) == 1:
            return " & ".join(f"({r}[{rows[0]}] {test})" if two else f"({r} {test})" for r, two in refs)
        self.ns[f"r{k}"] = list(rows)
        return f"({' & '.join(f'({r} {test})' for r, _ in refs)})[r{k}].any(axis=0)"

    def _whole_mask(self, leaves: list[int], holds: str, rows: tuple[int, ...]) -> npt.NDArray[np.bool_]:
        key = ("mask", holds, rows, *(self.key[i] for i in leaves))
        m = self.whole.get(key)
        if m is None:
            m = functools.reduce(np.logical_and, [_holds(self._whole(i), holds) for i in leaves])
            if m.ndim == 2:
                m = m[rows[0]] if len(rows) == 1 else m[list(rows)].any(axis=0)
            m = self.whole[key] = np.ascontiguousarray(m)
        return cast(npt.NDArray[np.bool_], m)


class _Filled:
    """Rows of constants over ``n`` bars (``(first row, rows, value)``), made once for each ``n``."""

    def __init__(self, rows: int, fill: list[tuple[int, int, Any]]):
        self.rows, self.fill = rows, fill
        self.made: dict[int, Array] = {}

    def __call__(self, n: int) -> Array:
        x = self.made.get(n)
        if x is None:
            if len(self.made) >= 16:  # segments have a few lengths; the rare others are not kept long
                self.made.clear()
            x = self.made[n] = np.empty((self.rows, n))
            for j, k, v in self.fill:
                x[j:j + k] = v
            x.flags.writeable = False
        return x


def _const_key(v: Any) -> tuple[str, str]:
    return ("const", float(v).hex())


def _holds(v: Any, holds: str) -> Any:
    """Where a value holds: is 1 (``TRUE``) or is not 0 (``NOT_FALSE``)."""
    return np.equal(v, 1.0) if holds == TRUE else np.not_equal(v, 0.0)
