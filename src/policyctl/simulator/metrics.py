"""Performance metrics of a simulation: from the equity curve, the fills and the bar times.

Everything here is a pure function of numbers the simulator already produced, so the same
run always gives the same metrics. Conventions (also in ``docs/simulator.md``):

* **Equity** is marked at each bar's close; the starting cash is the equity "before bar 0".
  Per-bar returns are ``e[t] / e[t-1] - 1`` with ``e[-1]`` = the starting cash.
* **Annualisation**: crypto trades around the clock, so a year is 365 days of bars:
  ``bars_per_year = 365 * 86_400_000 / timeframe_ms``. The risk-free rate is 0.
* **Sharpe** = mean(r) / std(r, ddof=1) * sqrt(bars_per_year); **Sortino** = mean(r) /
  sqrt(mean(min(r, 0)^2)) * sqrt(bars_per_year) (downside deviation against a 0 target over
  all bars). Both are None when undefined (fewer than two bars, no variation, no losing bar).
* **CAGR** compounds the total return over the data's span (first bar's open to the last
  bar's close). It is meaningless over a few days; read it with the span.
* **Max drawdown** is the largest fall from a running peak of the equity (the starting cash
  counts as a peak), as a positive fraction, with the bars of the peak, the trough and the
  recovery (None if the equity never got back to the peak).
* **Trades** are round trips per symbol, from flat to flat: every buy while flat opens one,
  more buys add to it, sells reduce it, and the sell that brings it back to zero closes it.
  Entry and exit prices are quantity-weighted averages; the pnl is sell proceeds minus buy
  cost minus every fee of the trip; the return is the pnl over the buy cost (fees included).
  The exit kind is the closing fill's ``kind`` (``stop_loss`` / ``take_profit`` filled by the
  exchange) or ``signal`` for an order the engine sent.
* **Exposure** is the share of bars during which any position was held: from the bar of the
  entry fill to the bar of the exit fill, both included, except that an exit at a bar's open
  does not count that bar.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from policyctl.runtime.model import Fill, Side

__all__ = [
    "DAY_MS",
    "YEAR_MS",
    "Drawdown",
    "Metrics",
    "OpenPosition",
    "Trade",
    "bar_index",
    "bar_returns",
    "bars_per_year",
    "build_trades",
    "cagr",
    "compute_metrics",
    "drawdown_series",
    "exposure_mask",
    "last_closes",
    "max_drawdown",
    "sharpe",
    "sortino",
    "trade_dict",
]

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
_FLAT = 1e-9  # a position is closed when what is left is below this share of what was bought


@dataclass(frozen=True)
class Trade:
    """One round trip of one symbol, flat to flat."""

    symbol: str
    entry_bar: int
    entry_ts: int  # ms of the first buy fill
    entry_price: float  # quantity-weighted average buy price
    exit_bar: int
    exit_ts: int  # ms of the closing sell fill
    exit_price: float  # quantity-weighted average sell price
    qty: float  # bought (= sold)
    fees: float  # every fee of the trip, quote currency
    pnl: float  # proceeds - cost - fees
    ret: float  # pnl / (buy cost + buy fees)
    exit_kind: str  # signal | stop_loss | take_profit
    fills: int
    exit_at_open: bool = False  # the closing fill was at the exit bar's open

    @property
    def bars_held(self) -> int:
        return self.exit_bar - self.entry_bar


@dataclass(frozen=True)
class OpenPosition:
    """A round trip still open after the last bar, marked at the last known close."""

    symbol: str
    qty: float
    entry_bar: int
    entry_ts: int
    entry_price: float
    cost: float  # buy cost + fees - proceeds of partial sells so far
    mark_price: float | None
    unrealized_pnl: float | None


@dataclass(frozen=True)
class Drawdown:
    """The deepest peak-to-trough fall; bars are None when the peak was the starting cash."""

    depth: float  # positive fraction of the peak
    peak_bar: int | None  # bar at whose close the peak was marked (None: the starting cash)
    trough_bar: int | None
    recovery_bar: int | None  # first bar back at or above the peak
    peak_equity: float
    trough_equity: float


@dataclass
class Metrics:
    initial_equity: float
    final_equity: float
    total_return: float
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    volatility: float | None  # annualised std of per-bar returns
    drawdown: Drawdown
    trades: list[Trade]
    open_positions: list[OpenPosition]
    bars: int
    exposed_bars: int
    span_ms: int
    bars_per_year: float
    fees: float
    slippage: float
    fills: int
    exits: dict[str, int] = field(default_factory=dict)

    # -- trade statistics --
    @property
    def wins(self) -> list[Trade]:
        return [t for t in self.trades if t.pnl > 0]

    @property
    def losses(self) -> list[Trade]:
        return [t for t in self.trades if t.pnl <= 0]

    @property
    def win_rate(self) -> float | None:
        return len(self.wins) / len(self.trades) if self.trades else None

    @property
    def gross_profit(self) -> float:
        return math.fsum(t.pnl for t in self.wins)

    @property
    def gross_loss(self) -> float:
        return -math.fsum(t.pnl for t in self.losses)

    @property
    def profit_factor(self) -> float | None:
        """Gross profit / gross loss; None when nothing was lost (it would be infinite)."""
        if self.gross_loss <= 0:
            return None
        return self.gross_profit / self.gross_loss

    @property
    def exposure(self) -> float:
        return self.exposed_bars / self.bars if self.bars else 0.0

    def summary(self) -> dict[str, object]:
        """The flat figures of the report's ``summary`` (times are left to the caller)."""
        wins, losses = self.wins, self.losses
        dd = self.drawdown
        return {
            "initial_equity": self.initial_equity,
            "final_equity": self.final_equity,
            "total_return": self.total_return,
            "cagr": self.cagr,
            "sharpe": self.sharpe,
            "sortino": self.sortino,
            "volatility": self.volatility,
            "max_drawdown": dd.depth,
            "max_drawdown_peak_bar": dd.peak_bar,
            "max_drawdown_trough_bar": dd.trough_bar,
            "max_drawdown_recovery_bar": dd.recovery_bar,
            "trades": len(self.trades),
            "wins": len(wins),
            "losses": len(losses),
            "win_rate": self.win_rate,
            "profit_factor": self.profit_factor,
            "gross_profit": self.gross_profit,
            "gross_loss": self.gross_loss,
            "net_trade_pnl": math.fsum(t.pnl for t in self.trades),
            "avg_win": _mean([t.pnl for t in wins]),
            "avg_loss": _mean([t.pnl for t in losses]),
            "avg_trade_pnl": _mean([t.pnl for t in self.trades]),
            "avg_trade_return": _mean([t.ret for t in self.trades]),
            "best_trade_return": max((t.ret for t in self.trades), default=None),
            "worst_trade_return": min((t.ret for t in self.trades), default=None),
            "avg_bars_held": _mean([float(t.bars_held) for t in self.trades]),
            "exits": dict(sorted(self.exits.items())),
            "exposure": self.exposure,
            "exposed_bars": self.exposed_bars,
            "bars": self.bars,
            "span_days": self.span_ms / DAY_MS,
            "bars_per_year": self.bars_per_year,
            "risk_free_rate": 0.0,
            "fees": self.fees,
            "slippage": self.slippage,
            "fills": self.fills,
            "open_positions": len(self.open_positions),
            "unrealized_pnl": math.fsum(p.unrealized_pnl or 0.0 for p in self.open_positions),
        }


