"""The parser: literals and units, precedence, postfix operators, statements, error
recovery, and positions of embedded expressions in YAML files."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import (
    compile_path,
    expr,
    find_pos,
    only,
    parse_snippet,
    policy_yaml,
    rules,
    span_text,
    write,
)
from policyctl.diagnostics import Span
from policyctl.dsl import ast
from policyctl.dsl.parser import MAX_DEPTH

# ---- tiny AST builders (spans are not part of node equality) ----------------------------


def N(dotted: str) -> ast.Name:
    return ast.Name(None, tuple(dotted.split(".")))


def B(op: str, left: ast.Expr, right: ast.Expr) -> ast.Binary:
    return ast.Binary(None, op, left, right)


def U(op: str, operand: ast.Expr) -> ast.Unary:
    return ast.Unary(None, op, operand)


def num(v: float) -> ast.Literal:
    return ast.Literal(None, v, ast.Unit.NUMBER)


def call(f: str, *args: ast.Expr) -> ast.Call:
    return ast.Call(None, f, tuple(args))


# ---- literals and units -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "unit", "currency"),
    [
        ("20", 20.0, ast.Unit.NUMBER, None),
        ("1.5e3", 1500.0, ast.Unit.NUMBER, None),
        (".5", 0.5, ast.Unit.NUMBER, None),
        ("3%", 0.03, ast.Unit.PERCENT, None),
        ("12.5%", 0.125, ast.Unit.PERCENT, None),
        ("30bps", 0.003, ast.Unit.PERCENT, None),
        ("2.5bps", 0.00025, ast.Unit.PERCENT, None),
        ("250ms", 0.25, ast.Unit.DURATION, None),
        ("90s", 90.0, ast.Unit.DURATION, None),
        ("5m", 300.0, ast.Unit.DURATION, None),
        ("1h", 3600.0, ast.Unit.DURATION, None),
        ("1.5h", 5400.0, ast.Unit.DURATION, None),
        ("7d", 604800.0, ast.Unit.DURATION, None),
        ("2w", 1209600.0, ast.Unit.DURATION, None),
        ("1000 USDT", 1000.0, ast.Unit.MONEY, "USDT"),
        ("0.5 BTC", 0.5, ast.Unit.MONEY, "BTC"),
    ],
)
def test_literal_units(text: str, value: float, unit: ast.Unit, currency: str | None) -> None:
    e = expr(text)
    assert isinstance(e, ast.Literal)
    assert e.value == pytest.approx(value, rel=1e-15)
    assert e.unit is unit
    assert e.currency == currency
    assert e.text == text


def test_percent_and_bps_are_the_same_unit() -> None:
    assert expr("30bps") == ast.Literal(None, 30 / 10000, ast.Unit.PERCENT)
    assert expr("0.3%").unit is expr("30bps").unit


def test_booleans_and_strings() -> None:
    assert expr("true") == ast.BoolLit(None, True)
    assert expr("false") == ast.BoolLit(None, False)
    assert expr('"BTC/USDT"') == ast.StrLit(None, "BTC/USDT")
    assert expr("'x'") == ast.StrLit(None, "x")


@pytest.mark.parametrize("text", ["5 m", "5mx", "1 usdt", "5min"])
def test_unit_must_touch_or_be_a_currency(text: str) -> None:
    result, diags = parse_snippet(text)
    assert result is None
    assert only(diags).code == "P001"


@pytest.mark.parametrize("text", ["1e999", "1e999%", "1e999bps", "1e999 USDT", "9" * 400 + "s"])
def test_non_finite_literal_is_p005(text: str) -> None:
    result, diags = parse_snippet(f"x > {text}")
    assert result is None
    d = only(diags)
    assert d.code == "P005"
    assert d.span == Span("snippet", 1, 5, 1, 5 + len(text))


def test_finite_product_of_unit_overflowing_is_p005() -> None:
    # a 308-digit count of weeks is finite as a number, not in seconds
    text = "1" + "0" * 307 + "w"
    _, diags = parse_snippet(text)
    assert only(diags).code == "P005"


# ---- precedence and associativity -------------------------------------------------------

a, b, c, d, x, y = (N(s) for s in "abcdxy")


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a - b - c", B("-", B("-", a, b), c)),
        ("a / b / c", B("/", B("/", a, b), c)),
        ("a / b * c", B("*", B("/", a, b), c)),
        ("a + b * c", B("+", a, B("*", b, c))),
        ("a * b + c", B("+", B("*", a, b), c)),
        ("(a + b) * c", B("*", B("+", a, b), c)),
        ("a - (b - c)", B("-", a, B("-", b, c))),
        ("not a and b", B("and", U("not", a), b)),
        ("not (a and b)", U("not", B("and", a, b))),
        ("a or b and c", B("or", a, B("and", b, c))),
        ("a and b or c", B("or", B("and", a, b), c)),
        ("a or b or c", B("or", B("or", a, b), c)),
        ("not not a", U("not", U("not", a))),
        ("not a > b", U("not", B(">", a, b))),
        ("-x * y", B("*", U("-", x), y)),
        ("- - x", U("-", U("-", x))),
        ("+x", U("+", x)),
        ("a + b > c * d", B(">", B("+", a, b), B("*", c, d))),
        ("a > b and c <= d", B("and", B(">", a, b), B("<=", c, d))),
        ("a == b or a != b", B("or", B("==", a, b), B("!=", a, b))),
        ("a >= -b", B(">=", a, U("-", b))),
        ("a\n  +\n  b  # comment\n", B("+", a, b)),
    ],
)
def test_precedence(text: str, tree: ast.Expr) -> None:
    assert expr(text) == tree


def test_comparisons_do_not_chain() -> None:
    result, diags = parse_snippet("a < b < c")
    assert result is None
    diag = only(diags)
    assert diag.code == "P001"
    assert diag.span == Span("snippet", 1, 7, 1, 8)
    assert diag.help is not None and "chained" in diag.help


# ---- postfix: history and `of` ----------------------------------------------------------


def test_history() -> None:
    assert expr("close[1]") == ast.Index(None, N("close"), num(1))
    assert expr("close[1][2]") == ast.Index(
        None, ast.Index(None, N("close"), num(1)), num(2)
    )
    sma = call("sma", N("close"), num(20))
    assert expr("sma(close, 20)[1]") == ast.Index(None, sma, num(1))
    # postfix binds tighter than unary minus
    assert expr("-close[1]") == U("-", ast.Index(None, N("close"), num(1)))


def test_of() -> None:
    e = expr('close of "BTC/USDT"')
    assert e == ast.Of(None, N("close"), "BTC/USDT")
    assert isinstance(e, ast.Of)
    assert e.target_span == Span("snippet", 1, 10, 1, 20)
    assert expr('exposure.theme of "majors"') == ast.Of(None, N("exposure.theme"), "majors")
    # `of` binds tighter than any binary operator and than unary minus
    assert expr('change(close of "A", 1h) > -3%') == B(
        ">",
        call("change", ast.Of(None, N("close"), "A"), ast.Literal(None, 3600.0, ast.Unit.DURATION)),
        U("-", ast.Literal(None, 0.03, ast.Unit.PERCENT)),
    )
    assert expr('-close of "A"') == U("-", ast.Of(None, N("close"), "A"))
    assert expr('close[1] of "A"') == ast.Of(None, ast.Index(None, N("close"), num(1)), "A")


def test_calls_and_dotted_names() -> None:
    assert expr("f()") == call("f")
    assert expr("min(a, b, c)") == call("min", a, b, c)
    assert expr("position.pnl") == N("position.pnl")
    assert expr("x.y.z") == ast.Name(None, ("x", "y", "z"))


def test_spans_of_expression_nodes() -> None:
    text = "close > sma(close, 20) and not position.open"
    e = expr(text)
    assert isinstance(e, ast.Binary)
    assert e.span == Span("snippet", 1, 1, 1, len(text) + 1)
    assert e.op_span == Span("snippet", 1, 24, 1, 27)
    left = e.left
    assert isinstance(left, ast.Binary) and isinstance(left.right, ast.Call)
    assert left.right.span == Span("snippet", 1, 9, 1, 23)
    assert left.right.name_span == Span("snippet", 1, 9, 1, 12)
    assert e.right.span == Span("snippet", 1, 28, 1, len(text) + 1)


# ---- depth ------------------------------------------------------------------------------


def test_depth_limit() -> None:
    ok = "-" * (MAX_DEPTH - 1) + "x"
    assert expr(ok).depth == MAX_DEPTH
    result, diags = parse_snippet("-" * MAX_DEPTH + "x")
    assert result is None
    assert only(diags).code == "P004"
    result, diags = parse_snippet("f(" * 5000 + "x" + ")" * 5000)
    assert result is None
    assert only(diags).code == "P004"


def test_deep_parentheses_do_not_add_depth() -> None:
    e = expr("(" * 5000 + "x" + ")" * 5000)
    assert e == x and e.depth == 1


# ---- syntax errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "col", "width"),
    [
        ("close > ", "P003", 7, 1),
        ("close @ 2", "P002", 7, 1),
        ("f(a b)", "P001", 5, 1),
        ("close > )", "P001", 9, 1),
        ("close > sma(close, 20", "P003", 21, 1),
        ("   ", "P006", 1, 1),
        ("close > 'abc", "P002", 9, 1),
    ],
)
def test_syntax_error_spans(text: str, code: str, col: int, width: int) -> None:
    result, diags = parse_snippet(text)
    assert result is None
    diag = only(diags)
    assert diag.code == code
    assert diag.span == Span("snippet", 1, col, 1, col + width)


def test_clause_given_twice() -> None:
    _, diags = parse_snippet("buy 2% of equity stop 3% stop 4%", "action")
    diag = only(diags)
    assert diag.code == "P007"
    assert diag.span == Span("snippet", 1, 31, 1, 33)


# ---- actions ----------------------------------------------------------------------------


def pct(v: float) -> ast.Literal:
    return ast.Literal(None, v, ast.Unit.PERCENT)


def action(text: str, start: str = "action") -> object:
    result, diags = parse_snippet(text, start)
    assert not diags.items, [d.to_json() for d in diags]
    return result


def test_actions() -> None:
    buy = action("buy 2% of equity stop 3% take 6%")
    assert buy == ast.Buy(None, ast.Size(None, "fraction", pct(0.02), "equity"), pct(0.03), pct(0.06))
    # stop and take in either order
    assert action("buy 2% of equity take 6% stop 3%") == buy
    assert action("buy 95% of cash") == ast.Buy(None, ast.Size(None, "fraction", pct(0.95), "cash"))
    usdt = ast.Literal(None, 500.0, ast.Unit.MONEY, "USDT")
    assert action("buy 500 USDT") == ast.Buy(None, ast.Size(None, "amount", usdt))
    assert action("sell 500 USDT") == ast.Sell(None, ast.Size(None, "amount", usdt))
    assert action("sell 50% of equity") == ast.Sell(None, ast.Size(None, "fraction", pct(0.5), "equity"))
    assert action("close") == ast.CloseAll(None)
    risk = action("buy risk 1% of equity per 2 * atr(14)")
    per = B("*", num(2), call("atr", num(14)))
    assert risk == ast.Buy(None, ast.Size(None, "risk", pct(0.01), "equity", per))
    # `of equity` may break across lines
    assert action("buy 2% of\n   equity") == ast.Buy(None, ast.Size(None, "fraction", pct(0.02), "equity"))


def test_breaker_actions_and_caps() -> None:
    for kind in ("halt", "pause", "reduce_only", "flatten", "alert"):
        assert action(kind, "breaker_action") == ast.BreakerAction(None, kind)
    assert action("pause for 2h", "breaker_action") == ast.BreakerAction(
        None, "pause", ast.Literal(None, 7200.0, ast.Unit.DURATION)
    )
    body = B("<=", N("exposure.total"), pct(0.25))
    assert action("exposure.total <= 25%", "cap_body") == (body, None)
    assert action("exposure.total <= 25% clip", "cap_body") == (body, "clip")
    assert action("exposure.total <= 25% block", "cap_body") == (body, "block")


# ---- .rules files -----------------------------------------------------------------------

RULES = """\
# every statement kind
param fast = 20
param slow = fast * 2.5

