"""The books: apply fills to cash and positions, exactly once each.

A fill is applied only if its id has not been seen (so a fill reported twice, after a
reconnect or a restart, is never counted twice). A fill of an order the engine sent
carries that order's meaning to the position: its stop, take-profit, strategy and rule. A
fill the engine knows nothing about (a manual trade, an order from before a lost state) is
still booked. Orders that vanish from the exchange without filling are forgotten here.

Dust: a position of less than one step of the exchange's quantity grid can never be sold
(Binance charges a buy's fee in the base asset, so selling the whole position, floored to
the step, leaves such a remainder). It stays in the books, which must match the balances,
but it is not an open position (:func:`holds_lot`): no exit is tried on it, and an entry
into it starts a new position.
"""

from __future__ import annotations

from bisect import insort

from policyctl.runtime.model import Event, Fill, MarketRules, OpenOrder, Side
from policyctl.runtime.state import EngineState, Position

DUST = 1e-12


def holds_lot(qty: float, rules: MarketRules | None) -> bool:
    """Whether ``qty`` is an open position: at least one step of the quantity grid (dust is not)."""
    step = rules.step_size if rules is not None else 0.0
    return qty > 0 and (not step > 0 or qty >= step * (1 - 1e-9))


def apply_fill(state: EngineState, f: Fill, bar_ts: int, cooldowns: dict[str, float],
               rules: MarketRules | None = None) -> list[Event]:
    if f.id in state.fills_seen:
        return []
    state.remember(state.fills_seen, f.id, f.ts)
    buy = f.side is Side.BUY
    side = "buy" if buy else "sell"  # (Side.value is a property: this runs for every fill)
    events = [Event("fill", f"{side} {f.qty:.8g} {f.symbol} at {f.price:.8g}",
                    {"fill": f.id, "client_id": f.client_id, "symbol": f.symbol, "side": side,
                     "qty": f.qty, "price": f.price, "fee": f.fee})]
    order = state.pending.get(f.client_id)
    pos = state.positions.get(f.symbol)
    if buy:
        state.cash -= f.qty * f.price + f.fee
        if pos is None:
            pos = Position(f.symbol, 0.0, 0.0, f.ts, bar_ts, 0.0)
            state.positions[f.symbol] = pos
        elif not holds_lot(pos.qty, rules):  # an entry into dust: a new position
            pos.opened_ms, pos.opened_bar = f.ts, bar_ts
        new_qty = pos.qty + f.qty
        pos.entry = (pos.entry * pos.qty + f.price * f.qty) / new_qty
        pos.qty = new_qty
        pos.cost += f.qty * f.price + f.fee
        if order is not None:
            # distances were fixed at the decision; they are measured from the entry fill
            if order.stop is not None:
                pos.stop = pos.entry - (order.ref_price - order.stop)
            if order.take is not None:
                pos.take = pos.entry + (order.take - order.ref_price)
            pos.strategy = order.strategy or pos.strategy
            pos.rule = order.rule
    else:
        state.cash += f.qty * f.price - f.fee
        if pos is not None:
            sold = min(f.qty, pos.qty)
            cost_out = pos.cost * (sold / pos.qty) if pos.qty > 0 else 0.0
            pnl = sold * f.price - f.fee - cost_out
            state.realized.append((f.ts, pnl))
            pos.cost -= cost_out
            pos.qty -= sold
            if pos.qty <= DUST * max(1.0, sold):
                del state.positions[f.symbol]
                events.append(Event("position_closed", f"{f.symbol} closed, realized {pnl:+.2f}",
                                    {"symbol": f.symbol, "pnl": pnl,
                                     "kind": order.kind if order else (f.kind or "external")}))
    if order is not None:
        order.filled += f.qty
        order.last_fill_ms = f.ts
        if order.filled >= order.qty * (1 - 1e-9):
            del state.pending[f.client_id]
            _traded(state, f.symbol, order.kind, f.ts, cooldowns)
    else:
        state.trade_times.append(f.ts)
        if f.kind == "stop_loss":
            state.stopout_times.append(f.ts)
            _cool(state, f.symbol, f.ts, cooldowns.get("after_stopout"))
    return events


def _traded(state: EngineState, symbol: str, kind: str, ts: int, cooldowns: dict[str, float]) -> None:
    """An order of the engine's is done, with something filled: a trade, and its cooldowns. (In
    time order: windows count by bisection, and an order found gone counts from an earlier fill.)"""
    insort(state.trade_times, ts)
    if kind == "stop_loss":
        insort(state.stopout_times, ts)
        _cool(state, symbol, ts, cooldowns.get("after_stopout"))
    _cool(state, symbol, ts, cooldowns.get("after_fill"))


def _cool(state: EngineState, symbol: str, ts: int, seconds: float | None) -> None:
    if seconds:
        until = ts + int(seconds * 1000)
        state.cooldowns[symbol] = max(until, state.cooldowns.get(symbol, 0))


def forget_vanished(state: EngineState, open_orders: tuple[OpenOrder, ...], now: int,
                    cooldowns: dict[str, float] | None = None) -> list[Event]:
    """Pending orders that are neither open at the exchange nor filled are gone. One that filled
    in part is done all the same: a trade, with its cooldowns (a market buy sized in money fills
    a little less than the quantity asked when the price moves up: it never reaches its
    quantity, yet it is a fill like any other). Its trade and cooldowns count from its latest
    fill, as a full fill's do."""
    live = {o.client_id for o in open_orders}
    events = []
    for cid in [c for c, o in state.pending.items() if c not in live and o.created_ms < now]:
        o = state.pending.pop(cid)
        if o.filled > 0:
            _traded(state, o.symbol, o.kind, o.last_fill_ms if o.last_fill_ms is not None else now, cooldowns or {})
        events.append(Event("order_gone", f"order `{cid}` ({o.kind} {o.side} {o.symbol}) is no longer "
                            f"open; {o.filled:.8g} of {o.qty:.8g} filled",
                            {"client_id": cid, "filled": o.filled, "qty": o.qty}))
    return events
