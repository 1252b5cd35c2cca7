"""The compiler: one shared graph, constant folding, params and their overrides, rule
records, includes, and the graph renderings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from helpers import (
    POLICIES,
    compile_ok,
    compile_path,
    compile_yaml,
    find_pos,
    only,
    policy_yaml,
    write,
)
from policyctl.diagnostics import PolicyError, Span
from policyctl.rules.compiler import CompiledPolicy, load_and_compile
from policyctl.rules.graph import Graph, render_dot, render_mermaid, render_text
from policyctl.rules.types import Kind


def ind_nodes(cp: CompiledPolicy, name: str | None = None) -> list:
    return [n for n in cp.graph.nodes if n.op == "ind" and (name is None or n.attr[0] == name)]


# ---- sharing ----------------------------------------------------------------------------

SHARED = """\
params:
  n: 20
triggers:
  a:
    when: close > sma(close, 20)
    then: close
  b:
    when: sma(close, n) < close * 2
    then: close
breakers:
  c:
    when: 'sma(close of "BTC/USDT", 20) > 1 USDT and sma(close, 20) of "ETH/USDT" > 1 USDT'
    then: halt
caps:
  d: exposure.symbol <= 5%
"""


def test_one_node_for_one_indicator_written_three_times(tmp_path: Path) -> None:
    cp = compile_ok(tmp_path, SHARED)
    src = (tmp_path / "policy.yaml").read_text()
    per_symbol = [n for n in ind_nodes(cp, "sma") if n.per_symbol]
    assert len(per_symbol) == 1
    node = per_symbol[0]
    assert node.attr == ("sma", 20)
    spans = list(node.spans)
    assert len(spans) == 2
    first = find_pos(src, "sma(close, 20)")
    second = find_pos(src, "sma(close, n)")
    assert [(s.line, s.col) for s in spans] == [first, second]
    assert {"trigger:a", "trigger:b"} <= node.rules
    assert "breaker:c" not in node.rules
    # bound to a named symbol: one node per symbol, whichever way `of` is written
    btc = [n for n in ind_nodes(cp, "sma") if not n.per_symbol]
    assert len(btc) == 2
    assert all(n.rules == {"breaker:c"} for n in btc)
    # the field `close` is one node too, written at four places
    close = [n for n in cp.graph.nodes if n.op == "field" and n.attr == ("close", None)]
    assert len(close) == 1 and len(list(close[0].spans)) == 4


def test_three_rules_share_one_node_with_three_spans(tmp_path: Path) -> None:
    body = """\
    triggers:
      t1: {when: 'close > sma(close, 20)', then: close}
      t2: {when: 'sma(close, 20) < open', then: close}
      t3: {when: 'volume > 0 and sma(close, 20) > low', then: close}
    """
    cp = compile_ok(tmp_path, body)
    src = (tmp_path / "policy.yaml").read_text()
    (node,) = ind_nodes(cp)
    assert [(s.line, s.col) for s in node.spans] == [
        find_pos(src, "sma(close, 20)", k) for k in range(3)
    ]
    assert all(s.end_col - s.col == len("sma(close, 20)") for s in node.spans)
    assert {"trigger:t1", "trigger:t2", "trigger:t3"} <= node.rules
    outputs = [cp.graph.output_node("trigger", t, "when") for t in ("t1", "t2", "t3")]
    for o in outputs:
        assert o is not None and node.id in _descendants(cp.graph, o.id)


def _descendants(g: Graph, root: int) -> set[int]:
    seen: set[int] = set()
    stack = [root]
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(g[i].args)
    return seen


def test_graph_is_topological_and_hash_consed(tmp_path: Path) -> None:
    cp = load_and_compile(POLICIES / "multi_symbol.yaml")
    g = cp.graph
    keys = set()
    for n in g.nodes:
        assert all(a < n.id for a in n.args)
        key = (n.op, n.args, n.attr if n.op != "const" else (n.value, n.type.kind, n.type.currency))
        assert key not in keys, key
        keys.add(key)


# ---- constant folding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        ("2 * 3% > 5%", 1.0),
        ("2 * 3% < 5%", 0.0),
        ("1h == 60m", 1.0),
        ("1000 USDT / 4 >= 250 USDT", 1.0),
        ("not (1 > 2)", 1.0),
        ("min(3, 2, 5) == 2 and max(1, 4) == 4", 1.0),
        ("abs(-3) == clamp(7, 1, 3)", 1.0),
        ("0.1 + 0.2 == 0.3", 1.0),  # tolerant comparison
        ("1 / 0 > 0", math.nan),  # division by zero is unavailable
        ("1 / 0 > 0 or true", 1.0),  # Kleene: unavailable or true
        ("1 / 0 > 0 and false", 0.0),
        ("timeframe == 5m", 1.0),
    ],
)
def test_constant_folding(tmp_path: Path, condition: str, value: float) -> None:
    body = f"breakers:\n  b:\n    when: {condition}\n    then: halt\n"
    cp, diags, _ = compile_yaml(tmp_path, body)
    assert cp is not None and not [d for d in diags if d.is_error]
    node = cp.graph.output_node("breaker", "b", "when")
    assert node is not None and node.is_const and node.type.kind is Kind.BOOL
    assert node.value == value or (math.isnan(value) and math.isnan(node.value))
    # nothing but the constant is left for the evaluators
    assert cp.graph.reachable() == [node.id]


def test_folded_constant_keeps_the_units(tmp_path: Path) -> None:
    cp = compile_ok(tmp_path, "triggers:\n  t: {when: kill_switch, then: buy 2 * 3% of equity stop 1% + 2%}\n")
    size = cp.graph.output_node("trigger", "t", "size")
    stop = cp.graph.output_node("trigger", "t", "stop")
    assert size is not None and size.is_const and size.value == pytest.approx(0.06)
    assert size.type.kind is Kind.PERCENT
    assert stop is not None and stop.is_const and stop.value == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("condition", "folded"),
    [
        ("close > 1 USDT and false", 0.0),
        ("false and close > 1 USDT", 0.0),
        ("close > 1 USDT or true", 1.0),
        ("true or close > 1 USDT", 1.0),
        ("close > 1 USDT and 1 > 2", 0.0),
        ("close > 1 USDT and not true", 0.0),
    ],
)
def test_absorbing_logic_folds_away_the_other_side(
    tmp_path: Path, condition: str, folded: float
) -> None:
    body = f"triggers:\n  t:\n    when: {condition}\n    then: close\n"
    cp, diags, _ = compile_yaml(tmp_path, body)
    assert cp is not None
    node = cp.graph.output_node("trigger", "t", "when")
    assert node is not None and node.is_const and node.value == folded
    assert cp.graph.reachable() == [node.id]
    # the linter notices the rule can never (or always) fire
    assert only(diags).code == "L010"


@pytest.mark.parametrize("condition", ["close > 1 USDT and true", "true and close > 1 USDT",
                                       "close > 1 USDT or false", "false or close > 1 USDT",
                                       "close > 1 USDT and 2 > 1"])
def test_identity_logic_folds_to_the_other_side(tmp_path: Path, condition: str) -> None:
    body = f"triggers:\n  t:\n    when: {condition}\n    then: close\n"
    cp = compile_ok(tmp_path, body)
    node = cp.graph.output_node("trigger", "t", "when")
    assert node is not None and node.op == "gt"
    assert [cp.graph[a].label() for a in node.args] == ["close", "1 USDT"]


def test_unavailable_constant_is_not_an_identity(tmp_path: Path) -> None:
    body = "triggers:\n  t:\n    when: close > 1 USDT and 1 / 0 > 1\n    then: close\n"
    cp = compile_ok(tmp_path, body)
    node = cp.graph.output_node("trigger", "t", "when")
    assert node is not None and node.op == "and"
    assert any(cp.graph[a].is_const and math.isnan(cp.graph[a].value) for a in node.args)


# ---- params -----------------------------------------------------------------------------

PARAMS = """\
params:
  fast: 20
  slow: fast * 2.5
  stop_at: 3%