trigger entry on "BTC/USDT", "ETH/USDT":
    when close > sma(close, fast)
    then buy 2% of equity stop 3% take 6%
trigger exit: when position.open then close
trigger trim: when position.pnl > 10% then sell 50 USDT
trigger sized: when kill_switch then buy risk 1% of cash per 2 * atr(14)
cap exposure_cap: exposure.total <= 25% clip
cap trade_rate: trades(1h) <= 4 block
cap per_asset: exposure.symbol <= 5%
breaker stop_all: when kill_switch then halt
breaker cool: when drawdown >= 10% then pause for 2h
"""


def test_every_statement_kind() -> None:
    stmts, diags = rules(RULES)
    assert not diags.items
    kinds = [(type(s).__name__, s.name) for s in stmts]
    assert kinds == [
        ("Param", "fast"), ("Param", "slow"),
        ("Trigger", "entry"), ("Trigger", "exit"), ("Trigger", "trim"), ("Trigger", "sized"),
        ("Cap", "exposure_cap"), ("Cap", "trade_rate"), ("Cap", "per_asset"),
        ("Breaker", "stop_all"), ("Breaker", "cool"),
    ]
    by_name = {s.name: s for s in stmts}
    entry = by_name["entry"]
    assert isinstance(entry, ast.Trigger)
    assert entry.symbols == ("BTC/USDT", "ETH/USDT")
    assert entry.when == B(">", N("close"), call("sma", N("close"), N("fast")))
    assert entry.name_span == Span("test.rules", 5, 9, 5, 14)
    assert entry.span.line == 5 and entry.span.end_line == 7
    assert isinstance(entry.action, ast.Buy) and entry.action.take == pct(0.06)
    assert isinstance(by_name["exit"], ast.Trigger) and by_name["exit"].action == ast.CloseAll(None)
    assert isinstance(by_name["trim"], ast.Trigger) and isinstance(by_name["trim"].action, ast.Sell)
    caps = [s for s in stmts if isinstance(s, ast.Cap)]
    assert [c.mode for c in caps] == ["clip", "block", None]
    cool = by_name["cool"]
    assert isinstance(cool, ast.Breaker) and cool.action.kind == "pause"
    slow = by_name["slow"]
    assert isinstance(slow, ast.Param)
    assert slow.value == B("*", N("fast"), num(2.5))
    assert slow.name_span == Span("test.rules", 3, 7, 3, 11)


def test_keywords_may_be_names_where_a_name_is_expected() -> None:
    # the contextual lexer reads `and` as a name after `trigger`; the checker says T015
    stmts, diags = rules("trigger and: when kill_switch then close\n")
    assert not diags.items
    assert [s.name for s in stmts] == ["and"]


def test_statement_level_recovery_reports_every_error() -> None:
    text = """\
