"""Tests for dsl.yamlsrc: positions of keys and scalars, and hostile input."""

from __future__ import annotations

import math
import string
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.diagnostics import Diagnostic, Diagnostics, Span
from policyctl.dsl import yamlsrc
from policyctl.dsl.schema import validate_policy
from policyctl.dsl.yamlsrc import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    YMap,
    YNode,
    YScalar,
    YSeq,
    parse_yaml,
    to_plain,
)

FILE = "policy.yaml"


def parse(data: bytes | str) -> tuple[YNode | None, Diagnostics]:
    diags = Diagnostics()
    return parse_yaml(data, FILE, diags), diags


def only(diags: Diagnostics) -> Diagnostic:
    assert len(diags) == 1, [d.to_json() for d in diags]
    return diags.items[0]


def where(d: Diagnostic) -> tuple[str, int, int]:
    assert d.span is not None
    return d.code, d.span.line, d.span.col


def codes(diags: Diagnostics) -> list[tuple[str, int, int]]:
    return [where(d) for d in diags]


def plain(root: YNode | None) -> Any:
    assert root is not None
    return to_plain(root)


def char_at(src: str, pos: tuple[int, int]) -> str:
    line, col = pos
    return src.splitlines()[line - 1][col - 1]


def value(root: YNode | None, *path: str | int) -> YNode:
    node = root
    for part in path:
        if isinstance(part, int):
            assert isinstance(node, YSeq)
            node = node.items[part]
        else:
            assert isinstance(node, YMap)
            node = node.get(part)
    assert node is not None
    return node


def scalar(root: YNode | None, *path: str | int) -> YScalar:
    node = value(root, *path)
    assert isinstance(node, YScalar)
    return node


def assert_aligned(src: str, node: YScalar) -> None:
    """Every non-blank character of the scalar's text is found at its reported position."""
    for i, ch in enumerate(node.text):
        if not ch.isspace():
            assert char_at(src, node.pos_at(i)) == ch, (i, ch, node.pos_at(i))


# --------------------------------------------------------------------------------------
# The tree


def test_tree_values_and_spans() -> None:
    src = (
        "policy: btc-trend\n"
        "n: 20\n"
        "f: 1.5\n"
        "e: 1e-4\n"
        "b: yes\n"
        "z: ~\n"
        "q: '20'\n"
        "d: 2024-01-01\n"
        "list:\n"
        "  - a\n"
        "  - {x: 1}\n"
        "# trailing comment\n"
    )
    root, diags = parse(src)
    assert not diags.items
    assert isinstance(root, YMap)
    assert root.keys() == ["policy", "n", "f", "e", "b", "z", "q", "d", "list"]
    assert plain(root) == {
        "policy": "btc-trend",
        "n": 20,
        "f": 1.5,
        "e": 0.0001,
        "b": True,
        "z": None,
        "q": "20",
        "d": "2024-01-01",
        "list": ["a", {"x": 1}],
    }
    assert root.key_node("n") is not None
    assert root.key_node("n").span == Span(FILE, 2, 1, 2, 2)  # type: ignore[union-attr]
    assert scalar(root, "policy").span == Span(FILE, 1, 9, 1, 18)
    assert scalar(root, "q").style == "single"
    assert scalar(root, "q").text == "20"
    # A block list ends at its last item, not at the comment after it.
    assert value(root, "list").span == Span(FILE, 10, 3, 11, 11)
    assert root.get("missing") is None and root.key_node("missing") is None


def test_bom_and_crlf() -> None:
    src = "\ufeffa: 1\r\nwhen: f(x)\r\n"
    root, diags = parse(src.encode("utf-8"))
    assert not diags.items
    node = scalar(root, "when")
    assert node.span == Span(FILE, 2, 7, 2, 11)
    assert node.pos_at(2) == (2, 9)
    assert diags.sources[FILE] == src[1:]


