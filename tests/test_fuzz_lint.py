"""Fuzzing the linter: thousands of broken policies, and it only ever reports.

Every case is linted through :func:`policyctl.lint.lint_paths`, as ``policyctl lint`` does,
and must satisfy the contract of the linter:

* no exception escapes: every problem is a diagnostic;
* every diagnostic has a code from :data:`policyctl.codes.CODES`, a severity and a message;
* a diagnostic's span lies inside its file (line and column of start and end);
* the work is bounded: the number of diagnostics stays proportional to the input, and
  the hostile cases (bombs, deep nesting, huge files) stay under a memory bound.

Cases start from the shipped policies (``policies/``) and mutate them with a seeded
``random.Random``: characters and lines deleted, duplicated and swapped, tokens of the
grammar and of YAML inserted, random unicode and binary bytes, truncation, numbers replaced
by ``1e999``/``nan``/``-0``/huge integers, deep nesting, YAML alias bombs, non-UTF-8
bytes, files including themselves, and very many rules. Hypothesis adds token soups built
from the grammar's own vocabulary.
"""

from __future__ import annotations

import random
import re
import shutil
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import POLICIES
from policyctl.codes import CODES
from policyctl.diagnostics import Diagnostics, Severity, Span
from policyctl.lint import lint_paths

MEMORY_BOUND = 200 * 1024 * 1024

SEEDS: dict[str, str] = {
    p.name: p.read_text(encoding="utf-8") for p in sorted(POLICIES.glob("*.yaml"))
    if not p.name.endswith(".test.yaml")
}
RULES_SEEDS: dict[str, str] = {
    "safety.rules": (POLICIES / "common" / "safety.rules").read_text(encoding="utf-8"),
    "every_kind.rules": """\
param fast = 20
param slow = fast * 2.5
trigger entry on "BTC/USDT", "ETH/USDT":
    when close > sma(close, fast) and rsi(close, 14) < 70 and close[1] < close
    then buy 2% of equity stop 3% take 6%
trigger exit: when position.open and crosses_below(sma(close, fast), sma(close, slow)) then close
trigger trim: when position.pnl > 10% then sell 50 USDT
trigger sized: when kill_switch then buy risk 1% of cash per 2 * atr(14)
cap exposure_cap: exposure.total <= 25% clip
cap trade_rate: trades(1h) <= 4 block
breaker crash: when change(close of "BTC/USDT", 1h) <= -8% then reduce_only for 4h
breaker stop_all: when any(position.pnl <= -5%) then halt
""",
}

GRAMMAR_TOKENS = (
    "trigger", "cap", "breaker", "param", "when", "then", "on", "buy", "sell", "close", "risk",
    "of equity", "of cash", "of", "stop", "take", "per", "for", "halt", "pause", "reduce_only",
    "flatten", "alert", "clip", "block", "and", "or", "not", "true", "false", "(", ")", "[", "]",
    ",", ":", "=", ".", "<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "%", "bps", "#",
    "'", '"', "1h", "5m", "90s", "7d", "2w", "250ms", "3%", "30bps", "1000 USDT", "0.5 BTC",
    '"BTC/USDT"', '"majors"', "sma(close, 20)", "rsi(close, 14)", "atr(14)", "close",
    "position.open", "exposure.total", "trades(1h)", "pnl(1d)", "any(", "all(", "min(", "max(",
    "clamp(", "abs(", "crosses_above(", "[1]", "1e999", "nan", "-0", "0", "1e-320",
    "9" * 400, "timeframe", "equity", "kill_switch", "\n", " ", "\t",
)
YAML_TOKENS = (
    ": ", "- ", "{", "}", "[", "]", "&a ", "*a", "!!python/object:os.system ", "!!str ",
    "!!int ", "!!float ", "!!binary ", "|", ">-", "---\n", "...\n", "? ", "<<: *a\n",
    "%YAML 1.2\n", "&x [*x]", "'", '"', "\\", "#", "~", "null", "yes", "no", ".inf", "-.inf",
    ".nan", "0x1F", "0o17", "1_000", "1e999", "10" + "0" * 400, "2001-12-14", "\r\n", "\r",
    "\u2028", "\x85", "\ufeff", "\t",
)
UNICODE = (
    "é", "ß", "Ω", "漢", "🚀", "\u0301", "\u200b", "\u202e", "\u00a0", "\ufffd", "\U0001f600",
    "\u2028", "\u2029", "\x85", "\x00", "\x07", "\x1b", "\x7f", "\ufeff", "𝟘", "Ⅻ", "١",
)
NUMBER_RE = re.compile(r"\d+(\.\d+)?")
REPLACEMENTS = ("1e999", "nan", "-0", "1" + "0" * 400, ".inf", "1e-400", "0", "-1", "0.0000001",
                "99999999999999999999", "1e308", "NaN", "-.inf")


