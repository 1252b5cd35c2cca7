"""The loaded policy: what the YAML files and ``.rules`` files say, merged, before checking.

Built by ``dsl.loader`` from every file of a policy (the root YAML and its includes).
Expressions are still ASTs here; ``rules.checker`` types them and lowers them into the
evaluation graph. Settings written with units (``price_collar: 2%``) are kept as
:class:`Setting` (an expression and where it was written) so the checker can type them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policyctl.diagnostics import Span
from policyctl.dsl import ast


@dataclass(frozen=True, slots=True)
class Setting:
    """A value written in the policy language inside YAML (``30bps``, ``1000 USDT``, ``5``)."""

    key: str
    expr: ast.Expr | None  # None for settings that are plain YAML values (see ``raw``)
    span: Span
    raw: object = None


@dataclass(frozen=True, slots=True)
class Theme:
    name: str
    symbols: tuple[str, ...]
    max_exposure: Setting | None
    span: Span


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    budget: Setting | None
    span: Span


@dataclass
class Market:
    exchange: str = "binance"
    symbols: tuple[str, ...] = ()
    timeframe: str = "5m"
    timeframe_seconds: float = 300.0
    quote: str | None = None
    themes: dict[str, Theme] = field(default_factory=dict)
    span: Span | None = None
    symbol_spans: dict[str, Span] = field(default_factory=dict)


@dataclass
class Policy:
    name: str
    file: str
    description: str = ""
    market: Market = field(default_factory=Market)
    params: dict[str, ast.Param] = field(default_factory=dict)
    strategies: dict[str, Strategy] = field(default_factory=dict)
    triggers: list[ast.Trigger] = field(default_factory=list)
    caps: list[ast.Cap] = field(default_factory=list)
    breakers: list[ast.Breaker] = field(default_factory=list)
    guards: dict[str, Setting] = field(default_factory=dict)
    execution: dict[str, Setting] = field(default_factory=dict)
    cooldowns: dict[str, Setting] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # every file read, root first
    sources: dict[str, str] = field(default_factory=dict)  # file -> text, for rendering
    param_overrides: dict[str, str] = field(default_factory=dict)
    duplicates: list[tuple[str, str, Span, Span]] = field(default_factory=list)

    @property
    def rule_count(self) -> int:
        return len(self.triggers) + len(self.caps) + len(self.breakers)