def test_aliases_and_merge_keys() -> None:
    src = "base: &b {x: 1, y: 2}\ncopy: *b\nd:\n  <<: *b\n  y: 3\n"
    root, diags = parse(src)
    assert not diags.items
    assert plain(root) == {
        "base": {"x": 1, "y": 2},
        "copy": {"x": 1, "y": 2},
        "d": {"x": 1, "y": 3},
    }
    # Aliased content keeps the position of the anchored original.
    assert value(root, "copy", "x").span.line == 1


def test_keys_are_compared_by_text() -> None:
    root, diags = parse("yes: 1\n'1': 2\n")
    assert not diags.items
    assert isinstance(root, YMap)
    assert root.keys() == ["yes", "1"]


# --------------------------------------------------------------------------------------
# pos_at on every scalar style


def test_pos_at_plain_single_line() -> None:
    src = "when: crosses_above(sma(close, fast), x)\n"
    root, _ = parse(src)
    node = scalar(root, "when")
    assert node.style == "plain"
    assert node.text[17] == "("
    assert node.pos_at(17) == (1, 24)
    assert node.pos_at(0) == (1, 7)
    assert_aligned(src, node)
    assert node.span_of(14, 17) == Span(FILE, 1, 21, 1, 24)


def test_pos_at_plain_multi_line() -> None:
    src = "when: crosses_above(\n    sma(close, fast),\n\n    x)\n"
    root, _ = parse(src)
    node = scalar(root, "when")
    assert node.text == "crosses_above( sma(close, fast),\nx)"
    assert node.pos_at(node.text.index("sma")) == (2, 5)
    assert node.pos_at(node.text.index("x)")) == (4, 5)
    assert_aligned(src, node)
    # The folded line break maps onto the source line break.
    assert node.pos_at(14) == (1, 21)


def test_pos_at_single_quoted_with_escaped_quote() -> None:
    src = "when: 'it''s f(a, ''b'')'\n"
    root, _ = parse(src)
    node = scalar(root, "when")
    assert node.text == "it's f(a, 'b')"
    assert node.style == "single"
    assert node.pos_at(0) == (1, 8)  # the opening quote shifts by one
    assert node.pos_at(node.text.index("f(")) == (1, 14)
    assert node.pos_at(node.text.index("b")) == (1, 21)
    assert_aligned(src, node)


def test_pos_at_double_quoted_with_escapes() -> None:
    src = 'when: "say(\\"hi\\")\\tor \\x41 + é"\n'
    root, _ = parse(src)
    node = scalar(root, "when")
    assert node.text == 'say("hi")\tor A + é'
    assert node.style == "double"
    assert node.pos_at(0) == (1, 8)
    # An escaped quote maps onto the quote after the backslash.
    assert node.pos_at(4) == (1, 13)
    assert node.pos_at(node.text.index("or")) == (1, 21)
    # A character written as an escape code maps to its backslash.
    assert char_at(src, node.pos_at(node.text.index("A"))) == "\\"
    assert node.pos_at(node.text.index("é")) == (1, 31)
    for i, ch in enumerate(node.text):
        if ch not in " \tA":
            assert char_at(src, node.pos_at(i)) == ch


def test_pos_at_double_quoted_multi_line_and_escaped_break() -> None:
    src = 'when: "f(a,\n  b) and \\\n  g(c)"\n'
    root, _ = parse(src)
    node = scalar(root, "when")
    assert node.text == "f(a, b) and g(c)"
    assert node.pos_at(node.text.index("b)")) == (2, 3)
    assert node.pos_at(node.text.index("g(")) == (3, 3)
    assert_aligned(src, node)


def test_pos_at_literal_block() -> None:
    src = "rule: | # keep lines\n  when x > 1\n    then buy\n  done\nnext: 1\n"
    root, _ = parse(src)
    node = scalar(root, "rule")
    assert node.style == "literal"
    assert node.text == "when x > 1\n  then buy\ndone\n"
    assert node.pos_at(0) == (2, 3)
    assert node.pos_at(node.text.index("then")) == (3, 5)
    assert node.pos_at(node.text.index("done")) == (4, 3)
    assert_aligned(src, node)