def _mean(xs: Sequence[float]) -> float | None:
    return math.fsum(xs) / len(xs) if xs else None


# --------------------------------------------------------------------------------------
# time


def bars_per_year(timeframe_ms: int) -> float:
    """Bars in a 365-day year (crypto markets never close)."""
    return YEAR_MS / timeframe_ms


def bar_index(timestamps: np.ndarray, ts: int) -> int:
    """The bar whose interval ``[open, next open)`` holds ``ts`` (0 before the first bar)."""
    return max(int(np.searchsorted(timestamps, ts, side="right")) - 1, 0)


# --------------------------------------------------------------------------------------
# the equity curve


def bar_returns(equity: np.ndarray, initial: float) -> np.ndarray:
    """Per-bar simple returns, the first one against the starting equity; non-finite dropped."""
    e = np.concatenate([[float(initial)], np.asarray(equity, dtype=np.float64)])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = e[1:] / e[:-1] - 1.0
    return np.asarray(r[np.isfinite(r)], dtype=np.float64)


def sharpe(returns: np.ndarray, periods_per_year: float) -> float | None:
    """Annualised Sharpe ratio with a zero risk-free rate; None if undefined."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if not sd > 0:
        return None
    return float(np.mean(r)) / sd * math.sqrt(periods_per_year)


def sortino(returns: np.ndarray, periods_per_year: float) -> float | None:
    """Annualised Sortino ratio (downside deviation against 0, over all bars); None if undefined."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return None
    down = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if not down > 0:
        return None
    return float(np.mean(r)) / down * math.sqrt(periods_per_year)


