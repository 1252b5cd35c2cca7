"""The simulated exchange and its fill model: what an order would really have cost.

Assumptions (also in ``docs/simulator.md``), chosen not to flatter a policy:

* **Fill time.** An order decided at the close of bar ``t`` fills at the open of bar
  ``t + delay`` (``delay = 1``: the next bar's open). Nothing fills at the price that made
  the decision.
* **Costs.** Market orders pay the taker fee, half the spread, and slippage that grows
  with volatility (a share of ATR(14) relative to price) and with the order's share of the
  bar's volume. Limit orders pay the maker fee and no spread.
* **Limit orders** rest from the next bar; they fill at their price when the bar trades
  through it, and only partly (a seeded random share of what is left) when the bar merely
  touches it.
* **Stops and take-profits** rest at the exchange from the entry fill. A bar whose range
  touches both is resolved against the policy: the stop first. A bar that opens beyond the
  stop fills at the open (the gap is not forgiven).
* **Buys sized in money** spend that amount (fee included) at the fill price, like a market
  order with a quote quantity; buys larger than the cash are rejected.

All randomness comes from one seeded generator, so a run is reproducible to the byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from policyctl.rules import indicators
from policyctl.runtime.model import Cancel, Fill, MarketRules, OpenOrder, OrderRequest, Side
from policyctl.simulator.data import MarketData


@dataclass(frozen=True)
class FillModel:
    delay_bars: int = 1
    taker_fee: float = 0.001
    maker_fee: float = 0.001
    spread: float | None = None  # full spread as a fraction; None = the data's, else 2bps
    default_spread: float = 0.0002
    slippage: float = 0.0  # fixed part, as a fraction of price
    vol_slippage: float = 0.05  # share of ATR(14)/price added as slippage
    impact: float = 0.1  # slippage per unit of (order qty / bar volume)
    stops: str = "intrabar"  # intrabar: resting stops resolved on the bar's range; close: engine only

    @staticmethod
    def ideal(fee: float) -> FillModel:
        """Fees only: the idealised model of textbook backtests (for reference checks)."""
        return FillModel(taker_fee=fee, maker_fee=fee, spread=0.0, default_spread=0.0, slippage=0.0,
                         vol_slippage=0.0, impact=0.0)

    def describe(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(slots=True)
class _Queued:
    order: OrderRequest
    due: int  # bar index at whose open it fills
    filled: float = 0.0


@dataclass
class SimExchange:
    data: MarketData
    model: FillModel
    cash: float
    seed: int
    markets: dict[str, MarketRules] = field(default_factory=dict)
    holdings: dict[str, float] = field(default_factory=dict)
    queued: list[_Queued] = field(default_factory=list)
    resting: dict[str, _Queued] = field(default_factory=dict)  # limit orders by client id
    protect: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    fees_paid: float = 0.0
    slippage_paid: float = 0.0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._n = 0
        self._atr_rel: dict[str, np.ndarray] = {}  # computed when first needed

    def atr_rel(self, symbol: str) -> np.ndarray:
        """ATR(14) relative to the close, over the series (for slippage that grows with volatility)."""
        got = self._atr_rel.get(symbol)
        if got is None:
            ser = self.data.series[symbol]
            with np.errstate(invalid="ignore", divide="ignore"):
                got = self._atr_rel[symbol] = indicators.atr(ser.high, ser.low, ser.close, 14) / ser.close
        return got

    # -- orders in --
    def submit(self, orders: list[OrderRequest], t: int) -> None:
        for o in orders:
            q = _Queued(o, t + self.model.delay_bars)
            if o.price is None:
                self.queued.append(q)
            else:
                self.resting[o.client_id] = q

    def cancel(self, cancels: list[Cancel]) -> None:
        for c in cancels:
            self.resting.pop(c.client_id, None)
            self.queued = [q for q in self.queued if q.order.client_id != c.client_id]

    def open_orders(self, t: int, ts_of: int) -> tuple[OpenOrder, ...]:
        if not self.queued and not self.resting:
            return ()
        out = []
        for q in [*self.queued, *self.resting.values()]:
            o = q.order
            out.append(OpenOrder(o.client_id, o.symbol, o.side, float(o.qty),
                                 float(o.price) if o.price else None, q.filled, ts_of, o.reduce_only))
        return tuple(out)

    # -- the bar --
    def spread_at(self, symbol: str, t: int) -> float:
        if self.model.spread is not None:
            return self.model.spread
        sp = self.data.spreads.get(symbol) if self.data.spreads else None
        if sp is not None and math.isfinite(float(sp[t])):
            return float(sp[t]) / 10_000.0
        return self.model.default_spread

    def on_open(self, t: int, ts: int) -> list[Fill]:
        """Fill market orders due at this bar's open."""
        out: list[Fill] = []
        keep = []
        for q in self.queued:
            if q.due > t:
                keep.append(q)
                continue
            px = self.data.series[q.order.symbol].open.item(t)  # float64: a Python float
            if not math.isfinite(px) or px <= 0:
                keep.append(q)  # no trading on this bar: the order waits for the next one
                q.due = t + 1
                continue
            out += self._market_fill(q.order, t, ts, px)
        self.queued = keep
        return out

    def during(self, t: int, ts: int) -> list[Fill]:
        """Intrabar: resting limit orders, then protective stops and take-profits."""
        out: list[Fill] = []
        for cid in list(self.resting):
            q = self.resting[cid]
            if q.due > t:
                continue
            out += self._limit_fill(q, t, ts)
            if q.filled >= float(q.order.qty) * (1 - 1e-12):
                del self.resting[cid]
        if self.model.stops == "intrabar":
            for s in list(self.protect):
                out += self._protective(s, t, ts)
        return out

    # -- fills --
    def _slip(self, o: OrderRequest, t: int, qty: float) -> float:
        m = self.model
        slip = m.slippage + self.spread_at(o.symbol, t) / 2
        if m.vol_slippage and t > 0:  # (the arrays are read only when their term counts)
            atr = self.atr_rel(o.symbol).item(t - 1)
            if math.isfinite(atr):
                slip += m.vol_slippage * atr
        if m.impact:
            vol = self.data.series[o.symbol].volume.item(t)
            if math.isfinite(vol) and vol > 0:
                slip += m.impact * min(qty / vol, 1.0)
        return slip

    def _market_fill(self, o: OrderRequest, t: int, ts: int, open_px: float) -> list[Fill]:
        fee_rate = self.model.taker_fee
        if o.side is Side.BUY:
            est_qty = o.spend / open_px if o.spend is not None else float(o.qty)
            px = open_px * (1 + self._slip(o, t, est_qty))
            qty = o.spend / (px * (1 + fee_rate)) if o.spend is not None else float(o.qty)
            qty = _floor(qty, self.markets.get(o.symbol))
            cost = qty * px * (1 + fee_rate)
            if qty <= 0 or cost > self.cash * (1 + 1e-12):
                self.rejected.append((o.client_id, "insufficient cash"))
                return []
        else:
            held = self.holdings.get(o.symbol, 0.0)
            qty = min(float(o.qty), held)
            if qty <= 0:
                self.rejected.append((o.client_id, "nothing to sell"))
                return []
            px = open_px * (1 - self._slip(o, t, qty))
        self.slippage_paid += abs(px - open_px) * qty
        kind = o.kind if o.kind in ("stop_loss", "take_profit", "flatten") else ""
        return [self._book(o.client_id, o.symbol, o.side, qty, px, fee_rate, ts, kind, o)]

    def _limit_fill(self, q: _Queued, t: int, ts: int) -> list[Fill]:
        o = q.order
        ser = self.data.series[o.symbol]
        price = float(o.price)  # type: ignore[arg-type]
        lo, hi = ser.low.item(t), ser.high.item(t)  # float64: Python floats
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return []
        left = float(o.qty) - q.filled
        if o.side is Side.BUY:
            through, touched = lo < price, lo <= price
        else:
            through, touched = hi > price, hi >= price
        if not touched:
            return []
        qty = left if through else left * float(self.rng.uniform(0.2, 1.0))
        qty = _floor(qty, self.markets.get(o.symbol))
        if o.side is Side.SELL:
            qty = min(qty, self.holdings.get(o.symbol, 0.0))
        elif qty * price * (1 + self.model.maker_fee) > self.cash:
            qty = _floor(self.cash / (price * (1 + self.model.maker_fee)), self.markets.get(o.symbol))
        if qty <= 0:
            return []
        q.filled += qty
        return [self._book(o.client_id, o.symbol, o.side, qty, price, self.model.maker_fee, ts, "", o)]

    def _protective(self, s: str, t: int, ts: int) -> list[Fill]:
        stop, take = self.protect[s]
        held = self.holdings.get(s, 0.0)
        if held <= 0:
            del self.protect[s]
            return []
        ser = self.data.series[s]
        o, h, lo = ser.open.item(t), ser.high.item(t), ser.low.item(t)  # float64: Python floats
        if not all(math.isfinite(x) for x in (o, h, lo)):
            return []
        kind, px = "", 0.0
        if stop is not None and lo <= stop:  # the stop first, when both are touched
            kind, px = "stop_loss", min(o, stop)
        elif take is not None and h >= take:
            kind, px = "take_profit", max(o, take)
        if not kind:
            return []
        if kind == "stop_loss":
            slip = self.spread_at(s, t) / 2 + self.model.slippage
            self.slippage_paid += px * slip * held
            px *= 1 - slip
        del self.protect[s]
        self._n += 1
        cid = f"sim-{kind}-{self._n}"
        return [self._book(cid, s, Side.SELL, held, px, self.model.taker_fee, ts, kind, None)]

    def _book(self, cid: str, s: str, side: Side, qty: float, px: float, fee_rate: float, ts: int,
              kind: str, o: OrderRequest | None) -> Fill:
        fee = qty * px * fee_rate
        self.fees_paid += fee
        if side is Side.BUY:
            self.cash -= qty * px + fee
            self.holdings[s] = self.holdings.get(s, 0.0) + qty
            if o is not None and (o.stop is not None or o.take is not None):
                # distances were fixed at the decision and are measured from the fill
                stop = px - (o.ref_price - o.stop) if o.stop is not None else None
                take = px + (o.take - o.ref_price) if o.take is not None else None
                self.protect[s] = (stop, take)
        else:
            self.cash += qty * px - fee
            self.holdings[s] = self.holdings.get(s, 0.0) - qty
            if self.holdings[s] <= 1e-12 * max(qty, 1.0):
                self.holdings[s] = 0.0
                self.protect.pop(s, None)
        self._n += 1
        f = Fill(f"sim-{self._n}", cid, s, side, qty, px, fee, ts, kind)
        self.fills.append(f)
        return f


def _floor(qty: float, m: MarketRules | None) -> float:
    if m is None or m.step_size <= 0:
        return qty
    return math.floor(qty / m.step_size + 1e-9) * m.step_size
