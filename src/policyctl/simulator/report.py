"""The simulation report: one JSON document per run, byte-identical for the same inputs.

:func:`build_report` turns a :class:`~policyctl.simulator.run.SimResult` into a JSON-able
dict; :func:`dumps_report` writes it canonically (sorted keys, floats rounded to
:data:`SIGNIFICANT_DIGITS` significant digits, ``-0`` and non-finite numbers normalised, a
trailing newline), so two runs of the same policy on the same data with the same seed give
the same bytes. Nothing here reads the clock: the report says when the *data* starts and
ends, never when it was produced.

Layout (``docs/simulator.md`` describes every field): ``format``/``version``, ``metadata``,
``summary``, ``trades``, ``open_positions``, ``breakers``, ``denials``, ``rejected``,
``events``, ``data_quality``, ``regression_keys`` and ``series``.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from policyctl.simulator.metrics import Metrics, compute_metrics, drawdown_series
from policyctl.timefmt import iso_millis

if TYPE_CHECKING:
    from policyctl.simulator.run import SimResult

__all__ = [
    "MAX_LISTED",
    "MAX_POINTS",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "SIGNIFICANT_DIGITS",
    "build_report",
    "canonical",
    "downsample_indices",
    "dumps_report",
    "iso_ms",
    "state_periods",
]

REPORT_FORMAT = "policyctl-simulation-report"
REPORT_VERSION = 1
#: Floats in the JSON keep this many significant digits.
SIGNIFICANT_DIGITS = 10
#: The ``series`` hold at most this many points.
MAX_POINTS = 2000
#: Longest list of gaps / bad bars per symbol written out (the counts are always complete).
MAX_LISTED = 200

_STATE_NAMES = {0: "active", 1: "paused", 2: "reduce_only", 3: "halted"}


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC (milliseconds only when there are any)."""
    return None if ms is None else iso_millis(ms)


# --------------------------------------------------------------------------------------
# building


def build_report(result: SimResult, meta: Mapping[str, object] | None = None) -> dict[str, object]:
    """The report of one simulation. ``meta`` (e.g. the command line) goes to ``metadata.run``."""
    data = result.data
    cp = result.policy
    cfg = result.config
    ts = np.asarray(data.timestamps, dtype=np.int64)
    n = int(ts.size)
    tf = int(data.timeframe_ms)
    symbols = tuple(cp.symbols)
    closes = {s: np.asarray(data.series[s].close, dtype=np.float64) for s in symbols if s in data.series}
    m = compute_metrics(result.equity, result.fills, ts, tf, cfg.cash, closes=closes,
                        fees=result.fees, slippage=result.slippage)

    def bar_open(b: int | None) -> str | None:
        return None if b is None or not 0 <= b < n else iso_ms(int(ts[b]))

    def bar_close(b: int | None) -> str | None:
        return None if b is None or not 0 <= b < n else iso_ms(int(ts[b]) + tf)

    summary = m.summary()
    dd = m.drawdown
    # a drawdown from the starting cash peaks "before the first bar": at the first bar's open
    summary["max_drawdown_peak"] = bar_close(dd.peak_bar) if dd.peak_bar is not None else (
        bar_open(0) if dd.depth > 0 else None)
    summary["max_drawdown_trough"] = bar_close(dd.trough_bar)
    summary["max_drawdown_recovery"] = bar_close(dd.recovery_bar)
    summary["cagr_note"] = "annualised over the data's span; unreliable under ~90 days"

    denials_total = int(sum(result.denials.values()))
    report: dict[str, object] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "metadata": _metadata(result, meta or {}, n, tf),
        "summary": summary,
        "trades": [_trade(t) for t in m.trades],
        "open_positions": [
            {"symbol": p.symbol, "qty": p.qty, "entry_bar": p.entry_bar, "entry_time": iso_ms(p.entry_ts),
             "entry_price": p.entry_price, "cost": p.cost, "mark_price": p.mark_price,
             "unrealized_pnl": p.unrealized_pnl}
            for p in m.open_positions
        ],
        "breakers": {
            "trips": [_trip(t) for t in result.breaker_trips],
            "periods": state_periods(np.asarray(result.state_codes), ts, tf, result.reasons),
            "bars_by_state": _bars_by_state(np.asarray(result.state_codes, dtype=np.int64)),
        },
        "denials": {
            "total": denials_total,
            "by_reason": [{"reason": r, "count": int(c)}
                          for r, c in sorted(result.denials.items(), key=lambda kv: (-kv[1], kv[0]))],
        },
        "rejected": _rejected(result.rejected),
        "events": {k: int(v) for k, v in sorted(result.events.items())},
        "data_quality": _data_quality(result, symbols),
        "regression_keys": _regression_keys(m, denials_total, len(result.breaker_trips)),
        "series": _series(result, m, symbols),
    }
    return report


