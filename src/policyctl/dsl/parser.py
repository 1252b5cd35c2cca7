"""Parse policy text into the AST (``dsl.ast``), reporting syntax errors as diagnostics.

One LALR parser (grammar in ``grammar.lark``) with several entry points: whole ``.rules``
files, and the snippets a YAML policy embeds (an expression, a trigger action, a breaker
action, a cap). The AST is built by an inline transformer while parsing, so no pass ever
recurses over a parse tree: an expression nested ten thousand deep is rejected with a
diagnostic, not a ``RecursionError``.

Positions go through a :class:`SourceMap`, which turns character offsets of the parsed
text into absolute file positions; for an expression inside a YAML scalar that is the
scalar's own mapping, so errors land at the right ``file:line:col`` of the YAML file.
"""

from __future__ import annotations

import bisect
import math
import re
from functools import cache
from importlib import resources
from typing import Any, Protocol

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from policyctl.diagnostics import Diagnostics, Span
from policyctl.dsl import ast

MAX_DEPTH = 100
ENTRY_POINTS = ("rules_file", "expr", "action", "breaker_action", "cap_body")

DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class SourceMap(Protocol):
    """Maps offsets in the parsed text to absolute positions in a file."""

    file: str

    def span(self, start: int, end: int) -> Span: ...


class TextSource:
    """A whole file (or a piece of one starting at ``base``) parsed as it stands."""

    def __init__(self, file: str, text: str, base: int = 0):
        self.file = file
        self.text = text
        self.base = base
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def pos(self, offset: int) -> tuple[int, int]:
        offset += self.base
        i = bisect.bisect_right(self._starts, offset) - 1
        return i + 1, offset - self._starts[i] + 1

    def span(self, start: int, end: int) -> Span:
        line, col = self.pos(start)
        end_line, end_col = self.pos(max(end, start + 1))
        return Span(self.file, line, col, end_line, end_col)

    def at(self, base: int) -> TextSource:
        """The same file, for a piece of text starting at offset ``base``."""
        other = TextSource.__new__(TextSource)
        other.file, other.text, other.base, other._starts = self.file, self.text, base, self._starts
        return other


class _TooDeep(Exception):
    def __init__(self, span: Span):
        self.span = span


class _BadNumber(Exception):
    def __init__(self, span: Span, text: str):
        self.span, self.text = span, text


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col)


