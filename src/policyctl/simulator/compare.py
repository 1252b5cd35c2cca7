"""The regression gate: compare a simulation report with a baseline report.

:func:`compare` checks every number of the baseline's ``regression_keys`` against the new
report's, within a relative tolerance:

* **amounts and ratios** may move by ``tolerance * max(|baseline|, floor)``; the floor keeps
  values near zero from failing on noise: one percentage point for ratios (``total_return``,
  ``max_drawdown``, ``win_rate``), 1% of the initial cash for money (``final_equity``,
  ``fees``, ``slippage``), none for keys it does not know;
* **counts** (``trades``, ``fills``, ``denials_total``, ``breaker_trips``) may move by
  ``floor(tolerance * |baseline|)`` whole units, so small counts must match exactly;
* a key of the baseline missing from the report fails; a key only in the report is noted;
  ``None`` (e.g. the win rate of a run without trades) equals only ``None``.

A different policy hash, data fingerprint, seed, params or fill model is a *warning*: the
comparison still runs (changing the policy is usually why one compares), but the reader
should know the runs differ in their inputs. ``policyctl compare`` exits 0 when every key is
within tolerance, 1 when one is not, and 2 when a file cannot be read or is not a report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "KEY_KINDS",
    "CompareError",
    "CompareResult",
    "KeyChange",
    "compare",
    "load_report",
    "parse_tolerance",
]

#: How each regression key is compared: money, ratio or count. Unknown keys are plain numbers.
KEY_KINDS = {
    "initial_cash": "money",
    "final_equity": "money",
    "fees": "money",
    "slippage": "money",
    "total_return": "ratio",
    "max_drawdown": "ratio",
    "win_rate": "ratio",
    "trades": "count",
    "fills": "count",
    "denials_total": "count",
    "breaker_trips": "count",
}
RATIO_FLOOR = 0.01  # one percentage point
MONEY_FLOOR = 0.01  # share of the initial cash


class CompareError(Exception):
    """A file that cannot be compared: unreadable, not JSON, or not a simulation report."""


@dataclass(frozen=True)
class KeyChange:
    key: str
    kind: str  # money | ratio | count | number | other
    old: Any
    new: Any
    delta: float | None  # new - old (numbers only)
    rel_change: float | None  # delta / |old|; None when old is 0 or not a number
    allowed: float | None  # largest |delta| within tolerance (None: must be equal)
    ok: bool
    missing: bool = False  # in the baseline, not in the report

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "kind": self.kind, "baseline": self.old, "report": self.new,
                "delta": _r(self.delta), "rel_change": _r(self.rel_change), "allowed": _r(self.allowed),
                "ok": self.ok, "missing": self.missing}


@dataclass
class CompareResult:
    tolerance: float
    changes: list[KeyChange] = field(default_factory=list)  # every key that moved, in key order
    unchanged: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # keys only the report has
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[KeyChange]:
        return [c for c in self.changes if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "tolerance": self.tolerance,
            "failures": [c.key for c in self.failures],
            "changes": [c.to_dict() for c in self.changes],
            "unchanged": list(self.unchanged),
            "added": list(self.added),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }

    def render_human(self, report_name: str = "report", baseline_name: str = "baseline") -> str:
        keys = len(self.changes) + len(self.unchanged)
        tol = _fmt_pct(self.tolerance)
        if self.ok:
            head = (f"ok: {report_name} is within ±{tol} of {baseline_name} "
                    f"({keys} keys, {len(self.changes)} moved)")
        else:
            head = (f"FAIL: {len(self.failures)} of {keys} keys outside ±{tol} "
                    f"({report_name} vs {baseline_name})")
        lines = [head]
        if self.changes:
            rows = [("", "key", "baseline", "report", "change", "allowed")]
            for c in self.changes:
                rows.append((
                    "ok" if c.ok else "FAIL",
                    c.key,
                    _fmt_val(c.old),
                    "(missing)" if c.missing else _fmt_val(c.new),
                    "" if c.missing else _fmt_change(c),
                    "exact" if c.allowed is None or c.allowed == 0 else f"±{_fmt_val(c.allowed)}",
                ))
            widths = [max(len(r[i]) for r in rows) for i in range(6)]
            for r in rows:
                cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
                cells += [r[i].rjust(widths[i]) for i in range(2, 6)]
                lines.append("  " + "  ".join(cells).rstrip())
        if self.unchanged:
            lines.append(f"  unchanged: {', '.join(self.unchanged)}")
        if self.added:
            lines.append(f"  new keys (not compared): {', '.join(self.added)}")
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# parsing


def parse_tolerance(text: str) -> float:
    """``"2%"`` or ``"0.02"`` -> 0.02. Bare numbers are fractions and must not exceed 1."""
    s = text.strip()
    pct = s.endswith("%")
    try:
        v = float(s[:-1].strip() if pct else s)
    except ValueError:
        raise ValueError(f"tolerance {text!r} is not a number (write e.g. 2% or 0.02)") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"tolerance {text!r} must be a non-negative number")
    if pct:
        return v / 100.0
    if v > 1:
        raise ValueError(f"tolerance {text!r} is more than 100%; write {s}% for percent "
                         "or a fraction like 0.02")
    return v


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report JSON file; :class:`CompareError` when it cannot be compared."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CompareError(f"{p}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CompareError(f"{p}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    _check_report(data, str(p))
    return data


def _check_report(data: object, name: str) -> None:
    if not isinstance(data, dict):
        raise CompareError(f"{name}: not a simulation report (expected a JSON object)")
    keys = data.get("regression_keys")
    if not isinstance(keys, dict):
        raise CompareError(f"{name}: not a simulation report (no regression_keys object)")
    for k, v in keys.items():
        if not (v is None or isinstance(v, bool | int | float | str)):
            raise CompareError(f"{name}: regression key {k!r} is not a number")


# --------------------------------------------------------------------------------------
# comparing


def _r(v: float | None) -> float | None:
    """Rounded to 10 significant digits for output (no float noise in JSON)."""
    return None if v is None or not math.isfinite(v) else float(f"{v:.10g}")


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _kind(key: str, old: object, new: object) -> str:
    k = KEY_KINDS.get(key)
    if k is not None:
        return k
    return "number" if _num(old) is not None or _num(new) is not None else "other"


def _compare_key(key: str, old: object, new: object, tol: float, cash: float | None) -> KeyChange:
    kind = _kind(key, old, new)
    a, b = _num(old), _num(new)
    if a is None or b is None:
        same = old == new
        return KeyChange(key, kind, old, new, None, None, None, same)
    delta = b - a
    rel = delta / abs(a) if a != 0 else None
    if kind == "count":
        allowed = float(math.floor(tol * abs(a) + 1e-9))
    else:
        floor = 0.0
        if kind == "ratio":
            floor = RATIO_FLOOR
        elif kind == "money" and cash:
            floor = MONEY_FLOOR * abs(cash)
        allowed = tol * max(abs(a), floor)
    ok = abs(delta) <= allowed * (1 + 1e-12) + 1e-12 * max(abs(a), abs(b))
    return KeyChange(key, kind, old, new, delta, rel, allowed, ok)


def compare(report: Mapping[str, Any], baseline: Mapping[str, Any], tolerance: float) -> CompareResult:
    """Compare ``report`` with ``baseline`` (both report dicts) within ``tolerance`` (0.02 = 2%)."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError("tolerance must be a non-negative number")
    _check_report(report, "report")
    _check_report(baseline, "baseline")
    new_keys: Mapping[str, Any] = report["regression_keys"]
    old_keys: Mapping[str, Any] = baseline["regression_keys"]
    cash = _num(old_keys.get("initial_cash"))
    if cash is None:
        cash = _num((baseline.get("metadata") or {}).get("initial_cash"))
    res = CompareResult(tolerance)
    for key in sorted(old_keys):
        old = old_keys[key]
        if key not in new_keys:
            res.changes.append(KeyChange(key, _kind(key, old, None), old, None, None, None, None, False,
                                         missing=True))
            continue
        c = _compare_key(key, old, new_keys[key], tolerance, cash)
        if c.old == c.new and (c.delta is None or c.delta == 0):
            res.unchanged.append(key)
        else:
            res.changes.append(c)
    res.added = sorted(k for k in new_keys if k not in old_keys)
    res.warnings, res.notes = _input_differences(report.get("metadata") or {}, baseline.get("metadata") or {})
    return res


