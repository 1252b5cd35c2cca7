"""The structure of a policy file as a JSON Schema, and validation with source positions.

:data:`POLICY_SCHEMA` (JSON Schema draft 2020-12) describes every key of a policy file,
with a ``title`` and ``description`` on each property so editors using
yaml-language-server can show documentation and completion. ``policyctl schema`` prints
it (:func:`schema_json`).

:func:`validate_policy` checks a parsed file (see :mod:`policyctl.dsl.yamlsrc`) against
the schema and turns each jsonschema error into one diagnostic pointing at the offending
key or value:

* ``S001`` unknown key (with a "did you mean" suggestion)
* ``S002`` missing required key
* ``S003`` wrong type
* ``S004`` invalid value (bad name or symbol, not one of the allowed values, empty list,
  duplicate item, out of range)

Expression values (conditions, actions, limits, durations with units) are only checked
to be strings or numbers here; the expression parser checks their content.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from policyctl.diagnostics import Diagnostics, Span
from policyctl.dsl.yamlsrc import YMap, YNode, YScalar, YSeq, to_plain

__all__ = ["POLICY_SCHEMA", "schema_json", "validate_policy"]

POLICY_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PARAM_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
SYMBOL_PATTERN = r"^[A-Z0-9]+/[A-Z0-9]+(:[A-Z0-9]+)?$"
TIMEFRAME_PATTERN = r"^[0-9]+[smhdw]$"
EXCHANGE_PATTERN = r"^[a-z0-9]+$"
CURRENCY_PATTERN = r"^[A-Z0-9]+$"
# Relative paths only: no leading slash or backslash, no drive letter, no URL scheme.
PATH_PATTERN = r"^(?![/\\])(?![A-Za-z][A-Za-z0-9+.-]*:)[^\u0000]+$"

_REF = "#/$defs/"


def _ref(name: str, title: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"$ref": _REF + name, "title": title, "description": description, **extra}


def _expr(title: str, description: str, *examples: object) -> dict[str, Any]:
    prop = _ref("expr", title, description)
    if examples:
        prop["examples"] = list(examples)
    return prop


def _text(title: str, description: str) -> dict[str, Any]:
    return {"type": "string", "title": title, "description": description}


def _object(
    properties: dict[str, Any], required: Sequence[str] = (), **extra: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False
    schema.update(extra)
    return schema


def _named(item_ref: str, title: str, description: str, names: str = "name") -> dict[str, Any]:
    """A mapping from user-chosen names to definitions."""
    return {
        "type": "object",
        "title": title,
        "description": description,
        "propertyNames": {"$ref": _REF + names},
        "additionalProperties": {"$ref": _REF + item_ref},
    }


_DESCRIPTION = _text("Description", "Free text shown in reports and `policyctl explain`.")

_DEFS: dict[str, Any] = {
    "name": {
        "type": "string",
        "pattern": NAME_PATTERN,
        "description": "A name: letters, digits and `_`, not starting with a digit.",
    },
    "param_name": {
        "type": "string",
        "pattern": PARAM_NAME_PATTERN,
        "description": "A parameter name: lowercase letters, digits and `_`.",
    },
    "expr": {
        "type": ["string", "number"],
        "minLength": 1,
        "description": "An expression of the policy language, e.g. `2%`, `30s`, "
        "`crosses_above(sma(close, fast), sma(close, slow))`.",
    },
    "symbol": {
        "type": "string",
        "pattern": SYMBOL_PATTERN,
        "description": "A ccxt market symbol such as `BTC/USDT` (or `BTC/USDT:USDT` for a "
        "perpetual swap).",
    },
    "symbols": {
        "type": "array",
        "items": {"$ref": _REF + "symbol"},
        "minItems": 1,
        "uniqueItems": True,
        "description": "A list of market symbols, e.g. `[BTC/USDT, ETH/USDT]`.",
    },
    "path": {
        "type": "string",
        "pattern": PATH_PATTERN,
        "description": "A path relative to the policy file.",
    },
    "param": {
        "type": ["number", "string", "boolean"],
        "minLength": 1,
        "description": "A number, a boolean, or an expression such as `2%`.",
    },
    "theme": {
        "oneOf": [
            {"$ref": _REF + "symbols"},
            _object(
                {
                    "symbols": _ref("symbols", "Symbols", "The symbols of this theme."),
                    "max_exposure": _expr(
                        "Maximum exposure",
                        "The largest share of equity held in this theme's symbols together.",
                        "40%",
                    ),
                    "description": _DESCRIPTION,
                },
                required=["symbols"],
            ),
        ],
        "description": "A group of symbols: a list, or a mapping with `symbols` and an "
        "optional `max_exposure`.",
    },
    "strategy": _object(
        {
            "budget": _expr(
                "Budget",
                "The share of equity this strategy may allocate, as a percent.",
                "25%",
            ),
            "description": _DESCRIPTION,
        },
        title="Strategy",
        description="A strategy: a named budget that triggers and caps can refer to.",
    ),
    "trigger": _object(
        {
            "when": _expr(
                "Condition",
                "When this becomes true the trigger fires.",
                "crosses_above(sma(close, fast), sma(close, slow))",
            ),
            "then": _expr(
                "Action", "What to do when the trigger fires.", "buy 2% of equity stop 3% take 6%", "close"
            ),
            "symbols": _ref(
                "symbols", "Symbols", "Restrict the trigger to these symbols (default: all)."
            ),
            "strategy": _ref(
                "name", "Strategy", "The strategy (from `strategies`) whose budget this uses."
            ),
            "description": _DESCRIPTION,
        },
        required=["when", "then"],
        title="Trigger",
        description="A rule: `when` the condition becomes true, `then` run the action.",
    ),
    "cap": {
        "oneOf": [
            {"$ref": _REF + "expr"},
            _object(
                {
                    "limit": _expr("Limit", "The capped quantity and its limit.", "exposure.total <= 30%"),
                    "on_breach": {
                        "enum": ["clip", "block"],
                        "title": "On breach",
                        "description": "`clip` shrinks an order to fit the cap; `block` "
                        "rejects it.",
                    },
                    "strategy": _ref(
                        "name", "Strategy", "Apply the cap only to this strategy's orders."
                    ),
                    "description": _DESCRIPTION,
                },
                required=["limit"],
            ),
        ],
        "description": "A limit: an expression, or a mapping with `limit`, `on_breach` "
        "and `strategy`.",
    },
    "breaker": _object(
        {
            "when": _expr(
                "Condition", "When this becomes true the breaker trips.", "drawdown > 10%"
            ),
            "then": _expr("Action", "What to do when the breaker trips.", "halt for 24h", "pause"),
            "description": _DESCRIPTION,
        },
        required=["when", "then"],
        title="Breaker",
        description="A circuit breaker: `when` the condition holds, `then` halt or reduce.",
    ),
}

_MARKET = _object(
    {
        "exchange": {
            "type": "string",
            "pattern": EXCHANGE_PATTERN,
            "title": "Exchange",
            "description": "The ccxt exchange id, e.g. `binance` or `kraken`.",
        },
        "symbols": _ref(
            "symbols", "Symbols", "The markets this policy trades, e.g. `[BTC/USDT, ETH/USDT]`."
        ),
        "timeframe": {
            "type": "string",
            "pattern": TIMEFRAME_PATTERN,
            "title": "Timeframe",
            "description": "The candle timeframe: a number and one of s, m, h, d, w, e.g. `5m`.",
        },
        "quote": {
            "type": "string",
            "pattern": CURRENCY_PATTERN,
            "title": "Quote currency",
            "description": "The currency equity and notionals are measured in, e.g. `USDT`. Every symbol must be "
                           "quoted in it (T005): the account is kept in one currency.",
        },
        "themes": _named(
            "theme",
            "Themes",
            "Named groups of symbols, e.g. `majors: [BTC/USDT, ETH/USDT]`, usable in rules "
            "and with a `max_exposure`.",
        ),
    },
    required=["symbols", "timeframe"],
    title="Market",
    description="Where and what the policy trades.",
)

_GUARDS = _object(
    {
        "max_order_notional": _expr(
            "Maximum order notional", "The largest value of a single order.", "1000 USDT"
        ),
        "price_collar": _expr(
            "Price collar",
            "Reject limit prices further than this from the last trade.",
            "2%",
        ),
        "max_spread": _expr(
            "Maximum spread", "Do not trade when the bid/ask spread is wider.", "30bps"
        ),
        "max_quote_age": _expr(
            "Maximum quote age", "Do not trade on quotes older than this.", "30s"
        ),
        "bad_tick": _expr(
            "Bad tick",
            "A price move larger than this without volume confirmation is not trusted.",
            "10%",
        ),
        "bad_tick_volume": {
            "type": "number",
            "exclusiveMinimum": 0,
            "title": "Bad tick volume",
            "description": "Volume multiple (vs the recent average) that confirms a big move.",
        },
        "max_orders": {
            "type": "integer",
            "minimum": 1,
            "title": "Maximum orders",
            "description": "Number of orders allowed per `order_window`.",
        },
        "order_window": _expr("Order window", "The window `max_orders` is counted over.", "1m"),
        "round_up_min_notional": {
            "type": "boolean",
            "title": "Round up to minimum notional",
            "description": "Round orders below the exchange minimum up to it instead of "
            "skipping them.",
        },
    },
    title="Guards",
    description="Pre-trade checks every order must pass.",
)

_EXECUTION = _object(
    {
        "order_type": {
            "enum": ["market", "limit"],
            "title": "Order type",
            "description": "How entries are sent: `market` orders fill at once; `limit` orders wait as "
                           "maker. Exits (stops, take-profits, sells, closes) always go out as market orders.",
        },
        "fees": _object(
            {
                "maker": _expr("Maker fee", "Fee rate for maker fills.", "0.1%"),
                "taker": _expr("Taker fee", "Fee rate for taker fills.", "0.1%"),
            },
            title="Fees",
            description="Fee rates used for sizing and simulation.",
        ),
        "slippage": _expr("Slippage", "Expected slippage of market orders.", "5bps"),
        "maker_wait": _expr(
            "Maker wait", "How long a limit order waits before it is repriced.", "30s"
        ),
        "pending_ttl": _expr("Pending TTL", "Cancel orders still open after this long.", "2m"),
        "stale_after": _expr("Stale after", "Treat market data older than this as stale.", "10m"),
        "dust": _expr("Dust", "Positions smaller than this are ignored.", "1 USDT"),
        "min_trade": _expr("Minimum trade", "Skip orders smaller than this.", "10 USDT"),
        "cancel_on_shutdown": {
            "type": "boolean",
            "title": "Cancel on shutdown",
            "description": "Cancel open orders when the runtime stops.",
        },
    },
    title="Execution",
    description="How orders are placed.",
)

_COOLDOWNS = _object(
    {
        "after_fill": _expr(
            "After fill", "Wait this long after a fill before trading the symbol again.", "15m"
        ),
        "after_stopout": _expr(
            "After stop-out", "Wait this long after a stop-out before re-entering.", "1h"
        ),
    },
    title="Cooldowns",
    description="Pauses after fills and stop-outs.",
)

POLICY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "policyctl policy",
    "description": "A declarative risk policy for a crypto trading bot.",
    "type": "object",
    "properties": {
        "policy": {
            "type": "string",
            "pattern": POLICY_ID_PATTERN,
            "title": "Policy name",
            "description": "The policy's identifier, e.g. `btc-trend`.",
        },
        "description": _DESCRIPTION,
        "market": _MARKET,
        "params": {
            "type": "object",
            "title": "Parameters",
            "description": "Named values used in expressions, e.g. `fast: 20`, `risk: 2%`.",
            "propertyNames": {"$ref": _REF + "param_name"},
            "additionalProperties": {"$ref": _REF + "param"},
        },
        "include": {
            "type": "array",
            "items": {"$ref": _REF + "path"},
            "uniqueItems": True,
            "title": "Include",
            "description": "Rule files to include, relative to this file, e.g. "
            "`[common/safety.rules]`.",
        },
        "strategies": _named("strategy", "Strategies", "Named strategies, each with a `budget`."),
        "triggers": _named(
            "trigger", "Triggers", "Named rules: `when` a condition holds, `then` act."
        ),
        "caps": _named(
            "cap", "Caps", "Named exposure limits: an expression or a mapping with `limit`."
        ),
        "breakers": _named(
            "breaker", "Breakers", "Named circuit breakers that halt or reduce trading."
        ),
        "guards": _GUARDS,
        "execution": _EXECUTION,
        "cooldowns": _COOLDOWNS,
    },
    "required": ["policy", "market"],
    "additionalProperties": False,
    "$defs": _DEFS,
}


def schema_json() -> str:
    """The policy schema as pretty-printed JSON with sorted keys."""
    return json.dumps(POLICY_SCHEMA, indent=2, sort_keys=True, ensure_ascii=False)


# --------------------------------------------------------------------------------------
# Validation

# An included YAML file holds sections of a policy: everything but `policy` and `market`.
FRAGMENT_SCHEMA: dict[str, Any] = {
    **POLICY_SCHEMA,
    "title": "policyctl policy fragment (included file)",
    "required": [],
    "properties": {
        k: v for k, v in POLICY_SCHEMA["properties"].items() if k not in ("policy", "market")
    },
}

_validators: dict[bool, Draft202012Validator] = {}


def _get_validator(fragment: bool = False) -> Draft202012Validator:
    if fragment not in _validators:
        _validators[fragment] = Draft202012Validator(FRAGMENT_SCHEMA if fragment else POLICY_SCHEMA)
    return _validators[fragment]


def _resolve(schema: Any) -> dict[str, Any]:
    """Follow a local ``$ref`` (only ``#/$defs/...`` refs are used in the schema)."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 10:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith(_REF):
            break
        schema = _DEFS.get(ref[len(_REF) :], {})
        seen += 1
    return schema if isinstance(schema, dict) else {}


_PATTERN_NOUNS: dict[str, tuple[str, str, str]] = {
    # pattern -> (noun, plural, help)
    POLICY_ID_PATTERN: (
        "policy name",
        "policy names",
        "policy names start with a letter and contain letters, digits, `_`, `.` and `-`",
    ),
    NAME_PATTERN: (
        "name",
        "names",
        "names contain letters, digits and `_`, and do not start with a digit",
    ),
    PARAM_NAME_PATTERN: (
        "parameter name",
        "parameter names",
        "parameter names contain lowercase letters, digits and `_`, and do not start with a digit",
    ),
    SYMBOL_PATTERN: (
        "symbol",
        "symbols",
        "symbols are uppercase `BASE/QUOTE` pairs such as `BTC/USDT`, or "
        "`BTC/USDT:USDT` for a perpetual swap",
    ),
    TIMEFRAME_PATTERN: (
        "timeframe",
        "timeframes",
        "a timeframe is a number followed by s, m, h, d or w, e.g. `5m` or `1h`",
    ),
    EXCHANGE_PATTERN: (
        "exchange id",
        "exchange ids",
        "ccxt exchange ids are lowercase letters and digits, e.g. `binance`",
    ),
    CURRENCY_PATTERN: (
        "currency",
        "currencies",
        "currencies are uppercase codes such as `USDT`",
    ),
    PATH_PATTERN: (
        "include path",
        "include paths",
        "include paths are relative to the policy file, e.g. `common/safety.rules`",
    ),
}

_TYPE_NOUNS = {
    "string": ("a string", "strings"),
    "number": ("a number", "numbers"),
    "integer": ("a whole number", "whole numbers"),
    "boolean": ("`true` or `false`", "booleans"),
    "object": ("a mapping", "mappings"),
    "array": ("a list", "lists"),
    "null": ("nothing", "nulls"),
}


def _join_or(words: Sequence[str]) -> str:
    if len(words) <= 2:
        return " or ".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _ticks(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _noun(schema: Any) -> tuple[str, str]:
    """What a schema expects, as (singular with article, plural)."""
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if ref == _REF + "expr":
        return "an expression", "expressions"
    if ref == _REF + "param":
        return "a number, `true`/`false` or an expression", "parameters"
    schema = _resolve(schema)
    if schema == _DEFS["expr"]:
        return "an expression", "expressions"
    if schema == _DEFS["param"]:
        return "a number, `true`/`false` or an expression", "parameters"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            nouns = [_noun(branch)[0] for branch in schema[key]]
            return _join_or(nouns), "values"
    if "enum" in schema:
        return "one of " + _ticks(str(v) for v in schema["enum"]), "values"
    kind = schema.get("type")
    if isinstance(kind, list):
        return _join_or([_TYPE_NOUNS.get(k, (k, k))[0] for k in kind]), "values"
    if kind == "array":
        items = schema.get("items", {})
        return f"a list of {_noun(items)[1]}", "lists"
    if kind == "object":
        required = schema.get("required", [])
        if required:
            keys = " and ".join(f"`{r}`" for r in required)
            return f"a mapping with {keys}", "mappings"
        return "a mapping", "mappings"
    if kind == "string" and schema.get("pattern") in _PATTERN_NOUNS:
        noun, plural, _ = _PATTERN_NOUNS[schema["pattern"]]
        article = "an" if noun[0] in "aeiou" else "a"
        return f"{article} {noun}", plural
    if isinstance(kind, str) and kind in _TYPE_NOUNS:
        return _TYPE_NOUNS[kind]
    return "a value", "values"


def _found(value: object) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "a value"


def _short(text: str, limit: int = 40) -> str:
    text = text.replace("\n", "\\n").replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sentence(text: str) -> str:
    """A schema description in diagnostic style: lowercase start, no final period."""
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


def _where(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


class _Located:
    """The node at a JSON path, the key that leads to it and the mapping around it."""

    def __init__(self, root: YNode, path: Iterable[str | int]) -> None:
        self.node: YNode | None = root
        self.key: YScalar | None = None
        self.path: list[str | int] = []
        for part in path:
            node = self.node
            if isinstance(node, YMap) and isinstance(part, str):
                self.key = node.key_node(part)
                self.node = node.get(part)
            elif isinstance(node, YSeq) and isinstance(part, int) and 0 <= part < len(node):
                self.node = node.items[part]
            else:
                break
            self.path.append(part)

    @property
    def name(self) -> str:
        """The nearest key name on the path (`symbols` for `market.symbols[2]`)."""
        for part in reversed(self.path):
            if isinstance(part, str):
                return part
        return "policy"

    def value_span(self, fallback: Span) -> Span:
        node = self.node
        if isinstance(node, YScalar) and node.is_null and not node.text and self.key is not None:
            # `key:` with nothing after it: point at the key.
            return self.key.span
        return node.span if node is not None else fallback


def _key_index() -> dict[str, list[str]]:
    """key -> where it is allowed (dotted paths), for "belongs under" hints."""
    index: dict[str, list[str]] = {}

    def walk(schema: Any, where: str, depth: int) -> None:
        schema = _resolve(schema)
        if depth > 6:
            return
        for name, sub in schema.get("properties", {}).items():
            index.setdefault(name, []).append(where or "the top level")
            walk(sub, f"{where}.{name}" if where else name, depth + 1)
        for key in ("oneOf", "anyOf"):
            for branch in schema.get(key, []):
                walk(branch, where, depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{where}.<name>" if where else "<name>", depth + 1)

    walk(POLICY_SCHEMA, "", 0)
    return index


_KEY_INDEX: dict[str, list[str]] | None = None


def _flatten(error: ValidationError) -> list[ValidationError]:
    """Replace a failed ``oneOf``/``anyOf`` by the errors of the branch the user meant.

    The branch whose type matches the value is the intended one (a mapping for a cap
    written as a mapping); when no branch has the right type the error itself is a type
    mismatch and is kept as is.
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branch = sub.relative_schema_path[0] if sub.relative_schema_path else 0
        branches.setdefault(int(branch), []).append(sub)
    compatible = [
        errors
        for _, errors in sorted(branches.items())
        if not any(e.validator == "type" and not e.relative_path for e in errors)
    ]
    if not compatible:
        return [error]
    chosen = min(compatible, key=len)
    out: list[ValidationError] = []
    for sub in chosen:
        out.extend(_flatten(sub))
    return out or [best_match([error]) or error]


def _schema_of(error: ValidationError) -> dict[str, Any]:
    schema = error.schema
    return dict(schema) if isinstance(schema, dict) else {}


def _value_of(error: ValidationError) -> Any:
    """The value of the failed keyword (``minItems: 1`` -> 1)."""
    return error.validator_value


class _Reporter:
    def __init__(self, root: YNode, diags: Diagnostics) -> None:
        self.root = root
        self.diags = diags
        self.count = 0
        # (path, suggested key) for unknown keys, to skip the consequent "missing" error
        self.suggested: set[tuple[tuple[str | int, ...], str]] = set()
        self.reported_missing: set[tuple[tuple[str | int, ...], str]] = set()
        self.reported_unknown: set[tuple[tuple[str | int, ...], str]] = set()

    def error(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.count += 1
        self.diags.error(code, message, span, help or None)

    @property
    def root_span(self) -> Span:
        return self.root.span

    # -- S001 ------------------------------------------------------------------------

    def unknown_keys(self, error: ValidationError) -> None:
        loc = _Located(self.root, error.absolute_path)
        mapping = loc.node
        if not isinstance(mapping, YMap) or not isinstance(error.instance, dict):
            return
        allowed = list(_schema_of(error).get("properties", {}))
        where = _where(loc.path)
        for key_text in error.instance:
            if key_text in allowed:
                continue
            path_key = (tuple(loc.path), key_text)
            if path_key in self.reported_unknown:
                continue
            self.reported_unknown.add(path_key)
            key = mapping.key_node(key_text)
            span = key.span if key is not None else mapping.span
            message = f"unknown key `{_short(key_text)}`" + (f" in `{where}`" if where else "")
            close = difflib.get_close_matches(key_text, allowed, n=1)
            if close:
                help_text = f"did you mean `{close[0]}`?"
                self.suggested.add((tuple(loc.path), close[0]))
            else:
                help_text = self.placement_hint(key_text, where) or (
                    f"allowed keys here: {_ticks(allowed)}"
                )
            self.error("S001", message, span, help_text)

    @staticmethod
    def placement_hint(key: str, where: str) -> str | None:
        global _KEY_INDEX
        if _KEY_INDEX is None:
            _KEY_INDEX = _key_index()
        places = [p for p in _KEY_INDEX.get(key, []) if p != (where or "the top level")]
        if not places:
            return None
        shown = [p if p == "the top level" else f"`{p}`" for p in places[:3]]
        return f"`{key}` belongs in {_join_or(shown)}"

    # -- S002 ------------------------------------------------------------------------

    def missing_keys(self, error: ValidationError) -> None:
        loc = _Located(self.root, error.absolute_path)
        if not isinstance(error.instance, dict):
            return
        properties = _schema_of(error).get("properties", {})
        where = _where(loc.path)
        for name in _value_of(error):
            if name in error.instance:
                continue
            path_key = (tuple(loc.path), name)
            if path_key in self.reported_missing or path_key in self.suggested:
                continue
            self.reported_missing.add(path_key)
            mapping = loc.node
            if isinstance(mapping, YMap) and mapping.items:
                span = mapping.items[0][0].span
            elif mapping is not None:
                span = loc.value_span(self.root_span)
            else:
                span = self.root_span
            message = f"missing required key `{name}`" + (f" in `{where}`" if where else "")
            prop = properties.get(name, {})
            description = prop.get("description") or _resolve(prop).get("description")
            help_text = f"`{name}`: {_sentence(description)}" if description else None
            self.error("S002", message, span, help_text)

    # -- S003 ------------------------------------------------------------------------

    def wrong_type(self, error: ValidationError) -> None:
        loc = _Located(self.root, error.absolute_path)
        expected, _ = _noun(error.schema)
        found = _found(error.instance)
        message = f"expected {expected}, found {found}"
        help_text = None
        node = loc.node
        if isinstance(node, YScalar) and node.text:
            schema = _resolve(error.schema)
            branches = [_resolve(b) for b in schema.get("oneOf", [schema])]
            expects_list = any(b.get("type") == "array" for b in branches)
            if expects_list and isinstance(node.value, str):
                help_text = f"write a list: `{loc.name}: [{_short(node.text)}]`"
            elif node.value is not None and not isinstance(node.value, str):
                help_text = (
                    f"YAML reads `{_short(node.text)}` as {found}; quote it: "
                    f'`"{_short(node.text)}"`'
                )
        elif node is None or (isinstance(node, YScalar) and node.is_null):
            help_text = f"give `{loc.name}` a value, or remove the key"
        self.error("S003", message, loc.value_span(self.root_span), help_text)

    # -- S004 ------------------------------------------------------------------------

    def invalid_value(self, error: ValidationError) -> None:
        schema_path = list(error.relative_schema_path)
        if "propertyNames" in list(error.absolute_schema_path):
            self.invalid_name(error)
            return
        loc = _Located(self.root, error.absolute_path)
        span = loc.value_span(self.root_span)
        name = loc.name
        node = loc.node
        text = node.text if isinstance(node, YScalar) else json.dumps(error.instance)[:40]
        validator = error.validator
        if validator == "enum":
            options = [str(v) for v in _value_of(error)]
            close = difflib.get_close_matches(str(text), options, n=1)
            help_text = f"expected one of {_ticks(options)}"
            if close:
                help_text = f"did you mean `{close[0]}`? ({help_text})"
            self.error("S004", f"invalid `{name}` `{_short(str(text))}`", span, help_text)
        elif validator == "pattern":
            noun, _, help_text = _PATTERN_NOUNS.get(
                str(_value_of(error)), ("value", "values", f"it must match `{_value_of(error)}`")
            )
            self.error("S004", f"invalid {noun} `{_short(str(text))}`", span, help_text)
        elif validator == "minItems":
            count = int(_value_of(error))
            message = (
                f"`{name}` must not be empty"
                if count == 1
                else f"`{name}` needs at least {count} items"
            )
            self.error("S004", message, span, f"`{name}` expects {_noun(error.schema)[0]}")
        elif validator == "uniqueItems":
            self.duplicate_item(loc, error, span)
        elif validator == "minLength":
            self.error(
                "S004", f"`{name}` must not be empty", span, "write a value, or remove the key"
            )
        elif validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            words = {
                "minimum": "at least",
                "exclusiveMinimum": "greater than",
                "maximum": "at most",
                "exclusiveMaximum": "less than",
            }[str(validator)]
            self.error(
                "S004",
                f"`{name}` must be {words} {_value_of(error)}, found `{_short(str(text))}`",
                span,
            )
        else:
            detail = error.message.split("\n", 1)[0]
            self.error(
                "S004",
                f"invalid value for `{name}`",
                span,
                f"{detail[:1].lower()}{detail[1:]} ({'/'.join(map(str, schema_path))})",
            )

    def invalid_name(self, error: ValidationError) -> None:
        loc = _Located(self.root, error.absolute_path)
        key_text = str(error.instance)
        mapping = loc.node
        key = mapping.key_node(key_text) if isinstance(mapping, YMap) else None
        span = key.span if key is not None else loc.value_span(self.root_span)
        pattern = str(_value_of(error)) if error.validator == "pattern" else ""
        noun, _, help_text = _PATTERN_NOUNS.get(pattern, ("name", "names", ""))
        where = _where(loc.path)
        self.error(
            "S004",
            f"invalid {noun} `{_short(key_text)}`" + (f" in `{where}`" if where else ""),
            span,
            help_text,
        )

    def duplicate_item(self, loc: _Located, error: ValidationError, fallback: Span) -> None:
        seq = loc.node
        items = error.instance if isinstance(error.instance, list) else []
        seen: list[object] = []
        for index, item in enumerate(items):
            if item in seen:
                first = seen.index(item)
                span = fallback
                if isinstance(seq, YSeq) and index < len(seq):
                    span = seq.items[index].span
                first_line = seq.items[first].span.line if isinstance(seq, YSeq) else fallback.line
                shown = _short(item if isinstance(item, str) else json.dumps(item))
                self.error(
                    "S004",
                    f"duplicate `{shown}` in `{loc.name}`",
                    span,
                    f"`{shown}` is already listed (line {first_line}); remove one of them",
                )
                return
            seen.append(item)
        self.error("S004", f"`{loc.name}` has duplicate items", fallback)


def _path_key(error: ValidationError) -> tuple[int, tuple[str, ...]]:
    return (len(error.absolute_path), tuple(str(p) for p in error.absolute_path))


def validate_fragment(root: YNode | None, diags: Diagnostics) -> bool:
    """Check an included YAML file: the sections of a policy, without `policy` and `market`."""
    return validate_policy(root, diags, fragment=True)


def validate_policy(root: YNode | None, diags: Diagnostics, fragment: bool = False) -> bool:
    """Check a parsed policy file against :data:`POLICY_SCHEMA`.

    Returns True when the structure is valid; otherwise reports one diagnostic per
    problem (S001-S004) and returns False.
    """
    if root is None:
        return False
    instance = to_plain(root)
    errors: list[ValidationError] = []
    for error in _get_validator(fragment).iter_errors(instance):
        errors.extend(_flatten(error))
    reporter = _Reporter(root, diags)
    # Unknown keys first, so that a misspelt required key is reported once (as unknown).
    ordered = sorted(errors, key=lambda e: (e.validator != "additionalProperties", _path_key(e)))
    handled: set[tuple[Any, ...]] = set()
    for error in ordered:
        ident = (
            error.validator,
            tuple(error.absolute_path),
            tuple(str(p) for p in error.absolute_schema_path),
            repr(error.instance)[:200] if error.validator == "pattern" else "",
        )
        if ident in handled:
            continue
        handled.add(ident)
        if error.validator == "additionalProperties":
            reporter.unknown_keys(error)
        elif error.validator == "required":
            reporter.missing_keys(error)
        elif error.validator in ("type", "oneOf", "anyOf"):
            # A oneOf/anyOf left by _flatten has no branch of the value's type.
            reporter.wrong_type(error)
        else:
            reporter.invalid_value(error)
    return reporter.count == 0