def _metadata(result: SimResult, meta: Mapping[str, object], n: int, tf: int) -> dict[str, object]:
    from policyctl import __version__

    cp, data, cfg = result.policy, result.data, result.config
    ts = data.timestamps
    return {
        "policy": cp.policy.name,
        "policy_hash": cp.hash,
        "params": {k: cp.params[k] for k in sorted(cp.params)},
        "symbols": list(cp.symbols),
        "seed": cfg.seed,
        "initial_cash": cfg.cash,
        "timeframe": data.timeframe or cp.policy.market.timeframe,
        "timeframe_ms": tf,
        "bars": n,
        "first_bar": iso_ms(int(ts[0])) if n else None,
        "last_bar": iso_ms(int(ts[-1])) if n else None,
        "end": iso_ms(int(data.end_ms)) if n else None,
        "data": sorted(
            ({"path": s.path, "format": s.format, "sha256": s.sha256, "rows": s.rows, "symbol": s.symbol,
              "duplicates_dropped": s.duplicates_dropped, "reordered": s.reordered, "note": s.note}
             for s in data.sources),
            key=lambda d: (str(d["path"]), str(d["symbol"])),
        ),
        "fill_model": effective_fill_model(result),
        "markets": {s: asdict(r) for s, r in sorted(cfg.markets.items())},
        "decisions": result.decisions,
        "versions": {"policyctl": __version__, "python": platform.python_version(), "numpy": np.__version__},
        "run": dict(meta),
    }


def effective_fill_model(result: SimResult) -> dict[str, object]:
    """The fill model as the simulator used it: the policy's ``execution.fees`` override the config's."""
    d = dict(result.config.fill.describe())
    st = result.policy.settings
    d["taker_fee"] = st.get("fees.taker", d["taker_fee"])
    d["maker_fee"] = st.get("fees.maker", d["maker_fee"])
    return dict(sorted(d.items()))


def _trade(t: Any) -> dict[str, object]:
    return {
        "symbol": t.symbol,
        "entry_bar": t.entry_bar,
        "entry_time": iso_ms(t.entry_ts),
        "entry_price": t.entry_price,
        "exit_bar": t.exit_bar,
        "exit_time": iso_ms(t.exit_ts),
        "exit_price": t.exit_price,
        "qty": t.qty,
        "fees": t.fees,
        "pnl": t.pnl,
        "return": t.ret,
        "exit_kind": t.exit_kind,
        "bars_held": t.bars_held,
        "fills": t.fills,
    }


def _trip(trip: Mapping[str, Any]) -> dict[str, object]:
    """A breaker trip with its times in ISO (``ts`` is the close of the bar that tripped it)."""
    out: dict[str, object] = {k: v for k, v in trip.items() if k not in ("ts", "until")}
    out["time"] = _when(trip.get("ts"))
    out["until"] = _when(trip.get("until"))
    return out


def _when(v: object) -> object:
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return iso_ms(int(v))
    return v


