"""Breakers: from rule values to trips, and from trips to the trading state.

A breaker whose condition is true *trips*: it stays active for its duration (``halt for
24h``) or, without one, until an operator resets it. The trading state is the strictest
state any active trip asks for. A breaker that cannot be evaluated (its inputs are
unavailable) does not latch, but fails closed for the tick: it holds the engine at least
at PAUSED, so nothing new is opened on data nobody can vouch for. The kill switch halts,
whatever the policy says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from policyctl.records import fast_init
from policyctl.rules.compiler import CompiledPolicy
from policyctl.rules.incremental import Values
from policyctl.runtime.model import BREAKER_STATES, Event, TradingState
from policyctl.runtime.state import EngineState, Trip
from policyctl.timefmt import iso_seconds as _iso


@fast_init
@dataclass(frozen=True, slots=True)
class BreakerOutcome:
    state: TradingState
    reasons: tuple[str, ...]  # why the state is what it is
    flatten: bool  # a flatten trip fired this tick: close every position
    events: tuple[Event, ...]


def evaluate_breakers(cp: CompiledPolicy, values: Values, state: EngineState, now: int,
                      kill_switch: bool) -> BreakerOutcome:
    """Update ``state.trips`` and return the resulting trading state."""
    events: list[Event] = []
    # expire trips whose time is up
    for name in [n for n, t in state.trips.items() if t.until_ms is not None and now >= t.until_ms]:
        trip = state.trips.pop(name)
        events.append(Event("breaker_clear", f"breaker `{name}` cleared after its duration",
                            {"breaker": name, "action": trip.action}))
    flatten = False
    unknown: list[str] = []
    for b in cp.breakers:
        v = values.get(b.when)
        if math.isnan(v):
            if b.action != "alert":
                unknown.append(b.name)
            continue
        if v != 1.0:
            continue
        until = now + int(b.duration_seconds * 1000) if b.duration_seconds is not None else None
        existing = state.trips.get(b.name)
        if b.action == "alert":
            if existing is None:
                events.append(Event("alert", f"breaker `{b.name}` alerts", {"breaker": b.name}))
                state.trips[b.name] = Trip(b.name, b.action, now, until or now, "condition true")
            continue
        if existing is None:
            state.trips[b.name] = Trip(b.name, b.action, now, until, "condition true")
            flatten = flatten or b.action == "flatten"
            events.append(Event("breaker_trip", f"breaker `{b.name}` tripped: {b.action}"
                                + (f" until {_iso(until)}" if until is not None else " until reset"),
                                {"breaker": b.name, "action": b.action, "until": until}))
        elif until is not None and existing.until_ms is not None and until > existing.until_ms:
            existing.until_ms = until  # still true: the trip lasts from the latest trigger
    # the strictest active trip wins
    state_now = TradingState.ACTIVE
    reasons: list[str] = []
    for t in state.trips.values():
        s = BREAKER_STATES.get(t.action)
        if s is None:
            continue
        if s.rank > state_now.rank:
            state_now, reasons = s, [f"breaker `{t.breaker}` ({t.action})"]
        elif s is state_now and s is not TradingState.ACTIVE:
            reasons.append(f"breaker `{t.breaker}` ({t.action})")
    if unknown and state_now.rank < TradingState.PAUSED.rank:
        state_now = TradingState.PAUSED
        reasons = [f"breaker `{n}` cannot be evaluated (inputs unavailable)" for n in unknown]
    if kill_switch:
        state_now, reasons = TradingState.HALTED, ["kill switch engaged"]
    if state_now is not state.trading_state:
        events.append(Event("state_change",
                            f"trading state {state.trading_state.value} -> {state_now.value}: "
                            + "; ".join(reasons or ["no breaker active"]),
                            {"from": state.trading_state.value, "to": state_now.value,
                             "reasons": list(reasons)}))
        state.trading_state = state_now
    return BreakerOutcome(state_now, tuple(reasons), flatten, tuple(events))


def reset_breaker(state: EngineState, name: str | None = None) -> list[str]:
    """An operator's reset: clear one trip (or all); returns the names cleared."""
    names = [name] if name is not None else list(state.trips)
    cleared = [n for n in names if state.trips.pop(n, None) is not None]
    return cleared

