"""Rendering test results: one line per case (with a diff for failures), JSON, coverage."""

from __future__ import annotations

import json
from typing import Any

from policyctl.diagnostics import Diagnostics
from policyctl.diagnostics import render_human as render_diagnostics
from policyctl.testing.runner import (
    CaseResult,
    Coverage,
    FileResult,
    RunResult,
    Tick,
    describe_cancel,
    describe_clip,
    describe_denial,
    describe_order,
)

INDENT = "      "


def render_human(result: RunResult, coverage_detail: bool = False, verbose: bool = False,
                 color: bool = False) -> str:
    green, red, yellow, dim, reset = (
        ("\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[0m") if color else ("",) * 5)
    out: list[str] = []
    errors = Diagnostics([d for d in result.diags.sorted() if d.is_error], result.diags.sources)
    if errors.items:
        out.append(render_diagnostics(errors, color=color))
    for f in result.files:
        if f.problem:
            out.append(f"{red}ERROR{reset} {f.test.shown}: {f.problem}")
            continue
        for r in f.cases:
            label = {"pass": f"{green}PASS {reset}", "fail": f"{red}FAIL {reset}",
                     "invalid": f"{red}ERROR{reset}", "crash": f"{red}CRASH{reset}",
                     "skip": f"{yellow}SKIP {reset}", "xfail": f"{yellow}XFAIL{reset}",
                     "xpass": f"{red}XPASS{reset}"}[r.status]
            line = f"{label} {r.case.id}"
            if r.status == "fail" and r.case.description:
                line += f" {dim}- {r.case.description}{reset}"
            if r.message:
                line += f": {r.message}"
            out.append(line)
            if r.status in ("fail", "xpass") or (verbose and r.tick is not None):
                out.extend(_failure_lines(r))
    out.append("")
    out.extend(render_coverage(result.coverage, detail=coverage_detail))
    out.append(_summary(result))
    return "\n".join(out)


def _failure_lines(r: CaseResult) -> list[str]:
    lines: list[str] = []
    for fl in r.failures:
        where = f" ({fl.span})" if fl.span is not None else ""
        lines.append(f"{INDENT}{fl.what}: {fl.message}{where}")
        lines.extend(f"{INDENT}  {d}" for d in fl.details)
    if r.tick is not None:
        lines.extend(tick_lines(r.tick, INDENT))
    return lines


def tick_lines(t: Tick, indent: str = "") -> list[str]:
    """The tested tick's decision, for a reader comparing it with the expectations."""
    eq = t.equity
    why = f" ({'; '.join(t.reasons)})" if t.reasons else ""
    lines = [f"{indent}the tested tick (tick {t.ticks}): state {t.state}{why}, equity {eq:.2f}, "
             f"cash {t.cash:.2f}"]

    def block(title: str, items: list[str]) -> None:
        if not items:
            lines.append(f"{indent}  {title}: none")
            return
        lines.append(f"{indent}  {title}:")
        lines.extend(f"{indent}    {x}" for x in items)

    block("orders", [describe_order(o, eq) for o in t.orders])
    block("denials", [describe_denial(d) for d in t.denials])
    if t.clips:
        block("clips", [describe_clip(c, eq) for c in t.clips])
    if t.cancels:
        block("cancels", [describe_cancel(c) for c in t.cancels])
    fired = sorted({f"{f['rule']} on {f['symbol']}" for f in t.fired})
    lines.append(f"{indent}  fired: {', '.join(fired) or 'none'}")
    trips = [f"{n} ({x['action']})" for n, x in t.trips.items()]
    lines.append(f"{indent}  trips: {', '.join(trips) or 'none'}")
    if t.positions:
        lines.append(f"{indent}  positions: " + ", ".join(
            f"{s} {p['qty']:.8g} @ {p['entry']:.8g}" for s, p in t.positions.items()))
    notable = [e for e in t.events if e["kind"] in ("breaker_trip", "data", "alert", "state_change")]
    if notable:
        block("events", [f"[{e['kind']}] {e['message']}" for e in notable])
    return lines


def render_coverage(cov: list[Coverage], detail: bool = False) -> list[str]:
    if not cov:
        return []
    lines = ["coverage (triggers fired, caps clipped or blocked, breakers tripped):"]
    width = max(len(c.policy) for c in cov)
    for c in cov:
        head = f"  {c.policy:<{width}}  {c.percent:5.1f}%  {len(c.covered)}/{len(c.items)}"
        if not c.tested:
            head += "  no tests"
        elif c.missing and not detail:
            head += "  not exercised: " + ", ".join(f"{k} {n}" for k, n in c.missing)
        lines.append(head)
        if detail:
            for item in c.items:
                by = c.by.get(item, [])
                mark = "ok  " if by else "MISS"
                names = ", ".join(b.split("::", 1)[1] for b in by[:4]) + (", ..." if len(by) > 4 else "")
                cases = f"  ({len(by)} case{'s' * (len(by) != 1)}: {names})" if by else ""
                lines.append(f"    {mark} {item[0]:<8} {item[1]}{cases}")
    lines.append("")
    return lines


def _summary(result: RunResult) -> str:
    parts = [f"{result.count('pass')} passed", f"{result.count('fail')} failed"]
    for status, word in (("invalid", "invalid"), ("skip", "skipped"), ("xfail", "failed as expected"),
                         ("xpass", "passed unexpectedly"), ("crash", "crashed")):
        if result.count(status):
            parts.append(f"{result.count(status)} {word}")
    if result.broken_files:
        parts.append(f"{result.broken_files} test file{'s' * (result.broken_files != 1)} could not run")
    n = len(result.files)
    return ", ".join(parts) + f" ({n} test file{'s' * (n != 1)})"


def render_json(result: RunResult) -> str:
    return json.dumps(to_json(result), indent=2, sort_keys=False)


def to_json(result: RunResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "summary": {
            "passed": result.count("pass"), "failed": result.count("fail"),
            "invalid": result.count("invalid"), "skipped": result.count("skip"),
            "crashed": result.count("crash"), "xfailed": result.count("xfail"),
            "xpassed": result.count("xpass"), "files": len(result.files),
            "broken_files": result.broken_files,
        },
        "files": [_file_json(f) for f in result.files],
        "coverage": [_coverage_json(c) for c in result.coverage],
        "diagnostics": [d.to_json() for d in result.diags.sorted()],
    }


def _file_json(f: FileResult) -> dict[str, Any]:
    return {
        "file": f.test.shown, "policy": f.policy, "policy_name": f.policy_name,
        "problem": f.problem or None,
        "cases": [{
            "name": r.case.name, "id": r.case.id, "description": r.case.description,
            "status": r.status, "message": r.message or None,
            "failures": [fl.to_json() for fl in r.failures],
            "tick": r.tick.to_json() if r.tick is not None else None,
        } for r in f.cases],
    }


def _coverage_json(c: Coverage) -> dict[str, Any]:
    return {
        "policy": c.policy, "name": c.name, "tested": c.tested, "percent": round(c.percent, 2),
        "covered": len(c.covered), "total": len(c.items),
        "items": [{"kind": k, "name": n, "cases": c.by.get((k, n), [])} for k, n in c.items],
        "missing": [{"kind": k, "name": n} for k, n in c.missing],
    }
