"""Policy test files: reading and validating ``NAME.test.yaml`` into :class:`TestFile`.

The YAML goes through :func:`policyctl.dsl.yamlsrc.parse_yaml`, so every key and value
keeps its position, and every problem is a diagnostic at ``file:line:col`` with the codes
policy files use: ``Y...`` for YAML, ``S001`` unknown key, ``S002`` missing key, ``S003``
wrong type, ``S004`` invalid value, ``I001`` policy file not found. A problem inside one
case marks only that case invalid; a problem outside the cases invalidates the file.

Names a case uses (symbols, rules, caps, breakers, params) are recorded as :class:`Ref`
with their spans and checked by the runner against the compiled policy.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policyctl.diagnostics import Diagnostics, Span
from policyctl.dsl.yamlsrc import YMap, YNode, YScalar, YSeq, parse_yaml

EPOCH_MS = 1_704_067_200_000
"""The open time of a case's first bar: 2024-01-01T00:00:00Z."""

DEFAULT_CASH = 10_000.0
DEFAULT_VOLUME = 1000.0
QUOTE_HALF_SPREAD = 0.0001  # default quotes: bid and ask 1bp either side of the close
MAX_BARS = 20_000  # per symbol and case
FILLS = ("next_open", "none")
STATES = ("active", "paused", "reduce_only", "halted")
SIDES = ("buy", "sell")
ORDER_KINDS = ("entry", "exit", "reduce", "stop_loss", "take_profit", "flatten")
MARKET_STATUS = ("trading", "halted", "cancel_only", "post_only")
BAR_FIELDS = ("open", "high", "low", "close", "volume")
OTHERS = "others"  # history key: every policy symbol the case does not list

CASE_KEYS = ("description", "skip", "xfail", "params", "fills", "history", "state", "snapshot", "expect")
DEFAULT_KEYS = ("params", "fills", "history", "state", "snapshot")
MERGED = frozenset({"params", "history", "state", "snapshot"})  # merged one level deep

_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PERCENT = re.compile(r"^([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(%|bps)$")
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")


