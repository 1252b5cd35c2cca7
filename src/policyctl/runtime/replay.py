"""Replay a journal through a fresh engine and compare the decisions with the journaled ones.

Each session of the journal (it starts at a ``state_initial`` entry: see
:mod:`policyctl.runtime.journal`) gets a fresh :class:`~policyctl.runtime.engine.Engine` with a
fresh :class:`~policyctl.runtime.engine.IncrementalSource`, in the journaled mode, and the
journaled state. ``warmup`` bars advance its indicators; each ``snapshot`` (after its
``missed`` bars) is ticked, and the new decision is compared with the ``decision`` entry
that follows it; ``state_set`` entries replace the state, as they did live.

What is compared, tick by tick:

* orders, matched by (symbol, side, kind, rule): added, removed, or changed (quantity,
  limit price, and the client id when the policy is the one that wrote the journal: client
  ids include the policy hash, so a candidate policy's ids always differ);
* denials, as (rule, symbol, code);
* cancels, as (client id, reason);
* the trading state;
* the state after the tick (its digest), when the policy is the journal's own.

With the policy that wrote the journal every decision must match: the engine is a pure
function of the snapshot and the state. With a candidate policy the differences are what
the candidate would have done differently on the same market (after the first difference
its state drifts from the live one, and each new session starts again from the live state).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from policyctl.rules.compiler import CompiledPolicy
from policyctl.runtime import journal as jr
from policyctl.runtime.engine import Engine, IncrementalSource
from policyctl.runtime.state import EngineState
from policyctl.timefmt import iso_seconds as _iso

ORDER_FIELDS = ("client_id", "symbol", "side", "qty", "price", "kind", "rule")


class ReplayError(jr.JournalError):
    """The journal cannot be replayed (a tick before any ``state_initial``, a broken entry)."""


@dataclass
class TickDiff:
    tick: int  # 1-based, over the whole journal
    seq: int  # the journal seq of the decision
    now: int
    orders_added: list[dict[str, Any]] = field(default_factory=list)  # the replay has them, the journal not
    orders_removed: list[dict[str, Any]] = field(default_factory=list)  # the journal has them, the replay not
    orders_changed: list[dict[str, Any]] = field(default_factory=list)  # {"journal", "replay", "fields"}
    denials_added: list[dict[str, Any]] = field(default_factory=list)
    denials_removed: list[dict[str, Any]] = field(default_factory=list)
    cancels_added: list[dict[str, Any]] = field(default_factory=list)
    cancels_removed: list[dict[str, Any]] = field(default_factory=list)
    trading_state: tuple[str, str] | None = None  # (journal, replay)
    state_differs: bool = False

    @property
    def empty(self) -> bool:
        return not (self.orders_added or self.orders_removed or self.orders_changed or self.denials_added
                    or self.denials_removed or self.cancels_added or self.cancels_removed
                    or self.trading_state or self.state_differs)

    def to_dict(self) -> dict[str, Any]:
        return {"tick": self.tick, "seq": self.seq, "now": self.now, "time": _iso(self.now),
                "orders_added": self.orders_added, "orders_removed": self.orders_removed,
                "orders_changed": self.orders_changed, "denials_added": self.denials_added,
                "denials_removed": self.denials_removed, "cancels_added": self.cancels_added,
                "cancels_removed": self.cancels_removed,
                "trading_state": None if self.trading_state is None else
                {"journal": self.trading_state[0], "replay": self.trading_state[1]},
                "state_differs": self.state_differs}


@dataclass
class ReplayResult:
    policy: str
    policy_hash: str
    journal_hashes: list[str] = field(default_factory=list)  # of the sessions, in order
    sessions: int = 0
    ticks: int = 0  # ticks compared
    unpaired: int = 0  # snapshots without a journaled decision (replayed, not compared)
    diffs: list[TickDiff] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.diffs

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "policy_hash": self.policy_hash, "journal_hashes": self.journal_hashes,
                "sessions": self.sessions, "ticks": self.ticks, "unpaired": self.unpaired,
                "identical": self.identical, "differing_ticks": len(self.diffs),
                "diffs": [d.to_dict() for d in self.diffs]}


def replay(cp: CompiledPolicy, journal: jr.Journal) -> ReplayResult:
    """Replay every session of ``journal`` with ``cp``; see the module docstring."""
    res = ReplayResult(cp.policy.name, cp.hash)
    engine: Engine | None = None
    state: EngineState | None = None
    same = False
    pending: dict[str, Any] | None = None  # the replayed decision of the last snapshot
    for rec in journal.entries():
        p = rec.payload
        try:
            if rec.kind == jr.STATE_INITIAL:
                res.unpaired += pending is not None
                pending = None
                state = EngineState.from_json(p["state"])
                engine = Engine(cp, mode=str(p.get("mode", "dry-run")), live_armed=bool(p.get("live_armed", False)),
                                source=IncrementalSource(cp))
                same = rec.policy_hash == cp.hash
                res.sessions += 1
                res.journal_hashes.append(rec.policy_hash)
            elif rec.kind in (jr.WARMUP, jr.SNAPSHOT, jr.STATE_SET) and (engine is None or state is None):
                raise ReplayError(f"journal entry {rec.seq} ({rec.kind}) comes before any state_initial entry")
            elif rec.kind == jr.WARMUP:
                assert engine is not None
                for bars in p.get("bars", ()):
                    engine.source.on_bar(jr.bars_from_dict(bars))
            elif rec.kind == jr.STATE_SET:
                state = EngineState.from_json(p["state"])
            elif rec.kind == jr.SNAPSHOT:
                assert engine is not None and state is not None
                res.unpaired += pending is not None
                for bars in p.get("missed", ()):
                    decoded = jr.bars_from_dict(bars)
                    engine.source.on_bar(decoded)
                    for s, b in decoded.items():
                        state.last_bar_ts[s] = b.ts
                snap = jr.snapshot_from_dict(p["snapshot"])
                pending = jr.decision_to_dict(engine.tick(snap, state))
            elif rec.kind == jr.DECISION and pending is not None:
                res.ticks += 1
                diff = compare(p, pending, same, res.ticks, rec.seq)
                if not diff.empty:
                    res.diffs.append(diff)
                pending = None
        except ReplayError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ReplayError(f"journal entry {rec.seq} ({rec.kind}) is malformed: {type(e).__name__}: {e}") from None
    res.unpaired += pending is not None
    return res


def _order_view(o: dict[str, Any]) -> dict[str, Any]:
    return {k: o.get(k) for k in ORDER_FIELDS}


def _key(o: dict[str, Any]) -> tuple[str, str, str, str]:
    return (str(o["symbol"]), str(o["side"]), str(o["kind"]), str(o["rule"]))


def compare(journaled: dict[str, Any], new: dict[str, Any], same_policy: bool, tick: int = 0,
            seq: int = 0) -> TickDiff:
    """The differences between a journaled ``decision`` payload and a replayed one (both as
    :func:`~policyctl.runtime.journal.decision_to_dict` gives them)."""
    diff = TickDiff(tick, seq, int(journaled.get("now", new["now"])))
    old_orders: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for o in journaled.get("orders", []):
        old_orders.setdefault(_key(o), []).append(_order_view(o))
    fields = ORDER_FIELDS if same_policy else tuple(f for f in ORDER_FIELDS if f != "client_id")
    for o in new["orders"]:
        view = _order_view(o)
        bucket = old_orders.get(_key(o))
        if not bucket:
            diff.orders_added.append(view)
            continue
        before = bucket.pop(0)
        changed = [f for f in fields if before.get(f) != view.get(f)]
        if changed:
            diff.orders_changed.append({"journal": before, "replay": view, "fields": changed})
    for bucket in old_orders.values():
        diff.orders_removed.extend(bucket)
    diff.denials_added, diff.denials_removed = _multiset_diff(
        journaled.get("denials", []), new["denials"], ("rule", "symbol", "code"))
    diff.cancels_added, diff.cancels_removed = _multiset_diff(
        journaled.get("cancels", []), new["cancels"], ("client_id", "reason"))
    if journaled.get("trading_state") != new["trading_state"]:
        diff.trading_state = (str(journaled.get("trading_state")), str(new["trading_state"]))
    if same_policy and "state_digest" in journaled:
        diff.state_differs = journaled["state_digest"] != new["state_digest"]
    return diff


def _multiset_diff(old: list[dict[str, Any]], new: list[dict[str, Any]], keys: tuple[str, ...]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def proj(x: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(x.get(k) for k in keys)

    a, b = Counter(proj(x) for x in old), Counter(proj(x) for x in new)
    added = [dict(zip(keys, k, strict=True)) for k in (b - a).elements()]
    removed = [dict(zip(keys, k, strict=True)) for k in (a - b).elements()]
    return added, removed


# ---- rendering ---------------------------------------------------------------------------------




def _order_text(o: dict[str, Any]) -> str:
    price = f" @ {o['price']}" if o.get("price") else ""
    return f"{o['side']} {o['qty']} {o['symbol']}{price} {o['kind']} ({o['rule']})"


def render_human(res: ReplayResult, source: str = "") -> str:
    lines = []
    hashes = sorted(set(res.journal_hashes))
    written = ", ".join(hashes) if hashes else "no session"
    lines.append(f"replay{' of ' + source if source else ''}: policy {res.policy} {res.policy_hash}, "
                 f"journal written by {written}; {res.sessions} session{'s' * (res.sessions != 1)}")
    for d in res.diffs:
        lines.append(f"tick {d.tick} at {_iso(d.now)} (journal seq {d.seq}):")
        lines += [f"  + order {_order_text(o)}" for o in d.orders_added]
        lines += [f"  - order {_order_text(o)}" for o in d.orders_removed]
        for c in d.orders_changed:
            what = ", ".join(f"{f} {c['journal'][f]} -> {c['replay'][f]}" for f in c["fields"])
            lines.append(f"  ~ order {c['journal']['side']} {c['journal']['symbol']} {c['journal']['kind']} "
                         f"({c['journal']['rule']}): {what}")
        lines += [f"  + denial {x['rule']} {x['symbol']}: {x['code']}" for x in d.denials_added]
        lines += [f"  - denial {x['rule']} {x['symbol']}: {x['code']}" for x in d.denials_removed]
        lines += [f"  + cancel {x['client_id']} ({x['reason']})" for x in d.cancels_added]
        lines += [f"  - cancel {x['client_id']} ({x['reason']})" for x in d.cancels_removed]
        if d.trading_state is not None:
            lines.append(f"  trading state {d.trading_state[0]} -> {d.trading_state[1]}")
        if d.state_differs:
            lines.append("  the state after the tick differs")
    if res.unpaired:
        lines.append(f"note: {res.unpaired} snapshot{'s' * (res.unpaired != 1)} without a journaled decision "
                     "(replayed, not compared)")
    if res.identical:
        lines.append(f"{res.ticks} ticks, all decisions identical")
    else:
        n = Counter[str]()
        for d in res.diffs:
            n["orders added"] += len(d.orders_added)
            n["orders removed"] += len(d.orders_removed)
            n["orders changed"] += len(d.orders_changed)
            n["denials added"] += len(d.denials_added)
            n["denials removed"] += len(d.denials_removed)
            n["cancels differing"] += len(d.cancels_added) + len(d.cancels_removed)
            n["trading states"] += d.trading_state is not None
            n["states"] += d.state_differs
        detail = ", ".join(f"{v} {k}" for k, v in n.items() if v)
        lines.append(f"{res.ticks} ticks, {len(res.diffs)} with different decisions ({detail})")
    return "\n".join(lines) + "\n"


def render_json(res: ReplayResult) -> str:
    return json.dumps(res.to_dict(), indent=2, allow_nan=False) + "\n"