def state_periods(codes: np.ndarray, timestamps: np.ndarray, tf: int,
                  reasons: Mapping[int, Sequence[str]] | None = None) -> list[dict[str, object]]:
    """Runs of bars decided in a restricted trading state (paused, reduce_only, halted).

    ``state_codes[t]`` is the state decided at the close of bar ``t``; a period covers the bars
    ``start_bar .. end_bar`` (inclusive) and the times from the close of the first to the close
    of the last. ``reasons``: why the state changed, by bar (the engine's words), given as the
    period's ``reason``.
    """
    c = np.asarray(codes, dtype=np.int64)
    out: list[dict[str, object]] = []
    if c.size == 0:
        return out
    change = np.flatnonzero(np.diff(c)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [c.size]]) - 1
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        code = int(c[a])
        if code == 0:
            continue
        out.append({
            "state": _STATE_NAMES.get(code, str(code)),
            "rank": code,
            "start_bar": a,
            "end_bar": b,
            "bars": b - a + 1,
            "start": iso_ms(int(timestamps[a]) + tf),
            "end": iso_ms(int(timestamps[b]) + tf),
            "reason": "; ".join((reasons or {}).get(a, [])),
        })
    return out


def _bars_by_state(codes: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(codes, return_counts=True)
    return {_STATE_NAMES.get(int(k), str(int(k))): int(v) for k, v in zip(values, counts, strict=True)}


def _rejected(rejected: list[tuple[str, str]]) -> dict[str, object]:
    counts: dict[str, int] = {}
    for _cid, reason in rejected:
        counts[reason] = counts.get(reason, 0) + 1
    return {"total": len(rejected), "by_reason": dict(sorted(counts.items()))}


def _data_quality(result: SimResult, symbols: tuple[str, ...]) -> dict[str, object]:
    data = result.data
    per: dict[str, dict[str, object]] = {}
    keys = sorted(set(data.series) | set(symbols) | {g.symbol for g in data.gaps}
                  | {b.symbol for b in data.bad_bars})
    for key in keys:
        gaps = sorted((g for g in data.gaps if g.symbol == key), key=lambda g: (g.start_ms, g.end_ms))
        bad = sorted((b for b in data.bad_bars if b.symbol == key), key=lambda b: (b.timestamp_ms, b.reason))
        ser = data.series.get(key)
        missing = int(np.count_nonzero(~np.isfinite(ser.close))) if ser is not None else len(data.timestamps)
        per[key] = {
            "traded": key in symbols,
            "gaps": len(gaps),
            "gap_bars": int(sum(g.bars for g in gaps)),
            "bad_bars": len(bad),
            "missing_bars": missing,
            "gap_list": [
                {"start": iso_ms(g.start_ms), "end": iso_ms(g.end_ms), "bars": g.bars, "kind": g.kind}
                for g in gaps[:MAX_LISTED]
            ],
            "gaps_not_listed": max(len(gaps) - MAX_LISTED, 0),
            "bad_bar_list": [{"time": iso_ms(b.timestamp_ms), "reason": b.reason, "source": b.source}
                             for b in bad[:MAX_LISTED]],
            "bad_bars_not_listed": max(len(bad) - MAX_LISTED, 0),
        }
    return {
        "total_gaps": len(data.gaps),
        "total_bad_bars": len(data.bad_bars),
        "symbols": per,
    }


def _regression_keys(m: Metrics, denials: int, trips: int) -> dict[str, object]:
    return {
        "initial_cash": m.initial_equity,
        "final_equity": m.final_equity,
        "total_return": m.total_return,
        "max_drawdown": m.drawdown.depth,
        "trades": len(m.trades),
        "win_rate": m.win_rate,
        "fees": m.fees,
        "slippage": m.slippage,
        "fills": m.fills,
        "denials_total": denials,
        "breaker_trips": trips,
    }


# --------------------------------------------------------------------------------------
# series


def downsample_indices(equity: np.ndarray, max_points: int = MAX_POINTS,
                       keep: tuple[int | None, ...] = ()) -> np.ndarray:
    """Bars to plot: every bar if few, else per bucket the lowest and highest equity bars.

    Buckets are equal slices of the bars; the first and last bar and the bars in ``keep`` are
    always included, so the curve keeps its extremes (and its deepest drawdown). The result is
    sorted, unique and at most ``max_points`` long; it depends only on the inputs.
    """
    e = np.asarray(equity, dtype=np.float64)
    n = int(e.size)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    extra = [0, n - 1, *(k for k in keep if k is not None and 0 <= k < n)]
    buckets = max((max_points - len(extra)) // 2, 1)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    filled = np.where(np.isfinite(e), e, -np.inf)
    low = np.where(np.isfinite(e), e, np.inf)
    picks: list[int] = list(extra)
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        if b <= a:
            continue
        picks.append(a + int(np.argmin(low[a:b])))
        picks.append(a + int(np.argmax(filled[a:b])))
    return np.unique(np.asarray(picks, dtype=np.int64))


def _series(result: SimResult, m: Metrics, symbols: tuple[str, ...]) -> dict[str, object]:
    eq = np.asarray(result.equity, dtype=np.float64)
    dd = drawdown_series(eq, result.config.cash)
    idx = downsample_indices(eq, MAX_POINTS, (m.drawdown.peak_bar, m.drawdown.trough_bar))
    ts = np.asarray(result.data.timestamps, dtype=np.int64)
    return {
        "points": int(idx.size),
        "bars": int(eq.size),
        "bar": idx.tolist(),
        "ts": ts[idx].tolist(),
        "equity": eq[idx].tolist(),
        "drawdown": dd[idx].tolist(),
        "close": {s: np.asarray(result.data.series[s].close, dtype=np.float64)[idx].tolist()
                  for s in sorted(symbols) if s in result.data.series},
    }


# --------------------------------------------------------------------------------------
# canonical JSON


def _round(x: float) -> float | None:
    if not math.isfinite(x):
        return None
    if x == 0:
        return 0.0
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def canonical(obj: object) -> Any:
    """A plain JSON tree: str keys, rounded finite floats (else None), lists for sequences."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, Enum):
        return canonical(obj.value)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _round(float(obj))
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else list(obj)
        return [canonical(v) for v in items]
    if is_dataclass(obj) and not isinstance(obj, type):
        return canonical(asdict(obj))
    return str(obj)


def _scalar(v: object) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def _emit(v: Any, indent: int, inline: bool = False) -> str:
    if _scalar(v):
        return json.dumps(v, ensure_ascii=True)
    pad = "  " * (indent + 1)
    end = "  " * indent
    if isinstance(v, dict):
        if not v:
            return "{}"
        keys = sorted(v)
        if inline or (indent > 1 and all(_scalar(x) for x in v.values())):
            return "{" + ", ".join(f"{json.dumps(k)}: {_emit(v[k], indent, True)}" for k in keys) + "}"
        body = ",\n".join(f"{pad}{json.dumps(k)}: {_emit(v[k], indent + 1)}" for k in keys)
        return "{\n" + body + "\n" + end + "}"
    if not v:
        return "[]"
    if inline or all(_scalar(x) for x in v):
        return "[" + ", ".join(_emit(x, indent, True) for x in v) + "]"
    body = ",\n".join(pad + _emit(x, indent + 1, all(_scalar(y) for y in x.values())
                                  if isinstance(x, dict) else False) for x in v)
    return "[\n" + body + "\n" + end + "]"


def dumps_report(report: Mapping[str, object]) -> str:
    """Canonical JSON: sorted keys, floats to 10 significant digits, trailing newline.

    Lists of numbers and flat records (trades, gaps) sit on one line each, so the file stays
    readable and diffs stay small. ``json.loads`` of the output gives the canonical tree, and
    dumping that again gives the same bytes.
    """
    return _emit(canonical(report), 0) + "\n"
