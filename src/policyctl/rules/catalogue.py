"""The one catalogue of what a policy may name: snapshot fields and builtin functions.

The checker resolves names against it, the compiler takes each entry's evaluation class
from it, the lints use its value ranges, and ``docs/language.md`` is generated from it
(``policyctl docs``), so the documentation can never disagree with the implementation.

Fields come from two sources. *Market* fields (``close``, ``volume``) are per-symbol candle
series: they have history (``close[1]``) and feed indicators, and the simulator evaluates
everything built only from them over whole series at once. *State* fields (``equity``,
``position.pnl``) come from the account and the engine at the current tick: no history.
A field is either *per-symbol* (evaluated for the symbol a trigger runs on, or for the
symbol named with ``of``) or *portfolio-wide*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from policyctl.rules.types import BOOL, DURATION, MONEY, NUMBER, PERCENT, Type

INF = math.inf


class Scope(str, Enum):
    SYMBOL = "symbol"
    PORTFOLIO = "portfolio"


class Source(str, Enum):
    MARKET = "market"
    STATE = "state"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: Type  # MONEY fields are in the quote currency
    scope: Scope
    source: Source
    doc: str
    range: tuple[float, float] = (-INF, INF)
    of: str | None = None  # what `of "..."` selects for this field: "symbol" or "theme"


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kind: str  # "series" (market series), "window" (bars or a duration), "value", "duration", "bool"
    doc: str = ""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str
    args: tuple[Arg, ...]
    result: Type | str  # a Type, or "arg0" (the type of the first argument), "common"
    category: str  # "indicator" | "math" | "window" | "aggregate"
    doc: str
    example: str
    range: tuple[float, float] = (-INF, INF)
    variadic: bool = False  # the last argument repeats (min, max)
    min_args: int = 0

    @property
    def arity(self) -> str:
        if self.variadic:
            return f"at least {self.min_args}"
        return str(len(self.args))


def _f(name: str, type: Type, scope: Scope, source: Source, doc: str, **kw: object) -> FieldSpec:
    return FieldSpec(name, type, scope, source, doc, **kw)  # type: ignore[arg-type]


S, P = Scope.SYMBOL, Scope.PORTFOLIO
M, ST = Source.MARKET, Source.STATE
POS = (0.0, INF)
FRACTION = (0.0, 1.0)

FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in [
        _f("open", MONEY, S, M, "open price of the current bar", range=POS, of="symbol"),
        _f("high", MONEY, S, M, "highest price of the current bar", range=POS, of="symbol"),
        _f("low", MONEY, S, M, "lowest price of the current bar", range=POS, of="symbol"),
        _f("close", MONEY, S, M, "close price of the current bar", range=POS, of="symbol"),
        _f("volume", NUMBER, S, M, "traded volume of the current bar, in the base currency",
           range=POS, of="symbol"),
        _f("spread", PERCENT, S, ST, "bid-ask spread of the latest quote, relative to mid",
           range=POS, of="symbol"),
        _f("data_age", DURATION, S, ST, "age of the newest candle or quote for the symbol",
           range=POS, of="symbol"),
        _f("position.open", BOOL, S, ST, "whether a position is open on the symbol", of="symbol"),
        _f("position.size", NUMBER, S, ST, "position quantity, in the base currency", range=POS,
           of="symbol"),
        _f("position.value", MONEY, S, ST, "position quantity times the last price", range=POS,
           of="symbol"),
        _f("position.entry", MONEY, S, ST, "average entry price of the open position", range=POS,
           of="symbol"),
        _f("position.pnl", PERCENT, S, ST, "unrealized return of the position: last price over "
           "entry price, minus 1", range=(-1.0, INF), of="symbol"),
        _f("position.pnl_amount", MONEY, S, ST, "unrealized profit or loss of the position",
           of="symbol"),
        _f("position.age", DURATION, S, ST, "time since the position was opened", range=POS,
           of="symbol"),
        _f("position.bars", NUMBER, S, ST, "bars since the position was opened (0 on the entry "
           "bar)", range=POS, of="symbol"),
        _f("exposure.symbol", PERCENT, S, ST, "value of the symbol's position and pending buys, "
           "as a share of equity", range=POS, of="symbol"),
        _f("exposure.theme", PERCENT, S, ST, "value of positions and pending buys in the symbol's "
           "theme (or the theme named with `of`), as a share of equity", range=POS, of="theme"),
        _f("product.halted", BOOL, S, ST, "the exchange has halted trading on the symbol",
           of="symbol"),
        _f("product.cancel_only", BOOL, S, ST, "the exchange accepts only cancels on the symbol",
           of="symbol"),
        _f("product.post_only", BOOL, S, ST, "the exchange accepts only post-only orders",
           of="symbol"),
        _f("equity", MONEY, P, ST, "cash plus the marked value of all positions", range=POS),
        _f("cash", MONEY, P, ST, "free cash in the quote currency", range=POS),
        _f("exposure.total", PERCENT, P, ST, "value of all positions and pending buys, as a share "
           "of equity", range=POS),
        _f("positions.open", NUMBER, P, ST, "number of open positions", range=POS),
        _f("orders.open", NUMBER, P, ST, "number of open orders", range=POS),
        _f("drawdown", PERCENT, P, ST, "how far equity is below its peak (0% at the peak)",
           range=FRACTION),
        _f("kill_switch", BOOL, P, ST, "the operator's kill switch is engaged"),
    ]
}

# Names bound by the policy itself rather than the snapshot.
CONSTANTS: dict[str, tuple[Type, str]] = {
    "timeframe": (DURATION, "the policy's candle timeframe (`market.timeframe`)"),
}

_SERIES = Arg("series", "series", "a market series: `close`, `high - low`, `close of \"BTC/USDT\"`")
_WINDOW = Arg("window", "window", "bars (`20`) or a duration that is a multiple of the timeframe")
_DUR = Arg("window", "duration", "a duration (`1h`, `1d`)")

FUNCTIONS: dict[str, FunctionSpec] = {
    f.name: f
    for f in [
        FunctionSpec("sma", (_SERIES, _WINDOW), "arg0", "indicator",
                     "simple moving average over the window", "sma(close, 20)"),
        FunctionSpec("ema", (_SERIES, _WINDOW), "arg0", "indicator",
                     "exponential moving average, alpha = 2 / (window + 1), seeded with the SMA",
                     "ema(close, 12)"),
        FunctionSpec("rsi", (_SERIES, _WINDOW), NUMBER, "indicator",
                     "Wilder's relative strength index, 0 to 100", "rsi(close, 14)",
                     range=(0.0, 100.0)),
        FunctionSpec("atr", (_WINDOW,), MONEY, "indicator",
                     "Wilder's average true range of the symbol's candles, in price units",
                     "atr(14)", range=POS),
        FunctionSpec("stdev", (_SERIES, _WINDOW), "arg0", "indicator",
                     "population standard deviation over the window", "stdev(close, 20)",
                     range=POS),
        FunctionSpec("highest", (_SERIES, _WINDOW), "arg0", "indicator",
                     "highest value over the window, the current bar included", "highest(high, 20)"),
        FunctionSpec("lowest", (_SERIES, _WINDOW), "arg0", "indicator",
                     "lowest value over the window, the current bar included", "lowest(low, 20)"),
        FunctionSpec("change", (_SERIES, _WINDOW), PERCENT, "indicator",
                     "relative change over the window: `x / x[window] - 1`", "change(close, 1h)",
                     range=(-1.0, INF)),
        FunctionSpec("crosses_above", (Arg("a", "series"), Arg("b", "series")), BOOL, "indicator",
                     "`a` is above `b` on this bar and was at or below it on the previous one "
                     "(either may be a constant level)",
                     "crosses_above(sma(close, 20), sma(close, 50))"),
        FunctionSpec("crosses_below", (Arg("a", "series"), Arg("b", "series")), BOOL, "indicator",
                     "`a` is below `b` on this bar and was at or above it on the previous one "
                     "(either may be a constant level)",
                     "crosses_below(rsi(close, 14), 70)"),
        FunctionSpec("min", (Arg("a", "value"), Arg("b", "value")), "common", "math",
                     "the smallest of its arguments (all of one unit)", "min(2%, 0.5 * drawdown)",
                     variadic=True, min_args=2),
        FunctionSpec("max", (Arg("a", "value"), Arg("b", "value")), "common", "math",
                     "the largest of its arguments (all of one unit)", "max(atr(14), 1 USDT)",
                     variadic=True, min_args=2),
        FunctionSpec("abs", (Arg("x", "value"),), "arg0", "math", "absolute value",
                     "abs(change(close, 1h))", range=POS),
        FunctionSpec("clamp", (Arg("x", "value"), Arg("lo", "value"), Arg("hi", "value")),
                     "common", "math", "`x` limited to the range `lo` to `hi`",
                     "clamp(0.5 * atr(14), 1 USDT, 50 USDT)"),
        FunctionSpec("pnl", (_DUR,), PERCENT, "window",
                     "realized and unrealized profit or loss over the window, as a share of "
                     "equity at the window's start", "pnl(1d)"),
        FunctionSpec("pnl_amount", (_DUR,), MONEY, "window",
                     "realized and unrealized profit or loss over the window", "pnl_amount(7d)"),
        FunctionSpec("trades", (_DUR,), NUMBER, "window",
                     "orders filled over the window (entries and exits)", "trades(1h)", range=POS),
        FunctionSpec("stoplosses", (_DUR,), NUMBER, "window",
                     "positions closed by a stop-loss over the window", "stoplosses(6h)",
                     range=POS),
        FunctionSpec("api_errors", (_DUR,), NUMBER, "window",
                     "failed exchange requests over the window", "api_errors(5m)", range=POS),
        FunctionSpec("any", (Arg("condition", "bool"),), BOOL, "aggregate",
                     "true when the per-symbol condition holds for at least one symbol",
                     "any(change(close, 1h) <= -8%)"),
        FunctionSpec("all", (Arg("condition", "bool"),), BOOL, "aggregate",
                     "true when the per-symbol condition holds for every symbol",
                     "all(data_age > 2 * timeframe)"),
    ]
}

# Words of the language that cannot be used as names of params or rules.
KEYWORDS = frozenset(
    "and or not of true false buy sell close risk stop take per for when then on trigger cap "
    "breaker param clip block halt pause reduce_only flatten alert equity cash".split()
)

# Window functions whose counts a cap can limit (`trades(1h) <= 5`), and state fields a cap
# can limit (`exposure.total <= 25%`): the engine knows how an order changes each of them.
CAPPABLE_FIELDS = frozenset(
    {"exposure.total", "exposure.symbol", "exposure.theme", "positions.open", "orders.open",
     "position.value"}
)
CAPPABLE_FUNCTIONS = frozenset({"trades"})