def cagr(initial: float, final: float, span_ms: int) -> float | None:
    """Compound annual growth over ``span_ms``; -1 after a total loss; None if undefined."""
    if span_ms <= 0 or not initial > 0 or not math.isfinite(final):
        return None
    if final <= 0:
        return -1.0
    try:
        return math.exp(math.log(final / initial) * YEAR_MS / span_ms) - 1.0
    except OverflowError:
        return None


def _curve(equity: np.ndarray, initial: float) -> np.ndarray:
    """The starting cash then the equity, carried forward over non-finite marks."""
    e = np.concatenate([[float(initial)], np.asarray(equity, dtype=np.float64)])
    bad = ~np.isfinite(e)
    if bad.any():
        idx = np.where(bad, 0, np.arange(e.size))
        np.maximum.accumulate(idx, out=idx)
        e = e[idx]
    return e


def drawdown_series(equity: np.ndarray, initial: float) -> np.ndarray:
    """Per bar, the fall from the running peak (starting cash included), a fraction >= 0."""
    e = _curve(equity, initial)
    peak = np.maximum.accumulate(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = np.where(peak > 0, 1.0 - e / peak, 0.0)
    return np.asarray(np.maximum(dd[1:], 0.0), dtype=np.float64)


def max_drawdown(equity: np.ndarray, initial: float) -> Drawdown:
    e = _curve(equity, initial)
    peak = np.maximum.accumulate(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = np.where(peak > 0, 1.0 - e / peak, 0.0)
    k = int(np.argmax(dd))  # first deepest point
    depth = float(dd[k])
    if not depth > 0:
        return Drawdown(0.0, None, None, None, float(e[-1] if e.size else initial), float(e[-1]))
    p = int(np.flatnonzero(e[: k + 1] == peak[k])[-1])  # the last time the peak was marked
    after = np.flatnonzero(e[k + 1:] >= peak[k])
    rec = None if after.size == 0 else k + 1 + int(after[0]) - 1
    # positions in the curve are bar + 1 (the curve starts with the cash)
    return Drawdown(depth, p - 1 if p > 0 else None, k - 1, rec, float(peak[k]), float(e[k]))


# --------------------------------------------------------------------------------------
# fills to trades


@dataclass
class _Trip:
    symbol: str
    entry_bar: int
    entry_ts: int
    bought: float = 0.0
    sold: float = 0.0
    cost: float = 0.0  # qty * price of buys
    proceeds: float = 0.0
    fees: float = 0.0
    buy_fees: float = 0.0
    fills: int = 0

    @property
    def held(self) -> float:
        return self.bought - self.sold


def build_trades(fills: Sequence[Fill], timestamps: np.ndarray,
                 last_close: Mapping[str, float] | None = None) -> tuple[list[Trade], list[OpenPosition]]:
    """Round trips from fills (in the order they happened), and the positions left open.

    ``last_close`` (symbol -> last finite close) marks the open positions; without it they
    carry no unrealized pnl. A sell while flat (which a spot exchange never fills) is ignored.
    """
    ts_arr = np.asarray(timestamps, dtype=np.int64)
    open_trips: dict[str, _Trip] = {}
    trades: list[Trade] = []
    for f in fills:
        b = bar_index(ts_arr, f.ts)
        trip = open_trips.get(f.symbol)
        if f.side is Side.BUY:
            if trip is None:
                trip = open_trips[f.symbol] = _Trip(f.symbol, b, int(f.ts))
            trip.bought += f.qty
            trip.cost += f.qty * f.price
            trip.fees += f.fee
            trip.buy_fees += f.fee
            trip.fills += 1
            continue
        if trip is None:
            continue
        trip.sold += f.qty
        trip.proceeds += f.qty * f.price
        trip.fees += f.fee
        trip.fills += 1
        if trip.held > _FLAT * trip.bought:
            continue
        del open_trips[f.symbol]
        outlay = trip.cost + trip.buy_fees
        pnl = trip.proceeds - trip.cost - trip.fees
        at_open = bool(ts_arr.size) and int(ts_arr[b]) == int(f.ts)
        trades.append(Trade(
            symbol=f.symbol,
            entry_bar=trip.entry_bar,
            entry_ts=trip.entry_ts,
            entry_price=trip.cost / trip.bought if trip.bought else 0.0,
            exit_bar=b,
            exit_ts=int(f.ts),
            exit_price=trip.proceeds / trip.sold if trip.sold else 0.0,
            qty=trip.bought,
            fees=trip.fees,
            pnl=pnl,
            ret=pnl / outlay if outlay > 0 else 0.0,
            exit_kind=f.kind or "signal",
            fills=trip.fills,
            exit_at_open=at_open,
        ))
    still: list[OpenPosition] = []
    for sym in sorted(open_trips):
        trip = open_trips[sym]
        net_cost = trip.cost + trip.fees - trip.proceeds
        mark = None if last_close is None else last_close.get(sym)
        if mark is not None and not math.isfinite(mark):
            mark = None
        still.append(OpenPosition(
            symbol=sym,
            qty=trip.held,
            entry_bar=trip.entry_bar,
            entry_ts=trip.entry_ts,
            entry_price=trip.cost / trip.bought if trip.bought else 0.0,
            cost=net_cost,
            mark_price=mark,
            unrealized_pnl=None if mark is None else trip.held * mark - net_cost,
        ))
    return trades, still


def exposure_mask(trades: Sequence[Trade], open_positions: Sequence[OpenPosition], n: int) -> np.ndarray:
    """Per bar, True when any position was held at some point during it."""
    mask = np.zeros(n, dtype=bool)
    for t in trades:
        end = t.exit_bar - 1 if t.exit_at_open else t.exit_bar
        if end >= t.entry_bar:
            mask[t.entry_bar:end + 1] = True
    for p in open_positions:
        mask[p.entry_bar:] = True
    return mask


def last_closes(closes: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The last finite close of each series (NaN if it has none)."""
    out = {}
    for sym, arr in closes.items():
        a = np.asarray(arr, dtype=np.float64)
        ok = np.flatnonzero(np.isfinite(a))
        out[sym] = float(a[ok[-1]]) if ok.size else math.nan
    return out


# --------------------------------------------------------------------------------------
# everything


def compute_metrics(equity: np.ndarray, fills: Sequence[Fill], timestamps: np.ndarray, timeframe_ms: int,
                    initial: float, *, closes: Mapping[str, np.ndarray] | None = None,
                    fees: float | None = None, slippage: float = 0.0) -> Metrics:
    """All metrics of one run.

    ``fees`` defaults to the sum of the fills' fees; ``slippage`` (the cost of trading away
    from the reference price) cannot be told from the fills and is the simulator's figure.
    """
    eq = np.asarray(equity, dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.int64)
    n = int(ts.size)
    curve = _curve(eq, initial)
    final = float(curve[-1])
    span = int(ts[-1] - ts[0]) + int(timeframe_ms) if n else 0
    bpy = bars_per_year(timeframe_ms)
    r = bar_returns(eq, initial)
    vol = float(np.std(r, ddof=1)) * math.sqrt(bpy) if r.size >= 2 else None
    trades, still = build_trades(fills, ts, last_closes(closes) if closes is not None else None)
    exits = Counter(t.exit_kind for t in trades)
    return Metrics(
        initial_equity=float(initial),
        final_equity=final,
        total_return=final / initial - 1.0 if initial else 0.0,
        cagr=cagr(initial, final, span),
        sharpe=sharpe(r, bpy),
        sortino=sortino(r, bpy),
        volatility=vol,
        drawdown=max_drawdown(eq, initial),
        trades=trades,
        open_positions=still,
        bars=n,
        exposed_bars=int(exposure_mask(trades, still, n).sum()),
        span_ms=span,
        bars_per_year=bpy,
        fees=math.fsum(f.fee for f in fills) if fees is None else float(fees),
        slippage=float(slippage),
        fills=len(fills),
        exits=dict(exits),
    )


def trade_dict(t: Trade) -> dict[str, object]:
    d = asdict(t)
    d["bars_held"] = t.bars_held
    return d