def _fingerprints(md: Mapping[str, Any]) -> list[tuple[str, int]]:
    out = []
    for d in md.get("data") or []:
        if isinstance(d, Mapping):
            out.append((str(d.get("sha256", "")), int(d.get("rows") or 0)))
    return sorted(out)


def _input_differences(new: Mapping[str, Any], old: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    warnings: list[str] = []
    notes: list[str] = []
    if new.get("policy_hash") != old.get("policy_hash"):
        warnings.append(f"the policy hash differs ({old.get('policy_hash')} in the baseline, "
                        f"{new.get('policy_hash')} in the report): the policy changed")
    if _fingerprints(new) != _fingerprints(old):
        warnings.append("the data fingerprints differ (sha256 of the candle files): "
                        "the runs used different data")
    elif [d.get("path") for d in new.get("data") or [] if isinstance(d, Mapping)] != [
            d.get("path") for d in old.get("data") or [] if isinstance(d, Mapping)]:
        notes.append("the data paths differ but the files are identical")
    for key, what in (("seed", "seed differs"), ("params", "params differ"),
                      ("fill_model", "fill model differs"),
                      ("initial_cash", "initial cash differs"), ("timeframe", "timeframe differs"),
                      ("first_bar", "first bar differs"), ("last_bar", "last bar differs")):
        if new.get(key) != old.get(key):
            warnings.append(f"the {what} ({_short(old.get(key))} in the baseline, "
                            f"{_short(new.get(key))} in the report)")
    if new.get("versions") != old.get("versions"):
        notes.append(f"tool versions differ ({_short(old.get('versions'))} → "
                     f"{_short(new.get('versions'))})")
    return warnings, notes


def _short(v: object, limit: int = 80) -> str:
    s = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _fmt_val(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}" if abs(v) >= 1000 else f"{v:g}"
        return f"{v:,.6g}" if abs(v) < 1000 else f"{v:,.2f}"
    return str(v)


def _fmt_pct(x: float) -> str:
    return f"{x * 100:.6g}%"


def _fmt_change(c: KeyChange) -> str:
    if c.delta is None:
        return "changed"
    if c.rel_change is None:
        return f"{c.delta:+.6g}"
    return f"{c.rel_change * 100:+.2f}%"