# ---- the contract -----------------------------------------------------------------------

_YAML_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _line_tables(data: bytes) -> list[list[int]]:
    """Line lengths under each line-break convention a stage may use."""
    text = data.decode("utf-8", errors="surrogateescape")
    return [
        [len(x) for x in text.split("\n")],  # the expression parser (`.rules`)
        [len(x) for x in _YAML_BREAKS.split(text)],  # YAML (PyYAML's breaks)
        [len(x) for x in data.split(b"\n")],  # byte columns (invalid UTF-8)
    ]


def _inside(span: Span, lengths: list[int]) -> bool:
    n = len(lengths)
    if not (1 <= span.line <= n and 1 <= span.end_line <= n and span.line <= span.end_line):
        return False
    if not 1 <= span.col <= lengths[span.line - 1] + 1:
        return False
    if not 1 <= span.end_col <= lengths[span.end_line - 1] + 2:  # end is exclusive
        return False
    return span.end_line > span.line or span.end_col >= span.col


def check_contract(diags: Diagnostics, budget: int) -> None:
    """Every diagnostic is well formed and points inside its file."""
    assert len(diags.items) <= budget, f"{len(diags.items)} diagnostics for a small input"
    tables: dict[str, list[list[int]] | None] = {}
    for d in diags.items:
        assert d.code in CODES, d.to_json()
        assert isinstance(d.severity, Severity), d.to_json()
        assert isinstance(d.message, str) and d.message.strip(), d.to_json()
        span = d.span
        if span is None or span.file.startswith("--param"):
            continue
        if span.file not in tables:
            path = Path(span.file)
            tables[span.file] = _line_tables(path.read_bytes()) if path.is_file() else None
        table = tables[span.file]
        assert table is not None, f"span in a file that does not exist: {d.to_json()}"
        assert any(_inside(span, lengths) for lengths in table), d.to_json()
    # rendering never fails either
    from policyctl.diagnostics import render_github, render_human, render_json

    render_human(diags)
    render_json(diags)
    render_github(diags)


