"""The market a simulation runs on: the embedded synthetic market, or candle files.

Shared by ``policyctl simulate`` and ``policyctl explain``. Without ``--data`` the market
is the seeded synthetic one, shaped to the policy (its symbols and timeframe). With data,
the files must hold the policy's timeframe and symbols; a one-symbol policy may run on a
one-symbol file of another pair (the series is relabelled, and the report says so).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from policyctl.rules.compiler import CompiledPolicy
from policyctl.simulator.data import DataError, MarketData, load, timeframe_to_ms
from policyctl.simulator.synthetic import synthetic_market

DEFAULT_BARS = 20_000


def parse_time(text: str) -> int:
    """``2024-01-31``, ``2024-01-31T12:00``, ``...Z`` or epoch milliseconds -> epoch ms."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"cannot read `{text}` as a time: use 2024-01-31, 2024-01-31T12:00Z or epoch ms",
                        None) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def market_for(cp: CompiledPolicy, data: list[str] | None, seed: int, bars: int | None = None,
               start: str | None = None, end: str | None = None) -> tuple[MarketData, list[str]]:
    """The market for a run, and notes about how it was matched to the policy."""
    tf = cp.policy.market.timeframe
    notes: list[str] = []
    if not data:
        md = synthetic_market(seed, bars=bars or DEFAULT_BARS, timeframe=tf, symbols=cp.symbols)
        notes.append(f"synthetic market: seed {seed}, {len(md.timestamps)} bars of {tf}")
    else:
        md = load([Path(p) for p in data])
        if md.timeframe_ms != timeframe_to_ms(tf):
            raise DataError(f"the data's bars are {md.timeframe or md.timeframe_ms}, the policy's "
                            f"timeframe is {tf}", None)
        missing = [s for s in cp.symbols if s not in md.series]
        if missing and len(cp.symbols) == 1 and len(md.series) == 1:
            (old,) = md.series
            new = cp.symbols[0]
            md = replace(md, series={new: replace(md.series[old], symbol=new)},
                         spreads={new: md.spreads[old]} if old in md.spreads else {})
            notes.append(f"data for {old} is simulated as {new}")
        elif missing:
            raise DataError(f"no candles for {', '.join(missing)} in the data (it has "
                            f"{', '.join(md.series) or 'nothing'})", None)
        else:
            md = replace(md, series={s: md.series[s] for s in cp.symbols},
                         spreads={s: v for s, v in md.spreads.items() if s in cp.symbols})
    if start or end:
        md = md.slice(parse_time(start) if start else None, parse_time(end) if end else None)
        if len(md.timestamps) == 0:
            raise DataError("no bars between --from and --to", None)
    return md, notes
