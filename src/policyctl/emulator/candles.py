"""Candles for replay: read the shared OHLCV CSVs and infer a permissive market for them.

CSV format (``shared/data/ohlcv``): header ``timestamp,open,high,low,close,volume``,
ISO-8601 UTC open times with a literal ``Z``; file names
``{exchange}_{BASE}-{QUOTE}[-{SETTLE}]_{timeframe}[_...].csv``.
"""

from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from .marketdata import INTERVAL_MS, Bar
from .markets import MarketSpec


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def read_csv(path: str | Path) -> list[Bar]:
    """Bars from one OHLCV CSV; an empty volume reads as 0."""
    with open(path, newline="") as fh:
        return [
            Bar(
                open_time=_ms(row["timestamp"]),
                open=Decimal(row["open"]),
                high=Decimal(row["high"]),
                low=Decimal(row["low"]),
                close=Decimal(row["close"]),
                volume=Decimal(row["volume"] or "0"),
            )
            for row in csv.DictReader(fh)
        ]


def describe_file(path: str | Path) -> tuple[str, str]:
    """``("XRP/ETH", "5m")`` from ``binance_XRP-ETH_5m.csv``."""
    parts = Path(path).stem.split("_")
    if len(parts) < 3:
        raise ValueError(f"{path}: expected {{exchange}}_{{BASE}}-{{QUOTE}}_{{timeframe}}.csv")
    assets = parts[1].split("-")
    if len(assets) < 2:
        raise ValueError(f"{path}: cannot read BASE-QUOTE from {parts[1]!r}")
    interval = parts[2]
    if interval not in INTERVAL_MS:
        raise ValueError(f"{path}: timeframe {interval!r} is not an emulated kline interval")
    return f"{assets[0]}/{assets[1]}", interval


def _places(values: list[Decimal]) -> int:
    """Most decimal places used by any value (at most 8, Binance's precision)."""
    exponents = [v.normalize().as_tuple().exponent for v in values if v]
    return min(8, max((-e for e in exponents if isinstance(e, int)), default=0))


def infer_market(symbol: str, bars: list[Bar]) -> MarketSpec:
    """A market whose tick and step fit the data's decimals, with loose limits."""
    tick = Decimal(1).scaleb(
        -max(_places([b.close for b in bars]), _places([b.open for b in bars]))
    )
    step = Decimal(1).scaleb(-_places([b.volume for b in bars]))
    top = max((b.high for b in bars), default=Decimal(1))
    return MarketSpec.create(
        symbol,
        tick_size=tick,
        min_price=tick,
        max_price=top * 100,
        step_size=step,
        min_qty=step,
        max_qty=Decimal(10) ** 9,
        market_max_qty=Decimal(10) ** 9,
        min_notional=tick * step,
    )
