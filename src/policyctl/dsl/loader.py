"""Load a policy from its files: the root YAML, its ``include:`` list, and ``.rules`` files.

Reading goes through :func:`read_source` (size, encoding and binary checks), YAML through
``dsl.yamlsrc`` (every key and scalar keeps its position), structure through the JSON Schema
(``dsl.schema``), and every embedded expression through the parser with the scalar's own
position mapping, so an error inside ``when: ...`` lands at its absolute ``file:line:col``.

Every problem goes to the :class:`~policyctl.diagnostics.Diagnostics` collector; loading
goes on past errors so that one run shows them all.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import cast

from policyctl.diagnostics import Diagnostics, Span
from policyctl.dsl import ast
from policyctl.dsl.model import Market, Policy, Setting, Strategy, Theme
from policyctl.dsl.parser import DURATION_SECONDS, TextSource, parse, parse_rules
from policyctl.dsl.schema import validate_fragment, validate_policy
from policyctl.dsl.yamlsrc import MAX_FILE_BYTES, YMap, YNode, YScalar, YSeq, parse_yaml

MAX_INCLUDES = 64
MAX_TIMEFRAME_S = 366 * 86_400  # a candle longer than a year is no timeframe an exchange serves


class ScalarSource:
    """Maps offsets inside a YAML scalar's text to absolute positions in the YAML file."""

    def __init__(self, scalar: YScalar):
        self.file = scalar.span.file
        self.scalar = scalar

    def span(self, start: int, end: int) -> Span:
        return self.scalar.span_of(start, end)


def read_source(path: Path, shown: str, diags: Diagnostics) -> bytes | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            mib = MAX_FILE_BYTES // (1024 * 1024)
            diags.error("Y012", f"file is too large to be a policy (over {mib} MiB)",
                        Span.point(shown, 1, 1))
            return None
        return path.read_bytes()
    except FileNotFoundError:
        diags.error("I001", f"file `{shown}` not found", None)
    except IsADirectoryError:
        diags.error("I003", f"`{shown}` is a folder, not a policy file", None)
    except OSError as e:
        diags.error("I003", f"cannot read `{shown}`: {e.strerror or e}", None)
    return None


def decode_rules(data: bytes, shown: str, diags: Diagnostics) -> str | None:
    """Decode a ``.rules`` file with the same checks YAML files get."""
    if b"\x00" in data:
        diags.error("Y002", "binary content: not a text file", Span.point(shown, 1, 1))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        diags.error("Y001", "file is not valid UTF-8", Span.point(shown, line, col))
        return None
    # as YAML files are read: a byte-order mark is not text, and old Mac line ends are line ends
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def duration_seconds(text: str) -> float | None:
    m = re.fullmatch(r"(\d+)(s|m|h|d|w)", text)
    return float(m[1]) * DURATION_SECONDS[m[2]] if m else None