triggers:
  t:
    when: crosses_above(sma(close, fast), sma(close, slow))
    then: buy 2% of equity stop stop_at
"""


def test_params_are_substituted(tmp_path: Path) -> None:
    cp = compile_ok(tmp_path, PARAMS)
    assert cp.params == {"fast": 20.0, "slow": 50.0, "stop_at": 0.03}
    assert sorted(n.attr for n in ind_nodes(cp)) == [("sma", 20), ("sma", 50)]
    stop = cp.graph.output_node("trigger", "t", "stop")
    assert stop is not None and stop.is_const and stop.value == 0.03
    assert cp.used_params == {"fast", "slow", "stop_at"}


def test_param_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", policy_yaml(PARAMS))
    cp = load_and_compile(path, params={"fast": "10", "stop_at": "5%"})
    # `slow` is defined from `fast`, so it follows the override
    assert cp.params == {"fast": 10.0, "slow": 25.0, "stop_at": 0.05}
    assert sorted(n.attr for n in ind_nodes(cp)) == [("sma", 10), ("sma", 25)]
    stop = cp.graph.output_node("trigger", "t", "stop")
    assert stop is not None and stop.value == 0.05
    base = load_and_compile(path)
    assert base.hash != cp.hash
    assert load_and_compile(path, params={"fast": "10", "stop_at": "5%"}).hash == cp.hash


def test_override_of_the_shipped_trend_policy() -> None:
    cp = load_and_compile(POLICIES / "trend.yaml", params={"fast": "10"})
    assert cp.params["fast"] == 10.0
    assert ("sma", 10) in [n.attr for n in ind_nodes(cp)]
    assert ("sma", 20) not in [n.attr for n in ind_nodes(cp)]


@pytest.mark.parametrize(
    ("name", "value", "code", "covered"),
    [
        ("fsat", "10", "C001", "fsat"),
        ("fast", "10 +", "P003", "+"),
        ("fast", "close", "T016", "close"),
        ("stop_at", "equity", "T016", "equity"),
    ],
)
def test_bad_overrides(tmp_path: Path, name: str, value: str, code: str, covered: str) -> None:
    path = write(tmp_path, "p.yaml", policy_yaml(PARAMS))
    with pytest.raises(PolicyError) as e:
        load_and_compile(path, params={name: value})
    diag = only([d for d in e.value.diagnostics if d.is_error])
    assert diag.code == code
    # positions are in the command-line argument `NAME=VALUE`
    col = f"{name}={value}".rindex(covered) + 1
    assert diag.span == Span(f"--param {name}", 1, col, 1, col + len(covered))


def test_unknown_param_suggests_a_close_name(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", policy_yaml(PARAMS))
    with pytest.raises(PolicyError) as e:
        load_and_compile(path, params={"fsat": "10"})
    assert e.value.diagnostics[0].help == "did you mean `fast`?"


def test_unused_and_shadowing_params(tmp_path: Path) -> None:
    body = "params:\n  unused: 3\n  volume: 5\ntriggers:\n  t: {when: kill_switch, then: close}\n"
    _, diags, path = compile_yaml(tmp_path, body)
    src = path.read_text()
    got = sorted((d.code, d.span.line, d.span.col) for d in diags if d.span)
    assert got == sorted([
        ("L015", *find_pos(src, "unused")),
        ("L015", *find_pos(src, "volume: 5")),
        ("L012", *find_pos(src, "volume: 5")),
    ])


def test_a_param_read_only_by_a_used_param_is_used(tmp_path: Path) -> None:
    body = ("params:\n  base: 2%\n  size: base * 2\n  orphan: 3\n  orphan_dep: orphan * 2\n"
            "triggers:\n  t: {when: 'close > open', then: buy size of equity}\n")
    cp, diags, path = compile_yaml(tmp_path, body)
    assert cp is not None and cp.used_params == {"base", "size"}
    src = path.read_text()
    assert sorted((d.code, d.span.line, d.span.col) for d in diags) == sorted([
        ("L015", *find_pos(src, "orphan:")), ("L015", *find_pos(src, "orphan_dep"))])


# ---- rule records -----------------------------------------------------------------------


def test_rule_records_of_the_trend_policy() -> None:
    cp = load_and_compile(POLICIES / "trend.yaml")
    assert [t.name for t in cp.triggers] == ["golden_cross", "death_cross"]
    gc = cp.triggers[0]
    assert gc.action == "buy"
    assert gc.size is not None and gc.size.kind == "risk" and gc.size.base == "equity"
    assert cp.graph[gc.size.amount].value == 0.005
    assert gc.stop is not None and cp.graph[gc.stop].value == 0.03
    assert gc.take is not None and cp.graph[gc.take].value == 0.06
    assert cp.triggers[1].action == "close" and cp.triggers[1].size is None
    caps = {c.name: c for c in cp.caps}
    assert caps["total_exposure"].metric == "exposure.total"
    assert caps["total_exposure"].mode == "clip" and not caps["total_exposure"].per_symbol
    assert caps["per_asset"].per_symbol
    assert caps["trade_rate"].metric == "trades" and caps["trade_rate"].window_seconds == 3600.0
    assert caps["trade_rate"].mode == "block"
    breakers = {b.name: b for b in cp.breakers}
    # included from common/safety.rules
    assert {"kill_switch", "loss_streak", "stale_feed", "api_errors", "exchange_halt"} <= set(breakers)
    assert breakers["daily_loss"].duration_seconds == 86400.0
    assert breakers["stale_feed"].duration_seconds is None
    assert breakers["kill_switch"].span.file.endswith("safety.rules")
    assert cp.settings["max_spread"] == pytest.approx(0.003)
    assert cp.settings["max_quote_age"] == 30.0
    assert cp.settings["max_order_notional"] == 5000.0
    assert cp.flags["order_type"] == "market"
    roles = {(o.kind, o.rule, o.role) for o in cp.graph.outputs}
    assert ("trigger", "golden_cross", "stop") in roles
    assert ("cap", "trade_rate", "limit") in roles
    assert ("breaker", "btc_crash", "when") in roles


def test_cap_orientation_and_targets(tmp_path: Path) -> None:
    body = """\
    caps:
      flipped: 25% >= exposure.total
      strict: positions.open < 3
      btc: exposure.symbol of "BTC/USDT" <= 5%
      window: trades(2h) <= 6
    """
    cp = compile_ok(tmp_path, body)
    caps = {c.name: c for c in cp.caps}
    assert caps["flipped"].metric == "exposure.total" and caps["flipped"].op == "le"
    assert cp.graph[caps["flipped"].limit].value == 0.25
    assert caps["strict"].op == "lt" and caps["strict"].mode == "block"
    assert caps["btc"].target == "BTC/USDT" and not caps["btc"].per_symbol
    assert caps["window"].window_seconds == 7200.0


def test_all_shipped_policies_compile_cleanly() -> None:
    for path in sorted(POLICIES.glob("*.yaml")):
        if path.name.endswith(".test.yaml"):
            continue
        cp, diags = compile_path(path)
        assert cp is not None, path
        assert not diags.items, (path, [d.to_json() for d in diags])


# ---- includes and duplicates ------------------------------------------------------------


def test_include_rules(tmp_path: Path) -> None:
    write(tmp_path, "common/extra.rules", "breaker ks: when kill_switch then halt\n")
    cp = compile_ok(tmp_path, "include: [common/extra.rules]\n"
                    "triggers:\n  t: {when: kill_switch, then: close}\n")
    assert [b.name for b in cp.breakers] == ["ks"]
    assert cp.breakers[0].span.file.endswith("extra.rules")
    assert len(cp.policy.files) == 2


def test_include_rules_and_yaml_fragments(tmp_path: Path) -> None:
    write(tmp_path, "common/extra.rules", "breaker ks: when kill_switch then halt\n")
    write(tmp_path, "frag.yaml", "caps:\n  total: exposure.total <= 25%\n")
    cp = compile_ok(tmp_path, "include: [common/extra.rules, frag.yaml]\n"
                    "triggers:\n  t: {when: kill_switch, then: close}\n")
    assert [b.name for b in cp.breakers] == ["ks"]
    assert [c.name for c in cp.caps] == ["total"]
    assert len(cp.policy.files) == 3


def test_self_include_and_missing_include(tmp_path: Path) -> None:
    _, diags, path = compile_yaml(tmp_path, "include: [missing.rules, policy.yaml]\n")
    assert sorted(d.code for d in diags) == ["I001", "I002"], [d.to_json() for d in diags]
    src = path.read_text()
    missing = only(diags, "I001")
    assert (missing.span.line, missing.span.col) == find_pos(src, "missing.rules")
    cycle = only(diags, "I002")
    assert (cycle.span.line, cycle.span.col) == find_pos(src, "policy.yaml")


def test_include_cycle_and_missing_include(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "include: [b.yaml]\n")
    write(tmp_path, "b.yaml", "include: [a.yaml]\n")
    _, diags, path = compile_yaml(tmp_path, "include: [a.yaml, missing.rules, policy.yaml]\n")
    got = sorted(d.code for d in diags)
    assert got == ["I001", "I002", "I002"], [d.to_json() for d in diags]
    src = path.read_text()
    missing = only(diags, "I001")
    assert (missing.span.line, missing.span.col) == find_pos(src, "missing.rules")


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    write(tmp_path, "x.rules", "trigger t: when kill_switch then close\nparam p = 3\n")
    body = "include: [x.rules]\nparams:\n  p: 2\ntriggers:\n  t: {when: kill_switch, then: close}\n"
    _, diags, _ = compile_yaml(tmp_path, body)
    dups = [d for d in diags if d.code == "L011"]
    assert sorted(d.message for d in dups) == ["duplicate param name `p`", "duplicate trigger name `t`"]
    assert all(d.span is not None and d.span.file.endswith("x.rules") for d in dups)


# ---- renderings -------------------------------------------------------------------------


def test_renderings_show_every_reachable_node() -> None:
    cp = load_and_compile(POLICIES / "trend.yaml")
    g = cp.graph
    live = g.reachable()
    text = render_text(g)
    assert text.startswith(f"# {len(live)} nodes")
    for i in live:
        assert f"%{i} " in text
    dot = render_dot(g)
    assert dot.startswith("digraph policy {") and dot.rstrip().endswith("}")
    assert sum(1 for ln in dot.splitlines() if ln.strip().startswith(f"n{live[-1]} [")) == 1
    mermaid = render_mermaid(g)
    assert mermaid.startswith("flowchart BT")
    assert len([ln for ln in mermaid.splitlines() if "-->" in ln]) == (
        sum(len(g[i].args) for i in live) + len(g.outputs)
    )