def test_pos_at_folded_block() -> None:
    src = "when: >-\n  crosses_above(\n  sma(close, fast),\n  x)\n"
    root, _ = parse(src)
    node = scalar(root, "when")
    assert node.style == "folded"
    assert node.text == "crosses_above( sma(close, fast), x)"
    assert node.pos_at(node.text.index("sma")) == (3, 3)
    assert node.pos_at(len(node.text) - 1) == (4, 4)
    assert_aligned(src, node)


def test_pos_at_block_with_indentation_indicator_and_anchor() -> None:
    src = "a: &lol lol(x)\nb: !!str |2\n    indented\n"
    root, diags = parse(src)
    assert not diags.items
    node = scalar(root, "a")
    assert node.pos_at(0) == (1, 9)  # after the anchor, whose name has the same letters
    assert node.span.col == 9
    block = scalar(root, "b")
    assert block.text == "  indented\n"
    assert block.pos_at(2) == (3, 5)
    assert_aligned(src, node)
    assert_aligned(src, block)


def test_pos_at_flow_sequence_and_past_the_end() -> None:
    src = "xs: [ 'a''b', \"c\\\"d\", e ]\nempty: ''\n"
    root, _ = parse(src)
    for i in range(3):
        assert_aligned(src, scalar(root, "xs", i))
    last = scalar(root, "xs", 2)
    assert last.pos_at(0) == (1, 23)
    assert last.pos_at(1) == (1, 24)  # just after the text, e.g. "unexpected end"
    assert last.pos_at(99) == (1, 24)
    empty = scalar(root, "empty")
    assert empty.pos_at(0) == (2, 9)  # inside the quotes
    assert last.span_of(0, 0) == Span(FILE, 1, 23, 1, 24)


def test_pos_at_without_source_falls_back_to_the_span() -> None:
    node = YScalar(Span("x", 3, 5, 3, 9), "abcd", "abcd")
    assert node.pos_at(2) == (3, 7)


_TEXT = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + " ()[]{},:#'\"\\-%.&*!|>é\n"),
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=_TEXT,
    style=st.sampled_from([None, "'", '"', "|", ">"]),
    width=st.integers(min_value=10, max_value=80),
    indent=st.sampled_from(["", "  ", "    "]),
)
def test_pos_at_matches_source_for_emitted_scalars(
    text: str, style: str | None, width: int, indent: str
) -> None:
    body = yaml.safe_dump({"when": text}, default_style=style, allow_unicode=True, width=width)
    src = body
    if indent:  # the same scalar nested one level down
        lines = body.removesuffix("...\n").splitlines(True)
        src = "outer:\n" + "".join(indent + line for line in lines)
    root, diags = parse(src)
    assert not diags.items, [d.to_json() for d in diags]
    node = scalar(root, "outer", "when") if indent else scalar(root, "when")
    assert node.text == text
    assert_aligned(src, node)


# --------------------------------------------------------------------------------------
# Hostile input: every code


def test_y001_invalid_utf8() -> None:
    root, diags = parse(b"policy: x\nname: caf\xc3\xa9 \xe9t\xe9\n")
    assert root is None
    d = only(diags)
    assert where(d) == ("Y001", 2, 12)
    assert d.message == "file is not valid utf-8 (byte `0xe9`)"
    assert d.help is not None and "UTF-8" in d.help


def test_y002_nul_bytes() -> None:
    root, diags = parse(b"a: 1\nb: \x00\x01\x02")
    assert root is None
    d = only(diags)
    assert where(d) == ("Y002", 2, 4)
    assert d.message == "file contains binary data (a NUL byte)"
    _, diags = parse("a: 1\x00")
    assert codes(diags) == [("Y002", 1, 5)]


