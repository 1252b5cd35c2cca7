"""The guard: every order passes one gate before it may leave, and every denial one path.

:class:`Guard` runs a registry of small checks on the concrete order (quantity and price
as they would be sent). A check either passes, adjusts the order (rounding to the
exchange's increments, clipping to the maximum notional) or denies it through
:meth:`Guard.deny`, the single place a denial is made, with a stable reason code.

Some checks protect only entries (spread, price collar, minimum trade): a wide spread must
never keep a stop-loss from closing a position. The kill switch, trading state, product
status, bad-tick filter, exchange minimums, order rate and duplicate ids apply to all.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from policyctl.records import fast_init
from policyctl.runtime.model import Bar, MarketRules, Quote, Side, TradingState


@fast_init
@dataclass(frozen=True, slots=True)
class Draft:
    """An order on its way out: what the engine decided, before it is final."""

    client_id: str
    symbol: str
    side: Side
    qty: float
    price: float | None  # limit price, None for market
    ref_price: float
    reduce_only: bool
    kind: str
    rule: str
    ceiling: float = math.inf  # the most notional the caps allow (rounding up may not pass it)

    @property
    def entry(self) -> bool:
        return not self.reduce_only

    def resized(self, qty: float, price: float | None) -> Draft:
        """The same order with another quantity and limit price (``dataclasses.replace``, but
        without its introspection: every order that leaves is rounded through here)."""
        return Draft(self.client_id, self.symbol, self.side, qty, price, self.ref_price, self.reduce_only,
                     self.kind, self.rule, self.ceiling)


@dataclass
class GuardContext:
    now: int
    mode: str  # dry-run | paper | live
    live_armed: bool
    trading_state: TradingState
    kill_switch: bool
    settings: dict[str, float]
    flags: dict[str, object]
    fee: float
    market: MarketRules | None
    quote: Quote | None
    bar: Bar | None
    last_trusted: float | None
    avg_volume: float | None
    order_times: list[int] = field(default_factory=list)
    sent_ids: Container[str] = field(default_factory=set)


@fast_init
@dataclass(frozen=True, slots=True)
class Denial:
    code: str  # stable reason code, e.g. "stale_quote"
    check: str
    message: str


@fast_init
@dataclass(frozen=True, slots=True)
class Verdict:
    draft: Draft
    denial: Denial | None
    notes: tuple[str, ...]
    qty_text: str = ""
    price_text: str | None = None

    @property
    def ok(self) -> bool:
        return self.denial is None


class _Deny(Exception):
    def __init__(self, denial: Denial):
        self.denial = denial


Check = Callable[["Guard", Draft, GuardContext, list[str]], Draft]
# the registry, in order: the checks an entry meets, and those an exit meets (every check
# but the entries-only ones)
_FOR_ENTRIES: list[Check] = []
_FOR_EXITS: list[Check] = []


def check(name: str, entries_only: bool = False) -> Callable[[Check], Check]:
    """Register a check (``name`` labels it, as its denials do)."""

    def register(f: Check) -> Check:
        _FOR_ENTRIES.append(f)
        if not entries_only:
            _FOR_EXITS.append(f)
        return f

    return register


class Guard:
    """Runs every registered check; the only place an order is denied."""

    def deny(self, check_name: str, code: str, message: str) -> None:
        raise _Deny(Denial(code, check_name, message))

    def check(self, draft: Draft, ctx: GuardContext) -> Verdict:
        notes: list[str] = []
        try:
            for fn in _FOR_EXITS if draft.reduce_only else _FOR_ENTRIES:
                draft = fn(self, draft, ctx, notes)
        except _Deny as d:
            return Verdict(draft, d.denial, tuple(notes))
        step = ctx.market.step_size if ctx.market else 0.0
        tick = ctx.market.tick_size if ctx.market else 0.0
        qty_text = _fmt(draft.qty, step)
        price_text = _fmt(draft.price, tick) if draft.price is not None else None
        return Verdict(draft, None, tuple(notes), qty_text, price_text)


@functools.lru_cache(maxsize=1024)
def _increment(inc: float) -> Decimal:
    return Decimal(repr(inc))


@functools.lru_cache(maxsize=1024)
def _places(inc: float) -> Decimal:
    """The quantum a value on the grid of ``inc`` is written with (1 for whole increments)."""
    q = _increment(inc).normalize()
    return q if q.as_tuple().exponent < 0 else Decimal(1)  # type: ignore[operator]


@functools.lru_cache(maxsize=1024)
def _decimals(inc: float) -> int:
    """How many decimals :func:`_places` writes (0 for whole increments, and without a grid)."""
    return -_places(inc).as_tuple().exponent if inc > 0 else 0  # type: ignore[operator]


@functools.lru_cache(maxsize=1024)
def _ratio(inc: float) -> tuple[int, int] | None:
    """The increment's decimal text as an exact fraction ``num / den``, when it is small
    enough for a grid point ``n * num / den`` to be computed exactly in integers."""
    num, den = _increment(inc).as_integer_ratio()
    return (num, den) if 0 < num < 10**6 and den <= 10**18 else None


def _fmt(x: float, inc: float) -> str:
    """``x`` (a value on the grid of ``inc``) as the exchange reads it: the decimal text of
    ``repr(x)``, rounded half-even to the grid's decimals, without trailing zeros."""
    s = repr(x)
    if "e" not in s and "n" not in s and len(s) - s.index(".") - 1 <= _decimals(inc):
        return s.rstrip("0").rstrip(".")  # nothing to round: Decimal's normalize, without Decimal
    d = Decimal(s)
    if inc > 0:
        d = d.quantize(_places(inc), rounding=ROUND_HALF_EVEN)
    return format(d.normalize(), "f")