def lint_case(path: Path, params: dict[str, str] | None = None) -> Diagnostics:
    size = path.stat().st_size if path.is_file() else 0
    diags, files = lint_paths([path], params)
    assert isinstance(files, list)
    check_contract(diags, budget=200 + size // 2)
    return diags


def lint_bounded(path: Path, params: dict[str, str] | None = None) -> Diagnostics:
    """``lint_case`` under a memory bound (for the bombs)."""
    tracemalloc.start()
    try:
        diags = lint_case(path, params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"peak memory {peak / 2**20:.0f} MB"
    return diags


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder where the shipped policies' includes resolve (``common/safety.rules``)."""
    shutil.copytree(POLICIES / "common", tmp_path / "common")
    return tmp_path


# ---- mutations --------------------------------------------------------------------------

Mutation = Callable[[random.Random, str], str]


def _pos(rng: random.Random, text: str) -> int:
    return rng.randrange(len(text) + 1)


def m_delete_chars(rng: random.Random, text: str) -> str:
    i = _pos(rng, text)
    return text[:i] + text[i + rng.randint(1, 8):]


def m_duplicate_chars(rng: random.Random, text: str) -> str:
    i = _pos(rng, text)
    j = min(len(text), i + rng.randint(1, 40))
    return text[:j] + text[i:j] * rng.randint(1, 3) + text[j:]


def m_swap_chars(rng: random.Random, text: str) -> str:
    if len(text) < 2:
        return text
    i, j = sorted(rng.sample(range(len(text)), 2))
    return text[:i] + text[j] + text[i + 1:j] + text[i] + text[j + 1:]


def _lines(text: str) -> list[str]:
    return text.split("\n")


def m_delete_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


def m_duplicate_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return "\n".join(lines)


def m_swap_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def m_reindent_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines[i] = " " * rng.randint(0, 8) + lines[i].lstrip(" ")
    return "\n".join(lines)


def m_insert_token(rng: random.Random, text: str) -> str:
    tok = rng.choice(GRAMMAR_TOKENS if rng.random() < 0.6 else YAML_TOKENS)
    i = _pos(rng, text)
    return text[:i] + tok + text[i:]


def m_insert_unicode(rng: random.Random, text: str) -> str:
    i = _pos(rng, text)
    if rng.random() < 0.5:
        ch = rng.choice(UNICODE)
    else:
        ch = chr(rng.choice([rng.randint(0x20, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
    return text[:i] + ch * rng.randint(1, 3) + text[i:]


def m_truncate(rng: random.Random, text: str) -> str:
    return text[:_pos(rng, text)]


def m_replace_number(rng: random.Random, text: str) -> str:
    found = list(NUMBER_RE.finditer(text))
    if not found:
        return text
    m = rng.choice(found)
    return text[:m.start()] + rng.choice(REPLACEMENTS) + text[m.end():]


def m_deep_nesting(rng: random.Random, text: str) -> str:
    k = rng.choice((50, 101, 500, 1500))
    wrap = rng.choice((
        lambda e: "(" * k + e + ")" * k,
        lambda e: "-" * k + e,
        lambda e: "not " * k + e,
        lambda e: "abs(" * k + e + ")" * k,
        lambda e: " + ".join([e] * k),
        lambda e: e + "[1]" * k,
    ))
    found = list(re.finditer(r"(when|limit): ([^\n{}]+)", text)) or list(
        re.finditer(r"(when) ([^\n]+)", text))
    if not found:
        return text
    m = rng.choice(found)
    return text[:m.start(2)] + wrap(m.group(2)) + text[m.end(2):]


def m_yaml_nesting(rng: random.Random, text: str) -> str:
    k = rng.choice((70, 1000, 5000))
    i = _pos(rng, text)
    return text[:i] + rng.choice(("[" * k, "{a: " * k, "- " * k, "[" * k + "]" * k)) + text[i:]


MUTATIONS: tuple[Mutation, ...] = (
    m_delete_chars, m_duplicate_chars, m_swap_chars, m_delete_line, m_duplicate_line,
    m_swap_lines, m_reindent_line, m_insert_token, m_insert_token, m_insert_unicode,
    m_truncate, m_replace_number, m_replace_number, m_deep_nesting, m_yaml_nesting,
)


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        text = rng.choice(MUTATIONS)(rng, text)
    return text


def encode(rng: random.Random, text: str) -> bytes:
    data = text.encode("utf-8", errors="surrogatepass")
    r = rng.random()
    if r < 0.03:  # invalid UTF-8
        i = rng.randrange(len(data) + 1)
        data = data[:i] + rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xfe")) + data[i:]
    elif r < 0.05:  # binary junk
        i = rng.randrange(len(data) + 1)
        data = data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[i:]
    elif r < 0.06:
        data = data.replace(b"\n", b"\r\n")
    elif r < 0.07:
        data = b"\xef\xbb\xbf" + data
    return data


def cases(n: int, seeds: dict[str, str], seed: int) -> Iterator[tuple[int, str, bytes]]:
    rng = random.Random(seed)
    names = sorted(seeds)
    for k in range(n):
        name = rng.choice(names)
        yield k, name, encode(rng, mutate(rng, seeds[name]))


# ---- the fuzz runs ----------------------------------------------------------------------


def _run(workspace: Path, n: int, seeds: dict[str, str], seed: int, suffix: str) -> int:
    errors = 0
    for k, name, data in cases(n, seeds, seed):
        path = workspace / f"case{suffix}"
        path.write_bytes(data)
        try:
            diags = lint_case(path)
        except Exception as e:  # pragma: no cover - the report of a failure
            raise AssertionError(f"case {k} (from {name}) raised {type(e).__name__}: {e}\n"
                                 f"input: {data[:3000]!r}") from e
        errors += diags.has_errors
    return errors


def test_mutated_yaml_policies(workspace: Path) -> None:
    n = 1500
    errors = _run(workspace, n, SEEDS, seed=20240601, suffix=".yaml")
    # most mutations break something, some are harmless: both kinds were exercised
    assert n // 4 < errors < n


def test_mutated_rules_files(workspace: Path) -> None:
    n = 1000
    errors = _run(workspace, n, RULES_SEEDS, seed=7, suffix=".rules")
    assert n // 4 < errors < n


def test_mutated_included_rules_file(workspace: Path) -> None:
    """The root policy is fine; the `.rules` file it includes is broken."""
    rng = random.Random(99)
    included = workspace / "common" / "safety.rules"
    root = workspace / "trend.yaml"
    root.write_text(SEEDS["trend.yaml"], encoding="utf-8")
    for _ in range(200):
        included.write_bytes(encode(rng, mutate(rng, RULES_SEEDS["safety.rules"])))
        lint_case(root)


# ---- grammar token soups ----------------------------------------------------------------

SOUP = st.lists(st.sampled_from(GRAMMAR_TOKENS), min_size=0, max_size=40).map(" ".join)


@settings(max_examples=600, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(soup=SOUP, where=st.sampled_from(("rules", "when", "then", "param", "cap", "breaker")))
def test_token_soups(workspace: Path, soup: str, where: str) -> None:
    if where == "rules":
        path = workspace / "soup.rules"
        path.write_text(soup, encoding="utf-8")
    else:
        quoted = soup.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        body = {
            "when": f'triggers:\n  t:\n    when: "{quoted}"\n    then: close\n',
            "then": f'triggers:\n  t:\n    when: kill_switch\n    then: "{quoted}"\n',
            "param": f'params:\n  p: "{quoted}"\n',
            "cap": f'caps:\n  c: "{quoted}"\n',
            "breaker": f'breakers:\n  b:\n    when: "{quoted}"\n    then: halt\n',
        }[where]
        path = workspace / "soup.yaml"
        path.write_text("policy: soup\nmarket:\n  symbols: [BTC/USDT]\n  timeframe: 5m\n" + body,
                        encoding="utf-8")
    lint_case(path)


@settings(max_examples=200, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(params=st.dictionaries(st.sampled_from(("fast", "slow", "rsi_max", "fsat", "", "x y")),
                              SOUP, max_size=3))
def test_param_overrides_fuzz(params: dict[str, str]) -> None:
    lint_case(POLICIES / "trend.yaml", params)


# ---- hostile inputs ---------------------------------------------------------------------

HEAD = "policy: hostile\nmarket:\n  symbols: [BTC/USDT, ETH/USDT]\n  timeframe: 5m\n"


def _billion_laughs(levels: int, width: int) -> str:
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return HEAD + "\n".join(lines) + f"\nparams: *a{levels - 1}\n"


def _many_yaml_triggers(n: int) -> str:
    body = "".join(f"  t{i}:\n    when: close > sma(close, {i % 50 + 1})\n    then: close\n"
                   for i in range(n))
    return HEAD + "triggers:\n" + body


def _many_rules(n: int) -> str:
    return "".join(f'trigger t{i} on "BTC/USDT": when close > sma(close, {i % 97 + 1}) '
                   f"then buy 1% of equity stop 2%\n" for i in range(n))


HOSTILE: dict[str, tuple[str, bytes]] = {
    "empty": (".yaml", b""),
    "empty-rules": (".rules", b""),
    "whitespace": (".yaml", b"   \n  \n"),
    "comment-only": (".yaml", b"# policy: nothing\n"),
    "nul": (".yaml", b"policy: x\x00\n"),
    "nul-rules": (".rules", b"trigger a: when\x00 kill_switch then close\n"),
    "binary": (".yaml", bytes(range(256)) * 8),
    "not-utf8": (".yaml", HEAD.encode() + b"description: caf\xe9\n"),
    "not-utf8-rules": (".rules", "trigger é: when kill_switch then close\n".encode() + b"\xff\n"),
    "utf16": (".yaml", HEAD.encode("utf-16")),
    "bom": (".yaml", b"\xef\xbb\xbf" + HEAD.encode()),
    "laughs": (".yaml", _billion_laughs(10, 10).encode()),
    "laughs-wide": (".yaml", _billion_laughs(4, 400).encode()),
    "recursive-alias": (".yaml", (HEAD + "params: &a {p: *a}\n").encode()),
    "merge-bomb": (".yaml", (HEAD + "a: &a {x: 1}\n" + "".join(
        f"b{i}: &b{i} {{<<: [{', '.join(['*a'] + [f'*b{j}' for j in range(max(0, i - 3), i)])}]}}\n"
        for i in range(60))).encode()),
    "yaml-deep-list": (".yaml", (HEAD + "params: " + "[" * 50000 + "]" * 50000 + "\n").encode()),
    "yaml-deep-map": (".yaml", (HEAD + "params: " + "{a: " * 20000 + "1" + "}" * 20000).encode()),
    "parens": (".yaml", (HEAD + "triggers:\n  t:\n    when: " + "(" * 20000 + "close > 1 USDT"
                         + ")" * 20000 + "\n    then: close\n").encode()),
    "open-parens": (".yaml", (HEAD + "triggers:\n  t:\n    when: " + "(" * 20000
                              + "\n    then: close\n").encode()),
    "unary": (".rules", ("trigger t: when " + "not " * 10000 + "kill_switch then close\n").encode()),
    "minus": (".rules", ("param p = " + "-" * 20000 + "1\n").encode()),
    "calls": (".rules", ("param p = " + "abs(" * 10000 + "1" + ")" * 10000 + "\n").encode()),
    "long-sum": (".rules", ("param p = " + " + ".join(["1"] * 20000) + "\n").encode()),
    "history": (".rules", ("trigger t: when close" + "[1]" * 10000 + " > 0 then close\n").encode()),
    "long-line": (".yaml", (HEAD + "description: " + "x" * 2_000_000 + "\n").encode()),
    "too-large": (".yaml", HEAD.encode() + b"# " + b"x" * 6_000_000 + b"\n"),
    "too-large-rules": (".rules", b"# " + b"x" * 6_000_000 + b"\n"),
    "many-yaml-triggers": (".yaml", _many_yaml_triggers(600).encode()),
    "many-rules": (".rules", _many_rules(1000).encode()),
    "many-params": (".rules", "".join(f"param p{i} = p{i + 1}\n" for i in range(1000)).encode()),
    "param-chain": (".rules", ("".join(f"param p{i} = p{i + 1} + 1\n" for i in range(600))
                               + "param p600 = 1\ntrigger t: when close > p0 * 1 USDT "
                               "then close\n").encode()),
    "huge-numbers": (".yaml", (HEAD + "params:\n  a: 1e999\n  b: .nan\n  c: -.inf\n  d: "
                               + "9" * 5000 + "\n  e: 0x" + "f" * 5000 + "\n  f: -0\n"
                               "triggers:\n  t:\n    when: close > 1e999 * 1 USDT\n"
                               "    then: buy nan% of equity\n").encode()),
    "tags": (".yaml", (HEAD + "params:\n  a: !!python/object:os.system [ls]\n  b: !!int x\n"
                       "  c: !!binary aGk=\n  d: !custom 3\n  e: !!float 1e999\n").encode()),
    "multi-doc": (".yaml", (HEAD + "---\n" + HEAD + "...\n").encode()),
    "duplicate-keys": (".yaml", (HEAD + "triggers: {}\ntriggers:\n  t: {when: kill_switch, "
                                 "then: close}\n  t: {when: kill_switch, then: close}\n").encode()),
    "complex-keys": (".yaml", (HEAD + "? [a, b]\n: 1\n{x: 1}: 2\n").encode()),
    "cr-only": (".yaml", (HEAD + "triggers:\n  t:\n    when: nope > 1\n    then: close\n")
                .replace("\n", "\r").encode()),
    "line-separators": (".yaml", (HEAD + "triggers:\n  t:\n    when: |\n      nope\u2028 > 1\n"
                                  "    then: close\n").encode()),
    "rules-separators": (".rules", "trigger a:\u2028when nope > 1\x85then close\rtrigger b: "
                         "when kill_switch then close\n".encode()),
    "tabs": (".yaml", (HEAD + "triggers:\n\tt:\n\t\twhen: nope\n").encode()),
    "unicode-names": (".yaml", (HEAD + "params:\n  é: 3\n  ｆａｓｔ: 2\ntriggers:\n  🚀:\n"
                                "    when: close > é * 1 USDT\n    then: close\n").encode()),
    "unicode-rules": (".rules", "trigger ✓: when clöse > 1 then close\nparam ｐ = １\n".encode()),
    "include-self": (".yaml", (HEAD + "include: [case.yaml, ./case.yaml, ../{dir}/case.yaml]\n")
                     .encode()),
    "include-missing": (".yaml", (HEAD + "include: [nope.rules, nope.yaml, /etc/passwd, "
                                  "'', ., .., common, 'a\tb']\n").encode()),
    "include-many": (".yaml", (HEAD + "include: [" + ", ".join(["common/safety.rules"] * 500)
                               + "]\n").encode()),
    "scalar-root": (".yaml", b"just a string\n"),
    "list-root": (".yaml", b"- policy: x\n"),
    "null-values": (".yaml", (HEAD + "triggers:\n  t:\n    when:\n    then: ~\ncaps: ~\n"
                              "params: {a: , b: null}\nbreakers: []\n").encode()),
}


# what each hostile input must be reported as (the others are fine or merely must not crash)
EXPECTED = {
    "empty": "Y003", "whitespace": "Y003", "nul": "Y002", "nul-rules": "Y002",
    "binary": "Y002", "not-utf8": "Y001", "not-utf8-rules": "Y001", "utf16": "Y002",
    "laughs": "Y006", "laughs-wide": "Y006", "recursive-alias": "Y006", "merge-bomb": "Y006",
    "yaml-deep-list": "Y007", "yaml-deep-map": "Y007", "unary": "P004", "minus": "P004",
    "calls": "P004", "long-sum": "P004", "history": "P004", "many-params": "P004",
    "param-chain": "P004", "open-parens": "P003", "long-line": "Y012", "too-large": "Y012",
    "too-large-rules": "Y012", "huge-numbers": "Y011", "tags": "Y008", "multi-doc": "Y009",
    "duplicate-keys": "Y005", "complex-keys": "Y010", "cr-only": "T001", "include-self": "I002",
    "include-missing": "I001",
}
CLEAN = {"bom", "empty-rules", "many-rules", "many-yaml-triggers", "parens"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_inputs(workspace: Path, name: str) -> None:
    suffix, data = HOSTILE[name]
    data = data.replace(b"{dir}", workspace.name.encode())
    path = workspace / f"case{suffix}"
    path.write_bytes(data)
    diags = lint_bounded(path)
    found = {d.code for d in diags}
    if name in EXPECTED:
        assert EXPECTED[name] in found, [d.to_json() for d in diags]
    if name in CLEAN:
        assert not diags.has_errors, [d.to_json() for d in diags]
    else:
        assert diags.has_errors


def test_hostile_paths(workspace: Path) -> None:
    (workspace / "dir.yaml").mkdir()
    loop = workspace / "loop.yaml"
    loop.symlink_to(loop)
    for path in (workspace / "missing.yaml", workspace / "dir.yaml", loop, workspace):
        diags, _ = lint_paths([path])
        check_contract(diags, budget=200)


def test_include_cycle_through_fragments(workspace: Path) -> None:
    (workspace / "a.yaml").write_text("include: [b.yaml, common/safety.rules]\n")
    (workspace / "b.yaml").write_text("include: [a.yaml]\ncaps:\n  c: exposure.total <= 5%\n")
    root = workspace / "root.yaml"
    root.write_text(HEAD + "include: [a.yaml]\n")
    diags = lint_bounded(root)
    assert [d.code for d in diags if d.is_error] == ["I002"]


def test_every_shipped_policy_lints_cleanly_as_a_folder() -> None:
    diags = lint_case(POLICIES)
    assert not diags.items


# ---- regressions: crashes the fuzzing found ---------------------------------------------

REGRESSIONS: dict[str, tuple[str, bytes, str]] = {
    # OverflowError in the loader: a YAML integer too large for a float
    "huge-yaml-integer": (".yaml", (HEAD + "guards:\n  bad_tick_volume: 1" + "0" * 400 + "\n")
                          .encode(), "P005"),
    # OverflowError / ValueError in the checker: an infinite or unavailable window
    "infinite-window-param": (".yaml", (HEAD + "params:\n  w: .inf\ntriggers:\n  t:\n"
                                        "    when: close > sma(close, w)\n    then: close\n")
                              .encode(), "T008"),
    "nan-window-param": (".yaml", (HEAD + "params:\n  w: .nan\ntriggers:\n  t:\n"
                                   "    when: close > sma(close, w)\n    then: close\n").encode(),
                         "T008"),
    "window-divided-by-zero": (".rules", b"trigger t: when close > sma(close, 1h / 0) then close\n",
                               "T008"),
    # ZeroDivisionError in the checker: a zero timeframe
    "zero-timeframe": (".yaml", HEAD.replace("5m", "0m").encode() + b"triggers:\n  t:\n"
                       b"    when: close > sma(close, 1h)\n    then: close\n", "S004"),
    # RecursionError in the checker: params defined through a long chain of params
    "param-chain": (".rules", "".join(f"param p{i} = p{i + 1}\n" for i in range(1000)).encode()
                    + b"param p1000 = 1\ntrigger t: when close > p0 * 1 USDT then close\n",
                    "P004"),
    # OSError (ENAMETOOLONG) in the loader: an include path too long for the file system
    "include-name-too-long": (".yaml", (HEAD + "include: [" + "a" * 300 + ".rules]\n").encode(),
                              "I003"),
    # AssertionError in the parser: Unicode digits matched `\d` in a duration
    "unicode-digit-duration": (".rules", "trigger t: when close > sma(close, ١h) then close\n"
                               .encode(), "P002"),
    "unicode-digit-number": (".rules", "param p = ٣\n".encode(), "P002"),
    # KeyError in the lints: a setting written in another section than its own
    "slippage-in-guards": (".yaml", (HEAD + "guards:\n  slippage: 50%\n").encode(), "L006"),
    "timeouts-in-cooldowns": (".yaml", (HEAD + "cooldowns:\n  maker_wait: 5m\n"
                                        "  pending_ttl: 1m\n").encode(), "L007"),
    "dust-in-guards": (".yaml", (HEAD + "guards:\n  dust: 10 USDT\n  min_trade: 1 USDT\n")
                       .encode(), "L009"),
    # not crashes, but unavailable durations were accepted silently
    "nan-breaker-duration": (".rules", b"breaker b: when kill_switch then halt for 1h / 0\n",
                             "T008"),
    "nan-window-function": (".rules", b"breaker b: when trades(1h / 0) > 3 then halt\n", "T008"),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regressions(workspace: Path, name: str) -> None:
    suffix, data, code = REGRESSIONS[name]
    path = workspace / f"case{suffix}"
    path.write_bytes(data)
    diags = lint_case(path)
    assert code in {d.code for d in diags}, [d.to_json() for d in diags]


def test_top_level_path_too_long(workspace: Path) -> None:
    for suffix in (".yaml", ".rules"):
        diags, _ = lint_paths([workspace / ("b" * 300 + suffix)])
        assert [d.code for d in diags] == ["I003"]