def test_y002_utf16_and_control_characters() -> None:
    _, diags = parse("policy: x\n".encode("utf-16"))
    d = only(diags)
    assert d.code == "Y002"
    assert d.help is not None and "UTF-16" in d.help
    _, diags = parse("a: 1\nb: \x1b[31m\n")
    d = only(diags)
    assert where(d) == ("Y002", 2, 4)
    assert d.message == "file contains a non-printable character `U+001B`"


@pytest.mark.parametrize("src", ["", "   \n\n", "# just a comment\n", "null\n", "~", "---\n"])
def test_y003_empty_document(src: str) -> None:
    root, diags = parse(src)
    assert root is None
    d = only(diags)
    assert where(d) == ("Y003", 1, 1)
    assert d.message == "empty document"


def test_y004_syntax_error() -> None:
    root, diags = parse("policy: x\nmarket: a: b\n")
    assert root is None
    d = only(diags)
    assert where(d) == ("Y004", 2, 10)
    assert d.message == "mapping values are not allowed here"


def test_y004_tab_indentation_and_unclosed_flow() -> None:
    _, diags = parse("a:\n\tb: 1\n")
    d = only(diags)
    assert where(d) == ("Y004", 2, 1)
    assert d.message == "found character `\\t` that cannot start any token"
    assert d.help is not None and "tabs" in d.help
    _, diags = parse("a: [1, 2\nb: 3\n")
    d = only(diags)
    assert d.code == "Y004"
    assert d.help is not None and "line 1" in d.help


def test_y004_undefined_alias() -> None:
    root, diags = parse("a: 1\nb: *nope\n")
    d = only(diags)
    assert where(d) == ("Y004", 2, 4)
    assert d.message == "undefined alias `*nope`"
    assert isinstance(root, YMap)


def test_y004_duplicate_anchor() -> None:
    root, diags = parse("a: &x 1\nb: &x 2\nc: *x\n")
    d = only(diags)
    assert where(d) == ("Y004", 2, 4)
    assert d.message == "duplicate anchor `&x`"
    assert d.help is not None and "line 1" in d.help
    assert plain(root) == {"a": 1, "b": 2, "c": 2}


def test_y005_duplicate_key() -> None:
    root, diags = parse("policy: a\nmarket:\n  x: 1\npolicy: b\n")
    d = only(diags)
    assert where(d) == ("Y005", 4, 1)
    assert d.message == "duplicate key `policy`"
    assert d.help is not None and "line 1" in d.help
    assert plain(root) == {"policy": "a", "market": {"x": 1}}
    _, diags = parse("m: {a: 1, 'a': 2}\n")
    assert codes(diags) == [("Y005", 1, 11)]


def _billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_y006_billion_laughs_stops_early() -> None:
    # Fully expanded, this document has over a billion nodes.
    root, diags = parse(_billion_laughs())
    assert root is None
    d = only(diags)
    # Level d expands to 10 * 1111 nodes: the limit is hit there, the rest is never read.
    assert where(d) == ("Y006", 4, 29)
    assert d.message == "alias expansion is too large"


def test_y006_expansion_just_under_the_limit_is_fine() -> None:
    root, diags = parse(_billion_laughs(levels=3))  # 10 + 110 + 1110 expanded nodes
    assert not diags.items
    data = plain(root)
    assert len(data["c"]) == 10 and data["c"][0][0][0] == "lol"
    assert MAX_ALIAS_NODES == 10_000


@pytest.mark.parametrize(
    ("src", "pos"),
    [("a: &a [1, *a]\n", (1, 11)), ("a: &x\n  b: *x\n", (2, 6))],
)
def test_y006_recursive_alias(src: str, pos: tuple[int, int]) -> None:
    root, diags = parse(src)
    assert root is None
    d = only(diags)
    assert where(d) == ("Y006", *pos)
    assert d.message.startswith("recursive alias")


