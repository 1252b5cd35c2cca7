"""Tests for dsl.schema: the policy JSON Schema and diagnostics that point at the YAML."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from policyctl.diagnostics import Diagnostic, Diagnostics
from policyctl.dsl.schema import POLICY_SCHEMA, schema_json, validate_policy
from policyctl.dsl.yamlsrc import parse_yaml

FILE = "policy.yaml"

FULL_POLICY = """\
policy: btc-trend
description: Trend following on the majors
market:
  exchange: binance
  symbols: [BTC/USDT, ETH/USDT, BTC/USDT:USDT]
  timeframe: 5m
  quote: USDT
  themes:
    majors: [BTC/USDT, ETH/USDT]
    alts:
      symbols: [ETH/USDT]
      max_exposure: 30%
      description: alt coins
params: {fast: 20, slow: 50, risk: "2%", enabled: true, ratio: 0.5}
include: [common/safety.rules, other.yaml]
strategies:
  trend: {budget: 50%, description: main book}
triggers:
  golden_cross:
    when: crosses_above(sma(close, fast), sma(close, slow))
    then: buy(risk)
    symbols: [BTC/USDT]
    strategy: trend
    description: enter on the cross
caps:
  per_symbol: 30%
  total:
    limit: 80%
    on_breach: clip
    strategy: trend
    description: whole book
breakers:
  drawdown:
    when: drawdown > 10%
    then: halt(1h)
    description: stop the bleeding
guards:
  max_order_notional: 1000 USDT
  price_collar: 2%
  max_spread: 30bps
  max_quote_age: 30s
  bad_tick: 10%
  bad_tick_volume: 3
  max_orders: 10
  order_window: 1m
  round_up_min_notional: true
execution:
  order_type: market
  fees: {maker: 0.1%, taker: 0.1%}
  slippage: 5bps
  maker_wait: 30s
  pending_ttl: 2m
  stale_after: 10m
  dust: 1 USDT
  min_trade: 10 USDT
  cancel_on_shutdown: true