class _Builder(Transformer[Token, Any]):
    """Builds AST nodes on each LALR reduction (no recursion, bounded depth)."""

    source: SourceMap
    problems: list[tuple[str, str, Span]]

    def _span(self, tok: Token) -> Span:
        start = tok.start_pos or 0
        end = tok.end_pos if tok.end_pos is not None else start + len(tok)
        return self.source.span(start, end)

    @staticmethod
    def _depth(*kids: Any) -> int:
        d = 1 + max((k.depth for k in kids if isinstance(k, ast.Node)), default=0)
        return d

    def _check_depth(self, depth: int, span: Span) -> int:
        if depth > MAX_DEPTH:
            raise _TooDeep(span)
        return depth

    # -- expressions --
    def literal(self, kids: list[Token]) -> ast.Expr:
        tok = kids[0]
        span = self._span(tok)
        text = str(tok)
        kind = tok.type
        if kind == "TRUE" or kind == "FALSE":
            return ast.BoolLit(span, kind == "TRUE")
        if kind == "STRING":
            return ast.StrLit(span, text[1:-1])
        if kind == "PERCENT":
            value, unit, cur = float(text[:-1]) / 100.0, ast.Unit.PERCENT, None
        elif kind == "BPS":
            value, unit, cur = float(text[:-3]) / 10000.0, ast.Unit.PERCENT, None
        elif kind == "DURATION":
            m = re.fullmatch(r"([0-9.]+)(ms|s|m|h|d|w)", text)
            assert m is not None
            value, unit, cur = float(m[1]) * DURATION_SECONDS[m[2]], ast.Unit.DURATION, None
        elif kind == "MONEY":
            num, cur = text.split()
            value, unit = float(num), ast.Unit.MONEY
        else:
            value, unit, cur = float(text), ast.Unit.NUMBER, None
        if not math.isfinite(value):
            raise _BadNumber(span, text)
        return ast.Literal(span, value, unit, cur, text)

    def dotted_name(self, kids: list[Token]) -> ast.Name:
        span = _join(self._span(kids[0]), self._span(kids[-1]))
        return ast.Name(span, tuple(str(k) for k in kids))

    def call(self, kids: list[Any]) -> ast.Call:
        name, _lpar, *args, rpar = kids
        args = [a for a in args if a is not None]
        name_span = self._span(name)
        span = _join(name_span, self._span(rpar))
        depth = self._check_depth(self._depth(*args), span)
        return ast.Call(span, str(name), tuple(args), name_span, depth)

    def paren(self, kids: list[Any]) -> ast.Expr:
        return kids[1]

    def index(self, kids: list[Any]) -> ast.Index:
        base, _l, offset, rsqb = kids
        span = _join(base.span, self._span(rsqb))
        return ast.Index(span, base, offset, self._check_depth(self._depth(base, offset), span))

    def of(self, kids: list[Any]) -> ast.Of:
        base, _of, target = kids
        tspan = self._span(target)
        span = _join(base.span, tspan)
        return ast.Of(span, base, str(target)[1:-1], tspan, self._check_depth(self._depth(base), span))

    def unary(self, kids: list[Any]) -> ast.Unary:
        op, operand = kids
        span = _join(self._span(op), operand.span)
        return ast.Unary(span, str(op), operand, self._check_depth(self._depth(operand), span))

    def binary(self, kids: list[Any]) -> ast.Binary:
        left, op, right = kids
        span = _join(left.span, right.span)
        depth = self._check_depth(self._depth(left, right), span)
        return ast.Binary(span, str(op), left, right, self._span(op), depth)

    # -- actions --
    def size_fraction(self, kids: list[Any]) -> ast.Size:
        amount, of = kids
        return ast.Size(_join(amount.span, self._span(of)), "fraction", amount, str(of).split()[-1])

    def size_amount(self, kids: list[Any]) -> ast.Size:
        return ast.Size(kids[0].span, "amount", kids[0])

    def per_clause(self, kids: list[Any]) -> ast.Expr:
        return kids[0]

    def size_risk(self, kids: list[Any]) -> ast.Size:
        risk, amount, of, *rest = kids
        per = rest[0] if rest else None
        end = per.span if per is not None else self._span(of)
        return ast.Size(_join(self._span(risk), end), "risk", amount, str(of).split()[-1], per)

    def stop_clause(self, kids: list[Any]) -> tuple[str, ast.Expr]:
        return ("stop", kids[1])

    def take_clause(self, kids: list[Any]) -> tuple[str, ast.Expr]:
        return ("take", kids[1])

    def buy(self, kids: list[Any]) -> ast.Buy:
        tok, size, *clauses = kids
        exits: dict[str, ast.Expr] = {}
        for which, e in clauses:
            if which in exits:
                self.problems.append(("P007", f"`{which}` is given twice", e.span))
            exits.setdefault(which, e)
        end = clauses[-1][1].span if clauses else size.span
        return ast.Buy(_join(self._span(tok), end), size, exits.get("stop"), exits.get("take"))

    def sell(self, kids: list[Any]) -> ast.Sell:
        tok, size = kids
        return ast.Sell(_join(self._span(tok), size.span), size)

    def close_all(self, kids: list[Any]) -> ast.CloseAll:
        return ast.CloseAll(self._span(kids[0]))

    def for_clause(self, kids: list[Any]) -> ast.Expr:
        return kids[0]

    def breaker_action(self, kids: list[Any]) -> ast.BreakerAction:
        tok, *rest = kids
        duration = rest[0] if rest else None
        span = self._span(tok) if duration is None else _join(self._span(tok), duration.span)
        return ast.BreakerAction(span, str(tok), duration)

    def cap_mode(self, kids: list[Token]) -> Token:
        return kids[0]

    def cap_body(self, kids: list[Any]) -> tuple[ast.Expr, str | None]:
        expr, *mode = kids
        return expr, (str(mode[0]) if mode else None)

    # -- statements --
    def symbols_clause(self, kids: list[Token]) -> tuple[str, ...]:
        return tuple(str(k)[1:-1] for k in kids)

    def trigger_stmt(self, kids: list[Any]) -> ast.Trigger:
        name, *rest = kids
        symbols: tuple[str, ...] = rest.pop(0) if isinstance(rest[0], tuple) else ()
        when, action = rest
        nspan = self._span(name)
        return ast.Trigger(_join(nspan, action.span), str(name), when, action, symbols, None, nspan)

    def cap_stmt(self, kids: list[Any]) -> ast.Cap:
        name, (expr, mode) = kids
        nspan = self._span(name)
        return ast.Cap(_join(nspan, expr.span), str(name), expr, mode, None, nspan)

    def breaker_stmt(self, kids: list[Any]) -> ast.Breaker:
        name, when, action = kids
        nspan = self._span(name)
        return ast.Breaker(_join(nspan, action.span), str(name), when, action, nspan)

    def param_stmt(self, kids: list[Any]) -> ast.Param:
        name, value = kids
        nspan = self._span(name)
        return ast.Param(_join(nspan, value.span), str(name), value, nspan)

    def rules_file(self, kids: list[Any]) -> list[ast.Statement]:
        return list(kids)


_TOKEN_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "PERCENT": "a percentage",
    "BPS": "basis points",
    "DURATION": "a duration",
    "MONEY": "an amount of money",
    "STRING": "a string",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "DOT": "`.`",
    "EQUAL": "`=`",
    "COMP_OP": "a comparison",
    "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*` or `/`",
    "SIZE_OF": "`of equity` or `of cash`",
    "BREAKER_KIND": "`halt`, `pause`, `reduce_only`, `flatten` or `alert`",
    "CLIP": "`clip`",
    "BLOCK": "`block`",
    "$END": "the end",
}


