"""Sizing: from a trigger's intent to a quantity, with the arithmetic shown.

* ``2% of equity`` / ``95% of cash``: spend that share, the entry fee included, so the
  notional is ``share * base / (1 + fee)``.
* ``500 USDT``: spend that amount, the entry fee included.
* ``risk 1% of equity``: the quantity that loses 1% of equity if price moves by the stop
  distance (or by the ``per`` distance, e.g. ``2 * atr(14)``: volatility-scaled sizing).

Stop and take-profit distances become prices: a percentage is relative to the reference
price, money is an absolute distance. Anything unavailable gives no size, with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from policyctl.records import fast_init
from policyctl.rules.compiler import CompiledPolicy, TriggerInfo
from policyctl.rules.incremental import Values
from policyctl.rules.types import Kind


@fast_init
@dataclass(frozen=True, slots=True)
class Sized:
    qty: float
    notional: float
    stop: float | None
    take: float | None
    explain: str  # how the size was computed, for the trace


@fast_init
@dataclass(frozen=True, slots=True)
class Unsized:
    reason: str


def _distance(cp: CompiledPolicy, node: int | None, values: Values, i: int, price: float) -> float | None:
    if node is None:
        return None
    v = values.get(node, i) if cp.graph[node].per_symbol else values.get(node)
    if cp.graph[node].type.kind is Kind.PERCENT:
        return v * price
    return v


def size_buy(cp: CompiledPolicy, t: TriggerInfo, values: Values, i: int, price: float,
             equity: float, cash: float, fee: float) -> Sized | Unsized:
    assert t.size is not None
    s = t.size

    def val(node: int) -> float:
        return values.get(node, i) if cp.graph[node].per_symbol else values.get(node)

    if not (price > 0 and math.isfinite(price)):
        return Unsized("no trusted price")
    stop_d = _distance(cp, t.stop, values, i, price)
    take_d = _distance(cp, t.take, values, i, price)
    for what, d in (("stop", stop_d), ("take-profit", take_d)):
        if d is not None and not (math.isfinite(d) and d > 0):
            return Unsized(f"{what} distance unavailable or not positive ({d})")
    amount = val(s.amount)
    if not math.isfinite(amount) or amount <= 0:
        return Unsized(f"size unavailable or not positive ({amount})")
    base_value = equity if s.base == "equity" else cash
    if s.kind in ("fraction", "risk") and not (math.isfinite(base_value) and base_value > 0):
        return Unsized(f"{s.base} unavailable")
    if s.kind == "fraction":
        notional = amount * base_value / (1 + fee)
        how = (f"{amount:.6g} x {s.base} {base_value:.2f} / (1 + fee {fee:.4%}) = "
               f"{notional:.2f} notional")
    elif s.kind == "amount":
        notional = amount / (1 + fee)
        how = f"{amount:.2f} / (1 + fee {fee:.4%}) = {notional:.2f} notional"
    else:
        risk = amount * base_value
        dist = val(s.per) if s.per is not None else stop_d
        if dist is None or not (math.isfinite(dist) and dist > 0):
            return Unsized(f"risk distance unavailable or not positive ({dist})")
        qty = risk / dist
        notional = qty * price
        how = (f"risk {amount:.4%} x {s.base} {base_value:.2f} = {risk:.2f}; / distance {dist:.6g} "
               f"= qty {qty:.8g} (notional {notional:.2f})")
    qty = notional / price
    stop = price - stop_d if stop_d is not None else None
    take = price + take_d if take_d is not None else None
    return Sized(qty, notional, stop, take, how)


def size_sell(cp: CompiledPolicy, t: TriggerInfo, values: Values, i: int, price: float,
              held: float, equity: float, cash: float) -> Sized | Unsized:
    """``sell SIZE`` reduces the position by that much (never below zero); ``close`` sells all."""
    if held <= 0:
        return Unsized("no position to reduce")
    if t.size is None:  # close
        return Sized(held, held * price, None, None, f"close the whole position: {held:.8g}")
    s = t.size
    amount = values.get(s.amount, i) if cp.graph[s.amount].per_symbol else values.get(s.amount)
    base_value = equity if s.base == "equity" else cash
    notional = amount * base_value if s.kind == "fraction" else amount
    if not (math.isfinite(notional) and notional > 0 and price > 0):
        return Unsized(f"size unavailable or not positive ({notional})")
    qty = min(held, notional / price)
    return Sized(qty, qty * price, None, None,
                 f"sell {notional:.2f} of {held:.8g} held at {price:.6g}: qty {qty:.8g}")
