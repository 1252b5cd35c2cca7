"""Types of policy values: a kind with its unit, and the unit algebra of the operators.

Units are part of the type: ``3%`` is a percentage, ``90s`` a duration, ``1000 USDT`` money
in USDT. The algebra below is the single place that says what ``percent * money`` is; the
checker calls it for every operator and reports what it refuses.

A percentage is a dimensionless fraction (``3%`` is 0.03), so it mixes with plain numbers in
arithmetic (``close * (1 + 2%)``); comparisons, though, must compare like with like, because
``rsi(close, 14) < 3%`` is almost certainly a mistake. A *ratio* of like quantities
(``atr(14) / close``, ``close / sma(close, 20)``) is dimensionless too: it compares with
numbers and percentages alike (``atr(14) / close < 2%``, ``close / sma(close, 20) > 1.02``).
The literal ``0`` compares with anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    NUMBER = "number"
    PERCENT = "percent"
    DURATION = "duration"
    MONEY = "money"
    BOOL = "bool"
    STRING = "string"


NUMERIC = frozenset({Kind.NUMBER, Kind.PERCENT, Kind.DURATION, Kind.MONEY})


@dataclass(frozen=True, slots=True)
class Type:
    kind: Kind
    currency: str | None = None  # for MONEY; None = the quote currency, not checked
    ratio: bool = False  # a NUMBER that is a ratio of like quantities (compares with PERCENT)

    def __str__(self) -> str:
        if self.kind is Kind.MONEY and self.currency:
            return f"money ({self.currency})"
        return self.kind.value

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC


NUMBER = Type(Kind.NUMBER)
PERCENT = Type(Kind.PERCENT)
DURATION = Type(Kind.DURATION)
MONEY = Type(Kind.MONEY)
BOOL = Type(Kind.BOOL)
STRING = Type(Kind.STRING)


RATIO = Type(Kind.NUMBER, ratio=True)


def money(currency: str | None) -> Type:
    return Type(Kind.MONEY, currency)


class UnitError(Exception):
    """An operator applied to operands whose units do not fit; ``help`` says what would."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.message = message
        self.help = help


def _same_money(a: Type, b: Type) -> Type:
    if a.currency and b.currency and a.currency != b.currency:
        raise UnitError(
            f"cannot combine money in `{a.currency}` with money in `{b.currency}`",
            "convert one side with a price first",
        )
    return money(a.currency or b.currency)


def arith(op: str, a: Type, b: Type, b_is_zero: bool = False, a_is_zero: bool = False) -> Type:
    """The type of ``a op b`` for ``op`` in ``+ - * /``."""
    if not a.numeric or not b.numeric:
        bad = a if not a.numeric else b
        raise UnitError(f"`{op}` needs numbers, found {bad}")
    ka, kb = a.kind, b.kind
    if op in "+-":
        if ka == kb:
            if ka is Kind.MONEY:
                return _same_money(a, b)
            return RATIO if ka is Kind.NUMBER and (a.ratio or b.ratio) else a
        if {ka, kb} == {Kind.NUMBER, Kind.PERCENT}:
            return RATIO
        if a_is_zero:
            return b
        if b_is_zero:
            return a
        raise UnitError(
            f"cannot {'add' if op == '+' else 'subtract'} {b} {'to' if op == '+' else 'from'} {a}",
            "both sides of `+` and `-` need the same unit",
        )
    if op == "*":
        if ka is Kind.NUMBER:
            return b
        if kb is Kind.NUMBER:
            return a
        if ka is Kind.PERCENT:
            return b
        if kb is Kind.PERCENT:
            return a
        raise UnitError(f"cannot multiply {a} by {b}", "one side of `*` must be a number or a percentage")
    # division
    if kb is Kind.NUMBER:
        return a
    if ka == kb:
        if ka is Kind.MONEY:
            _same_money(a, b)
        return RATIO
    if kb is Kind.PERCENT and ka is not Kind.NUMBER:
        return a
    raise UnitError(f"cannot divide {a} by {b}", "divide by a number, or by a value of the same unit")


def comparable(a: Type, b: Type, a_is_zero: bool = False, b_is_zero: bool = False) -> None:
    """Raise :class:`UnitError` unless ``a`` and ``b`` may be compared."""
    if a.kind is Kind.BOOL or b.kind is Kind.BOOL or a.kind is Kind.STRING or b.kind is Kind.STRING:
        if a.kind != b.kind:
            raise UnitError(f"cannot compare {a} with {b}")
        return
    if a_is_zero or b_is_zero:
        return
    if {a.kind, b.kind} == {Kind.NUMBER, Kind.PERCENT} and (a.ratio or b.ratio):
        return
    if a.kind != b.kind:
        pair = {a.kind, b.kind}
        help = f"the left side is {a} and the right side is {b}: compare like with like"
        if pair == {Kind.PERCENT, Kind.NUMBER}:
            help = "write a percentage with `%` (`8%`, not `0.08`), or compare numbers with numbers"
        elif pair == {Kind.DURATION, Kind.NUMBER}:
            help = "write durations with a unit: `90s`, `5m`, `1h`, `7d`"
        elif pair == {Kind.MONEY, Kind.NUMBER}:
            help = "write money with its currency: `1000 USDT`"
        elif pair == {Kind.PERCENT, Kind.MONEY} and a.kind is Kind.MONEY:  # a price against a percentage
            help = ("money compares with money (`1000 USDT`, `1.03 * close[1]`); a move in percent is "
                    "`change(close, 1) > 3%`")
        elif pair == {Kind.PERCENT, Kind.MONEY}:
            help = "a share of equity is a percentage (`20%`); money compares with money (`1000 USDT`)"
        raise UnitError(f"cannot compare {a} with {b}", help)
    if a.kind is Kind.MONEY:
        _same_money(a, b)