def _describe(name: str) -> str:
    if name in _TOKEN_NAMES:
        return _TOKEN_NAMES[name]
    if name.isupper() and not name.startswith("__"):
        return f"`{name.lower()}`"
    return f"`{name}`"


def _expected_text(expected: set[str]) -> str:
    names = sorted({_describe(e) for e in expected if not e.startswith("__ANON")})
    if not names:
        return ""
    if len(names) > 6:
        names = [*names[:6], "…"]
    return "expected " + ", ".join(names)


class _Parsers:
    def __init__(self) -> None:
        grammar = resources.files("policyctl.dsl").joinpath("grammar.lark").read_text("utf-8")
        self.builder = _Builder()
        self.lark = Lark(
            grammar,
            parser="lalr",
            lexer="contextual",
            start=list(ENTRY_POINTS),
            transformer=self.builder,
            maybe_placeholders=False,
            cache=False,
        )


@cache
def _parsers() -> _Parsers:
    return _Parsers()


def _report(exc: UnexpectedInput, source: SourceMap, text: str, diags: Diagnostics) -> None:
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        span = source.span(pos, pos + 1)
        help = _expected_text(set(exc.allowed or ()))
        if ch in "\"'":
            help = "strings are written in double quotes and end on the same line"
        diags.error("P002", f"unexpected character `{ch}`", span, help or None)
    elif isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        end = len(text.rstrip())
        span = source.span(max(end - 1, 0), max(end, 1))
        help = _expected_text(set(getattr(exc, "expected", ()) or ()))
        diags.error("P003", "unexpected end of input", span, help or None)
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        start = tok.start_pos or 0
        span = source.span(start, tok.end_pos if tok.end_pos is not None else start + len(tok))
        help = _expected_text(set(exc.expected))
        if tok.type == "COMP_OP" and "COMP_OP" not in exc.expected:
            help = "comparisons cannot be chained: combine them with `and`"
        elif tok.type == "NAME" and start > 0 and text[start - 1].isdigit():
            help = "durations are written `90s`, `5m`, `1h`, `1d` or `2w`; money as `1000 USDT`"
        elif tok.type in ("NAME", "NUMBER") and "RPAR" in exc.expected:
            help = "missing `,` or an operator?"
        diags.error("P001", f"unexpected `{tok}`", span, help or None)


def parse(text: str, start: str, source: SourceMap, diags: Diagnostics) -> Any | None:
    """Parse ``text`` from entry point ``start``; return the AST or ``None`` on error."""
    if not text.strip():
        diags.error("P006", "empty expression", source.span(0, 1), "write an expression here")
        return None
    p = _parsers()
    p.builder.source = source
    p.builder.problems = []
    try:
        result = p.lark.parse(text, start=start)
        for code, message, span in p.builder.problems:
            diags.error(code, message, span)
        return result
    except _TooDeep as e:
        diags.error(
            "P004",
            f"expression nested too deeply (more than {MAX_DEPTH} levels)",
            e.span,
            "simplify the expression; a rule rarely needs more than a few levels",
        )
    except _BadNumber as e:
        diags.error("P005", f"number `{e.text}` is out of range", e.span, "numbers must be finite")
    except UnexpectedInput as e:
        _report(e, source, text, diags)
    except RecursionError:  # pragma: no cover - the depth bound makes this unreachable
        diags.error("P004", "expression nested too deeply", source.span(0, 1))
    return None


_STATEMENT_START = re.compile(r"^[ \t]*(trigger|cap|breaker|param)\b", re.MULTILINE)


def parse_rules(text: str, file: str, diags: Diagnostics) -> list[ast.Statement]:
    """Parse a ``.rules`` file; on a syntax error, statement by statement, so that one error
    does not hide the others."""
    source = TextSource(file, text)
    if _only_comments(text):
        return []
    quiet = Diagnostics()
    whole = parse(text, "rules_file", source, quiet)
    if whole is not None and not quiet.items:
        return whole
    starts = [m.start(1) for m in _STATEMENT_START.finditer(text)]
    if not starts or (text[: starts[0]].strip() and not _only_comments(text[: starts[0]])):
        starts = [0, *starts]
    statements: list[ast.Statement] = []
    for i, s in enumerate(starts):
        chunk = text[s : starts[i + 1] if i + 1 < len(starts) else len(text)]
        if not chunk.strip() or _only_comments(chunk):
            continue
        result = parse(chunk, "rules_file", source.at(s), diags)
        if result:
            statements.extend(result)
    return statements


def _only_comments(chunk: str) -> bool:
    return all(not ln.strip() or ln.strip().startswith("#") for ln in chunk.splitlines())
