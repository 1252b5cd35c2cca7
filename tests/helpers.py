"""Shared helpers of the language test suite: parse snippets, write and compile policies.

Everything goes through the real pipeline (parser, loader, checker, compiler, lints); the
helpers only save the boilerplate of writing a policy into a temporary folder.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

from policyctl.diagnostics import Diagnostic, Diagnostics, Span
from policyctl.dsl import ast
from policyctl.dsl.loader import load_policy
from policyctl.dsl.parser import TextSource, parse, parse_rules
from policyctl.rules.compiler import CompiledPolicy, compile_policy

SYMBOLS = ("BTC/USDT", "ETH/USDT")
REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"


# ---- parsing ----------------------------------------------------------------------------


def parse_snippet(text: str, start: str = "expr", file: str = "snippet") -> tuple[object, Diagnostics]:
    """Parse ``text`` from an entry point; return the result (``None`` on error) and diagnostics."""
    diags = Diagnostics()
    return parse(text, start, TextSource(file, text), diags), diags


def expr(text: str) -> ast.Expr:
    """Parse an expression that must be free of errors."""
    result, diags = parse_snippet(text)
    assert not diags.items, [d.to_json() for d in diags]
    assert result is not None
    return result


def rules(text: str, file: str = "test.rules") -> tuple[list[ast.Statement], Diagnostics]:
    diags = Diagnostics()
    return parse_rules(text, file, diags), diags


# ---- policies ---------------------------------------------------------------------------


def policy_yaml(
    body: str,
    symbols: Sequence[str] = SYMBOLS,
    timeframe: str = "5m",
    name: str = "test",
    market_extra: str = "",
) -> str:
    """A policy document: a header with a market, then ``body`` (dedented YAML sections)."""
    head = (
        f"policy: {name}\n"
        "market:\n"
        f"  symbols: [{', '.join(symbols)}]\n"
        f"  timeframe: {timeframe}\n"
    )
    if market_extra:
        head += textwrap.indent(textwrap.dedent(market_extra).strip("\n"), "  ") + "\n"
    return head + textwrap.dedent(body).lstrip("\n")


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def compile_path(
    path: Path, params: dict[str, str] | None = None, lint: bool = True
) -> tuple[CompiledPolicy | None, Diagnostics]:
    """Load and compile without raising: the compiled policy (if it loaded) and diagnostics."""
    diags = Diagnostics()
    policy = load_policy(path, diags, params)
    if policy is None:
        return None, diags
    return compile_policy(policy, diags, lint=lint), diags


def compile_yaml(
    folder: Path,
    body: str,
    params: dict[str, str] | None = None,
    name: str = "policy.yaml",
    lint: bool = True,
    **header: object,
) -> tuple[CompiledPolicy | None, Diagnostics, Path]:
    """Write ``policy_yaml(body, **header)`` to ``folder/name`` and compile it."""
    path = write(folder, name, policy_yaml(body, **header))  # type: ignore[arg-type]
    cp, diags = compile_path(path, params, lint)
    return cp, diags, path


def compile_ok(folder: Path, body: str, **kw: object) -> CompiledPolicy:
    """Compile a policy that must have no errors (warnings allowed)."""
    cp, diags, _ = compile_yaml(folder, body, **kw)  # type: ignore[arg-type]
    errors = [d.to_json() for d in diags if d.is_error]
    assert not errors, errors
    assert cp is not None
    return cp


# ---- diagnostics ------------------------------------------------------------------------


def codes(diags: Iterable[Diagnostic]) -> list[str]:
    return [d.code for d in diags]


def errors(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.is_error]


def only(diags: Iterable[Diagnostic], code: str | None = None) -> Diagnostic:
    """The single diagnostic of a run (of one code, when given)."""
    items = [d for d in diags if code is None or d.code == code]
    assert len(items) == 1, [d.to_json() for d in diags]
    return items[0]


def span_text(source: str, span: Span) -> str:
    """The text a single-line span covers in ``source``."""
    assert span.line == span.end_line, span
    line = source.splitlines()[span.line - 1]
    return line[span.col - 1 : span.end_col - 1]


def find_pos(source: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the ``occurrence``-th appearance of ``needle`` in ``source``."""
    start = -1
    for _ in range(occurrence + 1):
        start = source.index(needle, start + 1)
    line = source.count("\n", 0, start) + 1
    col = start - (source.rfind("\n", 0, start) + 1) + 1
    return line, col


# ---- numbers ----------------------------------------------------------------------------


def same_float(a: float, b: float, rel: float = 1e-12, abs_tol: float = 0.0) -> bool:
    """Equal as policy values: both NaN, or equal within ``rel`` relative (``abs_tol`` near 0)."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_tol)