cooldowns: {after_fill: 15m, after_stopout: 1h}
"""

MINIMAL = "policy: p\nmarket:\n  symbols: [BTC/USDT]\n  timeframe: 1h\n"


def check(src: str) -> tuple[bool, list[Diagnostic]]:
    diags = Diagnostics()
    root = parse_yaml(src, FILE, diags)
    assert root is not None, [d.to_json() for d in diags]
    assert not diags.items, [d.to_json() for d in diags]
    ok = validate_policy(root, diags)
    return ok, diags.sorted()


def only(src: str) -> Diagnostic:
    ok, diags = check(src)
    assert not ok
    assert len(diags) == 1, [d.to_json() for d in diags]
    return diags[0]


def where(d: Diagnostic) -> tuple[str, int, int]:
    assert d.span is not None
    return d.code, d.span.line, d.span.col


def with_market(body: str) -> str:
    return MINIMAL + body


# --------------------------------------------------------------------------------------
# The schema itself


def test_schema_is_valid_draft_2020_12() -> None:
    assert POLICY_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(POLICY_SCHEMA)


def _walk(schema: Any, path: str, out: list[tuple[str, dict[str, Any]]]) -> None:
    if isinstance(schema, dict):
        out.append((path, schema))
        for key, value in schema.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    _walk(sub, f"{path}/{key}/{name}", out)
            elif isinstance(value, (dict, list)):
                _walk(value, f"{path}/{key}", out)
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            _walk(sub, f"{path}/{i}", out)


def test_every_property_is_documented_and_closed() -> None:
    schemas: list[tuple[str, dict[str, Any]]] = []
    _walk(POLICY_SCHEMA, "#", schemas)
    n_properties = 0
    for path, schema in schemas:
        if "properties" in schema:
            assert schema.get("additionalProperties") is False, path
            for name, prop in schema["properties"].items():
                n_properties += 1
                assert prop.get("title"), f"{path}/{name}"
                assert prop.get("description"), f"{path}/{name}"
    assert n_properties > 50


def test_schema_json_is_sorted_and_round_trips() -> None:
    text = schema_json()
    assert json.loads(text) == POLICY_SCHEMA
    assert text == json.dumps(POLICY_SCHEMA, indent=2, sort_keys=True, ensure_ascii=False)
    assert text.startswith('{\n  "$defs"')


# --------------------------------------------------------------------------------------
# Valid policies


def test_full_policy_is_valid() -> None:
    ok, diags = check(FULL_POLICY)
    assert diags == []
    assert ok


def test_minimal_policy_is_valid() -> None:
    assert check(MINIMAL) == (True, [])


def test_none_root_is_not_valid_and_reports_nothing() -> None:
    diags = Diagnostics()
    assert validate_policy(None, diags) is False
    assert not diags.items


# --------------------------------------------------------------------------------------
# S001 unknown key


def test_s001_unknown_top_level_key_suggests_triggers() -> None:
    d = only(with_market("tigers:\n  t: {when: x, then: y}\n"))
    assert where(d) == ("S001", 5, 1)
    assert d.message == "unknown key `tigers`"
    assert d.help == "did you mean `triggers`?"
    assert d.span is not None and d.span.end_col == 7


def test_s001_nested_unknown_key() -> None:
    d = only(with_market("guards: {max_sprad: 30bps}\n"))
    assert where(d) == ("S001", 5, 10)
    assert d.message == "unknown key `max_sprad` in `guards`"
    assert d.help == "did you mean `max_spread`?"


def test_s001_in_named_rule() -> None:
    d = only(with_market("triggers:\n  entry:\n    when: x\n    then: y\n    strategi: s\n"))
    assert where(d) == ("S001", 9, 5)
    assert d.message == "unknown key `strategi` in `triggers.entry`"
    assert d.help == "did you mean `strategy`?"


def test_s001_without_close_match_lists_allowed_keys() -> None:
    d = only(with_market("cooldowns: {zzz: 1m}\n"))
    assert where(d) == ("S001", 5, 13)
    assert d.help == "allowed keys here: `after_fill`, `after_stopout`"


def test_s001_misplaced_key_says_where_it_belongs() -> None:
    d = only(with_market("timeframe: 5m\n"))
    assert where(d) == ("S001", 5, 1)
    assert d.message == "unknown key `timeframe`"
    assert d.help == "`timeframe` belongs in `market`"


def test_s001_misspelt_required_key_is_one_diagnostic() -> None:
    d = only("polcy: p\nmarket: {symbols: [BTC/USDT], timeframe: 1h}\n")
    assert where(d) == ("S001", 1, 1)
    assert d.help == "did you mean `policy`?"


def test_s001_cap_mapping_with_typo_is_one_diagnostic() -> None:
    # `caps` values are an expression or a mapping (oneOf): only the mapping branch counts.
    d = only(with_market("caps:\n  total: {limt: 80%}\n"))
    assert where(d) == ("S001", 6, 11)
    assert d.message == "unknown key `limt` in `caps.total`"
    assert d.help == "did you mean `limit`?"


# --------------------------------------------------------------------------------------
# S002 missing required key


def test_s002_missing_top_level_key() -> None:
    d = only("description: x\npolicy: p\n")
    assert where(d) == ("S002", 1, 1)
    assert d.message == "missing required key `market`"
    assert d.help is not None and d.help.startswith("`market`: where and what")


def test_s002_missing_nested_keys() -> None:
    ok, diags = check("policy: p\nmarket:\n  exchange: kraken\n")
    assert not ok
    assert [(*where(d), d.message) for d in diags] == [
        ("S002", 3, 3, "missing required key `symbols` in `market`"),
        ("S002", 3, 3, "missing required key `timeframe` in `market`"),
    ]


def test_s002_missing_then_in_trigger() -> None:
    d = only(with_market("triggers:\n  entry:\n    when: x\n"))
    assert where(d) == ("S002", 7, 5)
    assert d.message == "missing required key `then` in `triggers.entry`"


# --------------------------------------------------------------------------------------
# S003 wrong type


def test_s003_symbols_string() -> None:
    d = only("policy: p\nmarket:\n  symbols: BTC/USDT\n  timeframe: 1h\n")
    assert where(d) == ("S003", 3, 12)
    assert d.message == "expected a list of symbols, found a string"
    assert d.help == "write a list: `symbols: [BTC/USDT]`"


def test_s003_empty_value_points_at_the_key() -> None:
    d = only(with_market("triggers:\n  entry:\n    when:\n    then: y\n"))
    assert where(d) == ("S003", 7, 5)
    assert d.message == "expected an expression, found an empty value"


def test_s003_boolean_where_an_expression_is_expected() -> None:
    d = only(with_market("breakers:\n  b: {when: yes, then: halt}\n"))
    assert where(d) == ("S003", 6, 13)
    assert d.message == "expected an expression, found a boolean"
    assert d.help == 'YAML reads `yes` as a boolean; quote it: `"yes"`'


def test_s003_cap_of_the_wrong_type_is_one_diagnostic() -> None:
    d = only(with_market("caps:\n  total: [80%]\n"))
    assert where(d) == ("S003", 6, 10)
    assert d.message == "expected an expression or a mapping with `limit`, found a list"


def test_s003_theme_as_string() -> None:
    src = "policy: p\nmarket:\n  symbols: [BTC/USDT]\n  timeframe: 1h\n  themes: {m: BTC/USDT}\n"
    d = only(src)
    assert where(d) == ("S003", 5, 15)
    assert d.message == "expected a list of symbols or a mapping with `symbols`, found a string"


def test_s003_root_not_a_mapping() -> None:
    d = only("- a\n- b\n")
    assert where(d) == ("S003", 1, 1)
    assert d.message == "expected a mapping with `policy` and `market`, found a list"


def test_s003_number_where_a_name_is_expected() -> None:
    d = only("policy: 12\nmarket: {symbols: [BTC/USDT], timeframe: 1h}\n")
    assert where(d) == ("S003", 1, 9)
    assert d.message == "expected a policy name, found a number"


# --------------------------------------------------------------------------------------
# S004 invalid value


@pytest.mark.parametrize(
    ("body", "pos", "message", "help_start"),
    [
        (
            "execution: {order_type: markt}\n",
            (5, 25),
            "invalid `order_type` `markt`",
            "did you mean `market`?",
        ),
        (
            "caps:\n  c: {limit: 1%, on_breach: stop}\n",
            (6, 29),
            "invalid `on_breach` `stop`",
            "expected one of `clip`, `block`",
        ),
        ("guards: {max_orders: 0}\n", (5, 22), "`max_orders` must be at least 1, found `0`", None),
        (
            "guards: {bad_tick_volume: 0}\n",
            (5, 27),
            "`bad_tick_volume` must be greater than 0, found `0`",
            None,
        ),
        (
            "params: {Fast: 1}\n",
            (5, 10),
            "invalid parameter name `Fast` in `params`",
            "parameter names contain lowercase",
        ),
        (
            "triggers:\n  1st: {when: x, then: y}\n",
            (6, 3),
            "invalid name `1st` in `triggers`",
            "names contain letters",
        ),
        (
            "include: [/etc/passwd]\n",
            (5, 11),
            "invalid include path `/etc/passwd`",
            "include paths are relative",
        ),
        ("params: {x: ''}\n", (5, 13), "`x` must not be empty", None),
    ],
)
def test_s004_invalid_values(
    body: str, pos: tuple[int, int], message: str, help_start: str | None
) -> None:
    d = only(with_market(body))
    assert where(d) == ("S004", *pos)
    assert d.message == message
    if help_start is not None:
        assert d.help is not None and d.help.startswith(help_start)


def test_s004_patterns_in_market() -> None:
    ok, diags = check(
        "policy: -p\nmarket:\n  exchange: Binance\n  symbols: [BTC/USDT, btc/usdt]\n"
        "  timeframe: 5min\n  quote: usdt\n"
    )
    assert not ok
    assert [(*where(d), d.message) for d in diags] == [
        ("S004", 1, 9, "invalid policy name `-p`"),
        ("S004", 3, 13, "invalid exchange id `Binance`"),
        ("S004", 4, 23, "invalid symbol `btc/usdt`"),
        ("S004", 5, 14, "invalid timeframe `5min`"),
        ("S004", 6, 10, "invalid currency `usdt`"),
    ]
    assert diags[2].help is not None and "`BTC/USDT`" in diags[2].help


def test_s004_empty_symbol_list() -> None:
    d = only("policy: p\nmarket:\n  symbols: []\n  timeframe: 1h\n")
    assert where(d) == ("S004", 3, 12)
    assert d.message == "`symbols` must not be empty"


def test_s004_duplicate_symbol_points_at_the_second() -> None:
    d = only(
        "policy: p\nmarket:\n  symbols:\n    - BTC/USDT\n    - ETH/USDT\n    - BTC/USDT\n"
        "  timeframe: 1h\n"
    )
    assert where(d) == ("S004", 6, 7)
    assert d.message == "duplicate `BTC/USDT` in `symbols`"
    assert d.help == "`BTC/USDT` is already listed (line 4); remove one of them"


def test_many_problems_one_diagnostic_each() -> None:
    src = (
        "policy: p\n"
        "market: {symbols: [BTC/USDT], timeframe: 1h}\n"
        "tigers: {}\n"
        "guards: {max_sprad: 30bps, max_orders: -1}\n"
        "caps: {a: {limt: 1%}, b: true}\n"
        "execution: {order_type: stop}\n"
    )
    ok, diags = check(src)
    assert not ok
    assert [where(d) for d in diags] == [
        ("S001", 3, 1),
        ("S001", 4, 10),
        ("S004", 4, 40),
        ("S001", 5, 12),
        ("S003", 5, 26),
        ("S004", 6, 25),
    ]
