"""Market data for the simulator: candles of several symbols aligned on one time grid.

:func:`load` reads OHLCV candles from files or folders and returns a :class:`MarketData`,
the one type the simulator consumes (:func:`policyctl.simulator.synthetic.synthetic_market`
builds the same type). Supported inputs, detected by file name and content:

* CSV with a header ``timestamp,open,high,low,close,volume`` (case-insensitive; the time
  column may also be called ``date``/``time``/``datetime`` or be the unnamed first column);
  timestamps are ISO-8601 (``...Z``, an explicit offset, or naive = UTC) or integer epoch
  milliseconds. File names ``{exchange}_{BASE}-{QUOTE}[-{SETTLE}]_{timeframe}[_{suffix}].csv``
  give symbol and timeframe.
* Freqtrade / ccxt JSON (optionally gzipped): ``[[ms, o, h, l, c, v], ...]``, or the ccxt
  wrapper ``{"symbol": ..., "timeframe": ..., "ohlcv": [[...], ...]}``, or pandas
  ``orient="columns"`` JSON (``{"date": {"0": ms, ...}, "open": {...}, ...}``).
  Freqtrade names ``{BASE}_{QUOTE}[_{SETTLE}]-{timeframe}[-{candle_type}].json[.gz]`` give
  symbol and timeframe.
* Freqtrade feather / parquet with columns ``date`` (timestamp) and ``open..volume``
  (needs pyarrow, imported only when such a file is read).

Alignment: all series share one regular grid from the earliest to the latest bar of any
symbol. Bars a symbol does not have are NaN and are reported as :class:`Gap` s, never filled.
Rows that are not valid candles (non-finite or non-positive prices, high/low inconsistent
with open/close, negative volume) become NaN bars reported in ``MarketData.bad_bars``.
Unsorted rows are sorted, exact duplicate rows dropped; conflicting duplicates, timestamps
off the timeframe grid and mixed timeframes raise :class:`DataError`.

Timeframes: ``Ns``, ``Nm``, ``Nh``, ``Nd``, ``Nw`` (weeks open on Monday 00:00 UTC) and
``1M`` (calendar months; ``timeframe_ms`` is then the nominal 30 days). Monthly files labelled
with month-end dates (as pandas writes them) are moved to the month's first day (noted in
``SourceInfo.note``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from policyctl.timefmt import iso_millis as _iso

__all__ = [
    "MAX_GRID_BARS",
    "BadBar",
    "DataError",
    "Gap",
    "MarketData",
    "Series",
    "SourceInfo",
    "load",
    "parse_symbol_from_filename",
    "timeframe_to_ms",
]

#: Refuse to build a grid longer than this (e.g. 1m files years apart would need GBs).
MAX_GRID_BARS = 20_000_000

_MS_PER_UNIT = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_MONTH_MS = 30 * 86_400_000  # nominal length of "1M" (the ccxt convention)
_WEEK_ANCHOR_MS = 4 * 86_400_000  # 1970-01-05, a Monday: weekly candles open on Mondays
_TIMEFRAME_RE = re.compile(r"^([1-9][0-9]*)([smhdwM])$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_EPOCH_MS = 100_000_000_000  # 1973-03-03: smaller integer timestamps are not epoch ms
_PRICE_FIELDS = ("open", "high", "low", "close")
_FIELDS = (*_PRICE_FIELDS, "volume")

# candle-type suffixes of Freqtrade / shared-data file names -> Series.candle_type
# ("" = traded candles: spot or futures last-price candles)
_CANDLE_TYPES = {
    "spot": "",
    "futures": "",
    "mark": "mark",
    "index": "index",
    "premiumindex": "premiumIndex",
    "funding_rate": "funding_rate",
}
_NOT_CANDLES = {"funding_rate"}

_CSV_NAME_RE = re.compile(
    r"^(?P<exchange>[A-Za-z0-9]+)_(?P<pair>[A-Za-z0-9.]+-[A-Za-z0-9.]+(?:-[A-Za-z0-9.]+)?)"
    r"_(?P<tf>[0-9]+[smhdwM])(?:_(?P<suffix>[A-Za-z0-9_-]+))?$"
)
_FT_NAME_RE = re.compile(
    r"^(?P<pair>[A-Za-z0-9.]+(?:_[A-Za-z0-9.]+){1,2})-(?P<tf>[0-9]+[smhdwM])"
    r"(?:-(?P<suffix>[A-Za-z_]+))?$"
)
_EXTENSIONS = (".csv", ".csv.gz", ".json", ".json.gz", ".feather", ".parquet")


# --------------------------------------------------------------------------------------
# errors and the data model


class DataError(Exception):
    """Market data that cannot be used: the message names the file and the row.

    ``line`` is the 1-based line in a CSV file (the header is line 1); ``row`` is the 1-based
    data row for every format. The CLI turns this into a diagnostic (see :meth:`span`).
    """

    def __init__(
        self,
        reason: str,
        path: str | None = None,
        *,
        row: int | None = None,
        line: int | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.row = row
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        if self.path is None:
            return self.reason
        if self.line is not None:
            return f"{self.path}:{self.line}: {self.reason}"
        if self.row is not None:
            return f"{self.path}: row {self.row}: {self.reason}"
        return f"{self.path}: {self.reason}"

    def span(self) -> Any:
        """A :class:`policyctl.diagnostics.Span` at the offending CSV line, else None."""
        if self.path is None or self.line is None:
            return None
        from policyctl.diagnostics import Span

        return Span.point(self.path, self.line, 1)


@dataclass(frozen=True, eq=False)
class Series:
    """One symbol's candles on the common grid; float64, NaN where the symbol has no bar.

    ``candle_type`` is "" for traded candles, else e.g. "mark" or "index"; such series are
    keyed ``"{symbol}@{candle_type}"`` in :attr:`MarketData.series` (see :attr:`key`).
    """

    symbol: str
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    candle_type: str = ""

    def __post_init__(self) -> None:
        n = None
        for name in _FIELDS:
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError(f"Series {self.symbol}: {name} must be one-dimensional")
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"Series {self.symbol}: {name} has {arr.shape[0]} bars, not {n}")
            n = arr.shape[0]
            object.__setattr__(self, name, arr)

    @property
    def key(self) -> str:
        return _series_key(self.symbol, self.candle_type)

    def __len__(self) -> int:
        return int(self.close.shape[0])


@dataclass(frozen=True)
class Gap:
    """Bars missing from one series: the half-open interval ``[start_ms, end_ms)``.

    ``start_ms`` is the open time of the first missing bar, ``end_ms`` the open time of the
    bar after the last missing one. ``kind`` is ``"internal"`` (a hole inside the symbol's own
    first..last range), ``"leading"`` (the grid starts before the symbol's first bar) or
    ``"trailing"`` (the grid ends after its last bar).
    """

    symbol: str
    start_ms: int
    end_ms: int
    bars: int
    kind: str = "internal"


@dataclass(frozen=True)
class BadBar:
    """A source row that is not a valid candle; it is NaN on the grid."""

    symbol: str
    timestamp_ms: int
    reason: str
    source: str = ""


@dataclass(frozen=True)
class SourceInfo:
    """Where data came from: the path as given, its format, data rows, sha256 of its bytes."""

    path: str
    format: str
    rows: int
    sha256: str
    symbol: str = ""
    timeframe: str = ""
    duplicates_dropped: int = 0
    reordered: bool = False
    note: str = ""


@dataclass(frozen=True, eq=False)
class MarketData:
    """Candles of several symbols on one grid: what the simulator consumes.

    ``timestamps`` are int64 epoch ms of bar opens, strictly increasing; ``series`` is keyed
    by symbol in sorted order. ``spreads`` (bps per bar) and ``regime`` (int8 per bar) are
    only provided by the synthetic market. All arrays are read-only; copy to modify.
    """

    timeframe_ms: int
    timestamps: np.ndarray
    series: dict[str, Series]
    gaps: tuple[Gap, ...] = ()
    sources: tuple[SourceInfo, ...] = ()
    bad_bars: tuple[BadBar, ...] = ()
    spreads: dict[str, np.ndarray] = field(default_factory=dict)
    regime: np.ndarray | None = None
    timeframe: str = ""

    def __post_init__(self) -> None:
        ts = np.asarray(self.timestamps, dtype=np.int64)
        if ts.ndim != 1:
            raise ValueError("timestamps must be one-dimensional")
        if ts.shape[0] > 1 and not bool(np.all(ts[1:] > ts[:-1])):
            raise ValueError("timestamps must be strictly increasing")
        _freeze(ts)
        object.__setattr__(self, "timestamps", ts)
        n = ts.shape[0]
        for key, s in self.series.items():
            if len(s) != n:
                raise ValueError(f"series {key} has {len(s)} bars, the grid has {n}")
            for name in _FIELDS:
                _freeze(getattr(s, name))
        for key, arr in self.spreads.items():
            if np.shape(arr) != (n,):
                raise ValueError(f"spreads of {key} must have shape ({n},)")
            _freeze(arr)
        if self.regime is not None:
            if np.shape(self.regime) != (n,):
                raise ValueError(f"regime must have shape ({n},)")
            _freeze(self.regime)
        if not self.timeframe:
            object.__setattr__(self, "timeframe", _timeframe_name(self.timeframe_ms))

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.series)

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def start_ms(self) -> int:
        """Open time of the first bar."""
        return int(self.timestamps[0])

    @property
    def end_ms(self) -> int:
        """Close time of the last bar (exclusive end of the data)."""
        return _next_open(int(self.timestamps[-1]), self.timeframe, self.timeframe_ms)

    def slice(self, start_ms: int | None, end_ms: int | None) -> MarketData:
        """Bars opening in ``[start_ms, end_ms)``; None = unbounded. Gaps are clipped."""
        ts = self.timestamps
        i0 = 0 if start_ms is None else int(np.searchsorted(ts, start_ms, side="left"))
        i1 = len(ts) if end_ms is None else int(np.searchsorted(ts, end_ms, side="left"))
        if i1 <= i0:
            lo = "start" if start_ms is None else _iso(start_ms)
            hi = "end" if end_ms is None else _iso(end_ms)
            have = f"{_iso(int(ts[0]))} .. {_iso(int(ts[-1]))}" if len(ts) else "nothing"
            raise DataError(f"no bars in [{lo}, {hi}); the data covers {have}")
        lo_ms = int(ts[i0])
        hi_ms = int(ts[i1]) if i1 < len(ts) else self.end_ms
        window = ts[i0:i1]
        gaps = []
        for g in self.gaps:
            s, e = max(g.start_ms, lo_ms), min(g.end_ms, hi_ms)
            if s < e:
                bars = int(np.searchsorted(window, e) - np.searchsorted(window, s))
                gaps.append(Gap(g.symbol, s, e, bars, g.kind))
        series = {
            key: Series(
                s.symbol,
                s.open[i0:i1],
                s.high[i0:i1],
                s.low[i0:i1],
                s.close[i0:i1],
                s.volume[i0:i1],
                s.candle_type,
            )
            for key, s in self.series.items()
        }
        return MarketData(
            timeframe_ms=self.timeframe_ms,
            timestamps=window,
            series=series,
            gaps=tuple(gaps),
            sources=self.sources,
            bad_bars=tuple(b for b in self.bad_bars if lo_ms <= b.timestamp_ms < hi_ms),
            spreads={k: v[i0:i1] for k, v in self.spreads.items()},
            regime=None if self.regime is None else self.regime[i0:i1],
            timeframe=self.timeframe,
        )


def _freeze(arr: np.ndarray) -> None:
    if isinstance(arr, np.ndarray) and arr.flags.writeable:
        arr.flags.writeable = False


def _series_key(symbol: str, candle_type: str) -> str:
    return f"{symbol}@{candle_type}" if candle_type else symbol


# --------------------------------------------------------------------------------------
# timeframes and the grid


def timeframe_to_ms(timeframe: str) -> int:
    """Milliseconds of a ccxt-style timeframe ("1m", "4h", "1d", "1w"; "1M" = 30 days)."""
    m = _TIMEFRAME_RE.match(timeframe)
    if m is None:
        raise DataError(f"unknown timeframe {timeframe!r} (expected e.g. 1m, 5m, 1h, 1d, 1w, 1M)")
    n, unit = int(m.group(1)), m.group(2)
    if unit == "M":
        if n != 1:
            raise DataError(f"timeframe {timeframe!r}: only 1M calendar months are supported")
        return _MONTH_MS
    return n * _MS_PER_UNIT[unit]


def _timeframe_name(ms: int) -> str:
    if ms == _MONTH_MS:
        return "1M"
    for unit in ("w", "d", "h", "m", "s"):
        size = _MS_PER_UNIT[unit]
        if ms % size == 0 and ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _next_open(ts: int, timeframe: str, step_ms: int) -> int:
    if timeframe == "1M":
        month = np.array([ts], dtype="datetime64[ms]").astype("datetime64[M]") + 1
        return int(month.astype("datetime64[ms]").astype(np.int64)[0])
    return ts + step_ms


@dataclass(frozen=True)
class _Grid:
    """Bar numbering of a timeframe: index(ts) counts bars since an anchor."""

    timeframe: str
    step: int  # ms; 0 for calendar months
    anchor: int

    @staticmethod
    def of(timeframe: str) -> _Grid:
        step = timeframe_to_ms(timeframe)
        if timeframe == "1M":
            return _Grid(timeframe, 0, 0)
        anchor = _WEEK_ANCHOR_MS if timeframe.endswith("w") else 0
        return _Grid(timeframe, step, anchor)

    def index(self, ts: np.ndarray) -> np.ndarray:
        if self.step == 0:
            return ts.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
        return (ts - self.anchor) // self.step

    def times(self, i0: int, i1: int) -> np.ndarray:
        """Open times of bars ``i0 .. i1 - 1``."""
        idx = np.arange(i0, i1, dtype=np.int64)
        if self.step == 0:
            return idx.astype("datetime64[M]").astype("datetime64[ms]").astype(np.int64)
        return self.anchor + idx * self.step

    def on_grid(self, ts: np.ndarray) -> np.ndarray:
        if self.step == 0:
            return self.times_of(self.index(ts)) == ts
        return (ts - self.anchor) % self.step == 0

    def times_of(self, idx: np.ndarray) -> np.ndarray:
        if self.step == 0:
            return idx.astype("datetime64[M]").astype("datetime64[ms]").astype(np.int64)
        return self.anchor + idx * self.step




# --------------------------------------------------------------------------------------
# file names


@dataclass(frozen=True)
class _NameInfo:
    symbol: str
    timeframe: str
    candle_type: str  # "" for traded candles, "mark", ..., "funding_rate"

    @property
    def key(self) -> str:
        return _series_key(self.symbol, self.candle_type)


def _stem(name: str) -> str:
    lower = name.lower()
    for ext in _EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name.rsplit(".", 1)[0] if "." in name else name


def _has_known_extension(name: str) -> bool:
    return name.lower().endswith(_EXTENSIONS)


def _pair_symbol(parts: list[str]) -> str:
    symbol = f"{parts[0]}/{parts[1]}"
    return f"{symbol}:{parts[2]}" if len(parts) == 3 else symbol


def _parse_name(name: str) -> _NameInfo | None:
    stem = _stem(name)
    m = _CSV_NAME_RE.match(stem)
    if m is not None:
        parts = m.group("pair").split("-")
    else:
        m = _FT_NAME_RE.match(stem)
        if m is None:
            return None
        parts = m.group("pair").split("_")
    suffix = (m.group("suffix") or "").lower()
    candle_type = _CANDLE_TYPES.get(suffix, "")  # other suffixes are period labels
    if _TIMEFRAME_RE.match(m.group("tf")) is None:
        return None
    return _NameInfo(_pair_symbol(parts), m.group("tf"), candle_type)


def parse_symbol_from_filename(name: str) -> tuple[str, str] | None:
    """``(symbol, timeframe)`` from a shared-data CSV or Freqtrade file name, else None.

    >>> parse_symbol_from_filename("XRP_USDT_USDT-1h-futures.json.gz")
    ('XRP/USDT:USDT', '1h')
    """
    info = _parse_name(Path(name).name)
    return None if info is None else (info.symbol, info.timeframe)


# --------------------------------------------------------------------------------------
# readers: bytes -> timestamps (int64 ms), ohlcv (n x 5 float64), row labels


@dataclass
class _Parsed:
    ts: np.ndarray
    ohlcv: np.ndarray
    rownums: np.ndarray  # CSV: file line numbers; others: 1-based row numbers
    is_line: bool
    fmt: str
    symbol: str | None = None
    timeframe: str | None = None


def _err(path: str, parsed: _Parsed, i: int, reason: str) -> DataError:
    n = int(parsed.rownums[i])
    return DataError(reason, path, row=i + 1, line=n if parsed.is_line else None)


def _iso_to_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _timestamps_from_text(
    values: list[str], path: str, rownums: list[int], is_line: bool
) -> np.ndarray:
    def fail(i: int, reason: str) -> DataError:
        return DataError(reason, path, row=i + 1, line=rownums[i] if is_line else None)

    stripped = [v.strip() for v in values]
    if stripped and stripped[0].lstrip("-").isdigit():
        out = np.empty(len(stripped), dtype=np.int64)
        for i, v in enumerate(stripped):
            if not v.lstrip("-").isdigit():
                raise fail(i, f"timestamp {v!r} is not epoch milliseconds like the rows before")
            out[i] = int(v)
        small = np.flatnonzero(np.abs(out) < _MIN_EPOCH_MS)
        if small.size:
            i = int(small[0])
            raise fail(i, f"timestamp {out[i]} is too small for epoch milliseconds (seconds?)")
        return out
    if all(v.endswith("Z") and "+" not in v for v in stripped):
        try:
            arr = np.array([v[:-1] for v in stripped], dtype="datetime64[ms]")
            return arr.astype(np.int64)
        except ValueError:
            pass  # locate the bad row below
    out = np.empty(len(stripped), dtype=np.int64)
    for i, v in enumerate(stripped):
        try:
            out[i] = _iso_to_ms(v)
        except ValueError:
            raise fail(i, f"timestamp {v!r} is neither ISO-8601 nor epoch milliseconds") from None
    return out


def _floats_from_text(
    values: list[str], name: str, path: str, rownums: list[int], is_line: bool
) -> np.ndarray:
    try:
        return np.array([float(v) if v.strip() else math.nan for v in values], dtype=np.float64)
    except ValueError:
        for i, v in enumerate(values):
            try:
                float(v) if v.strip() else None
            except ValueError:
                raise DataError(
                    f"{name} {v!r} is not a number",
                    path,
                    row=i + 1,
                    line=rownums[i] if is_line else None,
                ) from None
        raise


_TIME_COLUMNS = ("timestamp", "date", "datetime", "time", "open_time")


def _read_csv(text: str, path: str) -> _Parsed:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            continue
        if len(row) != len(header):
            raise DataError(
                f"{len(row)} fields, the header has {len(header)}",
                path,
                row=len(rows) + 1,
                line=reader.line_num,
            )
        rows.append(row)
        lines.append(reader.line_num)
    if header is None:
        raise DataError("no candles (empty file)", path)
    tcol = next((header.index(c) for c in _TIME_COLUMNS if c in header), None)
    if tcol is None and header[0] == "":
        tcol = 0
    if tcol is None:
        raise DataError(f"no timestamp column in header {','.join(header)}", path, line=1)
    missing = [c for c in _PRICE_FIELDS if c not in header]
    if missing:
        raise DataError(f"header lacks {', '.join(missing)}", path, line=1)
    if not rows:
        raise DataError("no candles (header only)", path)
    ts = _timestamps_from_text([r[tcol] for r in rows], path, lines, True)
    ohlcv = np.full((len(rows), 5), np.nan)
    for j, name in enumerate(_FIELDS):
        if name in header:
            col = header.index(name)
            ohlcv[:, j] = _floats_from_text([r[col] for r in rows], name, path, lines, True)
    return _Parsed(ts, ohlcv, np.asarray(lines, dtype=np.int64), True, "csv")


def _list_rows(data: Any, path: str, fmt: str) -> _Parsed:
    """ccxt / Freqtrade ``[[ms, o, h, l, c, v], ...]`` (volume may be absent)."""
    if not isinstance(data, list):
        raise DataError("expected a list of [timestamp, open, high, low, close, volume]", path)
    if not data:
        raise DataError("no candles (empty list)", path)
    arr: np.ndarray | None = None
    try:
        arr = np.array(data, dtype=np.float64)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] not in (5, 6):
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) not in (5, 6):
                raise DataError(
                    "expected [timestamp, open, high, low, close, volume]", path, row=i + 1
                )
            for v in row:
                if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                    try:
                        float(v)
                    except (TypeError, ValueError):
                        raise DataError(f"{v!r} is not a number", path, row=i + 1) from None
        raise DataError("rows have different lengths", path)
    raw_ts = arr[:, 0]
    bad = np.flatnonzero(~np.isfinite(raw_ts) | (raw_ts != np.floor(raw_ts)))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"timestamp {data[i][0]!r} is not integer milliseconds", path, row=i + 1)
    ts = raw_ts.astype(np.int64)
    small = np.flatnonzero(np.abs(ts) < _MIN_EPOCH_MS)
    if small.size:
        i = int(small[0])
        raise DataError(f"timestamp {ts[i]} is too small for epoch milliseconds", path, row=i + 1)
    ohlcv = np.full((arr.shape[0], 5), np.nan)
    ohlcv[:, : arr.shape[1] - 1] = arr[:, 1:]
    return _Parsed(ts, ohlcv, np.arange(1, len(ts) + 1, dtype=np.int64), False, fmt)


def _pandas_columns(data: dict[str, Any], path: str) -> _Parsed:
    """pandas ``DataFrame.to_json(orient="columns")`` with date/open/high/low/close/volume."""
    cols = {k.lower(): v for k, v in data.items()}
    tname = next((c for c in _TIME_COLUMNS if c in cols), None)
    if tname is None or any(c not in cols for c in _PRICE_FIELDS):
        raise DataError("unsupported JSON layout (no date/open/high/low/close columns)", path)
    if not isinstance(cols[tname], dict) or not cols[tname]:
        raise DataError("no candles", path)
    keys = sorted(cols[tname], key=lambda k: int(k) if str(k).lstrip("-").isdigit() else k)
    rownums = list(range(1, len(keys) + 1))
    times = [cols[tname][k] for k in keys]
    if all(isinstance(t, int) and not isinstance(t, bool) for t in times):
        ts = np.asarray(times, dtype=np.int64)
    else:
        ts = _timestamps_from_text([str(t) for t in times], path, rownums, False)
    ohlcv = np.full((len(keys), 5), np.nan)
    for j, name in enumerate(_FIELDS):
        col = cols.get(name)
        if col is None:
            continue
        values = [col.get(k) for k in keys]
        ohlcv[:, j] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return _Parsed(ts, ohlcv, np.asarray(rownums, dtype=np.int64), False, "pandas-json")


def _read_json(raw: bytes, path: str, fmt: str) -> _Parsed:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise DataError("not a text file", path) from None
    if isinstance(data, dict) and "ohlcv" in data:
        parsed = _list_rows(data["ohlcv"], path, "ccxt-json")
        sym, tf = data.get("symbol"), data.get("timeframe")
        parsed.symbol = sym if isinstance(sym, str) and sym else None
        parsed.timeframe = tf if isinstance(tf, str) and tf else None
        return parsed
    if isinstance(data, dict):
        return _pandas_columns(data, path)
    return _list_rows(data, path, fmt)


def _read_arrow(raw: bytes, path: str, fmt: str) -> _Parsed:
    try:
        import pyarrow as pa
    except ImportError:
        raise DataError(f"reading {fmt} files needs pyarrow (pip install pyarrow)", path) from None
    try:
        if fmt == "feather":
            import pyarrow.feather as feather

            table = feather.read_table(pa.BufferReader(raw))
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {fmt} file: {exc}", path) from None
    names = {n.lower(): n for n in table.column_names}
    tname = next((names[c] for c in _TIME_COLUMNS if c in names), None)
    if tname is None or any(c not in names for c in _PRICE_FIELDS):
        raise DataError(f"not OHLCV candles (columns: {', '.join(table.column_names)})", path)
    if table.num_rows == 0:
        raise DataError("no candles (0 rows)", path)
    tcol = table.column(tname)
    if tcol.null_count:
        i = int(np.flatnonzero(tcol.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError("missing timestamp", path, row=i + 1)
    if pa.types.is_timestamp(tcol.type):
        per_ms = {"s": 1, "ms": 1, "us": 1_000, "ns": 1_000_000}[tcol.type.unit]
        ints = np.asarray(tcol.cast(pa.int64()).to_numpy(), dtype=np.int64)
        if tcol.type.unit == "s":
            ts = ints * 1000
        else:
            rem = np.flatnonzero(ints % per_ms)
            if rem.size:
                raise DataError("timestamp with sub-millisecond part", path, row=int(rem[0]) + 1)
            ts = ints // per_ms
    elif pa.types.is_integer(tcol.type):
        ts = np.asarray(tcol.to_numpy(), dtype=np.int64)
    else:
        raise DataError(f"time column {tname!r} has type {tcol.type}, not a timestamp", path)
    ohlcv = np.full((table.num_rows, 5), np.nan)
    for j, name in enumerate(_FIELDS):
        if name in names:
            col = table.column(names[name]).cast(pa.float64())
            ohlcv[:, j] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    return _Parsed(ts, ohlcv, np.arange(1, len(ts) + 1, dtype=np.int64), False, fmt)


def _read_file(raw: bytes, path: str) -> _Parsed:
    """Detect the format from the content (magic bytes, first character)."""
    if not raw:
        raise DataError("no candles (empty file)", path)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"corrupt gzip data: {exc}", path) from None
        if not raw:
            raise DataError("no candles (empty file)", path)
        gz = ".gz"
    else:
        gz = ""
    if raw[:6] == b"ARROW1" or raw[:4] == b"FEA1":
        return _read_arrow(raw, path, "feather")
    if raw[:4] == b"PAR1":
        return _read_arrow(raw, path, "parquet")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(
            "unrecognised binary file (not CSV, JSON, feather or parquet)", path
        ) from None
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        return _read_json(raw, path, "json" + gz)
    parsed = _read_csv(text, path)
    parsed.fmt = "csv" + gz
    return parsed


# --------------------------------------------------------------------------------------
# loading


@dataclass
class _Loaded:
    path: str
    parsed: _Parsed
    info: _NameInfo
    sha256: str
    note: str = ""
    reordered: bool = False
    duplicates_dropped: int = 0


def _expand(
    paths: Sequence[str | Path], timeframe: str | None, symbols: set[str] | None
) -> list[tuple[str, bool]]:
    """(path as given, explicitly named) for every file to read."""
    out: list[tuple[str, bool]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = 0
            for child in sorted(path.iterdir(), key=lambda c: c.name):
                if child.name.startswith(".") or not child.is_file():
                    continue
                if not _has_known_extension(child.name):
                    continue
                info = _parse_name(child.name)
                if info is None or info.candle_type in _NOT_CANDLES:
                    continue  # trades, funding rates, pair lists ...: not candles
                found += 1
                if timeframe is not None and info.timeframe != timeframe:
                    continue
                if symbols is not None and info.key not in symbols:
                    continue
                out.append((str(p).rstrip("/\\") + "/" + child.name, False))
            if not found:
                raise DataError(
                    "no candle files in folder (expected names like "
                    "binance_BTC-USDT_5m.csv or BTC_USDT-5m.feather)",
                    str(p),
                )
        elif path.is_file():
            out.append((str(p), True))
        else:
            raise DataError("no such file or folder", str(p))
    return out


def _resolve(
    path: str, parsed: _Parsed, timeframe: str | None, symbols: Sequence[str] | None
) -> _NameInfo:
    """Symbol and timeframe from the file name, the ccxt wrapper, or the caller."""
    named = _parse_name(Path(path).name)
    candle_type = named.candle_type if named else ""
    if candle_type in _NOT_CANDLES:
        raise DataError(f"a {candle_type} file, not price candles", path)

    symbol = named.symbol if named else None
    if parsed.symbol is not None:
        if symbol is not None and symbol != parsed.symbol:
            raise DataError(f"the file says symbol {parsed.symbol}, its name says {symbol}", path)
        symbol = parsed.symbol
    if symbol is None:
        if symbols is not None and len(symbols) == 1:
            symbol = symbols[0]
        else:
            raise DataError(
                "cannot tell the symbol: the file name does not carry it "
                "(like binance_BTC-USDT_5m.csv or BTC_USDT-5m.json); pass exactly one symbol",
                path,
            )

    tf = named.timeframe if named else None
    for other, what in ((parsed.timeframe, "the file"), (timeframe, "the caller")):
        if other is None:
            continue
        if tf is not None and other != tf:
            raise DataError(f"{what} says timeframe {other}, the data is labelled {tf}", path)
        tf = other
    if tf is None:
        raise DataError(
            "cannot tell the timeframe: the file name does not carry it; pass one", path
        )
    timeframe_to_ms(tf)  # validate
    return _NameInfo(symbol, tf, candle_type)


def _check_grid(item: _Loaded, grid: _Grid) -> None:
    parsed = item.parsed
    on = grid.on_grid(parsed.ts)
    if bool(np.all(on)):
        return
    if grid.step == 0:
        # pandas month-end labels (2012-01-31 = January): move to the month's open
        next_day = parsed.ts + 86_400_000
        month_start = grid.times_of(grid.index(next_day))
        if bool(np.all(month_start == next_day)):
            parsed.ts = grid.times_of(grid.index(parsed.ts))
            item.note = "month-end labels moved to the month's open"
            return
    i = int(np.flatnonzero(~on)[0])
    raise _err(
        item.path,
        parsed,
        i,
        f"timestamp {_iso(int(parsed.ts[i]))} is not on the {grid.timeframe} grid",
    )


def _check_spacing(item: _Loaded, grid: _Grid) -> None:
    """A file whose rows are never one bar apart is probably a coarser timeframe."""
    idx = np.unique(grid.index(item.parsed.ts))
    if idx.size < 10:
        return
    step = int(np.min(np.diff(idx)))
    if step > 1:
        raise DataError(
            f"no two rows are one {grid.timeframe} bar apart (smallest step: {step} bars); "
            f"the data is probably not {grid.timeframe} candles",
            item.path,
        )


def _same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)


def _merge(items: list[_Loaded], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate one series' files, sort, drop exact duplicates; conflicts are errors.

    Returns (timestamps, ohlcv, source item index per row).
    """
    ts = np.concatenate([it.parsed.ts for it in items])
    ohlcv = np.concatenate([it.parsed.ohlcv for it in items])
    src = np.concatenate(
        [np.full(len(it.parsed.ts), k, dtype=np.int64) for k, it in enumerate(items)]
    )
    pos = np.concatenate([np.arange(len(it.parsed.ts), dtype=np.int64) for it in items])
    for it in items:
        t = it.parsed.ts
        it.reordered = bool(t.shape[0] > 1 and np.any(t[1:] < t[:-1]))
    order = np.argsort(ts, kind="stable")
    ts, ohlcv, src, pos = ts[order], ohlcv[order], src[order], pos[order]
    dup = np.flatnonzero(ts[1:] == ts[:-1]) + 1
    if dup.size:
        same = _same_rows(ohlcv[dup], ohlcv[dup - 1])
        if not bool(np.all(same)):
            j = int(dup[np.flatnonzero(~same)[0]])
            first, second = items[int(src[j - 1])], items[int(src[j])]
            where1 = _row_label(first, int(pos[j - 1]))
            raise _err(
                second.path,
                second.parsed,
                int(pos[j]),
                f"{key}: two different candles for {_iso(int(ts[j]))} (the other is {where1})",
            )
        for d in dup:
            items[int(src[d])].duplicates_dropped += 1
        keep = np.ones(ts.shape[0], dtype=bool)
        keep[dup] = False
        ts, ohlcv, src = ts[keep], ohlcv[keep], src[keep]
    return ts, ohlcv, src


def _row_label(item: _Loaded, i: int) -> str:
    n = int(item.parsed.rownums[i])
    return f"{item.path}:{n}" if item.parsed.is_line else f"{item.path} row {n}"


def _validate(ohlcv: np.ndarray) -> list[tuple[int, str]]:
    """(row, reason) of every row that is not a valid candle (first reason only)."""
    o, h, lo, c, v = (ohlcv[:, j] for j in range(5))
    checks: list[tuple[np.ndarray, str]] = []
    for j, name in enumerate(_PRICE_FIELDS):
        col = ohlcv[:, j]
        checks.append((np.isnan(col), f"missing {name}"))
        checks.append((np.isinf(col), f"infinite {name}"))
        checks.append((col <= 0, f"{name} is not positive"))
    with np.errstate(invalid="ignore"):
        checks.append((h < np.maximum(np.maximum(o, c), lo), "high below open/close/low"))
        checks.append((lo > np.minimum(o, c), "low above open/close"))
        checks.append((np.isinf(v), "infinite volume"))
        checks.append((v < 0, "negative volume"))
    bad: dict[int, str] = {}
    for mask, reason in checks:
        for i in np.flatnonzero(mask):
            bad.setdefault(int(i), reason)
    return sorted(bad.items())


def load(
    paths: Sequence[str | Path],
    timeframe: str | None = None,
    symbols: Sequence[str] | None = None,
) -> MarketData:
    """Load candle files and folders (non-recursive) into one aligned :class:`MarketData`.

    ``timeframe`` selects files in folders and supplies the timeframe of files whose names do
    not carry one; ``symbols`` (series keys such as ``"BTC/USDT"`` or ``"XRP/USDT:USDT@mark"``)
    selects series, and a single symbol names a file whose name does not carry one.
    Several files of one symbol are merged (exact duplicate rows dropped).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if isinstance(symbols, str):
        symbols = [symbols]
    if timeframe is not None:
        timeframe_to_ms(timeframe)
    wanted = None if symbols is None else set(symbols)
    files = _expand(paths, timeframe, wanted)
    if not files:
        raise DataError(
            "no candle files match"
            + (f" timeframe {timeframe}" if timeframe else "")
            + (f" symbols {', '.join(sorted(wanted))}" if wanted else "")
        )

    loaded: list[_Loaded] = []
    seen: set[str] = set()
    for path, _explicit in files:
        if path in seen:
            continue
        seen.add(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read: {exc.strerror or exc}", path) from None
        parsed = _read_file(raw, path)
        info = _resolve(path, parsed, timeframe, symbols)
        if wanted is not None and info.key not in wanted:
            continue
        loaded.append(_Loaded(path, parsed, info, hashlib.sha256(raw).hexdigest()))
    if not loaded:
        raise DataError(f"none of the files hold symbols {', '.join(sorted(wanted or ()))}")

    timeframes = sorted({it.info.timeframe for it in loaded}, key=timeframe_to_ms)
    if len(timeframes) > 1:
        examples = "; ".join(
            f"{next(it.path for it in loaded if it.info.timeframe == tf)} is {tf}"
            for tf in timeframes
        )
        raise DataError(f"mixed timeframes ({examples}); load one timeframe at a time")
    tf = timeframes[0]
    grid = _Grid.of(tf)
    for it in loaded:
        _check_grid(it, grid)
        _check_spacing(it, grid)

    by_key: dict[str, list[_Loaded]] = {}
    for it in loaded:
        by_key.setdefault(it.info.key, []).append(it)
    if wanted is not None:
        missing = sorted(wanted - set(by_key))
        if missing:
            raise DataError(f"no data for {', '.join(missing)}")

    merged: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for key in sorted(by_key):
        merged[key] = _merge(by_key[key], key)

    lo = min(int(grid.index(m[0][:1])[0]) for m in merged.values())
    hi = max(int(grid.index(m[0][-1:])[0]) for m in merged.values())
    n = hi - lo + 1
    if n > MAX_GRID_BARS:
        raise DataError(
            f"the files span {n:,} bars of {tf} (more than {MAX_GRID_BARS:,}); load fewer files"
        )
    timestamps = grid.times(lo, hi + 1)
    end_ms = _next_open(int(timestamps[-1]), tf, grid.step or _MONTH_MS)

    series: dict[str, Series] = {}
    gaps: list[Gap] = []
    bad_bars: list[BadBar] = []
    for key, (ts, ohlcv, src) in merged.items():
        items = by_key[key]
        values = ohlcv.copy()
        for i, reason in _validate(values):
            values[i, :] = np.nan
            bad_bars.append(BadBar(key, int(ts[i]), reason, items[int(src[i])].path))
        pos = grid.index(ts) - lo
        block = np.full((5, n), np.nan)
        block[:, pos] = values.T
        info = items[0].info
        series[key] = Series(
            info.symbol, block[0], block[1], block[2], block[3], block[4], info.candle_type
        )
        gaps.extend(_gaps(key, pos, timestamps, end_ms))

    sources = tuple(
        SourceInfo(
            path=it.path,
            format=it.parsed.fmt,
            rows=int(it.parsed.ts.shape[0]),
            sha256=it.sha256,
            symbol=it.info.key,
            timeframe=tf,
            duplicates_dropped=it.duplicates_dropped,
            reordered=it.reordered,
            note=it.note,
        )
        for it in loaded
    )
    return MarketData(
        timeframe_ms=grid.step or _MONTH_MS,
        timestamps=timestamps,
        series=series,
        gaps=tuple(gaps),
        sources=sources,
        bad_bars=tuple(bad_bars),
        timeframe=tf,
    )


def _gaps(key: str, pos: np.ndarray, timestamps: np.ndarray, end_ms: int) -> list[Gap]:
    """Holes in one series: ``pos`` are its (sorted, unique) bar positions on the grid."""
    n = timestamps.shape[0]
    out: list[Gap] = []
    if pos[0] > 0:
        p = int(pos[0])
        out.append(Gap(key, int(timestamps[0]), int(timestamps[p]), p, "leading"))
    steps = np.diff(pos)
    for k in np.flatnonzero(steps > 1):
        a, b = int(pos[k]) + 1, int(pos[k + 1])
        out.append(Gap(key, int(timestamps[a]), int(timestamps[b]), b - a, "internal"))
    if pos[-1] < n - 1:
        a = int(pos[-1]) + 1
        out.append(Gap(key, int(timestamps[a]), end_ms, n - a, "trailing"))
    return out
