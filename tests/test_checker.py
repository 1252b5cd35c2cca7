"""The checker: every T-code at least once, at the exact span of the offending text, plus
the unit algebra and the typing of well-formed policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import compile_ok, compile_path, compile_yaml, errors, find_pos, only, policy_yaml, write
from policyctl.diagnostics import Span
from policyctl.rules.types import (
    BOOL,
    DURATION,
    MONEY,
    NUMBER,
    PERCENT,
    Kind,
    Type,
    UnitError,
    arith,
    comparable,
    money,
)

THEMES = """\
themes:
  majors: {symbols: [BTC/USDT, ETH/USDT], max_exposure: 30%}
  btc_only: [BTC/USDT]
"""

# (case id, policy body, code, where: the span covers the text between « and »)
CASES: list[tuple[str, str, str, str]] = [
    ("unknown-name", "triggers:\n  a: {when: foo > 1, then: close}\n", "T001", "«foo»"),
    ("function-as-value", "triggers:\n  a: {when: sma > 1, then: close}\n", "T001", "«sma»"),
    ("unknown-function", "triggers:\n  a: {when: 'foo(close) > 1', then: close}\n", "T001",
     "«foo»("),
    ("value-as-function", "triggers:\n  a: {when: 'close() > 1', then: close}\n", "T001",
     "«close»()"),
    ("typo-in-field", "triggers:\n  a: {when: 'position.opn', then: close}\n", "T001",
     "«position.opn»"),
    ("arity", "triggers:\n  a: {when: 'close > sma(close)', then: close}\n", "T002",
     "«sma(close)»"),
    ("arity-variadic", "triggers:\n  a: {when: 'min(close) > close', then: close}\n", "T002",
     "«min(close)»"),
    ("when-not-bool", "triggers:\n  a: {when: close, then: close}\n", "T003", "when: «close»"),
    ("math-on-bool", "triggers:\n  a: {when: 'min(kill_switch, 2) > 1', then: close}\n", "T003",
     "min(«kill_switch»"),
    ("neg-of-bool", "triggers:\n  a: {when: '-kill_switch', then: close}\n", "T003",
     "-«kill_switch»"),
    ("size-not-percent", "triggers:\n  a: {when: kill_switch, then: buy 2 of equity}\n", "T003",
     "buy «2» of"),
    ("stop-not-distance", "triggers:\n  a: {when: kill_switch, then: buy 2% of equity stop 5}\n",
     "T003", "stop «5»"),
    ("setting-type", "guards:\n  max_spread: 30s\n", "T003", "«30s»"),
    ("compare-units", "triggers:\n  a: {when: close > 3%, then: close}\n", "T004", "close «>» 3%"),
    ("add-units", "triggers:\n  a: {when: close + 1h > 1 USDT, then: close}\n", "T004",
     "close «+» 1h"),
    ("currencies", "triggers:\n  a: {when: close > 1 BTC, then: close}\n", "T004", "close «>» 1"),
    ("max-units", "triggers:\n  a: {when: 'max(close, 2%) > close', then: close}\n", "T004",
     "«2%»"),
    ("cross-units", "triggers:\n  a: {when: 'crosses_above(close, volume)', then: close}\n",
     "T004", "«crosses_above(close, volume)»"),
    ("size-currency", "triggers:\n  a: {when: kill_switch, then: buy 100 BTC}\n", "T005",
     "«100 BTC»"),
    ("setting-currency", "guards:\n  max_order_notional: 1000 BTC\n", "T005", "«1000 BTC»"),
    ("indicator-of-state", "triggers:\n  a: {when: 'sma(equity, 20) > 1 USDT', then: close}\n",
     "T006", "sma(«equity»"),
    ("indicator-of-const", "triggers:\n  a: {when: 'sma(5, 20) > 1', then: close}\n", "T006",
     "sma(«5»"),
    ("history-of-state", "triggers:\n  a: {when: 'position.pnl[1] > 1%', then: close}\n", "T006",
     "«position.pnl»["),
    ("per-symbol-in-breaker", "breakers:\n  b: {when: close > 1 USDT, then: halt}\n", "T007",
     "when: «close»"),
    ("per-symbol-cap-limit", "caps:\n  c: exposure.total <= 5% * volume / volume\n", "T007",
     "«5% * volume / volume»"),
    ("window-duration", "triggers:\n  a: {when: 'close > sma(close, 7m)', then: close}\n", "T008",
     "«7m»"),
    ("window-zero", "triggers:\n  a: {when: 'close > sma(close, 0)', then: close}\n", "T008",
     "close, «0»"),
    ("window-fraction", "triggers:\n  a: {when: 'close > sma(close, 2.5)', then: close}\n", "T008",
     "«2.5»"),
    ("window-not-const", "triggers:\n  a: {when: 'close > sma(close, volume)', then: close}\n",
     "T008", "close, «volume»"),
    ("window-function-number", "caps:\n  c: trades(5) <= 4\n", "T008", "trades(«5»)"),
    ("history-negative", "triggers:\n  a: {when: 'close[-1] > 1 USDT', then: close}\n", "T008",
     "[«-1»]"),
    ("breaker-duration", "breakers:\n  b: {when: kill_switch, then: halt for 0s}\n", "T008",
     "for «0s»"),
    ("any-of-number", "triggers:\n  a: {when: 'any(close)', then: close}\n", "T009",
     "any(«close»)"),
    ("not-of-number", "triggers:\n  a: {when: 'not close', then: close}\n", "T009",
     "not «close»"),
    ("and-of-number", "triggers:\n  a: {when: 'kill_switch and volume', then: close}\n", "T009",
     "«volume»"),
    ("string", "triggers:\n  a: {when: 'close > \"x\"', then: close}\n", "T010", '«"x"»'),
    ("unknown-symbol", "triggers:\n  a: {when: 'close of \"DOGE/USDT\" > 1 USDT', then: close}\n",
     "T011", '«"DOGE/USDT"»'),
    ("symbol-field-of-theme", "triggers:\n  a: {when: 'close of \"majors\" > 1 USDT', then: close}\n",
     "T011", "'«close» of"),
    ("ambiguous-theme", "caps:\n  c: 'exposure.theme of \"BTC/USDT\" <= 5%'\n", "T011",
     "'«exposure.theme» of"),
    ("risk-without-stop", "triggers:\n  a: {when: kill_switch, then: buy risk 1% of equity}\n",
     "T012", "«risk 1% of equity»"),
    ("cap-not-comparison", "caps:\n  c: exposure.total\n", "T013", "c: «exposure.total»"),
    ("cap-not-cappable", "caps:\n  c: close <= 5 USDT\n", "T013", "«close <= 5 USDT»"),
    ("cap-lower-bound", "caps:\n  c: exposure.total >= 5%\n", "T013", "«exposure.total >= 5%»"),
    ("clip-a-count", "caps:\n  c: trades(1h) <= 4 clip\n", "T014", "  «c»: trades"),
    ("reserved-trigger", "triggers:\n  and: {when: kill_switch, then: close}\n", "T015",
     "  «and»:"),
    ("reserved-param", "params:\n  equity: 5\n", "T015", "  «equity»:"),
    ("param-not-constant", "params:\n  p: equity\n", "T016", "p: «equity»"),
    ("setting-not-constant", "guards:\n  max_order_notional: equity\n", "T016", "«equity»"),
    ("param-cycle",
     "params:\n  p: q + 1\n  q: p * 2\ntriggers:\n  a: {when: close > p, then: close}\n",
     "T017", "q: «p» * 2"),
    ("self-reference", "params:\n  p: p\n", "T017", "p: «p»"),
    ("trigger-symbol", "triggers:\n  a: {when: kill_switch, then: close, symbols: [DOGE/USDT]}\n",
     "T018", "  «a»: {"),
    ("trigger-strategy", "triggers:\n  a: {when: kill_switch, then: close, strategy: nope}\n",
     "T018", "  «a»: {"),
]


@pytest.mark.parametrize(("body", "code", "where"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_t_codes_and_their_spans(tmp_path: Path, body: str, code: str, where: str) -> None:
    src = policy_yaml(body, market_extra=THEMES)
    header = len(policy_yaml("", market_extra=THEMES))
    path = write(tmp_path, "p.yaml", src)
    _, diags = compile_path(path)
    reported = diags.sorted()  # unique diagnostics, as every output format shows them
    diag = only(reported, code)
    pre, rest = where.split("«")
    needle, post = rest.split("»")
    start = src.index(pre + needle + post, header) + len(pre)
    line = src.count("\n", 0, start) + 1
    col = start - (src.rfind("\n", 0, start) + 1) + 1
    assert diag.span == Span(str(path), line, col, line, col + len(needle)), diag.to_json()
    assert diag.is_error
    # one mistake, one error: parents of a broken sub-expression stay quiet
    assert [d.code for d in reported if d.is_error] == [code], [d.to_json() for d in reported]


def test_every_t_code_is_covered() -> None:
    from policyctl.codes import CODES

    covered = {c[2] for c in CASES}
    assert {c for c in CODES if c.startswith("T")} <= covered


def test_theme_lists_undeclared_symbol(tmp_path: Path) -> None:
    extra = "themes:\n  majors: [BTC/USDT, DOGE/USDT]\n"
    src = policy_yaml("caps:\n  c: exposure.theme <= 5%\n", market_extra=extra)
    path = write(tmp_path, "p.yaml", src)
    _, diags = compile_path(path)
    d = only(diags, "T018")
    line, col = find_pos(src, "majors")
    assert d.span == Span(str(path), line, col, line, col + len("majors"))


def test_t_codes_in_rules_files(tmp_path: Path) -> None:
    text = (
        "trigger a on \"BTC/USDT\": when nope > 1 then close\n"
        "breaker b: when close of \"BTC/USDT\" > 3% then halt\n"
        "cap c: trades(1h) <= 4 clip\n"
        "trigger and: when kill_switch then close\n"
    )
    path = write(tmp_path, "x.rules", text)
    from policyctl.diagnostics import Diagnostics
    from policyctl.lint import lint_file

    diags = Diagnostics()
    lint_file(path, diags, {})
    got = sorted((d.code, d.span.line, d.span.col) for d in diags if d.span)
    assert got == [("T001", 1, 31), ("T004", 2, 37), ("T014", 3, 5), ("T015", 4, 9)]


# ---- the unit algebra -------------------------------------------------------------------

USDT, BTC = money("USDT"), money("BTC")


@pytest.mark.parametrize(
    ("op", "a", "b", "result"),
    [
        ("+", USDT, USDT, USDT),
        ("+", MONEY, USDT, USDT),
        ("-", PERCENT, PERCENT, PERCENT),
        ("+", NUMBER, PERCENT, NUMBER),
        ("-", PERCENT, NUMBER, NUMBER),
        ("+", DURATION, DURATION, DURATION),
        ("*", NUMBER, USDT, USDT),
        ("*", USDT, NUMBER, USDT),
        ("*", PERCENT, USDT, USDT),
        ("*", USDT, PERCENT, USDT),
        ("*", PERCENT, PERCENT, PERCENT),
        ("*", NUMBER, DURATION, DURATION),
        ("/", USDT, NUMBER, USDT),
        ("/", USDT, USDT, NUMBER),
        ("/", DURATION, DURATION, NUMBER),
        ("/", USDT, PERCENT, USDT),
        ("/", PERCENT, PERCENT, NUMBER),
    ],
)
def test_arith_types(op: str, a: Type, b: Type, result: Type) -> None:
    t = arith(op, a, b)
    assert (t.kind, t.currency) == (result.kind, result.currency)


@pytest.mark.parametrize(
    ("op", "a", "b"),
    [
        ("+", USDT, BTC),
        ("+", USDT, DURATION),
        ("-", DURATION, PERCENT),
        ("*", USDT, USDT),
        ("*", USDT, DURATION),
        ("/", NUMBER, USDT),
        ("/", NUMBER, PERCENT),
        ("/", USDT, BTC),
        ("+", BOOL, NUMBER),
    ],
)
def test_arith_refusals(op: str, a: object, b: object) -> None:
    with pytest.raises(UnitError):
        arith(op, a, b)


def test_zero_adapts_to_the_other_side() -> None:
    assert arith("+", USDT, NUMBER, b_is_zero=True) == USDT
    assert arith("-", NUMBER, DURATION, a_is_zero=True) == DURATION
    comparable(USDT, NUMBER, b_is_zero=True)
    comparable(NUMBER, DURATION, a_is_zero=True)


def test_comparable() -> None:
    comparable(USDT, MONEY)
    comparable(PERCENT, PERCENT)
    comparable(BOOL, BOOL)
    for a, b in ((PERCENT, NUMBER), (USDT, BTC), (DURATION, NUMBER), (BOOL, NUMBER),
                 (USDT, PERCENT)):
        with pytest.raises(UnitError):
            comparable(a, b)
    with pytest.raises(UnitError) as e:
        comparable(PERCENT, NUMBER)
    assert e.value.help is not None and "%" in e.value.help
    # a price against a percentage: the move in percent is what was meant; the other way
    # round, a share of equity against money
    with pytest.raises(UnitError) as e:
        comparable(USDT, PERCENT)
    assert e.value.help is not None and "change(close, 1) > 3%" in e.value.help
    with pytest.raises(UnitError) as e:
        comparable(PERCENT, USDT)
    assert e.value.help is not None and "share of equity" in e.value.help


# ---- typing of well-formed policies -----------------------------------------------------


def test_types_of_well_formed_expressions(tmp_path: Path) -> None:
    body = """\
    triggers:
      t:
        when: >-
          close - open > 0
          and change(close, 1h) > -3%
          and (high - low) / close < 0.02
          and position.pnl_amount > 0
          and max(atr(14), 1 USDT) < close * 5%
          and abs(change(close, 3)) <= 10%
          and clamp(rsi(close, 14), 20, 80) >= 30
          and stdev(close, 20) / sma(close, 20) < 1
          and position.age >= 2 * timeframe
          and close of "BTC/USDT" > 0
          and exposure.theme <= 10%
          and any(crosses_above(close, sma(close, 20)))
        then: buy 500 USDT stop 2 * atr(14) take 6%
    """
    extra = "themes:\n  majors: [BTC/USDT, ETH/USDT]\n"
    cp = compile_ok(tmp_path, body, market_extra=extra)
    g = cp.graph
    when = g.output_node("trigger", "t", "when")
    assert when is not None and when.type.kind is Kind.BOOL and when.per_symbol
    stop = g.output_node("trigger", "t", "stop")
    assert stop is not None and stop.type == USDT and stop.market
    size = g.output_node("trigger", "t", "size")
    assert size is not None and size.is_const and size.value == 500.0 and size.type == USDT
    by_label = {n.label(): n for n in g.nodes}
    assert by_label["rsi[14]"].type.kind is Kind.NUMBER
    assert by_label["change[12]"].type == PERCENT  # 1h of 5m bars
    assert by_label["atr[14]"].type == USDT
    assert by_label["close@BTC/USDT"].per_symbol is False
    assert by_label["close@BTC/USDT"].market is True
    assert by_label["exposure.theme"].per_symbol is True  # the theme of the current symbol


def test_window_durations_become_bars(tmp_path: Path) -> None:
    body = "triggers:\n  t: {when: 'sma(close, 1h) > sma(close, 12)', then: close}\n"
    cp, diags, _ = compile_yaml(tmp_path, body)
    assert cp is not None and not diags.items
    # the same window in bars: one node, compared with itself
    smas = [n for n in cp.graph.nodes if n.op == "ind"]
    assert [n.attr for n in smas] == [("sma", 12)]
    when = cp.graph.output_node("trigger", "t", "when")
    assert when is not None and when.op == "gt" and when.args == (smas[0].id, smas[0].id)


def test_symbols_must_be_quoted_in_the_account_currency(tmp_path: Path) -> None:
    """The account is kept in one currency: a symbol quoted in another would size its orders
    and mark its exposure in the wrong money (ETH/BTC prices are in BTC)."""
    body = "triggers:\n  a: {when: 'not position.open', then: buy 1% of equity}\n"
    _, diags, path = compile_yaml(tmp_path, body, symbols=("BTC/USDT", "ETH/BTC"), market_extra="quote: USDT")
    d = only(errors(diags), "T005")
    assert "`ETH/BTC` is quoted in BTC, the account in USDT" in d.message
    assert find_pos(path.read_text(), "ETH/BTC") == (d.span.line, d.span.col)
    _, diags, _ = compile_yaml(tmp_path / "2", body, symbols=("BTC/USDT", "ETH/BTC"))
    assert "quoted in several currencies (BTC, USDT)" in only(errors(diags), "T005").message
    compile_ok(tmp_path / "3", body, symbols=("ETH/BTC", "SOL/BTC"))  # one quote currency: fine


@pytest.mark.parametrize("size", ["risk 1% of equity", "risk 1% of equity per 2 * atr(14)"])
def test_a_sell_cannot_be_sized_by_risk(tmp_path: Path, size: str) -> None:
    body = f"triggers:\n  out: {{when: 'position.open', then: sell {size}}}\n"
    _, diags, _ = compile_yaml(tmp_path, body)
    d = only(errors(diags), "T012")
    assert d.message == "a sell cannot be sized by risk: it has no stop distance"


def test_a_window_given_as_a_duration_is_held_to_the_bar_limit(tmp_path: Path) -> None:
    body = "triggers:\n  a: {when: 'close > sma(close, 100w)', then: close}\n"
    _, diags, _ = compile_yaml(tmp_path, body, timeframe="1m")
    assert "1,008,000 bars of 1m, more than the 1,000,000" in only(errors(diags), "T008").message
    compile_ok(tmp_path / "2", body, timeframe="1h")  # 16,800 hourly bars: fine


def test_a_timeframe_longer_than_a_year_is_refused(tmp_path: Path) -> None:
    body = "triggers:\n  a: {when: 'close > sma(close, 20)', then: close}\n"
    _, diags, _ = compile_yaml(tmp_path, body, timeframe="99999999999999999999w")
    assert "longer than a year" in only(errors(diags), "S004").message


@pytest.mark.parametrize(("action", "message"), [
    ("buy -2% of equity", "the order size `-2%` is not positive"),
    ("buy 0% of cash", "the order size `0%` is not positive"),
    ("buy -100 USDT", "the order size `-100 USDT` is not positive"),
    ("sell 0 USDT", "the order size `0 USDT` is not positive"),
    ("buy 200% of equity", "an order of 200% of equity spends more than the account has"),
    ("buy 2% of equity stop 0 USDT", "the stop distance `0 USDT` is not positive"),
    ("buy 2% of equity stop 3% take -1 USDT", "the take distance `-1 USDT` is not positive"),
])
def test_constant_sizes_and_distances_that_can_never_trade(tmp_path: Path, action: str, message: str) -> None:
    """Each of these linted clean and then had every entry denied (or overspent) at run time."""
    _, diags, _ = compile_yaml(tmp_path, f"triggers:\n  a: {{when: 'close > open', then: {action}}}\n")
    assert message in only(errors(diags), "S004").message


def test_a_bare_theme_exposure_needs_one_theme_per_symbol(tmp_path: Path) -> None:
    """Without `of`, exposure.theme is the theme of the symbol evaluated: a symbol in two
    themes makes it ambiguous, for the symbols the rule runs on."""
    themes = "themes: {t1: [BTC/USDT], t2: [BTC/USDT, ETH/USDT]}"
    body = "triggers:\n  a: {when: 'exposure.theme < 10%', then: buy 1% of equity}\n"
    _, diags, _ = compile_yaml(tmp_path, body, market_extra=themes)
    assert "`BTC/USDT` belongs to 2 themes (t1, t2)" in only(errors(diags), "T011").message
    on_eth = "triggers:\n  a: {symbols: [ETH/USDT], when: 'exposure.theme < 10%', then: buy 1% of equity}\n"
    compile_ok(tmp_path / "2", on_eth, market_extra=themes)
    of_none = "triggers:\n  a: {when: 'exposure.theme of \"ETH/USDT\" < 10%', then: close}\n"
    _, diags, _ = compile_yaml(tmp_path / "3", of_none, market_extra="themes: {t1: [BTC/USDT]}")
    assert only(errors(diags), "T011").message == "`ETH/USDT` belongs to no theme"
