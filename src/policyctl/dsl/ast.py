"""The syntax tree of policy expressions and rule statements.

Frozen dataclasses built by the parser (``dsl.parser``). Every node carries its source
:class:`~policyctl.diagnostics.Span`, left out of equality and hashing so that two spellings
of the same expression in different places compare equal (what sub-expression sharing in
the compiled graph relies on). ``depth`` is computed at construction so that later passes,
which recurse, can rely on a bounded depth (the parser rejects deeper trees).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from policyctl.diagnostics import Span


class Unit(str, Enum):
    """The unit a literal was written with (``3%`` and ``30bps`` are both percentages)."""

    NUMBER = "number"
    PERCENT = "percent"
    DURATION = "duration"
    MONEY = "money"


@dataclass(frozen=True, slots=True)
class Node:
    span: Span = field(compare=False, repr=False)

    @property
    def depth(self) -> int:
        return 1


# ---- expressions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A number with its unit: ``20``, ``3%`` (0.03), ``30bps`` (0.003), ``90s`` (90.0),
    ``1000 USDT`` (1000.0, currency ``USDT``). Durations are held in seconds."""

    value: float
    unit: Unit
    currency: str | None = None
    text: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class BoolLit(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class StrLit(Node):
    value: str


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A (possibly dotted) name: ``close``, ``exposure.total``, a param."""

    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Call(Node):
    func: str
    args: tuple[Expr, ...]
    name_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]
    _depth: int = field(compare=False, repr=False, default=1)

    @property
    def depth(self) -> int:
        return self._depth


@dataclass(frozen=True, slots=True)
class Index(Node):
    """History: ``close[1]`` is the close one bar ago."""

    base: Expr
    offset: Expr
    _depth: int = field(compare=False, repr=False, default=1)

    @property
    def depth(self) -> int:
        return self._depth


@dataclass(frozen=True, slots=True)
class Of(Node):
    """``expr of "BTC/USDT"``: evaluate a per-symbol expression for a named symbol
    (or ``exposure.theme of "majors"`` for a named theme)."""

    base: Expr
    target: str
    target_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]
    _depth: int = field(compare=False, repr=False, default=1)

    @property
    def depth(self) -> int:
        return self._depth


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Expr
    _depth: int = field(compare=False, repr=False, default=1)

    @property
    def depth(self) -> int:
        return self._depth


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # + - * / < <= > >= == != and or
    left: Expr
    right: Expr
    op_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]
    _depth: int = field(compare=False, repr=False, default=1)

    @property
    def depth(self) -> int:
        return self._depth


Expr = Literal | BoolLit | StrLit | Name | Call | Index | Of | Unary | Binary


# ---- actions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Size(Node):
    """How much to buy or sell.

    ``kind`` is ``fraction`` (``2% of equity``), ``amount`` (``500 USDT``) or ``risk``
    (``risk 1% of equity [per 2 * atr(14)]``: the quantity that loses ``amount`` if price
    moves by the stop distance, or by ``per`` when given).
    """

    kind: str
    amount: Expr
    base: str | None = None  # "equity" | "cash" for fraction and risk
    per: Expr | None = None


@dataclass(frozen=True, slots=True)
class Buy(Node):
    size: Size
    stop: Expr | None = None
    take: Expr | None = None


@dataclass(frozen=True, slots=True)
class Sell(Node):
    size: Size


@dataclass(frozen=True, slots=True)
class CloseAll(Node):
    pass


Action = Buy | Sell | CloseAll


@dataclass(frozen=True, slots=True)
class BreakerAction(Node):
    kind: str  # halt | pause | reduce_only | flatten | alert
    duration: Expr | None = None


# ---- statements -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger(Node):
    name: str
    when: Expr
    action: Action
    symbols: tuple[str, ...] = ()
    strategy: str | None = None
    name_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Cap(Node):
    name: str
    expr: Expr
    mode: str | None = None  # "clip" | "block"; None = the cap's default
    strategy: str | None = None
    name_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Breaker(Node):
    name: str
    when: Expr
    action: BreakerAction
    name_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Param(Node):
    name: str
    value: Expr
    name_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]


Statement = Trigger | Cap | Breaker | Param


def children(e: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of an expression."""
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Index):
        return (e.base, e.offset)
    if isinstance(e, Of):
        return (e.base,)
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, Binary):
        return (e.left, e.right)
    return ()


def walk(e: Expr) -> list[Expr]:
    """All nodes of an expression, parents before children (iterative)."""
    out: list[Expr] = []
    stack = [e]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(reversed(children(n)))
    return out


def to_source(e: Expr) -> str:
    """Render an expression back to canonical source text (fully parenthesised binaries)."""
    if isinstance(e, Literal):
        if e.text:
            return e.text
        return repr(e.value)
    if isinstance(e, BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, StrLit):
        return f'"{e.value}"'
    if isinstance(e, Name):
        return e.dotted
    if isinstance(e, Call):
        return f"{e.func}({', '.join(to_source(a) for a in e.args)})"
    if isinstance(e, Index):
        return f"{to_source(e.base)}[{to_source(e.offset)}]"
    if isinstance(e, Of):
        return f'{to_source(e.base)} of "{e.target}"'
    if isinstance(e, Unary):
        sep = " " if e.op == "not" else ""
        return f"{e.op}{sep}{to_source(e.operand)}"
    if isinstance(e, Binary):
        return f"({to_source(e.left)} {e.op} {to_source(e.right)})"
    raise TypeError(type(e))