def test_y007_deep_flow_nesting() -> None:
    root, diags = parse("[" * 5000)
    assert root is None
    d = only(diags)
    assert where(d) == ("Y007", 1, MAX_DEPTH + 1)
    assert d.message == "nesting is too deep (more than 64 levels)"


def test_y007_limit_is_exact_and_counts_block_nesting() -> None:
    root, diags = parse("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert not diags.items and isinstance(root, YSeq)
    block = "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n"
    _, diags = parse(block)
    assert codes(diags) == [("Y007", MAX_DEPTH + 1, 2 * MAX_DEPTH + 1)]


def test_y007_through_aliases() -> None:
    deep = "[" * 40 + "]" * 40
    src = f"a: &a {deep}\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    root, diags = parse(src)
    assert root is None
    assert codes(diags) == [("Y007", 2, 34)]


@pytest.mark.parametrize(
    ("src", "tag", "col"),
    [
        ("a: !!python/object/apply:os.system ['ls']\n", "!!python/object/apply:os.system", 4),
        ("a: !!python/name:os.system\n", "!!python/name:os.system", 4),
        ("a: &x !custom {b: 1}\n", "!custom", 7),
        ("a: !!binary aGVsbG8=\n", "!!binary", 4),
        ("a: !!set {x, y}\n", "!!set", 4),
        ("a: !!timestamp 2024-01-01\n", "!!timestamp", 4),
        ("a: !!map [1]\n", "!!map", 4),
    ],
)
def test_y008_unsupported_tag(src: str, tag: str, col: int) -> None:
    root, diags = parse(src)
    d = only(diags)
    assert where(d) == ("Y008", 1, col)
    assert d.message == f"unsupported tag `{tag}`"
    assert d.span is not None and d.span.end_col == col + len(tag)
    # Nothing is constructed from the tag: the content stays plain data.
    assert isinstance(root, YMap)


def test_standard_tags_are_accepted() -> None:
    root, diags = parse("a: !!str 12\nb: !!int '7'\nc: !!float 1\nd: !!bool yes\ne: ! x\n")
    assert not diags.items
    assert plain(root) == {"a": "12", "b": 7, "c": 1.0, "d": True, "e": "x"}


def test_y009_multiple_documents() -> None:
    root, diags = parse("a: 1\n---\nb: 2\n--- !!python/object {}\n")
    d = only(diags)
    assert where(d) == ("Y009", 2, 1)
    assert d.message == "more than one document in the file"
    assert plain(root) == {"a": 1}


@pytest.mark.parametrize(
    ("src", "pos", "message"),
    [
        ("? [a, b]\n: 1\nc: 2\n", (1, 3), "a list cannot be used as a key"),
        ("? {a: 1}\n: 1\n", (1, 3), "a mapping cannot be used as a key"),
        ("{[x]: 1, y: 2}\n", (1, 2), "a list cannot be used as a key"),
    ],
)
def test_y010_non_scalar_key(src: str, pos: tuple[int, int], message: str) -> None:
    root, diags = parse(src)
    d = only(diags)
    assert where(d) == ("Y010", *pos)
    assert d.message == message
    assert isinstance(root, YMap)
    assert all(isinstance(k, YScalar) for k, _ in root.items)


def test_y011_non_finite_numbers() -> None:
    root, diags = parse("a: 1e999\nb: .nan\nc: -.inf\nd: .Inf\ne: 1.0e+400\nf: 1e10\n")
    assert codes(diags) == [
        ("Y011", 1, 4),
        ("Y011", 2, 4),
        ("Y011", 3, 4),
        ("Y011", 4, 4),
        ("Y011", 5, 4),
    ]
    assert diags.items[0].message == "non-finite number `1e999`"
    assert diags.items[1].message == "non-finite number `.nan`"
    data = plain(root)
    assert math.isinf(data["a"]) and math.isnan(data["b"])
    assert data["f"] == 1e10


def test_y012_file_too_large() -> None:
    data = b"a: " + b"x" * MAX_FILE_BYTES
    root, diags = parse(data)
    assert root is None
    d = only(diags)
    assert where(d) == ("Y012", 1, 1)
    assert d.message == "file is too large"
    assert FILE not in diags.sources  # not even decoded
    _, diags = parse("é" * (MAX_FILE_BYTES // 2 + 1))  # few characters, too many bytes
    assert only(diags).code == "Y012"


def test_y013_invalid_explicit_tag_value_and_huge_integer() -> None:
    root, diags = parse("a: !!int abc\nb: !!bool maybe\nc: " + "9" * 5000 + "\n")
    assert codes(diags) == [("Y013", 1, 10), ("Y013", 2, 11), ("Y013", 3, 4)]
    assert diags.items[0].message == "`abc` is not a valid `!!int` value"
    assert diags.items[2].message.startswith("number `999")
    assert plain(root)["a"] == "abc"


def test_y014_bad_merge_value() -> None:
    root, diags = parse("a:\n  <<: 5\n  b: 1\n")
    d = only(diags)
    assert where(d) == ("Y014", 2, 7)
    assert plain(root) == {"a": {"b": 1}}


# --------------------------------------------------------------------------------------
# Fuzzing: diagnostics, never exceptions

_VALID = """\
policy: btc-trend
market:
  exchange: binance
  symbols: [BTC/USDT, ETH/USDT]
  timeframe: 5m
params: {fast: 20, risk: "2%"}
triggers:
  entry:
    when: crosses_above(sma(close, fast), sma(close, 50))
    then: 'buy(risk)'
caps:
  total: {limit: 80%, on_breach: clip}
  base: &b 30%
  alias: *b
guards: {max_spread: 30bps, max_orders: 10}
"""


def _check_spans(diags: Diagnostics, text: str | None) -> None:
    n_lines = len(text.splitlines()) + 1 if text is not None else None
    for d in diags:
        assert d.code[0] in "YS" and d.message and d.message == d.message.strip()
        assert d.span is not None
        assert d.span.line >= 1 and d.span.col >= 1
        assert (d.span.end_line, d.span.end_col) >= (d.span.line, d.span.col)
        if n_lines is not None:
            assert d.span.line <= n_lines


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    diags = Diagnostics()
    root = parse_yaml(data, FILE, diags)
    validate_policy(root, diags)
    _check_spans(diags, None)


_YAML_CHARS = st.sampled_from([*":-[]{},&*!|>'\"#?%@` \n\t\\0123abc\x00\xff.~", "é", "\u2028"])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(_VALID)),
            st.integers(min_value=0, max_value=3),
            st.text(alphabet=_YAML_CHARS, max_size=4),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_mutated_yaml(edits: list[tuple[int, int, str]]) -> None:
    text = _VALID
    for pos, delete, insert in edits:
        pos = min(pos, len(text))
        text = text[:pos] + insert + text[pos + delete :]
    diags = Diagnostics()
    root = parse_yaml(text, FILE, diags)
    validate_policy(root, diags)
    _check_spans(diags, text)
    if root is None:
        assert diags.has_errors
    else:
        to_plain(root)
        for node in _walk(root):
            if isinstance(node, YScalar):
                node.span_of(0, len(node.text))


def _walk(node: YNode) -> list[YNode]:
    out: list[YNode] = [node]
    if isinstance(node, YMap):
        for key, child in node.items:
            out.append(key)
            out.extend(_walk(child))
    elif isinstance(node, YSeq):
        for child in node.items:
            out.extend(_walk(child))
    return out


_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_DATA = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(_KEYS, _DATA, min_size=1, max_size=4), flow=st.booleans())
def test_tree_agrees_with_pyyaml(data: dict[str, object], flow: bool) -> None:
    src = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    root, diags = parse(src)
    assert not [d for d in diags if d.code != "Y011"], [d.to_json() for d in diags]
    # The same resolver through PyYAML's own composer and constructor.
    assert plain(root) == yaml.load(src, Loader=yamlsrc._Loader)
