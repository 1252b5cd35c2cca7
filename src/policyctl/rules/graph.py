"""The evaluation graph: a whole policy as one DAG of shared, typed nodes.

Every rule of every kind compiles into nodes of one :class:`Graph`. Nodes are hash-consed
on ``(op, args, attr)``, so ``sma(close, 20)`` is one node however many rules write it, and
constant sub-expressions are folded as they are added. Each node remembers every source
span it was written at and every rule that uses it, which is what explanations and
``policyctl graph`` show.

Node classes, for the evaluators:

* ``per_symbol``: the value depends on the symbol a rule is evaluated for (``close``), as
  opposed to portfolio-wide values and values bound to a named symbol (``close of "BTC/USDT"``).
* ``market``: computed from candles alone (no account state), so it has history and the
  simulator can compute it over a whole series at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from policyctl.diagnostics import Span
from policyctl.rules import ops
from policyctl.rules.types import Kind, Type

Attr = tuple[object, ...]


@dataclass(eq=False, slots=True)
class GNode:
    id: int
    op: str
    args: tuple[int, ...]
    attr: Attr
    type: Type
    per_symbol: bool
    market: bool
    spans: dict[Span, None] = field(default_factory=dict)  # ordered set: where it is written
    rules: set[str] = field(default_factory=set)

    @property
    def is_const(self) -> bool:
        return self.op == "const"

    @property
    def value(self) -> float:
        assert self.op == "const"
        return float(self.attr[0])  # type: ignore[arg-type]

    def label(self) -> str:
        """A short human label: ``sma[20]``, ``close@BTC/USDT``, ``0.03``."""
        if self.op == "const":
            return _fmt_const(self.value, self.type)
        if self.op == "field":
            name, target = self.attr
            return f"{name}@{target}" if target else str(name)
        if self.op == "window":
            func, seconds = self.attr
            return f"{func}({fmt_duration(float(seconds))})"  # type: ignore[arg-type]
        if self.op == "ind":
            name, n = self.attr
            return f"{name}[{n}]"
        if self.op == "shift":
            return f"shift[{self.attr[0]}]"
        if self.op == "cross":
            return f"crosses_{self.attr[0]}"
        return ops.SYMBOLS.get(self.op, self.op)


def fmt_duration(s: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{s:g}s"


def _fmt_const(v: float, t: Type) -> str:
    if math.isnan(v):
        return "unavailable"
    if t.kind is Kind.BOOL:
        return "true" if v else "false"
    if t.kind is Kind.PERCENT:
        return f"{v * 100:g}%"
    if t.kind is Kind.DURATION:
        return fmt_duration(v)
    if t.kind is Kind.MONEY:
        return f"{v:g} {t.currency}" if t.currency else f"{v:g}"
    return f"{v:g}"


@dataclass(frozen=True, slots=True)
class Output:
    """A value a rule needs from the graph: ``(kind, rule, role) -> node``."""

    kind: str  # trigger | cap | breaker | param
    rule: str
    role: str  # when | size | per | stop | take | metric | limit | duration
    node: int


# Ops whose value is a pure function of their arguments (foldable when all are constant).
FOLDABLE = frozenset(ops.PURE)


class Graph:
    def __init__(self) -> None:
        self.nodes: list[GNode] = []
        self._index: dict[tuple[str, tuple[int, ...], Attr], int] = {}
        self.outputs: list[Output] = []
        self._reachable: list[int] | None = None

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, i: int) -> GNode:
        return self.nodes[i]

    def const(self, value: float, type: Type, span: Span | None = None, rule: str | None = None) -> int:
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        v = float(value)
        key_v: object = "nan" if math.isnan(v) else v
        return self._add("const", (), (key_v,), type, False, True, span, rule, value=v)

    def add(
        self,
        op: str,
        args: tuple[int, ...],
        attr: Attr,
        type: Type,
        span: Span | None = None,
        rule: str | None = None,
        per_symbol: bool | None = None,
        market: bool | None = None,
    ) -> int:
        """Add (or find) a node; folds it to a constant when every argument is constant."""
        kids = [self.nodes[a] for a in args]
        if op in FOLDABLE and kids and all(k.is_const for k in kids):
            value = ops.PURE[op](*(k.value for k in kids))
            return self.const(value, type, span, rule)
        if op in ("and", "or"):
            folded = self._fold_logic(op, args, span, rule)
            if folded is not None:
                return folded
        if per_symbol is None:
            per_symbol = any(k.per_symbol for k in kids)
        if market is None:
            market = all(k.market for k in kids)
        return self._add(op, args, attr, type, per_symbol, market, span, rule)

    def _fold_logic(self, op: str, args: tuple[int, ...], span: Span | None, rule: str | None) -> int | None:
        absorbing = 0.0 if op == "and" else 1.0
        a, b = (self.nodes[x] for x in args)
        for c, other in ((a, b), (b, a)):
            if c.is_const:
                if c.value == absorbing:
                    return self.const(absorbing, c.type, span, rule)
                if not math.isnan(c.value):  # the identity element: `x and true` is `x`
                    self._touch(other.id, span, rule)
                    return other.id
        return None

    def _touch(self, i: int, span: Span | None, rule: str | None) -> None:
        n = self.nodes[i]
        if span is not None:
            n.spans[span] = None
        if rule is not None:
            n.rules.add(rule)

    def _add(
        self,
        op: str,
        args: tuple[int, ...],
        attr: Attr,
        type: Type,
        per_symbol: bool,
        market: bool,
        span: Span | None,
        rule: str | None,
        value: float | None = None,
    ) -> int:
        key = (op, args, attr if op != "const" else (attr[0], type.kind.value, type.currency))
        i = self._index.get(key)
        if i is None:
            i = len(self.nodes)
            stored_attr = (value,) if op == "const" else attr
            self.nodes.append(GNode(i, op, args, stored_attr, type, per_symbol, market))
            self._index[key] = i
        self._touch(i, span, rule)
        return i

    def output(self, kind: str, rule: str, role: str, node: int) -> None:
        self.outputs.append(Output(kind, rule, role, node))
        self._reachable = None
        self._mark_rule(node, f"{kind}:{rule}")

    def _mark_rule(self, root: int, rule_id: str) -> None:
        stack = [root]
        while stack:
            n = self.nodes[stack.pop()]
            if rule_id in n.rules:
                continue
            n.rules.add(rule_id)
            stack.extend(n.args)

    def reachable(self) -> list[int]:
        """Ids of nodes some output needs, in topological (id) order."""
        if self._reachable is not None:
            return self._reachable
        seen: set[int] = set()
        stack = [o.node for o in self.outputs]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            stack.extend(self.nodes[i].args)
        self._reachable = sorted(seen)
        return self._reachable

    def output_node(self, kind: str, rule: str, role: str) -> GNode | None:
        for o in self.outputs:
            if (o.kind, o.rule, o.role) == (kind, rule, role):
                return self.nodes[o.node]
        return None


# ---- rendering --------------------------------------------------------------------------


def _node_line(n: GNode) -> str:
    args = ", ".join(f"%{a}" for a in n.args)
    flags = "".join(
        [
            "S" if n.per_symbol else "-",
            "M" if n.market else "-",
        ]
    )
    spans = list(n.spans)
    where = ", ".join(str(s) for s in spans[:3]) + (" …" if len(spans) > 3 else "")
    rules = ", ".join(sorted(r for r in n.rules if ":" in r))
    body = f"{n.label()}({args})" if n.args else n.label()
    return f"%{n.id:<4} {flags} {n.type!s:<14} {body:<40} rules=[{rules}] at {where}"


def render_text(g: Graph) -> str:
    live = g.reachable()
    lines = [f"# {len(live)} nodes ({len(g.nodes) - len(live)} folded away), {len(g.outputs)} outputs",
             "# flags: S = per symbol, M = market data only (vectorizable)"]
    lines += [_node_line(g.nodes[i]) for i in live]
    lines.append("")
    lines += [f"{o.kind} {o.rule}.{o.role} = %{o.node}" for o in g.outputs]
    return "\n".join(lines)


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def render_dot(g: Graph) -> str:
    out = ["digraph policy {", "  rankdir=BT;", '  node [shape=box, fontname="monospace"];']
    for i in g.reachable():
        n = g.nodes[i]
        style = ', style=filled, fillcolor="#e8f0ff"' if n.market else ""
        out.append(f'  n{i} [label="%{i} {_esc(n.label())}\\n{_esc(str(n.type))}"{style}];')
        out += [f"  n{a} -> n{i};" for a in n.args]
    for k, o in enumerate(g.outputs):
        out.append(f'  o{k} [shape=ellipse, label="{_esc(f"{o.kind} {o.rule}.{o.role}")}"];')
        out.append(f"  n{o.node} -> o{k};")
    out.append("}")
    return "\n".join(out)


def render_mermaid(g: Graph) -> str:
    out = ["flowchart BT"]

    def q(s: str) -> str:
        return s.replace('"', "#quot;")

    for i in g.reachable():
        n = g.nodes[i]
        out.append(f'  n{i}["%{i} {q(n.label())}<br/>{q(str(n.type))}"]')
        out += [f"  n{a} --> n{i}" for a in n.args]
    for k, o in enumerate(g.outputs):
        out.append(f'  o{k}(["{q(f"{o.kind} {o.rule}.{o.role}")}"])')
        out.append(f"  n{o.node} --> o{k}")
    return "\n".join(out)