def _round(x: float, inc: float, mode: str) -> float:
    """``x`` rounded down (``ROUND_FLOOR``) or up (``ROUND_CEILING``) to the grid of ``inc``,
    in decimal: ``0.3`` is on the grid of ``0.1``. When ``x / inc`` is clearly not on the
    grid (1e-9 away, against the division's error of about 1e-16), the float quotient has
    the same floor and ceiling as the decimal one, and the grid point is computed exactly
    in integers (a correctly rounded division, as ``float(Decimal)`` is); near the grid,
    the decimals decide."""
    if inc <= 0:
        return x
    ratio = _ratio(inc)
    if ratio is not None:
        y = x / inc
        if -1e15 < y < 1e15:
            k = round(y)
            if abs(y - k) > 1e-9 * (y if y > 1.0 else -y if y < -1.0 else 1.0):
                num, den = ratio
                if mode == ROUND_FLOOR:
                    return math.floor(y) * num / den
                if mode == ROUND_CEILING:
                    return math.ceil(y) * num / den
    q = _increment(inc)
    n = (Decimal(repr(x)) / q).to_integral_value(rounding=mode)
    return float(n * q)


# ---- the checks, in the order they run ------------------------------------------------


@check("mode")
def _mode(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    if c.mode == "live" and not c.live_armed:
        g.deny("mode", "live_not_armed", "live trading needs the explicit opt-in (flag and environment)")
    return d


@check("kill_switch")
def _kill(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    if c.kill_switch:
        g.deny("kill_switch", "kill_switch", "the kill switch is engaged")
    return d


@check("trading_state")
def _state(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    if c.trading_state is TradingState.HALTED:
        g.deny("trading_state", "halted", "trading is halted")
    if c.trading_state is not TradingState.ACTIVE and d.entry:
        g.deny("trading_state", c.trading_state.value,
               f"trading state is {c.trading_state.value}: only exposure-reducing orders")
    return d


@check("product_status")
def _product(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    status = c.market.status if c.market else "trading"
    if status in ("halted", "cancel_only"):
        g.deny("product_status", f"product_{status}", f"the exchange reports `{d.symbol}` as {status}")
    if status == "post_only" and d.price is None:
        g.deny("product_status", "product_post_only", f"`{d.symbol}` accepts only post-only limit orders")
    return d


@check("quote_age")
def _quote_age(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    max_age = c.settings.get("max_quote_age")
    if max_age is None:
        return d
    if c.quote is None:
        g.deny("quote_age", "no_quote", f"no quote for `{d.symbol}`")
    assert c.quote is not None
    age = (c.now - c.quote.ts) / 1000.0
    if age > max_age:
        g.deny("quote_age", "stale_quote", f"quote is {age:.0f}s old (max {max_age:.0f}s)")
    return d


@check("spread", entries_only=True)
def _spread(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    max_spread = c.settings.get("max_spread")
    if max_spread is None or c.quote is None:
        return d
    q = c.quote
    if not (q.bid > 0 and q.ask >= q.bid):
        g.deny("spread", "bad_quote", f"quote is not sane (bid {q.bid}, ask {q.ask})")
    spread = (q.ask - q.bid) / q.mid
    if spread > max_spread:
        g.deny("spread", "wide_spread", f"spread {spread:.4%} is above {max_spread:.4%}")
    return d


@check("bad_tick")
def _bad_tick(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    limit = c.settings.get("bad_tick")
    if limit is None or c.last_trusted is None or c.last_trusted <= 0:
        return d
    latest = c.bar.close if c.bar is not None else d.ref_price  # the market's latest print
    move = abs(latest / c.last_trusted - 1.0)
    if move <= limit:
        return _bad_quote(g, d, c, limit, c.last_trusted)
    confirm = c.settings.get("bad_tick_volume", 3.0)
    volume = c.bar.volume if c.bar is not None else math.nan
    if c.avg_volume and c.avg_volume > 0 and volume >= confirm * c.avg_volume:
        notes.append(f"price moved {move:.2%} with {volume / c.avg_volume:.1f}x volume: trusted")
        return _bad_quote(g, d, c, limit, latest)
    g.deny("bad_tick", "untrusted_price",
           f"price moved {move:.2%} from the last trusted {c.last_trusted:.6g} without volume confirmation")
    return d


def _bad_quote(g: Guard, d: Draft, c: GuardContext, limit: float, trusted: float) -> Draft:
    """The quote's last price is a print too; a ticker has no volume to confirm a jump."""
    q = c.quote
    if q is not None and math.isfinite(q.last) and q.last > 0:
        move = abs(q.last / trusted - 1.0)
        if move > limit:
            g.deny("bad_tick", "untrusted_price",
                   f"the quote's last price {q.last:.6g} is {move:.2%} from the trusted {trusted:.6g}")
    return d


@check("price_collar", entries_only=True)
def _collar(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    collar = c.settings.get("price_collar")
    if collar is None:
        return d
    if c.last_trusted is None or c.last_trusted <= 0:
        g.deny("price_collar", "no_trusted_price", "no trusted price to collar against")
    assert c.last_trusted is not None
    px = d.price if d.price is not None else d.ref_price
    dev = abs(px / c.last_trusted - 1.0)
    if dev > collar:
        g.deny("price_collar", "price_collar", f"price {px:.6g} is {dev:.2%} from the last trusted "
               f"{c.last_trusted:.6g} (collar {collar:.2%})")
    return d


@check("max_notional", entries_only=True)
def _max_notional(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    cap = c.settings.get("max_order_notional")
    if cap is not None and d.qty * d.ref_price > cap:
        qty = cap / d.ref_price
        notes.append(f"clipped to the max order notional {cap:g}: qty {d.qty:.8g} -> {qty:.8g}")
        d = d.resized(qty, d.price)
    return d


@check("increments")
def _increments(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    m = c.market or MarketRules()
    isfinite = math.isfinite
    if not (isfinite(m.tick_size) and isfinite(m.step_size) and isfinite(m.min_qty) and isfinite(m.min_notional)
            and m.tick_size >= 0 and m.step_size >= 0 and m.min_qty >= 0 and m.min_notional >= 0):
        g.deny("increments", "bad_market_rules", f"the exchange's rules for `{d.symbol}` are not sane "
               f"(tick {m.tick_size}, step {m.step_size}, min qty {m.min_qty}, min notional {m.min_notional})")
    if not (math.isfinite(d.qty) and d.qty > 0):
        g.deny("increments", "bad_quantity", f"quantity {d.qty} is not a positive number")
    qty = _round(d.qty, m.step_size, ROUND_FLOOR)
    price = d.price
    if price is not None:
        price = _round(price, m.tick_size, ROUND_FLOOR if d.side is Side.BUY else ROUND_CEILING)
    px = price if price is not None else d.ref_price
    min_notional = m.min_notional
    if qty <= 0 or qty < m.min_qty or qty * px < min_notional:
        allowed = bool(c.flags.get("round_up_min_notional", False)) and d.entry
        ceiling = min(d.ceiling, c.settings.get("max_order_notional", math.inf))
        need = _round(max(m.min_qty, min_notional * (1 + c.fee) / px), m.step_size, ROUND_CEILING) \
            if px > 0 else math.inf
        if allowed and need * px <= ceiling:
            qty = need
            notes.append(f"rounded up to the exchange minimum: qty {qty:.8g}")
        else:
            why = " (rounding up would pass a cap)" if allowed else ""
            g.deny("increments", "below_minimum",
                   f"qty {qty:.8g} (notional {qty * px:.4g}) is below the exchange minimum "
                   f"(min qty {m.min_qty:g}, min notional {min_notional:g}){why}")
    if qty != d.qty or price != d.price:
        d = d.resized(qty, price)
    return d


@check("min_trade", entries_only=True)
def _min_trade(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    m = c.settings.get("min_trade")
    if m is not None and d.qty * d.ref_price < m:
        g.deny("min_trade", "below_min_trade", f"notional {d.qty * d.ref_price:.4g} is below min_trade {m:g}")
    return d


@check("order_rate")
def _rate(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    n = c.settings.get("max_orders")
    window = c.settings.get("order_window", 60.0)
    if n is None:
        return d
    since = c.now - int(window * 1000)
    recent = len(c.order_times) - bisect.bisect_left(c.order_times, since)  # times are in order
    if recent >= n:
        g.deny("order_rate", "rate_limited", f"{recent} orders in the last {window:g}s (max {n:g})")
    return d


@check("duplicate_id")
def _duplicate(g: Guard, d: Draft, c: GuardContext, notes: list[str]) -> Draft:
    if d.client_id in c.sent_ids:
        g.deny("duplicate_id", "duplicate_client_id", f"client order id `{d.client_id}` was already sent")
    return d
