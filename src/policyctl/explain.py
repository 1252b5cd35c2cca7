"""``policyctl explain``: why the engine decided what it did on one bar.

The policy is simulated up to the bar asked for (the same engine, on the same market the
simulator would use), and that bar's tick is traced in full: the trading state and why,
every trigger with the values it read, how each order was sized, which cap clipped or
blocked it (and the margin left), which guard check denied it, and the orders sent.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from policyctl.rules.compiler import CompiledPolicy
from policyctl.runtime.engine import Decision
from policyctl.simulator.data import DataError, MarketData
from policyctl.simulator.run import SimConfig, simulate
from policyctl.timefmt import iso_seconds as _iso


def bar_at(md: MarketData, at_ms: int) -> int:
    """The bar open at ``at_ms``: the last bar opening at or before it."""
    ts = md.timestamps
    i = int(np.searchsorted(ts, at_ms, side="right")) - 1
    if i < 0:
        raise DataError(f"the data starts after {_iso(at_ms)}", None)
    if at_ms >= int(ts[-1]) + md.timeframe_ms:
        raise DataError(f"the data ends before {_iso(at_ms)}: its last bar opens at {_iso(int(ts[-1]))}", None)
    return i


def explain(cp: CompiledPolicy, md: MarketData, at_ms: int, cfg: SimConfig) -> tuple[Decision, int]:
    t = bar_at(md, at_ms)
    result = simulate(cp, md.slice(None, int(md.timestamps[t]) + 1), SimConfig(
        seed=cfg.seed, cash=cfg.cash, fill=cfg.fill, markets=cfg.markets, explain_at=t))
    assert result.explained is not None
    return result.explained, t




def _num(v: object) -> str:
    if v is None:
        return "unavailable"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "unavailable"
        return f"{v:.6g}"
    return str(v)


SHARES = frozenset({"exposure.total", "exposure.symbol", "exposure.theme"})


def _unit(cp: CompiledPolicy, cap: str, v: object) -> str:
    """A value of a cap's quantity in its own unit: a share of equity in percent, a count as a
    count, a position's value in the quote currency."""
    if not isinstance(v, float | int) or isinstance(v, bool) or math.isnan(v):
        return _num(v)
    metric = next((c.metric for c in cp.caps if c.name == cap), None)
    if metric in SHARES or cap.startswith(("budget:", "theme:")):
        return f"{v:.2%}"
    if metric == "position.value":
        return f"{v:,.2f} {cp.policy.market.quote or ''}".rstrip()
    return f"{v:g}"


def render_human(cp: CompiledPolicy, d: Decision, t: int, bar_open_ms: int) -> str:
    out = [f"policy `{cp.policy.name}` (hash {cp.hash}), bar {t} opening {_iso(bar_open_ms)}, "
           f"decided at its close {_iso(d.now)}",
           f"equity {d.equity:,.2f}   trading state: {d.trading_state.value}", ""]
    for e in d.trace:
        stage = e["stage"]
        if stage == "breakers":
            if e["reasons"]:
                out.append(f"state {e['state']}: " + "; ".join(e["reasons"]))
        elif stage == "trigger":
            mark = "FIRED" if e["fired"] else "not fired" if e["value"] is not None else "unavailable"
            out.append(f"trigger `{e['rule']}` on {e['symbol']}: {mark}")
            for k, v in e.get("inputs", {}).items():
                out.append(f"    {k} = {_num(v)}")
        elif stage == "exit":
            out.append(f"{e['kind'].replace('_', ' ')} on {e['symbol']}: price {_num(e['price'])} "
                       f"(stop {_num(e['stop'])}, take {_num(e['take'])})")
        elif stage == "sizing":
            out.append(f"  sizing `{e['rule']}` {e['symbol']}: {e['explain']}")
        elif stage == "caps":
            for c in e["clips"]:
                out.append(f"  cap `{c['cap']}` clipped the order from {_num(c['from'])} to {_num(c['to'])}"
                           + (f" (limit {_unit(cp, c['cap'], c['limit'])}, used {_unit(cp, c['cap'], c['before'])})"
                              if "limit" in c else ""))
            if e["margins"]:
                out.append("  room left: " + ", ".join(f"{k} {_unit(cp, k, v)}" for k, v in e["margins"].items()))
        elif stage == "guard":
            for note in e["notes"]:
                out.append(f"  guard: {note}")
        elif stage == "denied":
            out.append(f"  DENIED [{e['code']}] at {e['stage']}: {e['message']}"
                       if "stage" in e else f"  DENIED [{e['code']}]: {e['message']}")
        elif stage == "order":
            out.append(f"  ORDER {e['side']} {e['qty']} {e['symbol']} ({e['kind']}, rule `{e['rule']}`, "
                       f"at {_num(e['ref_price'])}) client id {e['client_id']}")
    if not any(e["stage"] in ("order", "denied") for e in d.trace):
        out.append("no order, no denial on this bar")
    for ev in d.events:
        out.append(f"event [{ev.kind}]: {ev.message}")
    return "\n".join(out) + "\n"


def to_json(cp: CompiledPolicy, d: Decision, t: int, bar_open_ms: int) -> str:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    doc = {
        "policy": cp.policy.name, "policy_hash": cp.hash, "bar": t, "bar_open": _iso(bar_open_ms),
        "decided_at": _iso(d.now), "equity": d.equity, "trading_state": d.trading_state.value,
        "trace": d.trace, "denials": d.denials,
        "orders": [{"client_id": o.client_id, "symbol": o.symbol, "side": o.side.value, "qty": o.qty,
                    "kind": o.kind, "rule": o.rule, "ref_price": o.ref_price} for o in d.orders],
        "cancels": [{"client_id": c.client_id, "symbol": c.symbol, "reason": c.reason} for c in d.cancels],
        "events": [{"kind": e.kind, "message": e.message} for e in d.events],
    }
    return json.dumps(clean(doc), indent=2, sort_keys=True) + "\n"
