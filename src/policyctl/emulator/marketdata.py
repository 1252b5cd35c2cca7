"""The price path of each symbol: quotes, depth, candles, and the 24h ticker statistics.

A test drives prices in one of two ways: ``set_price`` (bid/ask/last and 24h volume now),
or candles loaded per symbol and replayed one bar at a time.  Depth is synthesised around
bid/ask (``levels`` ticks deep) unless the test sets explicit levels.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from .errors import invalid_interval

INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
DAY_MS = 86_400_000
Level = tuple[Decimal, Decimal]


def interval_ms(interval: str) -> int:
    """Milliseconds of a Binance kline interval (``1M`` is not emulated: -1120)."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise invalid_interval() from None


@dataclass(frozen=True)
class Bar:
    """One candle; ``open_time`` is the bar's open, in epoch milliseconds."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass
class Quote:
    bid: Decimal
    ask: Decimal
    last: Decimal
    bid_qty: Decimal
    ask_qty: Decimal
    volume: Decimal
    open_24h: Decimal
    high_24h: Decimal
    low_24h: Decimal
    updates: int = 1


@dataclass
class Feed:
    """Everything the emulator knows about one symbol's market."""

    quote: Quote | None = None
    asks: list[Level] | None = None  # explicit depth, best first
    bids: list[Level] | None = None
    bars: list[Bar] = field(default_factory=list)
    bar_ms: int = 0
    cursor: int = -1  # index of the last applied bar
    frozen_ticker: dict[str, object] | None = None  # stale ticker payload
    late: tuple[int, int] = (0, 0)  # (bars, requests): the next requests' candles lag this many bars
    bad_ticks: deque[Decimal] = field(default_factory=deque)

    def set_quote(
        self,
        bid: Decimal,
        ask: Decimal,
        last: Decimal,
        volume: Decimal | None,
        bid_qty: Decimal,
        ask_qty: Decimal,
    ) -> None:
        if bid <= 0 or ask <= 0 or bid > ask:
            raise ValueError(f"need 0 < bid <= ask, got bid={bid} ask={ask}")
        q = self.quote
        if q is None:
            self.quote = Quote(
                bid, ask, last, bid_qty, ask_qty, volume or Decimal(0), last, last, last
            )
        else:
            q.bid, q.ask, q.last, q.bid_qty, q.ask_qty = bid, ask, last, bid_qty, ask_qty
            if volume is not None:
                q.volume = volume
            q.high_24h = max(q.high_24h, last)
            q.low_24h = min(q.low_24h, last)
            q.updates += 1
        self.asks = None
        self.bids = None

    def set_depth(self, bids: list[Level], asks: list[Level]) -> None:
        if not bids or not asks:
            raise ValueError("explicit depth needs at least one bid and one ask level")
        self.bids = sorted(bids, key=lambda lv: lv[0], reverse=True)
        self.asks = sorted(asks, key=lambda lv: lv[0])
        if self.quote is not None:
            self.quote.bid, self.quote.bid_qty = self.bids[0]
            self.quote.ask, self.quote.ask_qty = self.asks[0]

    def depth(self, tick: Decimal, levels: int) -> tuple[list[Level], list[Level]]:
        """``(bids, asks)``, best first: explicit levels, or ``levels`` ticks of bid/ask size."""
        if self.bids is not None and self.asks is not None:
            return list(self.bids), list(self.asks)
        q = self.quote
        if q is None:
            return [], []
        bids = [(q.bid - tick * i, q.bid_qty) for i in range(levels) if q.bid - tick * i > 0]
        asks = [(q.ask + tick * i, q.ask_qty) for i in range(levels)]
        return bids, asks

    # -- candles ---------------------------------------------------------------------

    def current_bar(self) -> Bar | None:
        return self.bars[self.cursor] if 0 <= self.cursor < len(self.bars) else None

    def next_open_time(self) -> int | None:
        nxt = self.cursor + 1
        return self.bars[nxt].open_time if nxt < len(self.bars) else None

    def window_stats(self, now_close: int) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(open, high, low, volume) of the applied bars inside the last 24 hours."""
        recent = [b for b in self.bars[: self.cursor + 1] if b.open_time >= now_close - DAY_MS]
        return (
            recent[0].open,
            max(b.high for b in recent),
            min(b.low for b in recent),
            sum((b.volume for b in recent), Decimal(0)),
        )

    def klines(self, interval: str, start: int | None, end: int | None, limit: int) -> list[Bar]:
        """Applied bars (never the future), resampled up to ``interval`` when it is coarser.

        Resampling stops at ``1d``: Binance aligns ``3d``/``1w`` bars differently from the
        epoch, so coarser or finer intervals than the loaded one answer an empty list.
        """
        step = interval_ms(interval)
        lag, requests = self.late
        if requests > 0:  # candles not closed at the exchange yet, for this request
            self.late = (lag, requests - 1)
        else:
            lag = 0
        bars = self.bars[: max(self.cursor + 1 - lag, 0)]
        if step != self.bar_ms:
            coarser = self.bar_ms and self.bar_ms < step <= DAY_MS
            bars = resample(bars, step) if coarser else []
        if start is not None:
            bars = [b for b in bars if b.open_time >= start]
        if end is not None:
            bars = [b for b in bars if b.open_time <= end]
        return bars[:limit] if start is not None else bars[-limit:]


def resample(bars: list[Bar], step: int) -> list[Bar]:
    """Aggregate bars into ``step``-aligned buckets (open of first, close of last)."""
    out: list[Bar] = []
    for b in bars:
        bucket = b.open_time - b.open_time % step
        if out and out[-1].open_time == bucket:
            last = out[-1]
            out[-1] = Bar(
                bucket,
                last.open,
                max(last.high, b.high),
                min(last.low, b.low),
                b.close,
                last.volume + b.volume,
            )
        else:
            out.append(Bar(bucket, b.open, b.high, b.low, b.close, b.volume))
    return out
