"""``policyctl status``: what a runtime is doing, read from its state folder.

Reads the SQLite database read-only (safe while the runtime writes to it): the trading
state, positions, active breakers, open orders, the kill switch, and the last decisions
from the journal.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyctl.runtime.journal import Journal
from policyctl.runtime.killswitch import FILE as KILL_FILE
from policyctl.runtime.killswitch import runtime_pid
from policyctl.runtime.state import EngineState
from policyctl.timefmt import iso_seconds


@dataclass
class Status:
    policy_hash: str | None
    tick_ms: int | None
    state: EngineState | None
    open_orders: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    kill_switch: bool
    pid: int | None


def _iso(ms: int | None) -> str:
    return iso_seconds(ms) if ms else "-"


def read_status(db: Path, last: int = 5) -> Status:
    if not db.exists():
        raise FileNotFoundError(db)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT state, policy_hash, tick_ms FROM state WHERE id = 1").fetchone()
        orders = [dict(zip(("client_id", "symbol", "side", "qty", "kind", "status", "created_ms"), r, strict=True))
                  for r in con.execute("SELECT client_id, symbol, side, qty, kind, status, created_ms FROM orders "
                                       "WHERE status IN ('submitting', 'unknown', 'open', 'partially_filled') "
                                       "ORDER BY created_ms")]
    finally:
        con.close()
    state = EngineState.from_json(row[0]) if row else None
    with Journal.open(db) as journal:
        decisions = [r.payload | {"seq": r.seq} for r in journal.last(("decision",), max(last, 1))]
    return Status(row[1] if row else None, row[2] if row else None, state, orders, decisions,
                  (db.parent / KILL_FILE).exists(), runtime_pid(db.parent))


def _state_reasons(decision: dict[str, Any]) -> list[str]:
    """Why the decision's trading state is what it is, as its breaker stage said."""
    for step in decision.get("trace") or []:
        if isinstance(step, dict) and step.get("stage") == "breakers":
            return [str(r) for r in step.get("reasons") or []]
    return []


def render_status(st: Status, fmt: str) -> str:
    if fmt == "json":
        doc = {
            "policy_hash": st.policy_hash, "last_tick": _iso(st.tick_ms), "kill_switch": st.kill_switch,
            "runtime_pid": st.pid,
            "trading_state": st.state.trading_state.value if st.state else None,
            "trading_state_reasons": _state_reasons(st.decisions[-1]) if st.decisions else [],
            "cash": st.state.cash if st.state else None,
            "positions": {s: {"qty": p.qty, "entry": p.entry, "stop": p.stop, "take": p.take}
                          for s, p in (st.state.positions.items() if st.state else [])},
            "breakers": {n: {"action": t.action, "since": _iso(t.since_ms), "until": _iso(t.until_ms)}
                         for n, t in (st.state.trips.items() if st.state else [])},
            "open_orders": st.open_orders,
            "decisions": [{k: d.get(k) for k in ("seq", "now", "trading_state", "equity", "orders", "denials")}
                          for d in st.decisions],
        }
        return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
    s = st.state
    out = [f"policy hash {st.policy_hash or '-'}, last tick {_iso(st.tick_ms)}, "
           f"runtime {'pid ' + str(st.pid) if st.pid else 'not running'}"]
    if st.kill_switch:
        out.append("KILL SWITCH ENGAGED")
    if s is None:
        out.append("no state yet")
        return "\n".join(out) + "\n"
    out.append(f"trading state: {s.trading_state.value}   cash {s.cash:,.2f}   peak equity {s.peak_equity:,.2f}")
    why = _state_reasons(st.decisions[-1]) if st.decisions and s.trading_state.value != "active" else []
    for reason in why:  # a state no trip explains (a breaker that cannot be evaluated, say)
        out.append(f"  because {reason}")
    out.append("positions:" if s.positions else "positions: none")
    for sym, p in sorted(s.positions.items()):
        out.append(f"  {sym}: {p.qty:.8g} at {p.entry:.8g} (stop {p.stop or '-'}, take {p.take or '-'}, "
                   f"rule {p.rule or '-'})")
    out.append("breakers:" if s.trips else "breakers: none active")
    for name, t in sorted(s.trips.items()):
        out.append(f"  {name}: {t.action} since {_iso(t.since_ms)} until {_iso(t.until_ms) if t.until_ms else 'reset'}")
    out.append(f"open orders: {len(st.open_orders)}")
    for o in st.open_orders:
        out.append(f"  {o['client_id']} {o['side']} {o['qty']} {o['symbol']} ({o['kind']}, {o['status']})")
    out.append("last decisions:")
    for d in st.decisions:
        orders = d.get("orders") or []
        denials = d.get("denials") or []
        out.append(f"  #{d['seq']} {_iso(d.get('now'))} {d.get('trading_state')}: {len(orders)} order(s), "
                   f"{len(denials)} denial(s)"
                   + (": " + ", ".join(sorted({str(x.get('code')) for x in denials})) if denials else ""))
    return "\n".join(out) + "\n"
