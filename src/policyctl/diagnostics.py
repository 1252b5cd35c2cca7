"""Diagnostics: what every stage of the pipeline reports instead of raising.

A :class:`Diagnostic` has a stable code (see ``docs/diagnostics.md``), a severity, a
lowercase message, an optional help text and a :class:`Span` pointing into a source file.
Stages append to a :class:`Diagnostics` collector; the CLI renders it as human text with
the source line and a caret, as JSON, or as GitHub workflow annotations.

Spans are left out of equality of AST nodes (see ``dsl.ast``), but a diagnostic's span is
part of its identity.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Span:
    """A range in a source file: 1-based line and column, 0-based character offsets."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def point(file: str, line: int, col: int, width: int = 1) -> Span:
        return Span(file, line, col, line, col + max(width, 1))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span | None = None
    help: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
        }
        if self.span is not None:
            out.update(
                file=self.span.file,
                line=self.span.line,
                col=self.span.col,
                end_line=self.span.end_line,
                end_col=self.span.end_col,
            )
        if self.help:
            out["help"] = self.help
        return out


class PolicyError(Exception):
    """Raised by convenience loaders when a policy has errors; carries the diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        first = next((d for d in diagnostics if d.is_error), None)
        super().__init__(f"{first.span}: {first.message}" if first and first.span else str(first))


@dataclass
class Diagnostics:
    """An ordered collector of diagnostics, plus the source texts needed to render them."""

    items: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def add(self, d: Diagnostic) -> None:
        self.items.append(d)

    def error(self, code: str, message: str, span: Span | None = None, help: str | None = None) -> None:
        self.items.append(Diagnostic(code, Severity.ERROR, message, span, help))

    def warning(
        self, code: str, message: str, span: Span | None = None, help: str | None = None
    ) -> None:
        self.items.append(Diagnostic(code, Severity.WARNING, message, span, help))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        """Unique diagnostics in source order (file, line, column), location-less last."""
        seen: set[Diagnostic] = set()
        unique = []
        for d in self.items:
            if d not in seen:
                seen.add(d)
                unique.append(d)

        def key(d: Diagnostic) -> tuple[str, int, int, str]:
            if d.span is None:
                return ("\uffff", 0, 0, d.code)
            return (d.span.file, d.span.line, d.span.col, d.code)

        return sorted(unique, key=key)


def _source_line(sources: dict[str, str], span: Span) -> str | None:
    text = sources.get(span.file)
    if text is None:
        return None
    lines = text.splitlines()
    if 1 <= span.line <= len(lines):
        return lines[span.line - 1]
    return None


def render_human(diags: Diagnostics, color: bool = False) -> str:
    """Render like a compiler: ``file:line:col: error[CODE]: message``, the line, a caret."""
    red, yellow, blue, bold, reset = (
        ("\x1b[31m", "\x1b[33m", "\x1b[34m", "\x1b[1m", "\x1b[0m") if color else ("",) * 5
    )
    out: list[str] = []
    for d in diags.sorted():
        sev_color = red if d.is_error else yellow
        where = f"{d.span}: " if d.span else ""
        out.append(f"{bold}{where}{sev_color}{d.severity.value}[{d.code}]{reset}{bold}: {d.message}{reset}")
        if d.span is not None:
            line = _source_line(diags.sources, d.span)
            if line is not None:
                line = line.expandtabs(1)
                gutter = str(d.span.line)
                pad = " " * len(gutter)
                width = (
                    d.span.end_col - d.span.col
                    if d.span.end_line == d.span.line and d.span.end_col > d.span.col
                    else 1
                )
                width = max(1, min(width, max(1, len(line) - d.span.col + 1)))
                out.append(f"{blue}{pad} |{reset}")
                out.append(f"{blue}{gutter} |{reset} {line}")
                out.append(f"{blue}{pad} |{reset} {' ' * (d.span.col - 1)}{sev_color}{'^' * width}{reset}")
        if d.help:
            out.append(f"  = help: {d.help}")
        out.append("")
    n_err = sum(1 for d in diags.sorted() if d.is_error)
    n_warn = sum(1 for d in diags.sorted() if not d.is_error)
    if n_err or n_warn:
        out.append(f"{n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}")
    return "\n".join(out)


def render_json(diags: Diagnostics) -> str:
    return json.dumps([d.to_json() for d in diags.sorted()], indent=2, sort_keys=True)


def render_github(diags: Diagnostics) -> str:
    """GitHub Actions workflow commands (``::error file=...,line=...``)."""

    def esc(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(s: str) -> str:
        return esc(s).replace(":", "%3A").replace(",", "%2C")

    out = []
    for d in diags.sorted():
        kind = "error" if d.is_error else "warning"
        parts = []
        if d.span:
            parts += [
                f"file={prop(d.span.file)}",
                f"line={d.span.line}",
                f"col={d.span.col}",
                f"endLine={d.span.end_line}",
                f"endColumn={d.span.end_col}",
            ]
        parts.append(f"title={prop(d.code)}")
        msg = d.message + (f" (help: {d.help})" if d.help else "")
        out.append(f"::{kind} {','.join(parts)}::{esc(msg)}")
    return "\n".join(out)