# ---- what a test file says ------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """An expected number: exact (within 1e-6 relative), approximate, a range, or none.

    ``share`` numbers were written as a percentage (``12.5%``) and compare with the actual
    value divided by the equity at the tick (a notional as a share of equity).
    """

    text: str
    kind: str  # exact | approx | range | none
    value: float = 0.0
    tol: float = 1e-6
    relative: bool = True
    lo: float = -math.inf
    hi: float = math.inf
    share: bool = False

    def matches(self, actual: object, equity: float) -> bool:
        if self.kind == "none":
            return actual is None
        if not isinstance(actual, int | float) or isinstance(actual, bool) or not math.isfinite(actual):
            return False
        x = float(actual)
        if self.share:
            if not (equity > 0 and math.isfinite(equity)):
                return False
            x /= equity
        if self.kind == "range":
            return self.lo <= x <= self.hi
        tol = self.tol * abs(self.value) if self.relative else self.tol
        return abs(x - self.value) <= tol + 1e-12


Expected = str | bool | Num


@dataclass(frozen=True)
class Matcher:
    """One expected item (an order, a denial, a clip...): the fields it pins down."""

    what: str  # order | denial | clip | cancel | event | position
    fields: dict[str, Expected]
    span: Span
    text: str  # as the operator wrote it, compact

    def matches(self, actual: dict[str, Any], equity: float) -> bool:
        for key, exp in self.fields.items():
            got = actual.get(key)
            if isinstance(exp, Num):
                if not exp.matches(got, equity):
                    return False
            elif key == "message":
                if not isinstance(got, str) or str(exp) not in got:
                    return False
            elif got != exp:
                return False
        return True


@dataclass(frozen=True)
class Ref:
    """A name a case uses, checked against the policy: symbol, rule, cap, breaker, param."""

    kind: str
    name: str
    span: Span


@dataclass
class SymbolHistory:
    """Bars of one symbol: each field a list (``None`` = no bar) or a constant."""

    key: str  # a symbol, or ``others``
    span: Span
    fields: dict[str, list[float | None] | float] = field(default_factory=dict)

    @property
    def length(self) -> int | None:
        close = self.fields.get("close")
        return len(close) if isinstance(close, list) else None


@dataclass
class PositionSpec:
    qty: float
    entry: float
    stop: float | None = None
    take: float | None = None
    stop_pct: float | None = None  # a distance from the entry, when written as a percentage
    take_pct: float | None = None
    age: float | None = None  # seconds before the tested tick; None: at the start
    cost: float | None = None
    strategy: str | None = None
    rule: str = ""


@dataclass
class OpenOrderSpec:
    symbol: str
    side: str
    qty: float
    price: float | None
    age: float
    client_id: str
    filled: float = 0.0
    kind: str = ""
    rule: str = ""
    strategy: str | None = None
    ref_price: float | None = None


@dataclass
class StateSpec:
    cash: float = DEFAULT_CASH
    positions: dict[str, PositionSpec] = field(default_factory=dict)
    trips: dict[str, float | None] = field(default_factory=dict)  # breaker -> seconds ago
    peak_equity: float | None = None
    equity_marks: list[tuple[float, float]] = field(default_factory=list)  # (seconds ago, equity)
    trades: list[float] = field(default_factory=list)  # seconds ago
    stoplosses: list[float] = field(default_factory=list)
    orders_sent: list[float] = field(default_factory=list)
    cooldowns: dict[str, float] = field(default_factory=dict)  # symbol -> seconds left
    orders: list[OpenOrderSpec] = field(default_factory=list)  # sent by the engine, still open


@dataclass
class QuoteSpec:
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    spread: float | None = None
    age: float | None = None




@dataclass
class SnapshotSpec:
    delay: float = 0.0  # seconds between the last bar's close and the tested tick
    quotes: dict[str, QuoteSpec | None] = field(default_factory=dict)
    markets: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_errors: int = 0
    kill_switch: bool = False
    cash: float | None = None
    balances: dict[str, float] = field(default_factory=dict)
    open_orders: list[OpenOrderSpec] = field(default_factory=list)


@dataclass
class Expect:
    orders: list[Matcher] | None = None
    no_orders_for: list[str] | None = None
    denials: list[Matcher] | None = None
    blocked: list[Matcher] | None = None
    clipped: list[Matcher] | None = None
    cancels: list[Matcher] | None = None
    events: list[Matcher] | None = None
    positions: dict[str, Matcher | None] | None = None
    state: str | None = None
    trips: list[str] | None = None
    fired: list[str] | None = None
    equity: Num | None = None
    cash: Num | None = None
    spans: dict[str, Span] = field(default_factory=dict)  # where each expectation is written

    @property
    def empty(self) -> bool:
        return not self.spans


@dataclass
class Case:
    name: str
    file: str
    span: Span
    description: str = ""
    skip: str | None = None
    xfail: str | None = None  # a known bug: the case is expected to fail, and says why
    params: dict[str, tuple[str, Span]] = field(default_factory=dict)
    fills: str = "next_open"
    history: dict[str, SymbolHistory] = field(default_factory=dict)
    state: StateSpec = field(default_factory=StateSpec)
    snapshot: SnapshotSpec = field(default_factory=SnapshotSpec)
    expect: Expect = field(default_factory=Expect)
    refs: list[Ref] = field(default_factory=list)
    valid: bool = True

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


@dataclass
class TestFile:
    path: Path
    shown: str
    policy: Path | None = None
    policy_span: Span | None = None
    cases: list[Case] = field(default_factory=list)
    diags: Diagnostics = field(default_factory=Diagnostics)
    valid: bool = True  # False: the file as a whole cannot run

    __test__ = False  # not a pytest class


# ---- reading ----------------------------------------------------------------------------


def load_test_file(path: Path, shown: str | None = None) -> TestFile:
    """Read and validate one test file; problems go to ``TestFile.diags``."""
    shown = shown or str(path)
    tf = TestFile(path, shown)
    try:
        data = path.read_bytes()
    except OSError as e:
        tf.diags.error("I003", f"cannot read `{shown}`: {e.strerror or e}", None)
        tf.valid = False
        return tf
    root = parse_yaml(data, shown, tf.diags)
    if root is None:
        tf.valid = False
        return tf
    _Reader(tf).file(root)
    return tf


def default_policy_path(test_path: Path) -> Path:
    name = test_path.name
    for suffix in (".test.yaml", ".test.yml"):
        if name.endswith(suffix):
            return test_path.with_name(name[: -len(suffix)] + ".yaml")
    return test_path.with_suffix(".yaml")


def _found(node: YNode | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    v = node.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"the boolean `{node.text}`"
    if isinstance(v, int | float):
        return f"the number `{node.text}`"
    return f"the string `{_short(node.text)}`"


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ticks(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def parse_duration(text: str) -> float | None:
    """``30s``, ``15m``, ``2h``, ``1d``, ``1w``, or several: ``1h30m``."""
    text = text.strip()
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def parse_percent(text: str) -> float | None:
    m = _PERCENT.fullmatch(text.strip())
    if not m:
        return None
    return float(m[1]) / (100.0 if m[2] == "%" else 10_000.0)


def compact(node: YNode) -> str:
    """A one-line rendering of a YAML node, as a flow collection."""
    if isinstance(node, YMap):
        return "{" + ", ".join(f"{k.text}: {compact(v)}" for k, v in node.items) + "}"
    if isinstance(node, YSeq):
        return "[" + ", ".join(compact(v) for v in node.items) + "]"
    if node.value is None:
        return "null"
    return node.text


class _Invalid(Exception):
    """A value was reported as invalid; the enclosing case (or file) is invalid."""


class _Reader:
    def __init__(self, tf: TestFile):
        self.tf = tf
        self.diags = tf.diags
        self.file_name = tf.shown
        self.refs: list[Ref] = []

    # -- primitives ---------------------------------------------------------------------
    def error(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.diags.error(code, message, span, help)

    def fail(self, code: str, message: str, span: Span, help: str | None = None) -> _Invalid:
        self.error(code, message, span, help)
        return _Invalid()

    def mapping(self, node: YNode, what: str, example: str) -> YMap:
        if isinstance(node, YMap):
            return node
        raise self.fail("S003", f"`{what}` must be a mapping, found {_found(node)}", node.span,
                        f"for example `{what}: {example}`")

    def seq(self, node: YNode, what: str, example: str, single_ok: bool = False) -> list[YNode]:
        """A list; with ``single_ok``, one item written alone counts as a list of one."""
        if isinstance(node, YSeq):
            return list(node.items)
        if single_ok and (isinstance(node, YMap) or (isinstance(node, YScalar) and not node.is_null)):
            return [node]
        raise self.fail("S003", f"`{what}` must be a list, found {_found(node)}", node.span,
                        f"for example `{what}: {example}`")

    def keys(self, m: YMap, allowed: Iterable[str], what: str) -> None:
        allowed = list(allowed)
        bad = False
        for key, _ in m.items:
            if key.text in allowed:
                continue
            close = difflib.get_close_matches(key.text, allowed, n=1)
            self.error("S001", f"unknown key `{_short(key.text)}` in `{what}`", key.span,
                       f"did you mean `{close[0]}`?" if close else f"allowed keys here: {_ticks(allowed)}")
            bad = True
        if bad:
            raise _Invalid()

    def required(self, m: YMap, key: str, what: str, help: str | None = None) -> YNode:
        node = m.get(key)
        if node is None:
            span = m.items[0][0].span if m.items else m.span
            raise self.fail("S002", f"missing required key `{key}` in `{what}`", span, help)
        return node

    def string(self, node: YNode, what: str) -> str:
        if isinstance(node, YScalar) and isinstance(node.value, str) and node.text:
            return node.text
        if isinstance(node, YScalar) and isinstance(node.value, int | float) and not isinstance(
                node.value, bool):
            return node.text
        raise self.fail("S003", f"`{what}` must be a string, found {_found(node)}", node.span)

    def name(self, node: YNode, what: str, kind: str | None = None) -> str:
        if not (isinstance(node, YScalar) and isinstance(node.value, str) and node.text.strip()):
            raise self.fail("S003", f"`{what}` must be a name, found {_found(node)}", node.span)
        if kind is not None:
            self.refs.append(Ref(kind, node.text, node.span))
        return node.text

    def number(self, node: YNode, what: str, minimum: float | None = None, positive: bool = False) -> float:
        v = node.value if isinstance(node, YScalar) else None
        if isinstance(node, YScalar) and isinstance(v, str) and _NUMBER.fullmatch(v.strip()):
            v = float(v)
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise self.fail("S003", f"`{what}` must be a number, found {_found(node)}", node.span)
        x = float(v)
        text = node.text if isinstance(node, YScalar) else ""
        if not math.isfinite(x):
            raise self.fail("S004", f"`{what}` must be a finite number", node.span)
        if positive and x <= 0:
            raise self.fail("S004", f"`{what}` must be greater than 0, found `{text}`", node.span)
        if minimum is not None and x < minimum:
            raise self.fail("S004", f"`{what}` must be at least {minimum:g}, found `{text}`", node.span)
        return x

    def integer(self, node: YNode, what: str, minimum: int = 0, maximum: int = MAX_BARS) -> int:
        v = node.value if isinstance(node, YScalar) else None
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.fail("S003", f"`{what}` must be a whole number, found {_found(node)}", node.span)
        if not minimum <= v <= maximum:
            raise self.fail("S004", f"`{what}` must be between {minimum} and {maximum}, found `{v}`",
                            node.span)
        return v

    def boolean(self, node: YNode, what: str) -> bool:
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            return node.value
        raise self.fail("S003", f"`{what}` must be `true` or `false`, found {_found(node)}", node.span)

    def duration(self, node: YNode, what: str) -> float:
        text = node.text if isinstance(node, YScalar) and isinstance(node.value, str) else None
        seconds = parse_duration(text) if text is not None else None
        if seconds is None:
            if isinstance(node, YScalar) and isinstance(node.value, int | float) and node.value == 0:
                return 0.0
            raise self.fail("S003" if text is None else "S004",
                            f"`{what}` must be a duration, found {_found(node)}", node.span,
                            "write numbers with units: `30s`, `15m`, `2h`, `1d`, `1w`, `1h30m`")
        return seconds

    def percent(self, node: YNode, what: str) -> float:
        text = node.text if isinstance(node, YScalar) and isinstance(node.value, str) else None
        v = parse_percent(text) if text is not None else None
        if v is None:
            raise self.fail("S003" if text is None else "S004",
                            f"`{what}` must be a percentage, found {_found(node)}", node.span,
                            "for example `1%` or `25bps`")
        return v

    def choice(self, node: YNode, options: tuple[str, ...], what: str) -> str:
        text = node.text if isinstance(node, YScalar) and isinstance(node.value, str) else None
        if text is not None and text in options:
            return text
        if text is None:
            raise self.fail("S003", f"`{what}` must be one of {_ticks(options)}, found {_found(node)}",
                            node.span)
        close = difflib.get_close_matches(text, list(options), n=1)
        help = f"expected one of {_ticks(options)}"
        raise self.fail("S004", f"invalid `{what}` `{_short(text)}`", node.span,
                        f"did you mean `{close[0]}`? ({help})" if close else help)

    def expected_number(self, node: YNode, what: str, share_ok: bool) -> Num:
        """``1250``, ``12.5%`` (a share of equity), ``~1250`` (within 1%), ``null`` (none),
        ``{approx: 1250, tol: 2%}`` (tol: a percentage, relative, or a number, absolute),
        ``{min: 1000, max: 1500}``."""
        text = compact(node)
        if isinstance(node, YScalar):
            v = node.value
            if v is None and node.style == "plain":
                return Num(text, "none")
            if isinstance(v, int | float) and not isinstance(v, bool):
                return Num(text, "exact", float(v))
            if isinstance(v, str):
                s = v.strip()
                approx = s.startswith("~")
                s = s.removeprefix("~").strip()
                pct = parse_percent(s)
                if pct is not None and share_ok:
                    return Num(text, "approx" if approx else "exact", pct,
                               tol=0.01 if approx else 1e-6, share=True)
                if _NUMBER.fullmatch(s):
                    return Num(text, "approx" if approx else "exact", float(s),
                               tol=0.01 if approx else 1e-6)
            hint = "a number (`1250`), `~1250` (within 1%), "
            hint += "a share of equity (`12.5%`), " if share_ok else ""
            raise self.fail("S004" if isinstance(v, str) else "S003",
                            f"`{what}` must be an expected number, found {_found(node)}", node.span,
                            hint + "`{approx: 1250, tol: 2%}` or `{min: 1000, max: 1500}`")
        m = self.mapping(node, what, "{approx: 1250, tol: 1%}")
        if "approx" in m:
            self.keys(m, ("approx", "tol"), what)
            anode = self.required(m, "approx", what)
            base = self.expected_number(anode, f"{what}.approx", share_ok)
            if base.kind not in ("exact", "approx"):
                raise self.fail("S004", f"`{what}.approx` must be a number", anode.span)
            tol, relative = 0.01, True
            tnode = m.get("tol")
            if tnode is not None:
                if isinstance(tnode, YScalar) and isinstance(tnode.value, str):
                    tol, relative = self.percent(tnode, f"{what}.tol"), True
                else:
                    tol, relative = self.number(tnode, f"{what}.tol", minimum=0.0), False
            return Num(text, "approx", base.value, tol=tol, relative=relative, share=base.share)
        self.keys(m, ("min", "max"), what)
        if "min" not in m and "max" not in m:
            raise self.fail("S002", f"`{what}` needs `approx`, or `min` and/or `max`", m.span)
        bounds: dict[str, float] = {}
        shares: set[bool] = set()
        for key in ("min", "max"):
            b = m.get(key)
            if b is not None:
                n = self.expected_number(b, f"{what}.{key}", share_ok)
                if n.kind != "exact":
                    raise self.fail("S004", f"`{what}.{key}` must be a plain number", b.span)
                bounds[key] = n.value
                shares.add(n.share)
        if len(shares) > 1:
            raise self.fail("S004", f"`{what}`: write both bounds as numbers or both as percentages",
                            m.span)
        return Num(text, "range", lo=bounds.get("min", -math.inf), hi=bounds.get("max", math.inf),
                   share=shares.pop())

    # -- the file -------------------------------------------------------------------------
    def file(self, root: YNode) -> None:
        tf = self.tf
        try:
            doc = self.mapping(root, "the test file", "{policy: trend.yaml, cases: {...}}")
            self.keys(doc, ("policy", "defaults", "cases"), "the test file")
            cases = self.mapping(self.required(doc, "cases", "the test file",
                                               "a test file holds its cases under `cases:`"),
                                 "cases", "{name: {history: ..., expect: ...}}")
            if not cases.items:
                raise self.fail("S004", "`cases` must not be empty", cases.span, "write at least one case")
            defaults = doc.get("defaults")
            if defaults is not None:
                defaults = self.mapping(defaults, "defaults", "{state: {cash: 10000}}")
                self.keys(defaults, DEFAULT_KEYS, "defaults")
        except _Invalid:
            tf.valid = False
            return
        pnode = doc.get("policy")
        if pnode is not None:
            try:
                tf.policy = tf.path.parent / self.string(pnode, "policy")
                tf.policy_span = pnode.span
            except _Invalid:
                tf.valid = False
        else:
            tf.policy = default_policy_path(tf.path)
            tf.policy_span = Span.point(self.file_name, 1, 1)
        for key, node in cases.items:
            tf.cases.append(self.case(key, node, defaults))

    def case(self, key: YScalar, node: YNode, defaults: YMap | None) -> Case:
        c = Case(key.text, self.file_name, key.span)
        self.refs = []
        try:
            m = self.mapping(node, key.text, "{history: ..., expect: ...}")
            self.keys(m, CASE_KEYS, key.text)
            merged = _merge(m, defaults)
            ok = True
            for name, reader in (("description", self.description), ("skip", self.skip),
                                 ("xfail", self.xfail),
                                 ("params", self.params), ("fills", self.fills),
                                 ("history", self.history), ("state", self.state),
                                 ("snapshot", self.snapshot)):
                value = merged.get(name)
                if value is None:
                    continue
                try:
                    reader(c, value)
                except _Invalid:
                    ok = False
            expect = self.required(m, "expect", key.text, "say what the tested tick must decide")
            try:
                c.expect = self.expect(expect)
            except _Invalid:
                ok = False
            if "history" not in merged:
                self.error("S002", f"missing required key `history` in `{key.text}`", key.span,
                           "give the bars the engine sees, e.g. `history: {BTC/USDT: [100, 101]}`")
                ok = False
            c.valid = ok
        except _Invalid:
            c.valid = False
        c.refs = self.refs
        return c

    def description(self, c: Case, node: YNode) -> None:
        c.description = " ".join(self.string(node, "description").split())

    def skip(self, c: Case, node: YNode) -> None:
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            c.skip = "skipped" if node.value else None
        else:
            c.skip = self.string(node, "skip")

    def xfail(self, c: Case, node: YNode) -> None:
        c.xfail = " ".join(self.string(node, "xfail").split())

    def params(self, c: Case, node: YNode) -> None:
        m = self.mapping(node, "params", "{fast: 5, slow: 10}")
        for k, v in m.items:
            if isinstance(v, YScalar) and not isinstance(v.value, bool) and v.value is not None:
                c.params[k.text] = (v.text, v.span)
                self.refs.append(Ref("param", k.text, k.span))
            else:
                self.error("S003", f"param `{k.text}` must be a number or an expression, found {_found(v)}",
                           v.span)
                raise _Invalid()

    def fills(self, c: Case, node: YNode) -> None:
        c.fills = self.choice(node, FILLS, "fills")

    # -- history --------------------------------------------------------------------------
    def history(self, c: Case, node: YNode) -> None:
        m = self.mapping(node, "history", "{BTC/USDT: [100, 101, 102]}")
        if not m.items:
            raise self.fail("S004", "`history` must not be empty", m.span,
                            "give at least one bar, e.g. `history: {BTC/USDT: [100]}`")
        bad = False
        for k, v in m.items:
            if k.text != OTHERS:
                self.refs.append(Ref("symbol", k.text, k.span))
            try:
                c.history[k.text] = self.symbol_history(k, v)
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid()

    def symbol_history(self, key: YScalar, node: YNode) -> SymbolHistory:
        what = f"history.{key.text}"
        h = SymbolHistory(key.text, key.span)
        if isinstance(node, YSeq) and node.items and isinstance(node.items[0], YSeq):
            self.rows(h, node, what)
            return h
        if isinstance(node, YMap) and any(k.text in BAR_FIELDS for k, _ in node.items):
            self.keys(node, BAR_FIELDS, what)
            close = self.required(node, "close", what, "the close is the series every other field follows")
            h.fields["close"] = self.series(close, f"{what}.close")
            n = h.length
            for f in ("open", "high", "low", "volume"):
                v = node.get(f)
                if v is None:
                    continue
                s = self.series(v, f"{what}.{f}")
                if isinstance(s, list) and (n is None or len(s) != n):
                    raise self.fail("S004", f"`{what}.{f}` has {len(s)} bars, `close` has "
                                    f"{n if n is not None else 'a constant'}", v.span,
                                    "give every field as many bars as the close, or a constant")
                h.fields[f] = s
            return h
        h.fields["close"] = self.series(node, what)
        return h

    def rows(self, h: SymbolHistory, node: YSeq, what: str) -> None:
        cols: dict[str, list[float | None]] = {f: [] for f in BAR_FIELDS}
        for i, row in enumerate(node.items):
            if isinstance(row, YScalar) and row.is_null:
                for f in BAR_FIELDS:
                    cols[f].append(None)
                continue
            if not isinstance(row, YSeq) or len(row.items) not in (4, 5):
                raise self.fail("S003", f"`{what}[{i}]` must be a bar `[open, high, low, close, volume]`, "
                                f"found {_found(row)}" if not isinstance(row, YSeq) else
                                f"`{what}[{i}]` must have 4 or 5 numbers (open, high, low, close[, volume]), "
                                f"found {len(row.items)}", row.span)
            vals = [self.number(x, f"{what}[{i}]") for x in row.items]
            if len(vals) == 4:
                vals.append(DEFAULT_VOLUME)
            for f, v in zip(BAR_FIELDS, vals, strict=True):
                cols[f].append(v)
        if len(cols["close"]) > MAX_BARS:
            raise self.fail("S004", f"`{what}` has more than {MAX_BARS} bars", node.span)
        h.fields.update(cols)

    def series(self, node: YNode, what: str) -> list[float | None] | float:
        """A constant, a list of bars (numbers, ``null`` for a missing bar, segments), or one
        segment: ``{flat: 100, bars: 20}``, ``{ramp: [100, 120], bars: 21, jitter: 0.5%}``,
        ``{repeat: [100, 102], times: 10}``."""
        if isinstance(node, YScalar):
            if node.is_null:
                raise self.fail("S003", f"`{what}` must be a number or a list of bars, found null", node.span)
            return self.number(node, what)
        out: list[float | None] = []
        items = node.items if isinstance(node, YSeq) else [node]
        if isinstance(node, YSeq) and not node.items:
            raise self.fail("S004", f"`{what}` must not be empty", node.span)
        for i, item in enumerate(items):
            where = f"{what}[{i}]" if isinstance(node, YSeq) else what
            if isinstance(item, YScalar):
                out.append(None if item.is_null else self.number(item, where))
            elif isinstance(item, YMap):
                out.extend(self.segment(item, where))
            else:
                raise self.fail("S003", f"`{where}` must be a number, `null` or a segment, found a list",
                                item.span, "a segment is `{flat: 100, bars: 20}`, "
                                "`{ramp: [100, 120], bars: 21}` or `{repeat: [100, 102], times: 10}`")
            if len(out) > MAX_BARS:
                raise self.fail("S004", f"`{what}` has more than {MAX_BARS} bars", item.span)
        return out

    def segment(self, m: YMap, what: str) -> list[float | None]:
        if "flat" in m:
            self.keys(m, ("flat", "bars"), what)
            v = self.number(self.required(m, "flat", what), f"{what}.flat")
            n = self.integer(self.required(m, "bars", what), f"{what}.bars", 1)
            return [v] * n
        if "ramp" in m:
            self.keys(m, ("ramp", "bars", "jitter"), what)
            rnode = self.required(m, "ramp", what)
            ends = self.seq(rnode, f"{what}.ramp", "[100, 120]")
            if len(ends) != 2:
                raise self.fail("S004", f"`{what}.ramp` must be `[first, last]`", rnode.span)
            a, b = (self.number(x, f"{what}.ramp") for x in ends)
            n = self.integer(self.required(m, "bars", what), f"{what}.bars", 1)
            jitter = 0.0
            jnode = m.get("jitter")
            if jnode is not None:
                jitter = self.percent(jnode, f"{what}.jitter")
            out: list[float | None] = []
            for k in range(n):
                v = a if n == 1 else a + (b - a) * k / (n - 1)
                if jitter and 0 < k < n - 1:
                    v *= 1 + (jitter if k % 2 else -jitter)
                out.append(v)
            return out
        if "repeat" in m:
            self.keys(m, ("repeat", "times"), what)
            pattern = self.seq(self.required(m, "repeat", what), f"{what}.repeat", "[100, 102]")
            if not pattern:
                raise self.fail("S004", f"`{what}.repeat` must not be empty", m.span)
            vals = [self.number(x, f"{what}.repeat") for x in pattern]
            n = self.integer(self.required(m, "times", what), f"{what}.times", 1,
                             MAX_BARS // len(vals) + 1)
            return [*vals] * n
        raise self.fail("S004", f"`{what}` is not a segment", m.span,
                        "a segment is `{flat: 100, bars: 20}`, `{ramp: [100, 120], bars: 21}` "
                        "or `{repeat: [100, 102], times: 10}`")

    # -- state ----------------------------------------------------------------------------
    def state(self, c: Case, node: YNode) -> None:
        m = self.mapping(node, "state", "{cash: 10000}")
        self.keys(m, ("cash", "positions", "trips", "peak_equity", "equity_marks", "trades",
                      "stoplosses", "orders_sent", "cooldowns", "orders"), "state")
        s = c.state
        bad = False
        for k, v in m.items:
            try:
                self.state_key(s, k.text, v)
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid()

    def state_key(self, s: StateSpec, key: str, v: YNode) -> None:
        if key == "cash":
            s.cash = self.number(v, "state.cash", minimum=0.0)
        elif key == "peak_equity":
            s.peak_equity = self.number(v, "state.peak_equity", positive=True)
        elif key == "positions":
            pm = self.mapping(v, "state.positions", "{BTC/USDT: {qty: 0.1, entry: 40000}}")
            for sk, sv in pm.items:
                self.refs.append(Ref("symbol", sk.text, sk.span))
                s.positions[sk.text] = self.position(sk.text, sv)
        elif key == "trips":
            if isinstance(v, YMap):
                for bk, bv in v.items:
                    self.refs.append(Ref("breaker", bk.text, bk.span))
                    bm = self.mapping(bv, f"state.trips.{bk.text}", "{ago: 2h}")
                    self.keys(bm, ("ago",), f"state.trips.{bk.text}")
                    ago = bm.get("ago")
                    s.trips[bk.text] = self.duration(ago, f"state.trips.{bk.text}.ago") if ago else None
            else:
                for item in self.seq(v, "state.trips", "[daily_loss]", single_ok=True):
                    s.trips[self.name(item, "state.trips", "breaker")] = None
        elif key == "equity_marks":
            em = self.mapping(v, "state.equity_marks", "{1d: 10500}")
            for ek, ev in em.items:
                s.equity_marks.append((self.duration(ek, "state.equity_marks"),
                                       self.number(ev, f"state.equity_marks.{ek.text}", positive=True)))
        elif key in ("trades", "stoplosses", "orders_sent"):
            setattr(s, key, self.times(v, f"state.{key}"))
        elif key == "orders":
            for i, item in enumerate(self.seq(v, "state.orders", "[{symbol: BTC/USDT, side: buy, qty: 0.1}]")):
                s.orders.append(self.open_order(i, item, "state.orders", engine=True))
        elif key == "cooldowns":
            cm = self.mapping(v, "state.cooldowns", "{BTC/USDT: 30m}")
            for ck, cv in cm.items:
                self.refs.append(Ref("symbol", ck.text, ck.span))
                s.cooldowns[ck.text] = self.duration(cv, f"state.cooldowns.{ck.text}")

    def times(self, node: YNode, what: str) -> list[float]:
        """Moments before the tested tick: ``[10m, 25m]``, or ``{count: 40, between: [2h, 20h]}``
        (evenly spread, both ends included), or ``{count: 3, at: 10m}``."""
        if isinstance(node, YMap):
            self.keys(node, ("count", "between", "at"), what)
            n = self.integer(self.required(node, "count", what), f"{what}.count", 1, 10_000)
            if (at := node.get("at")) is not None:
                if "between" in node:
                    raise self.fail("S004", f"`{what}`: give `at` or `between`, not both", node.span)
                return [self.duration(at, f"{what}.at")] * n
            between = self.required(node, "between", what, "for example `between: [2h, 20h]`")
            ends = self.seq(between, f"{what}.between", "[2h, 20h]")
            if len(ends) != 2:
                raise self.fail("S004", f"`{what}.between` must be `[newest, oldest]`", between.span)
            a, b = (self.duration(x, f"{what}.between") for x in ends)
            return [a if n == 1 else a + (b - a) * k / (n - 1) for k in range(n)]
        return [self.duration(x, what) for x in self.seq(node, what, "[10m, 25m]", single_ok=True)]

    def position(self, symbol: str, node: YNode) -> PositionSpec:
        what = f"state.positions.{symbol}"
        m = self.mapping(node, what, "{qty: 0.1, entry: 40000, stop: 3%}")
        self.keys(m, ("qty", "entry", "stop", "take", "age", "cost", "strategy", "rule"), what)
        p = PositionSpec(self.number(self.required(m, "qty", what), f"{what}.qty", positive=True),
                         self.number(self.required(m, "entry", what), f"{what}.entry", positive=True))
        for key in ("stop", "take"):
            v = m.get(key)
            if v is None or (isinstance(v, YScalar) and v.is_null):
                continue
            if isinstance(v, YScalar) and isinstance(v.value, str) and parse_percent(v.text) is not None:
                setattr(p, f"{key}_pct", self.percent(v, f"{what}.{key}"))
            else:
                setattr(p, key, self.number(v, f"{what}.{key}", positive=True))
        if (v := m.get("age")) is not None:
            p.age = self.duration(v, f"{what}.age")
        if (v := m.get("cost")) is not None:
            p.cost = self.number(v, f"{what}.cost", minimum=0.0)
        if (v := m.get("strategy")) is not None:
            p.strategy = self.name(v, f"{what}.strategy")
        if (v := m.get("rule")) is not None:
            p.rule = self.name(v, f"{what}.rule")
        return p

    # -- snapshot -------------------------------------------------------------------------
    def snapshot(self, c: Case, node: YNode) -> None:
        m = self.mapping(node, "snapshot", "{kill_switch: true}")
        self.keys(m, ("delay", "quotes", "markets", "api_errors", "kill_switch", "cash", "balances",
                      "open_orders"), "snapshot")
        s = c.snapshot
        bad = False
        for k, v in m.items:
            try:
                self.snapshot_key(s, k.text, v)
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid()

    def snapshot_key(self, s: SnapshotSpec, key: str, v: YNode) -> None:
        if key == "delay":
            s.delay = self.duration(v, "snapshot.delay")
        elif key == "kill_switch":
            s.kill_switch = self.boolean(v, "snapshot.kill_switch")
        elif key == "api_errors":
            s.api_errors = self.integer(v, "snapshot.api_errors", 0, 100_000)
        elif key == "cash":
            s.cash = self.number(v, "snapshot.cash", minimum=0.0)
        elif key == "balances":
            bm = self.mapping(v, "snapshot.balances", "{BTC: 0.5}")
            s.balances = {bk.text: self.number(bv, f"snapshot.balances.{bk.text}", minimum=0.0)
                          for bk, bv in bm.items}
        elif key == "quotes":
            qm = self.mapping(v, "snapshot.quotes", "{BTC/USDT: {spread: 50bps}}")
            for qk, qv in qm.items:
                self.refs.append(Ref("symbol", qk.text, qk.span))
                s.quotes[qk.text] = self.quote(qk.text, qv)
        elif key == "markets":
            mm = self.mapping(v, "snapshot.markets", "{BTC/USDT: {status: halted}}")
            for mk, mv in mm.items:
                self.refs.append(Ref("symbol", mk.text, mk.span))
                s.markets[mk.text] = self.market(mk.text, mv)
        elif key == "open_orders":
            for i, item in enumerate(self.seq(v, "snapshot.open_orders",
                                              "[{symbol: BTC/USDT, side: buy, qty: 0.1, age: 20m}]")):
                s.open_orders.append(self.open_order(i, item, "snapshot.open_orders"))

    def quote(self, symbol: str, node: YNode) -> QuoteSpec | None:
        what = f"snapshot.quotes.{symbol}"
        if isinstance(node, YScalar) and (node.is_null or node.text == "none"):
            return None
        m = self.mapping(node, what, "{spread: 50bps, age: 45s}")
        self.keys(m, ("bid", "ask", "last", "spread", "age"), what)
        q = QuoteSpec()
        for key in ("bid", "ask", "last"):
            if (v := m.get(key)) is not None:
                setattr(q, key, self.number(v, f"{what}.{key}", positive=True))
        if (v := m.get("spread")) is not None:
            q.spread = self.percent(v, f"{what}.spread")
        if (v := m.get("age")) is not None:
            q.age = self.duration(v, f"{what}.age")
        if (q.bid is None) != (q.ask is None):
            raise self.fail("S004", f"`{what}` needs both `bid` and `ask`, or neither", m.span)
        if q.bid is not None and q.spread is not None:
            raise self.fail("S004", f"`{what}`: give `bid` and `ask`, or `spread`, not both", m.span)
        return q

    def market(self, symbol: str, node: YNode) -> dict[str, Any]:
        what = f"snapshot.markets.{symbol}"
        m = self.mapping(node, what, "{status: halted}")
        self.keys(m, ("status", "tick_size", "step_size", "min_qty", "min_notional"), what)
        out: dict[str, Any] = {}
        for k, v in m.items:
            if k.text == "status":
                out["status"] = self.choice(v, MARKET_STATUS, f"{what}.status")
            else:
                out[k.text] = self.number(v, f"{what}.{k.text}", minimum=0.0)
        return out

    def open_order(self, i: int, node: YNode, where: str, engine: bool = False) -> OpenOrderSpec:
        """An order open at the exchange; ``engine``: one the engine sent (and remembers)."""
        what = f"{where}[{i}]"
        m = self.mapping(node, what, "{symbol: BTC/USDT, side: buy, qty: 0.1, age: 20m}")
        extra = ("kind", "rule", "strategy", "ref_price") if engine else ()
        self.keys(m, ("symbol", "side", "qty", "price", "age", "client_id", "filled", *extra), what)
        symbol = self.name(self.required(m, "symbol", what), f"{what}.symbol", "symbol")
        side = self.choice(self.required(m, "side", what), SIDES, f"{what}.side")
        qty = self.number(self.required(m, "qty", what), f"{what}.qty", positive=True)
        price = age = cid = filled = None
        if (v := m.get("price")) is not None:
            price = self.number(v, f"{what}.price", positive=True)
        if (v := m.get("age")) is not None:
            age = self.duration(v, f"{what}.age")
        if (v := m.get("client_id")) is not None:
            cid = self.string(v, f"{what}.client_id")
        if (v := m.get("filled")) is not None:
            filled = self.number(v, f"{what}.filled", minimum=0.0)
        o = OpenOrderSpec(symbol, side, qty, price, age or 0.0,
                          cid or f"{'sent' if engine else 'open'}-{i + 1}", filled or 0.0)
        if engine:
            knode = m.get("kind")
            o.kind = self.choice(knode, ORDER_KINDS, f"{what}.kind") if knode is not None else (
                "entry" if side == "buy" else "exit")
            if (v := m.get("rule")) is not None:
                o.rule = self.name(v, f"{what}.rule", "rule")
            if (v := m.get("strategy")) is not None:
                o.strategy = self.name(v, f"{what}.strategy")
            if (v := m.get("ref_price")) is not None:
                o.ref_price = self.number(v, f"{what}.ref_price", positive=True)
        return o

    # -- expectations ---------------------------------------------------------------------
    def expect(self, node: YNode) -> Expect:
        m = self.mapping(node, "expect", "{orders: []}")
        self.keys(m, ("orders", "no_orders_for", "denials", "blocked", "clipped", "cancels", "events",
                      "positions", "state", "trips", "fired", "equity", "cash"), "expect")
        e = Expect()
        bad = False
        for k, v in m.items:
            try:
                self.expectation(e, k.text, v)
                e.spans[k.text] = k.span
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid()
        if e.empty:
            raise self.fail("S004", "`expect` must not be empty", m.span,
                            "say what the tested tick must decide, e.g. `expect: {orders: []}`")
        return e

    def expectation(self, e: Expect, key: str, v: YNode) -> None:
        if key == "orders":
            e.orders = self.items(v, "orders", ORDER_FIELDS, single_ok=False)
        elif key == "denials":
            e.denials = self.items(v, "denials", DENIAL_FIELDS, single_ok=False)
        elif key == "blocked":
            e.blocked = self.items(v, "blocked", DENIAL_FIELDS, single_ok=True)
        elif key == "clipped":
            e.clipped = self.items(v, "clipped", CLIP_FIELDS, single_ok=True)
        elif key == "cancels":
            e.cancels = self.items(v, "cancels", CANCEL_FIELDS, single_ok=False)
        elif key == "events":
            e.events = self.items(v, "events", EVENT_FIELDS, single_ok=True)
        elif key == "no_orders_for":
            e.no_orders_for = [self.name(x, "expect.no_orders_for", "symbol")
                               for x in self.seq(v, "expect.no_orders_for", "[ETH/USDT]", single_ok=True)]
        elif key == "state":
            e.state = self.choice(v, STATES, "expect.state")
        elif key == "trips":
            e.trips = [self.name(x, "expect.trips", "breaker")
                       for x in self.seq(v, "expect.trips", "[daily_loss]", single_ok=True)]
        elif key == "fired":
            e.fired = [self.name(x, "expect.fired", "trigger")
                       for x in self.seq(v, "expect.fired", "[golden_cross]", single_ok=True)]
        elif key in ("equity", "cash"):
            setattr(e, key, self.expected_number(v, f"expect.{key}", share_ok=False))
        elif key == "positions":
            pm = self.mapping(v, "expect.positions", "{BTC/USDT: {qty: ~0.5}}")
            e.positions = {}
            for pk, pv in pm.items:
                self.refs.append(Ref("symbol", pk.text, pk.span))
                if isinstance(pv, YScalar) and pv.is_null:
                    e.positions[pk.text] = None  # open, nothing more said
                else:
                    e.positions[pk.text] = self.item(pv, f"expect.positions.{pk.text}", POSITION_FIELDS,
                                                     "positions")

    def items(self, node: YNode, key: str, spec: dict[str, str], single_ok: bool) -> list[Matcher]:
        what = f"expect.{key}"
        example = {"orders": "[{symbol: BTC/USDT, side: buy}]", "denials": "[{rule: entry, code: paused}]",
                   "cancels": "[{symbol: BTC/USDT, reason: halted}]"}.get(key, "{rule: entry}")
        if single_ok and isinstance(node, YSeq) and not node.items:
            exact = {"blocked": "`denials: []`", "clipped": "`orders` with their notionals",
                     "events": "the other expectations"}[key]
            raise self.fail("S004", f"`{key}: []` expects nothing", node.span,
                            f"`{key}` names what must be found among others; to say there is none, "
                            f"use {exact}")
        out = []
        bad = False
        for i, item in enumerate(self.seq(node, what, example, single_ok=single_ok)):
            try:
                out.append(self.item(item, f"{what}[{i}]" if isinstance(node, YSeq) else what, spec, key))
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid()
        return out

    def item(self, node: YNode, what: str, spec: dict[str, str], key: str) -> Matcher:
        m = self.mapping(node, what, "{" + ", ".join(f"{k}: ..." for k in list(spec)[:2]) + "}")
        self.keys(m, spec, what)
        fields: dict[str, Expected] = {}
        for k, v in m.items:
            kind = spec[k.text]
            where = f"{what}.{k.text}"
            if kind == "symbol":
                fields[k.text] = self.name(v, where, "symbol")
            elif kind in ("rule", "trigger", "cap"):
                fields[k.text] = self.name(v, where, kind)
            elif kind == "str":
                fields[k.text] = self.string(v, where)
            elif kind == "bool":
                fields[k.text] = self.boolean(v, where)
            elif kind.startswith("enum:"):
                fields[k.text] = self.choice(v, tuple(kind[5:].split(",")), where)
            else:  # num | share
                fields[k.text] = self.expected_number(v, where, share_ok=kind == "share")
        return Matcher(key, fields, m.span, compact(m))


ORDER_FIELDS = {
    "symbol": "symbol", "side": "enum:" + ",".join(SIDES), "rule": "rule",
    "kind": "enum:" + ",".join(ORDER_KINDS), "qty": "num", "notional": "share", "price": "num",
    "stop": "num", "take": "num", "reduce_only": "bool", "strategy": "str",
    "type": "enum:market,limit", "limit": "num",
}
DENIAL_FIELDS = {"rule": "rule", "symbol": "symbol", "code": "str", "stage": "str", "message": "str"}
CLIP_FIELDS = {"rule": "trigger", "symbol": "symbol", "cap": "cap", "from": "share", "to": "share"}
CANCEL_FIELDS = {"symbol": "symbol", "reason": "str", "client_id": "str"}
EVENT_FIELDS = {"kind": "str", "message": "str"}
POSITION_FIELDS = {"qty": "num", "entry": "num", "stop": "num", "take": "num", "value": "share"}


def _merge(case: YMap, defaults: YMap | None) -> YMap:
    """The case with the file's defaults under it: ``params``, ``history``, ``state`` and
    ``snapshot`` merge one level deep (the case's keys win), the rest is replaced."""
    if defaults is None:
        return case
    items = list(case.items)
    for dk, dv in defaults.items:
        cv = case.get(dk.text)
        if cv is None:
            items.append((dk, dv))
        elif dk.text in MERGED and isinstance(cv, YMap) and isinstance(dv, YMap):
            inner = list(cv.items) + [(k, v) for k, v in dv.items if k.text not in cv]
            items = [(k, YMap(cv.span, inner) if k.text == dk.text else v) for k, v in items]
    return YMap(case.span, items)