param a = 1 +
trigger x: when close > then close
cap c: exposure.total <=
breaker b: when kill_switch then explode
trigger ok: when kill_switch then close
param z = (1
trigger also_ok on "BTC/USDT": when close > 1 USDT then close
"""
    stmts, diags = rules(text)
    assert [s.name for s in stmts] == ["ok", "also_ok"]
    got = [(d.code, d.span.line, d.span.col) for d in diags if d.span]
    assert got == [
        ("P003", 1, 13),
        ("P001", 2, 30),
        ("P003", 3, 24),
        ("P001", 4, 34),
        ("P003", 6, 12),
    ]
    assert span_text(text, diags.items[3].span) == "explode"


def test_garbage_before_the_first_statement_is_reported() -> None:
    stmts, diags = rules("oops\ntrigger ok: when kill_switch then close\n")
    assert [s.name for s in stmts] == ["ok"]
    assert only(diags).code == "P001"
    assert only(diags).span == Span("test.rules", 1, 1, 1, 5)


def test_comment_only_and_empty_rules_files() -> None:
    for text in ("", "\n\n", "# just a comment\n# another\n"):
        stmts, diags = rules(text)
        assert stmts == [] and not diags.items


# ---- positions of expressions embedded in YAML ------------------------------------------

EMBEDDED = '''\
triggers:
  plain:
    when: close > 1 USDT and foo1 > 1
    then: close
  single:
    when: 'close > 1 USDT and foo2 > 1'
    then: close
  double:
    when: "close > 1 USDT\\tand foo3 > 1"
    then: close
  double_multiline:
    when: "close > 1 USDT
      and foo4 > 1"
    then: close
  literal:
    when: |
      close > 1 USDT
      and foo5 > 1
    then: close
  folded:
    when: >-
      close > 1 USDT

      and
        foo6 > 1
    then: close
  plain_multiline:
    when: close > 1 USDT
      and foo7 > 1
    then: close
  literal_indicator:
    when: |2
         close > 1 USDT
         and foo8 > 1
    then: close
  flow: {when: "close > 1 USDT and foo9 > 1", then: close}
'''


def test_embedded_positions_for_every_scalar_style(tmp_path: Path) -> None:
    src = policy_yaml(EMBEDDED)
    path = write(tmp_path, "p.yaml", src)
    _, diags = compile_path(path)
    found = {d.message.split("`")[1]: d.span for d in diags if d.code == "T001"}
    assert len(diags) == 9 and len(found) == 9, [d.to_json() for d in diags]
    for i in range(1, 10):
        name = f"foo{i}"
        line, col = find_pos(src, name)
        assert found[name] == Span(str(path), line, col, line, col + len(name)), name


def test_embedded_syntax_error_positions(tmp_path: Path) -> None:
    body = '''\
triggers:
  plain:
    when: close > 1 USDT and close @ 2
    then: close
  quoted:
    when: "close > 1 USDT and (close"
    then: close
  literal:
    when: |
      close > 1 USDT
      and close >> 2
    then: close
  folded:
    when: >
      close > 1 USDT
      and close ! 2
    then: buy 2% of equity stop 3% stop 4%
'''
    src = policy_yaml(body)
    path = write(tmp_path, "p.yaml", src)
    _, diags = compile_path(path)
    got = {(d.code, d.span.line, d.span.col) for d in diags if d.span}
    expected = {
        ("P002", *find_pos(src, "@")),
        ("P003", find_pos(src, "(close")[0], find_pos(src, "(close")[1] + 5),  # its last `e`
        ("P001", *find_pos(src, ">> 2")[:1], find_pos(src, ">> 2")[1] + 1),
        ("P002", *find_pos(src, "! 2")),
        ("P007", *find_pos(src, "4%")),
    }
    assert got == expected, [d.to_json() for d in diags]


def test_embedded_positions_with_crlf_and_tabs(tmp_path: Path) -> None:
    src = policy_yaml("triggers:\n  t:\n    when: |\n      close >\t1 USDT and\tfoo > 1\n    then: close\n")
    data = src.replace("\n", "\r\n")
    path = write(tmp_path, "p.yaml", data.encode())
    _, diags = compile_path(path)
    d = only(diags)
    line, col = find_pos(src, "foo")
    assert (d.code, d.span) == ("T001", Span(str(path), line, col, line, col + 3))


def test_rules_file_positions_are_absolute(tmp_path: Path) -> None:
    text = "\n\n# comment\ntrigger a: when kill_switch then close\n\ntrigger b:\n  when   nope > 1\n  then close\n"
    path = write(tmp_path, "x.rules", text)
    _, diags = compile_path(path)
    d = only(diags)
    assert (d.code, d.span) == ("T001", Span(str(path), 7, 10, 7, 14))



def test_span_ending_on_an_escaped_quote(tmp_path: Path) -> None:
    src = policy_yaml("triggers:\n  t:\n    when: 'close > ''x'''\n    then: close\n")
    path = write(tmp_path, "p.yaml", src)
    _, diags = compile_path(path)
    d = only(diags, "T010")
    assert span_text(src, d.span) == "''x''"
