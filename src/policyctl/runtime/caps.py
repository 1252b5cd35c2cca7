"""Caps: check the account as it would be after an order, and clip or block it.

Every cap limits one quantity the engine can project (exposure in total, per symbol, per
theme, a position's value, open positions, open orders, trades per window). The check uses
the account *after* the order, pending orders included. The symbol's cooldown and the caps
on counts (open positions, open orders, trades) come first, before the order is even sized:
they cannot clip, and an order one of them refuses is refused whatever its size. Then the
sized order meets the strategy's and the themes' budgets, then the exposure caps. Within
each group the trigger's strategy's caps come before the global ones, in policy order. An
exposure cap in ``clip`` mode shrinks the order to fit; anything else blocks. A cap that
cannot be evaluated blocks: fail closed. Each check reports the margin left by every cap
it passed, which the metrics export.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policyctl.rules.compiler import CapInfo, CompiledPolicy
from policyctl.rules.incremental import Values
from policyctl.rules.numeric import REL_TOL
from policyctl.runtime.account import Account, _count_since
from policyctl.runtime.state import EngineState

EXPOSURE = frozenset({"exposure.total", "exposure.symbol", "exposure.theme", "position.value"})


@dataclass
class CapCheck:
    notional: float
    blocked: str | None = None  # the reason, when blocked
    blocked_by: str | None = None  # the cap's name
    clips: list[dict[str, object]] = field(default_factory=list)
    margins: dict[str, float] = field(default_factory=dict)
    room: float = math.inf  # the largest notional every exposure cap would still allow


def _theme_symbols(cp: CompiledPolicy, cap: CapInfo, symbol: str) -> tuple[str, ...] | None:
    themes = cp.policy.market.themes
    if cap.target is not None:
        t = themes.get(cap.target)
        return t.symbols if t is not None and symbol in t.symbols else None
    for t in themes.values():
        if symbol in t.symbols:
            return t.symbols
    return None


# Each projection gives (metric before the order, metric per unit of notional, scale) for an
# order on ``symbol``: the metric after an order of notional N is ``before + N * per`` for an
# exposure, ``before + scale`` for a count. ``arg`` is what the plan resolved for the cap: the
# theme's members, or the window in ms.
Projection = tuple[float, float, float]
Project = Callable[[Account, EngineState, str, int, Any], Projection]


def _per(eq: float) -> float:
    return 1.0 / eq if eq > 0 else math.nan


def _exposure_total(acct: Account, state: EngineState, symbol: str, now: int, arg: Any) -> Projection:
    eq = acct.equity
    return acct.exposure_total, _per(eq), eq


def _exposure_symbol(acct: Account, state: EngineState, symbol: str, now: int, arg: Any) -> Projection:
    eq = acct.equity
    return acct.exposure_symbol(symbol), _per(eq), eq


def _position_value(acct: Account, state: EngineState, symbol: str, now: int, arg: Any) -> Projection:
    return acct.position_value.get(symbol, 0.0) + acct.pending_buys.get(symbol, 0.0), 1.0, 1.0


def _exposure_theme(acct: Account, state: EngineState, symbol: str, now: int, arg: Any) -> Projection:
    eq = acct.equity
    return acct.exposure_of(arg), _per(eq), eq


def _positions_open(acct: Account, state: EngineState, symbol: str, now: int, arg: Any) -> Projection:
    # open positions and positions being opened (pending buys, this tick's included)
    held = acct.held_or_opening(state)
    return float(len(held)), 0.0, 0.0 if symbol in held else 1.0  # scale: the step an order adds


def _orders_open(acct: Account, state: EngineState, symbol: str, now: int, arg: Any) -> Projection:
    return float(len(state.pending)), 0.0, 1.0


def _trades(acct: Account, state: EngineState, symbol: str, now: int, arg: Any) -> Projection:
    return _count_since(state.trade_times, now - arg) + len(state.pending), 0.0, 1.0


PROJECTIONS: dict[str, Project] = {
    "exposure.total": _exposure_total,
    "exposure.symbol": _exposure_symbol,
    "position.value": _position_value,
    "exposure.theme": _exposure_theme,
    "positions.open": _positions_open,
    "orders.open": _orders_open,
    "trades": _trades,
}


@dataclass(frozen=True, slots=True)
class _Step:
    """One cap as the check of an order on one symbol runs it, everything static resolved."""

    name: str
    limit: int  # the node of its limit
    limit_per_symbol: bool
    project: Project
    arg: Any  # what the projection needs: the theme's members, the window in ms
    slot: int  # caps on the same quantity share one projection: its slot
    exposure: bool
    le: bool
    clip: bool


def _plan(cp: CompiledPolicy, strategy: str | None, symbol: str) -> tuple[list[_Step], list[_Step]]:
    """The caps an order of ``strategy`` on ``symbol`` meets, in the order they are checked:
    (the caps on counts, the exposure caps), each in policy order with the strategy's own caps
    first. A cap on another symbol, or on a theme ``symbol`` is not in, is left out."""
    key = ("caps", strategy, symbol)
    got: tuple[list[_Step], list[_Step]] | None = cp.memo.get(key)
    if got is None:
        counts: list[_Step] = []
        exposures: list[_Step] = []
        slots: tuple[dict[object, int], dict[object, int]] = ({}, {})
        for c in cp.caps_for(strategy):
            project = PROJECTIONS.get(c.metric)
            arg: Any = None
            if project is None:
                continue
            if c.metric in ("exposure.symbol", "position.value") and c.target not in (None, symbol):
                continue
            if c.metric == "exposure.theme":
                arg = _theme_symbols(cp, c, symbol)
                if arg is None:
                    continue
            if c.metric == "trades":
                arg = int((c.window_seconds or 0) * 1000)
            exposure = c.metric in EXPOSURE
            seen = slots[exposure]
            slot = seen.setdefault((c.metric, c.target, c.window_seconds), len(seen))
            (exposures if exposure else counts).append(
                _Step(c.name, c.limit, c.limit_per_symbol, project, arg, slot, exposure, c.op == "le",
                      c.mode == "clip" and exposure))
        got = cp.memo[key] = (counts, exposures)
    return got


def _theme_budgets(cp: CompiledPolicy, symbol: str) -> list[tuple[str, float, tuple[str, ...]]]:
    """The `max_exposure` budgets of the themes ``symbol`` belongs to: (name, share, members)."""
    got: list[tuple[str, float, tuple[str, ...]]] | None = cp.memo.get(("theme_budgets", symbol))
    if got is None:
        got = cp.memo["theme_budgets", symbol] = [
            (f"theme:{t.name}", cp.theme_caps[t.name], tuple(t.symbols))
            for t in cp.policy.market.themes.values() if symbol in t.symbols and t.name in cp.theme_caps]
    return got


def check_counts(cp: CompiledPolicy, values: Values, acct: Account, state: EngineState, symbol: str,
                 i: int, strategy: str | None, now: int) -> CapCheck:
    """Before the order is sized: the symbol's cooldown and the caps on counts, which no size
    of order could pass (so an entry they refuse is not sized at all)."""
    out = CapCheck(math.nan)
    until = state.cooldowns.get(symbol)
    if until is not None and now < until:
        return _block(out, "cooldown", f"symbol in cooldown for {(until - now) // 1000}s more")
    return _steps(out, _plan(cp, strategy, symbol)[0], values, acct, state, symbol, i, now, 0.0)


def check_caps(cp: CompiledPolicy, values: Values, acct: Account, state: EngineState, symbol: str,
               i: int, notional: float, strategy: str | None, now: int, min_trade: float,
               counted: CapCheck) -> CapCheck:
    """The sized order against the budgets and the exposure caps (``counted``: what
    :func:`check_counts` found, which passed)."""
    out = CapCheck(notional, margins=dict(counted.margins))
    # fixed budgets: the strategy's share of equity, and each theme's `max_exposure`
    budgets: list[tuple[str, float, float]] = []
    if strategy is not None and strategy in cp.budgets:
        budgets.append((f"budget:{strategy}", cp.budgets[strategy], acct.strategy_exposure.get(strategy, 0.0)))
    for name, share, members in _theme_budgets(cp, symbol):
        budgets.append((name, share, acct.notional_of(members)))
    rooms: list[tuple[str, float]] = []
    for name, share, used in budgets:
        room = share * acct.equity - used
        if not math.isfinite(room):
            return _block(out, name, "cannot be evaluated (inputs unavailable)")
        out.room = min(out.room, max(room, 0.0))
        if out.notional > room:
            if room < max(min_trade, 1e-12):
                return _block(out, name, f"{share:.2%} of equity is used up")
            out.clips.append({"cap": name, "from": out.notional, "to": room})
            out.notional = room
        rooms.append((name, room))
    out = _steps(out, _plan(cp, strategy, symbol)[1], values, acct, state, symbol, i, now, min_trade)
    for name, room in rooms:  # the room each budget leaves after the order as finally clipped
        out.margins[name] = (room - out.notional) / acct.equity if acct.equity > 0 else math.nan
    return out


def _steps(out: CapCheck, steps: list[_Step], values: Values, acct: Account, state: EngineState,
           symbol: str, i: int, now: int, min_trade: float) -> CapCheck:
    row, g, margins = values.rows[i], values.g, out.margins
    projections: list[Projection | None] = [None] * len(steps)
    for step in steps:
        proj = projections[step.slot]
        if proj is None:
            proj = projections[step.slot] = step.project(acct, state, symbol, now, step.arg)
        before, per, scale = proj
        limit = row[step.limit] if step.limit_per_symbol else g[step.limit]
        if limit != limit or before != before or per != per:  # NaN
            return _block(out, step.name, "cannot be evaluated (inputs unavailable)")
        room = math.inf
        if step.exposure:
            after = before + out.notional * per
            room = (limit - before) / per if per > 0 else 0.0
            if not step.le:
                room *= 1 - 1e-9
            if room < out.room:
                out.room = room if room > 0.0 else 0.0
        else:
            after = before + scale
        # NaN is ruled out above; an infinity (overflow) is unavailable too, so it never passes.
        # The comparison is numeric.le / numeric.lt, inlined: this loop runs for every cap of
        # every entry the engine considers.
        if after - after == 0.0 and limit - limit == 0.0:
            d = after - limit if step.le else limit - after
            a, b = (after if after > 0.0 else -after), (limit if limit > 0.0 else -limit)
            over = d > REL_TOL * (a if a > b else b)
            if not over if step.le else over:
                margins[step.name] = limit - after
                continue
        if step.clip:
            if room >= max(min_trade, 1e-12):
                out.clips.append({"cap": step.name, "from": out.notional, "to": room,
                                  "limit": limit, "before": before})
                out.notional = room
                margins[step.name] = 0.0
                continue
            return _block(out, step.name, f"no room left: {before:.4g} of {limit:.4g} used")
        return _block(out, step.name, f"would reach {after:.4g}, limit {limit:.4g}")
    if out.clips:  # a later cap clipped the order: the exposure caps it passed have more room left
        clipped = {c["cap"] for c in out.clips}
        for step in steps:
            if step.exposure and step.name not in clipped:
                before, per, _ = projections[step.slot]  # type: ignore[misc]  # (every step ran: all set)
                limit = row[step.limit] if step.limit_per_symbol else g[step.limit]
                margins[step.name] = limit - (before + out.notional * per)
    return out


def _block(out: CapCheck, name: str, why: str) -> CapCheck:
    out.blocked, out.blocked_by, out.notional = f"cap `{name}`: {why}", name, 0.0
    return out