class Loader:
    def __init__(self, diags: Diagnostics, param_overrides: dict[str, str] | None = None):
        self.diags = diags
        self.param_overrides = dict(param_overrides or {})
        self._stack: list[Path] = []
        self._seen: set[Path] = set()
        self._rule_sites: dict[str, Span] = {}

    # -- entry point --
    def load(self, path: str | Path) -> Policy | None:
        path = Path(path)
        shown = str(path)
        policy = Policy(name=path.stem, file=shown)
        policy.param_overrides = dict(self.param_overrides)
        data = read_source(path, shown, self.diags)
        if data is None:
            return None
        if path.suffix == ".rules":
            self._load_rules_bytes(policy, data, shown)
        else:
            root = self._yaml(data, shown, policy)
            if root is None:
                return None
            if not validate_policy(root, self.diags):
                # keep going with what is well-formed so later stages report more problems
                pass
            self._stack.append(path.resolve())
            self._seen.add(path.resolve())
            self._root(policy, root, path)
            self._stack.pop()
        self._apply_overrides(policy)
        return policy

    # -- reading --
    def _yaml(self, data: bytes, shown: str, policy: Policy) -> YNode | None:
        policy.files.append(shown)
        with contextlib.suppress(UnicodeDecodeError):
            policy.sources[shown] = data.decode("utf-8")
        self.diags.sources.update(policy.sources)
        return parse_yaml(data, shown, self.diags)

    def _load_rules_bytes(self, policy: Policy, data: bytes, shown: str) -> None:
        policy.files.append(shown)
        text = decode_rules(data, shown, self.diags)
        if text is None:
            return
        policy.sources[shown] = text
        self.diags.sources[shown] = text
        for stmt in parse_rules(text, shown, self.diags):
            self._add_statement(policy, stmt)

    # -- the root document --
    def _root(self, policy: Policy, root: YNode, path: Path) -> None:
        if not isinstance(root, YMap):
            return  # the schema has reported it
        name = _scalar(root.get("policy"))
        if name is not None:
            policy.name = str(name.value)
        desc = _scalar(root.get("description"))
        if desc is not None:
            policy.description = str(desc.value)
        market = root.get("market")
        if isinstance(market, YMap):
            policy.market = self._market(market)
        self._sections(policy, root)
        inc = root.get("include")
        if isinstance(inc, YSeq):
            for item in inc.items:
                if isinstance(item, YScalar) and isinstance(item.value, str):
                    self._include(policy, path.parent / item.value, item)

    def _sections(self, policy: Policy, doc: YMap) -> None:
        params = doc.get("params")
        if isinstance(params, YMap):
            for key, value in params.items:
                self._param(policy, key, value)
        strategies = doc.get("strategies")
        if isinstance(strategies, YMap):
            for key, value in strategies.items:
                budget = value.get("budget") if isinstance(value, YMap) else None
                policy.strategies[key.text] = Strategy(
                    key.text, self._setting("budget", budget), key.span
                )
        rule_sections: tuple[tuple[str, Callable[[YScalar, YNode], ast.Statement | None]], ...] = (
            ("triggers", self._trigger), ("caps", self._cap), ("breakers", self._breaker))
        for section, build in rule_sections:
            node = doc.get(section)
            if isinstance(node, YMap):
                for key, value in node.items:
                    stmt = build(key, value)
                    if stmt is not None:
                        self._add_statement(policy, stmt)
        for section, target in (("guards", policy.guards), ("execution", policy.execution),
                                ("cooldowns", policy.cooldowns)):
            node = doc.get(section)
            if isinstance(node, YMap):
                for key, value in node.items:
                    if section == "execution" and key.text == "fees" and isinstance(value, YMap):
                        for fk, fv in value.items:
                            s = self._setting(f"fees.{fk.text}", fv)
                            if s is not None:
                                target[s.key] = s
                        continue
                    s = self._setting(key.text, value)
                    if s is not None:
                        target[s.key] = s

    def _market(self, node: YMap) -> Market:
        m = Market(span=node.span)
        ex = _scalar(node.get("exchange"))
        if ex is not None:
            m.exchange = str(ex.value)
        syms = node.get("symbols")
        if isinstance(syms, YSeq):
            out = []
            for s in syms.items:
                if isinstance(s, YScalar) and isinstance(s.value, str):
                    out.append(s.value)
                    m.symbol_spans.setdefault(s.value, s.span)
            m.symbols = tuple(out)
        tf = _scalar(node.get("timeframe"))
        if tf is not None:
            m.timeframe = str(tf.value)
            seconds = duration_seconds(m.timeframe)
            if seconds is not None and 0 < seconds <= MAX_TIMEFRAME_S:
                m.timeframe_seconds = seconds
            elif seconds == 0:  # the schema's pattern lets `0m` through
                self.diags.error("S004", "`market.timeframe` must be longer than zero", tf.span,
                                 "a timeframe is a number followed by s, m, h, d or w, e.g. `5m`")
            elif seconds is not None:
                self.diags.error("S004", f"`market.timeframe` {m.timeframe} is longer than a year", tf.span,
                                 "exchanges serve candles of minutes to a month: `1h`, `1d`, `1w`")
        quote = _scalar(node.get("quote"))
        if quote is not None:
            m.quote = str(quote.value)
        elif m.symbols:
            quotes = {s.split("/")[-1].split(":")[0] for s in m.symbols}
            m.quote = quotes.pop() if len(quotes) == 1 else None
        themes = node.get("themes")
        if isinstance(themes, YMap):
            for key, value in themes.items:
                members: YNode | None = value
                cap = None
                if isinstance(value, YMap):
                    members = value.get("symbols")
                    cap = self._setting("max_exposure", value.get("max_exposure"))
                names = (
                    tuple(str(s.value) for s in members.items if isinstance(s, YScalar))
                    if isinstance(members, YSeq)
                    else ()
                )
                m.themes[key.text] = Theme(key.text, names, cap, key.span)
        return m

    # -- embedded snippets --
    def _snippet(self, node: YNode | None, start: str) -> object | None:
        if not isinstance(node, YScalar):
            return None
        if isinstance(node.value, bool):
            return ast.BoolLit(node.span, node.value) if start == "expr" else None
        if isinstance(node.value, int | float) and start == "expr":
            try:
                value = float(node.value)
            except OverflowError:  # a YAML integer with hundreds of digits
                self.diags.error("P005", f"number `{node.text[:40]}` is out of range", node.span,
                                 "numbers must be finite")
                return None
            return ast.Literal(node.span, value, ast.Unit.NUMBER, None, node.text)
        before = len(self.diags.items)
        result = parse(node.text, start, ScalarSource(node), self.diags)
        if result is None and node.style == "plain" and self._ends_at_comma(node):
            d = self.diags.items[before] if len(self.diags.items) > before else None
            if d is not None and d.code in ("P001", "P003"):
                self.diags.items[before] = replace(
                    d, help="inside `{...}` a `,` ends the value: write this rule in block style "
                    "(one key per line) or quote the expression")
        return result

    def _ends_at_comma(self, node: YScalar) -> bool:
        text = self.diags.sources.get(node.span.file, "")
        lines = text.splitlines()
        if not 1 <= node.span.end_line <= len(lines):
            return False
        rest = lines[node.span.end_line - 1][node.span.end_col - 1:]
        return rest.lstrip().startswith(",")

    def _setting(self, key: str, node: YNode | None) -> Setting | None:
        if not isinstance(node, YScalar):
            return None
        if isinstance(node.value, bool) or node.value is None:
            return Setting(key, None, node.span, node.value)
        if isinstance(node.value, str) and key in ("order_type",):
            return Setting(key, None, node.span, node.value)
        expr = self._snippet(node, "expr")
        return Setting(key, expr, node.span, node.value) if expr is not None else None  # type: ignore[arg-type]

    def _param(self, policy: Policy, key: YScalar, value: YNode) -> None:
        name = key.text
        expr = self._snippet(value, "expr")
        if expr is not None:
            self._add_statement(policy, ast.Param(key.span, name, expr, key.span))  # type: ignore[arg-type]

    def _when_then(self, value: YNode, then: str) -> tuple[object, object] | None:
        """A rule's `when:` condition and `then:` action (parsed from entry point ``then``)."""
        if not isinstance(value, YMap):
            return None
        when = self._snippet(value.get("when"), "expr")
        action = self._snippet(value.get("then"), then)
        return (when, action) if when is not None and action is not None else None

    def _trigger(self, key: YScalar, value: YNode) -> ast.Trigger | None:
        parts = self._when_then(value, "action")
        if parts is None or not isinstance(value, YMap):
            return None
        when, action = parts
        symbols: tuple[str, ...] = ()
        syms = value.get("symbols")
        if isinstance(syms, YSeq):
            symbols = tuple(str(s.value) for s in syms.items if isinstance(s, YScalar))
        strategy = _scalar(value.get("strategy"))
        return ast.Trigger(
            key.span, key.text, when, action, symbols,  # type: ignore[arg-type]
            str(strategy.value) if strategy else None, key.span,
        )

    def _cap(self, key: YScalar, value: YNode) -> ast.Cap | None:
        mode = strategy = None
        body: YNode | None = value
        if isinstance(value, YMap):
            body = value.get("limit")
            m = _scalar(value.get("on_breach"))
            mode = str(m.value) if m else None
            s = _scalar(value.get("strategy"))
            strategy = str(s.value) if s else None
        parsed = self._snippet(body, "cap_body")
        if parsed is None:
            return None
        expr, inline_mode = cast(tuple[ast.Expr, "str | None"], parsed)
        return ast.Cap(key.span, key.text, expr, inline_mode or mode, strategy, key.span)

    def _breaker(self, key: YScalar, value: YNode) -> ast.Breaker | None:
        parts = self._when_then(value, "breaker_action")
        if parts is None:
            return None
        when, action = parts
        return ast.Breaker(key.span, key.text, when, action, key.span)  # type: ignore[arg-type]

    # -- includes --
    def _include(self, policy: Policy, path: Path, at: YScalar) -> None:
        shown = str(path)
        resolved = path.resolve()
        if resolved in self._stack:
            chain = " -> ".join(p.name for p in [*self._stack, resolved])
            self.diags.error("I002", f"include cycle: {chain}", at.span,
                             "a file cannot include itself, directly or through other files")
            return
        if resolved in self._seen:
            return  # included twice through different paths: once is enough
        if len(self._seen) >= MAX_INCLUDES:
            self.diags.error("I004", f"too many included files (more than {MAX_INCLUDES})", at.span)
            return
        if path.suffix not in (".rules", ".yaml", ".yml"):
            self.diags.error("I003", f"cannot include `{at.value}`: only `.rules` and YAML files",
                             at.span)
            return
        try:
            exists = path.exists()
        except OSError as e:  # e.g. a name too long for the file system
            self.diags.error("I003", f"cannot include `{at.value}`: {e.strerror or e}", at.span)
            return
        if not exists:
            self.diags.error("I001", f"included file `{at.value}` not found", at.span,
                             f"paths are relative to the including file's folder "
                             f"({Path(at.span.file).parent})")
            return
        data = read_source(path, shown, self.diags)
        if data is None:
            return
        self._seen.add(resolved)
        self._stack.append(resolved)
        if path.suffix == ".rules":
            self._load_rules_bytes(policy, data, shown)
        else:
            root = self._yaml(data, shown, policy)
            if isinstance(root, YMap):
                validate_fragment(root, self.diags)
                self._sections(policy, root)
                inc = root.get("include")
                if isinstance(inc, YSeq):
                    for item in inc.items:
                        if isinstance(item, YScalar) and isinstance(item.value, str):
                            self._include(policy, path.parent / item.value, item)
        self._stack.pop()

    # -- merging --
    def _add_statement(self, policy: Policy, stmt: ast.Statement) -> None:
        name = stmt.name
        kind = type(stmt).__name__.lower()
        key = f"{'param' if kind == 'param' else 'rule'}:{name}"
        where = stmt.name_span or stmt.span
        if key in self._rule_sites:
            policy.duplicates.append((kind, name, where, self._rule_sites[key]))
            return
        self._rule_sites[key] = where
        if isinstance(stmt, ast.Param):
            policy.params[name] = stmt
        elif isinstance(stmt, ast.Trigger):
            policy.triggers.append(stmt)
        elif isinstance(stmt, ast.Cap):
            policy.caps.append(stmt)
        else:
            policy.breakers.append(stmt)

    def _apply_overrides(self, policy: Policy) -> None:
        for name, text in self.param_overrides.items():
            shown = f"--param {name}"  # each argument its own source, so each error shows its own
            line = f"{name}={text}"
            src = TextSource(shown, line)
            self.diags.sources[shown] = line
            expr = parse(text, "expr", src.at(len(name) + 1), self.diags)
            if expr is None:
                continue
            if name not in policy.params:
                import difflib

                close = difflib.get_close_matches(name, list(policy.params), n=1)
                self.diags.error(
                    "C001", f"unknown param `{name}`", Span.point(shown, 1, 1, len(name)),
                    f"did you mean `{close[0]}`?" if close else
                    f"the policy's params are: {', '.join(sorted(policy.params)) or 'none'}",
                )
                continue
            old = policy.params[name]
            policy.params[name] = ast.Param(old.span, name, expr, old.name_span)


def _scalar(node: YNode | None) -> YScalar | None:
    return node if isinstance(node, YScalar) else None


def load_policy(path: str | Path, diags: Diagnostics, params: dict[str, str] | None = None) -> Policy | None:
    return Loader(diags, params).load(path)
