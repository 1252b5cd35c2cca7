"""Every diagnostic code policyctl emits, with a one-line title.

Codes are stable: a code keeps its meaning forever, and a retired code is not reused.
``docs/diagnostics.md`` is generated from this table and the examples under
``examples/diagnostics/`` (one failing policy per code with its expected output, which the
test suite also runs as golden tests).

Prefixes: ``Y`` reading and YAML, ``S`` structure (the JSON Schema), ``I`` includes,
``P`` expression syntax, ``T`` names, types and units, ``L`` sanity checks across a policy,
``C`` command-line configuration.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    # reading and YAML
    "Y001": "file is not valid UTF-8",
    "Y002": "binary content",
    "Y003": "empty document",
    "Y004": "YAML syntax error",
    "Y005": "duplicate key in a mapping",
    "Y006": "alias expansion too large",
    "Y007": "nesting too deep",
    "Y008": "unsupported YAML tag",
    "Y009": "more than one YAML document",
    "Y010": "a mapping key that is not a plain scalar",
    "Y011": "non-finite number",
    "Y012": "file too large",
    "Y013": "value does not fit its explicit tag",
    "Y014": "invalid merge key value",
    # structure
    "S001": "unknown key",
    "S002": "missing required key",
    "S003": "wrong type of value",
    "S004": "invalid value",
    # includes
    "I001": "file not found",
    "I002": "include cycle",
    "I003": "file cannot be included or read",
    "I004": "too many included files",
    # syntax
    "P001": "unexpected token",
    "P002": "unexpected character",
    "P003": "unexpected end of input",
    "P004": "expression nested too deeply",
    "P005": "number out of range",
    "P006": "empty expression",
    "P007": "clause given twice",
    # names, types, units
    "T001": "unknown name or function",
    "T002": "wrong number of arguments",
    "T003": "wrong type",
    "T004": "units do not fit",
    "T005": "wrong currency",
    "T006": "needs a market series",
    "T007": "per-symbol value where the whole portfolio is evaluated",
    "T008": "invalid window or duration",
    "T009": "needs a condition",
    "T010": "string used as a value",
    "T011": "unknown symbol or theme",
    "T012": "risk sizing without a stop distance",
    "T013": "a cap that does not limit a cappable quantity",
    "T014": "invalid cap mode",
    "T015": "reserved word used as a name",
    "T016": "value must be constant",
    "T017": "param defined in terms of itself",
    "T018": "reference to an undeclared symbol or strategy",
    # sanity checks
    "L001": "per-symbol cap above its theme cap",
    "L002": "theme caps add up to more than 100%",
    "L003": "stop-loss at or beyond the take-profit",
    "L004": "a longer-window trade cap that can never bind",
    "L005": "a shorter-window trade cap not below the longer one",
    "L006": "fees or slippage outside plausible bounds",
    "L007": "order timeouts out of order",
    "L008": "breaker pause longer than its lookback",
    "L009": "dust threshold above the minimum trade size",
    "L010": "rule condition that is always or never true",
    "L011": "duplicate rule or param name",
    "L012": "param shadows a builtin",
    "L013": "implausible stop-loss or take-profit distance",
    "L014": "cap that can never bind",
    "L015": "unused param",
    # command line
    "C001": "unknown param given on the command line",
}
