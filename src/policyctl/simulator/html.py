"""The simulation report as one self-contained HTML page.

:func:`render_html` draws the report of :func:`policyctl.simulator.report.build_report`
(or the same dict read back from ``report.json``): headline figures, the equity curve and
its drawdown, each symbol's price with the trades on it, breaker periods shaded across every
chart, the denials, the trades, data quality and the metadata. Charts are inline SVG drawn
here; the page loads nothing (no network, no scripts, no external CSS), so it can be opened
from a CI artifact or attached to a ticket. Hovering a marker or a shaded period shows its
details (SVG ``<title>``). The output is a pure function of the report.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

__all__ = ["render_html"]

#: Most trades drawn as markers on one price chart, and rows in the trades table.
MAX_MARKERS = 2000
MAX_TABLE_ROWS = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATE_COLORS = {"paused": "#f59e0b", "reduce_only": "#f97316", "halted": "#dc2626"}
_GREEN, _RED, _STOP, _BLUE = "#16a34a", "#dc2626", "#7c3aed", "#2563eb"
_W = 1100  # chart width in SVG units
_ML, _MR, _MT, _MB = 78, 16, 24, 26  # margins


# --------------------------------------------------------------------------------------
# formatting


def _f(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _num(x: object, digits: int = 2) -> str:
    v = _f(x)
    if v is None:
        return "—"
    return f"{v:,.{digits}f}".replace("-", "−")


def _price(x: object) -> str:
    v = _f(x)
    if v is None:
        return "—"
    a = abs(v)
    digits = 2 if a >= 100 else 4 if a >= 1 else 6 if a >= 0.01 else 8
    return _num(v, digits)


def _pct(x: object, digits: int = 2, sign: bool = False) -> str:
    v = _f(x)
    if v is None:
        return "—"
    s = f"{v * 100:+.{digits}f}%" if sign else f"{v * 100:.{digits}f}%"
    return s.replace("-", "−")


def _int(x: object) -> str:
    v = _f(x)
    return "—" if v is None else f"{int(v):,}"


def _ms_to_iso(ms: float) -> str:
    dt = _EPOCH + timedelta(milliseconds=int(ms))
    return dt.strftime("%Y-%m-%d %H:%M")


def _short_time(s: object) -> str:
    """ISO times from the report, shown as ``YYYY-MM-DD HH:MM[:SS]``."""
    if not isinstance(s, str):
        return "—"
    t = s.replace("T", " ").rstrip("Z")
    if t.endswith(":00") and len(t) == 19:
        t = t[:16]
    return t


def _parse_iso(s: object) -> int | None:
    """An ISO time of the report (``...Z``) back to epoch ms."""
    if not isinstance(s, str):
        return None
    try:
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in s else "%Y-%m-%dT%H:%M:%SZ"
        dt = datetime.strptime(s, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def iso_plus(s: object, ms: int) -> str | None:
    t = _parse_iso(s)
    if t is None:
        return None
    d = _EPOCH + timedelta(milliseconds=t + ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(t + ms) % 1000:03d}Z" if (t + ms) % 1000 else d.strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _n(x: object) -> int:
    v = _f(x)
    return 0 if v is None else int(v)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _fill_time(s: object, tf: int) -> str:
    """A fill time: fills inside a bar are stamped at its last millisecond; show the bar's open."""
    t = _parse_iso(s)
    if t is None or tf <= 0 or (t + 1) % 1000:
        return _short_time(s)
    return _ms_to_iso(t + 1 - tf) + " (in bar)"


def _c(v: float) -> str:
    """An SVG coordinate: one decimal, no trailing zeros."""
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _cls(v: object) -> str:
    x = _f(v)
    return "pos" if x is not None and x > 0 else "neg" if x is not None and x < 0 else ""


# --------------------------------------------------------------------------------------
# scales and ticks


def _nice_step(span: float, target: int) -> float:
    if not span > 0:
        return 1.0
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _y_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    k = 0
    while first + k * step <= hi + step * 1e-9 and k < 50:
        out.append(round(first + k * step, 12))
        k += 1
    return out


def _tick_label(v: float, step: float) -> str:
    """A tick value with as many decimals as the step needs (2.5 -> one, 0.05 -> two)."""
    digits = next((d for d in range(0, 12) if abs(step * 10**d - round(step * 10**d)) < 1e-6 * 10**d), 12)
    return f"{v:,.{digits}f}".replace("-", "−")


_MINUTE, _HOUR, _DAY = 60_000, 3_600_000, 86_400_000
_TIME_STEPS = [_MINUTE * m for m in (1, 5, 15, 30)] + [_HOUR * h for h in (1, 2, 3, 6, 12)] + [
    _DAY * d for d in (1, 2, 7, 14)]
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _month_ticks(t0: int, t1: int, months: int) -> list[int]:
    """Firsts of months (every ``months``, aligned to January) in ``[t0, t1]``."""
    d = _EPOCH + timedelta(milliseconds=t0)
    y, m = d.year, d.month - 1
    m = (m // months) * months
    out: list[int] = []
    while len(out) < 40:
        ms = int((datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC) - _EPOCH).total_seconds() * 1000)
        if ms > t1:
            break
        if ms >= t0:
            out.append(ms)
        m += months
    return out


class _Axis:
    """Bar index <-> x, and times <-> bars from the sampled (bar, ts) pairs."""

    def __init__(self, bars: Sequence[int], ts: Sequence[int], n: int, tf: int):
        self.bars = list(bars)
        self.ts = list(ts)
        self.n = max(n, 1)
        self.tf = tf
        self.pw = _W - _ML - _MR

    def x(self, bar: float) -> float:
        return _ML + (bar / max(self.n - 1, 1)) * self.pw

    def bar_of(self, ms: float) -> float:
        if not self.ts:
            return 0.0
        i = bisect_left(self.ts, ms)
        if i <= 0:
            return self.bars[0] + (ms - self.ts[0]) / self.tf
        if i >= len(self.ts):
            return self.bars[-1] + (ms - self.ts[-1]) / self.tf
        t0, t1, b0, b1 = self.ts[i - 1], self.ts[i], self.bars[i - 1], self.bars[i]
        return b0 + (b1 - b0) * (ms - t0) / (t1 - t0)

    def time_ticks(self) -> list[tuple[float, str]]:
        """Ticks on round times (minutes, hours, days, Mondays, month starts), at most ~8."""
        if not self.ts:
            return []
        t0 = self.ts[0]
        t1 = self.ts[-1] + self.tf
        span = t1 - t0
        step = next((s for s in _TIME_STEPS if span / s <= 8), 0)
        if step:
            anchor = 4 * _DAY if step % (7 * _DAY) == 0 else 0  # weeks start on Monday
            first = -((anchor - t0) // step) * step + anchor if (t0 - anchor) % step else t0
            times = list(range(first, t1 + 1, step))
            fmt = "%Y-%m-%d" if step >= _DAY else "%m-%d %H:%M" if span > _DAY else "%H:%M"
        else:
            months = next((k for k in _MONTH_STEPS if span / (k * 30 * _DAY) <= 8), _MONTH_STEPS[-1])
            times = _month_ticks(t0, t1, months)
            fmt = "%Y" if months >= 12 else "month"
        out = []
        for t in times[:20]:
            b = self.bar_of(t)
            if 0 <= b <= self.n - 1:
                d = _EPOCH + timedelta(milliseconds=t)
                label = f"{_MONTHS[d.month - 1]} {d.year}" if fmt == "month" else d.strftime(fmt)
                out.append((self.x(b), label))
        return out


class _Plot:
    """One chart: a frame, y scale, grid, shading, lines, markers."""

    def __init__(self, axis: _Axis, height: int, lo: float, hi: float, label: str,
                 fmt: Callable[[float, float], str] | None = None, ticks: list[float] | None = None):
        if not hi > lo:
            pad = abs(hi) * 0.01 or 1.0
            lo, hi = lo - pad, hi + pad
        self.axis, self.h, self.lo, self.hi = axis, height, lo, hi
        self.ph = height - _MT - _MB
        self.parts: list[str] = []
        self.label = label
        self.fmt = fmt or _tick_label
        self.ticks = ticks if ticks is not None else _y_ticks(lo, hi)

    def y(self, v: float) -> float:
        return _MT + (self.hi - v) / (self.hi - self.lo) * self.ph

    def frame(self) -> None:
        a = self.axis
        step = self.ticks[1] - self.ticks[0] if len(self.ticks) > 1 else 1.0
        for v in self.ticks:
            y = self.y(v)
            self.parts.append(f'<line class="grid" x1="{_ML}" x2="{_W - _MR}" y1="{_c(y)}" y2="{_c(y)}"/>')
            label = escape(self.fmt(v, step))
            self.parts.append(f'<text class="yl" x="{_ML - 6}" y="{_c(y + 4)}">{label}</text>')
        for x, lab in a.time_ticks():
            self.parts.append(
                f'<line class="grid" x1="{_c(x)}" x2="{_c(x)}" y1="{_MT}" y2="{_MT + self.ph}"/>')
            self.parts.append(f'<text class="xl" x="{_c(x)}" y="{self.h - 8}">{escape(lab)}</text>')
        self.parts.append(f'<text class="lab" x="{_ML}" y="{_MT - 8}">{escape(self.label)}</text>')

    def shade(self, periods: Sequence[Mapping[str, Any]]) -> None:
        a = self.axis
        for p in periods:
            s, e = _f(p.get("start_bar")), _f(p.get("end_bar"))
            if s is None or e is None:
                continue
            x0, x1 = a.x(s), a.x(min(e + 1, a.n - 1))
            state = str(p.get("state", ""))
            color = _STATE_COLORS.get(state, "#9ca3af")
            tip = (f"{state}: {_short_time(p.get('start'))} → {_short_time(p.get('end'))} "
                   f"({_int(p.get('bars'))} bars)" + (f": {p.get('reason')}" if p.get("reason") else ""))
            self.parts.append(
                f'<rect x="{_c(x0)}" y="{_MT}" width="{_c(max(x1 - x0, 1.5))}" height="{_c(self.ph)}" '
                f'fill="{color}" fill-opacity="0.16"><title>{escape(tip)}</title></rect>')

    def gaps(self, gaps: Sequence[Mapping[str, Any]]) -> None:
        """Grey bands where the symbol has no data (gaps and bad bars)."""
        a = self.axis
        for g in gaps:
            t0, t1 = _parse_iso(g.get("start")), _parse_iso(g.get("end"))
            if t0 is None or t1 is None:
                continue
            x0, x1 = a.x(max(a.bar_of(t0), 0)), a.x(min(a.bar_of(t1), a.n - 1))
            tip = (f"no data: {_short_time(g.get('start'))} → {_short_time(g.get('end'))} "
                   f"({_int(g.get('bars'))} bars)")
            self.parts.append(
                f'<rect x="{_c(x0)}" y="{_MT}" width="{_c(max(x1 - x0, 1.5))}" height="{_c(self.ph)}" '
                f'fill="#6b7280" fill-opacity="0.28"><title>{escape(tip)}</title></rect>')

    def path(self, bars: Sequence[int], values: Sequence[object]) -> str:
        """An SVG path through the finite points (a NaN breaks the line)."""
        out: list[str] = []
        pen = False
        for b, v in zip(bars, values, strict=False):
            fv = _f(v)
            if fv is None:
                pen = False
                continue
            out.append(f"{'L' if pen else 'M'}{_c(self.axis.x(b))},{_c(self.y(fv))}")
            pen = True
        return "".join(out)

    def line(self, bars: Sequence[int], values: Sequence[object], color: str, width: float = 1.4) -> None:
        d = self.path(bars, values)
        if d:
            self.parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{width}" '
                              'stroke-linejoin="round"/>')

    def area(self, bars: Sequence[int], values: Sequence[object], base: float, color: str,
             opacity: float = 0.25) -> None:
        pts = [(b, _f(v)) for b, v in zip(bars, values, strict=False)]
        pts2 = [(b, v) for b, v in pts if v is not None]
        if not pts2:
            return
        yb = _c(self.y(base))
        line = "".join(f"L{_c(self.axis.x(b))},{_c(self.y(v))}" for b, v in pts2)
        d = f"M{_c(self.axis.x(pts2[0][0]))},{yb}{line}L{_c(self.axis.x(pts2[-1][0]))},{yb}Z"
        self.parts.append(f'<path d="{d}" fill="{color}" fill-opacity="{opacity}" stroke="none"/>')

    def hline(self, v: float, color: str, dash: str = "4 4") -> None:
        y = _c(self.y(v))
        self.parts.append(f'<line x1="{_ML}" x2="{_W - _MR}" y1="{y}" y2="{y}" stroke="{color}" '
                          f'stroke-dasharray="{dash}" stroke-width="1"/>')

    def vline(self, bar: float, color: str, tip: str) -> None:
        x = _c(self.axis.x(bar))
        self.parts.append(f'<line x1="{x}" x2="{x}" y1="{_MT}" y2="{_MT + self.ph}" stroke="{color}" '
                          f'stroke-width="1.2" stroke-dasharray="3 2"><title>{escape(tip)}</title></line>')

    def marker(self, bar: float, v: float, kind: str, tip: str) -> None:
        x, y = self.axis.x(bar), self.y(v)
        if kind == "entry":  # green triangle up, just below the price
            y += 7
            d = f"M{_c(x)},{_c(y - 5)}L{_c(x + 5)},{_c(y + 4)}L{_c(x - 5)},{_c(y + 4)}Z"
            attrs = f'fill="{_GREEN}" stroke="#14532d" stroke-width="0.6"'
        else:  # triangles down, just above the price
            y -= 7
            d = f"M{_c(x)},{_c(y + 5)}L{_c(x + 5)},{_c(y - 4)}L{_c(x - 5)},{_c(y - 4)}Z"
            if kind == "stop_loss":
                attrs = f'fill="{_STOP}" stroke="#3b0764" stroke-width="0.8"'
            elif kind == "take_profit":
                attrs = f'fill="#fff" stroke="{_RED}" stroke-width="1.6"'
            else:
                attrs = f'fill="{_RED}" stroke="#7f1d1d" stroke-width="0.6"'
        self.parts.append(f'<path d="{d}" {attrs}><title>{escape(tip)}</title></path>')

    def svg(self, cls: str = "chart") -> str:
        body = "".join(self.parts)
        return (f'<svg class="{cls}" viewBox="0 0 {_W} {self.h}" '
                f'role="img" aria-label="{escape(self.label)}">'
                f'<rect class="plot" x="{_ML}" y="{_MT}" width="{self.axis.pw}" height="{self.ph}"/>'
                f"{body}</svg>")


# --------------------------------------------------------------------------------------
# sections


def _card(label: str, value: str, cls: str = "", sub: str = "") -> str:
    subh = f'<div class="sub">{escape(sub)}</div>' if sub else ""
    return (f'<div class="card"><div class="k">{escape(label)}</div>'
            f'<div class="v {cls}">{escape(value)}</div>{subh}</div>')


def _summary_cards(s: Mapping[str, Any], rep: Mapping[str, Any]) -> str:
    denials = rep.get("denials", {}) or {}
    trips = (rep.get("breakers", {}) or {}).get("trips", []) or []
    pf = _f(s.get("profit_factor"))
    cards = [
        _card("Final equity", _num(s.get("final_equity")), _cls(s.get("total_return")),
              f"from {_num(s.get('initial_equity'))}"),
        _card("Total return", _pct(s.get("total_return"), sign=True), _cls(s.get("total_return"))),
        _card("CAGR", _pct(s.get("cagr"), sign=True), _cls(s.get("cagr")),
              f"over {_num(s.get('span_days'), 1)} days"),
        _card("Max drawdown", _pct(s.get("max_drawdown")), "neg" if _f(s.get("max_drawdown")) else "",
              f"trough {_short_time(s.get('max_drawdown_trough'))}" if s.get("max_drawdown_trough") else ""),
        _card("Sharpe", _num(s.get("sharpe")), _cls(s.get("sharpe")), "annualised, rf = 0"),
        _card("Sortino", _num(s.get("sortino")), _cls(s.get("sortino")), "annualised, rf = 0"),
        _card("Volatility", _pct(s.get("volatility")), "", "annualised"),
        _card("Trades", _int(s.get("trades")), "",
              f"{_int(s.get('wins'))} won · {_int(s.get('losses'))} lost"),
        _card("Win rate", _pct(s.get("win_rate"), 1)),
        _card("Profit factor", "∞" if pf is None and _f(s.get("gross_profit")) else _num(pf),
              "pos" if pf is not None and pf > 1 else "neg" if pf is not None else ""),
        _card("Avg win / loss", f"{_num(s.get('avg_win'))} / {_num(s.get('avg_loss'))}"),
        _card("Avg trade", _pct(s.get("avg_trade_return"), sign=True), _cls(s.get("avg_trade_return")),
              f"held {_num(s.get('avg_bars_held'), 1)} bars"),
        _card("Exposure", _pct(s.get("exposure"), 1), "",
              f"{_int(s.get('exposed_bars'))} of {_int(s.get('bars'))} bars"),
        _card("Fees", _num(s.get("fees")), "", f"{_int(s.get('fills'))} fills"),
        _card("Slippage", _num(s.get("slippage")), "", "spread + volatility + size"),
        _card("Denials", _int(denials.get("total")), ""),
        _card("Breaker trips", _int(len(trips)), "neg" if trips else ""),
        _card("Open at end", _int(s.get("open_positions")), "",
              f"unrealized {_num(s.get('unrealized_pnl'))}" if _f(s.get("open_positions")) else ""),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><svg width="22" height="12" viewBox="0 0 22 12">{sw}</svg>{escape(t)}</span>'
        for sw, t in items
    ) + "</div>"


def _swatch_rect(color: str, op: float = 0.3) -> str:
    return f'<rect x="1" y="1" width="20" height="10" fill="{color}" fill-opacity="{op}"/>'


def _swatch_line(color: str, dash: str = "") -> str:
    da = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<line x1="1" y1="6" x2="21" y2="6" stroke="{color}" stroke-width="2"{da}/>'


def _swatch_tri(up: bool, fill: str, stroke: str, sw: float = 0.6) -> str:
    d = "M11,1L16,10L6,10Z" if up else "M11,11L16,2L6,2Z"
    return f'<path d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>'


def _state_legend(periods: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    seen = sorted({str(p.get("state")) for p in periods}, key=lambda s: list(_STATE_COLORS).index(s)
                  if s in _STATE_COLORS else 9)
    return [(_swatch_rect(_STATE_COLORS.get(s, "#9ca3af")), s.replace("_", "-")) for s in seen]


def _charts(rep: Mapping[str, Any]) -> str:
    ser = rep.get("series") or {}
    bars: list[int] = [int(b) for b in ser.get("bar", [])]
    if len(bars) < 2:
        return '<p class="note">Too few bars to draw.</p>'
    md = rep.get("metadata", {}) or {}
    n = int(ser.get("bars") or (bars[-1] + 1))
    tf = int(md.get("timeframe_ms") or 1)
    axis = _Axis(bars, [int(t) for t in ser.get("ts", [])], n, tf)
    breakers = rep.get("breakers", {}) or {}
    periods = breakers.get("periods", []) or []
    trips = breakers.get("trips", []) or []
    s = rep.get("summary", {}) or {}
    out: list[str] = []

    # equity
    eq = [_f(v) for v in ser.get("equity", [])]
    fin = [v for v in eq if v is not None]
    cash = _f(s.get("initial_equity"))
    lo = min([*fin, *([cash] if cash is not None else [])])
    hi = max([*fin, *([cash] if cash is not None else [])])
    pad = (hi - lo) * 0.06 or abs(hi) * 0.01 or 1.0
    p = _Plot(axis, 300, lo - pad, hi + pad, "Equity (marked at each bar's close)")
    p.frame()
    p.shade(periods)
    p.area(bars, eq, p.lo, _BLUE, 0.10)
    if cash is not None:
        p.hline(cash, "#6b7280")
    p.line(bars, eq, _BLUE, 1.6)
    for t in trips:
        b = _f(t.get("bar"))
        if b is not None:
            p.vline(b, _RED, f"breaker {t.get('breaker')}: {t.get('action')} at {_short_time(t.get('time'))}"
                    + (f" until {_short_time(t.get('until'))}" if t.get("until") else ""))
    legend = [(_swatch_line(_BLUE), "equity"), (_swatch_line("#6b7280", "4 4"), "starting cash")]
    if trips:
        legend.append((_swatch_line(_RED, "3 2"), "breaker trip"))
    out.append('<div class="chartbox">' + p.svg() + _legend(legend + _state_legend(periods)) + "</div>")

    # drawdown
    dd = [(-v if v is not None else None) for v in (_f(x) for x in ser.get("drawdown", []))]
    deepest = min([v for v in dd if v is not None] or [0.0])
    lo_dd = min(deepest * 1.1, -0.001)
    q = _Plot(axis, 150, lo_dd, 0.0, "Drawdown from the running peak",
              fmt=lambda v, st: _tick_label(v * 100, st * 100) + "%", ticks=_y_ticks(lo_dd, 0.0, 4))
    q.frame()
    q.shade(periods)
    q.area(bars, dd, 0.0, _RED, 0.35)
    q.line(bars, dd, _RED, 1.0)
    tb = _f(s.get("max_drawdown_trough_bar"))
    if tb is not None and _f(s.get("max_drawdown")):
        q.vline(tb, "#7f1d1d", f"max drawdown {_pct(s.get('max_drawdown'))} at "
                f"{_short_time(s.get('max_drawdown_trough'))}")
    out.append('<div class="chartbox">' + q.svg() + "</div>")

    # prices
    dq = rep.get("data_quality") or {}
    has_gaps = bool(dq.get("total_gaps") or dq.get("total_bad_bars"))
    out.append(_legend([
        (_swatch_line("#374151"), "close"),
        (_swatch_tri(True, _GREEN, "#14532d"), "entry"),
        (_swatch_tri(False, _RED, "#7f1d1d"), "exit (signal)"),
        (_swatch_tri(False, _STOP, "#3b0764", 0.8), "stop-loss"),
        (_swatch_tri(False, "#fff", _RED, 1.6), "take-profit"),
        *_state_legend(periods),
        *([(_swatch_rect("#6b7280", 0.35), "no data")] if has_gaps else []),
    ]))
    trades = rep.get("trades", []) or []
    for sym, closes in sorted((ser.get("close") or {}).items()):
        vals = [_f(v) for v in closes]
        mine = [t for t in trades if t.get("symbol") == sym]
        shown = mine[:MAX_MARKERS]
        prices = [v for v in vals if v is not None]
        for t in shown:
            prices += [v for v in (_f(t.get("entry_price")), _f(t.get("exit_price"))) if v is not None]
        if not prices:
            continue
        lo, hi = min(prices), max(prices)
        pad = (hi - lo) * 0.1 or abs(hi) * 0.01 or 1.0
        pr = _Plot(axis, 220, lo - pad, hi + pad, f"{sym} close · {len(mine)} trades",
                   fmt=lambda v, st: _tick_label(v, st))
        pr.frame()
        pr.shade(periods)
        dqs = ((rep.get("data_quality") or {}).get("symbols") or {}).get(sym) or {}
        pr.gaps(dqs.get("gap_list") or [])
        pr.gaps([{"start": b.get("time"), "end": iso_plus(b.get("time"), tf), "bars": 1}
                 for b in dqs.get("bad_bar_list") or []])
        pr.line(bars, vals, "#374151", 1.1)
        for t in shown:
            eb, ep = _f(t.get("entry_bar")), _f(t.get("entry_price"))
            xb, xp = _f(t.get("exit_bar")), _f(t.get("exit_price"))
            if eb is not None and ep is not None:
                pr.marker(eb, ep, "entry", f"buy {_num(t.get('qty'), 6)} {sym} at {_price(ep)} "
                          f"({_fill_time(t.get('entry_time'), tf)})")
            if xb is not None and xp is not None:
                kind = str(t.get("exit_kind") or "signal")
                pr.marker(xb, xp, kind, f"{kind.replace('_', ' ')}: sell at {_price(xp)} "
                          f"({_fill_time(t.get('exit_time'), tf)}), pnl {_num(t.get('pnl'))} "
                          f"({_pct(t.get('return'), sign=True)})")
        for o in rep.get("open_positions", []) or []:
            if o.get("symbol") == sym and _f(o.get("entry_bar")) is not None and _f(o.get("entry_price")):
                pr.marker(float(o["entry_bar"]), float(o["entry_price"]), "entry",
                          f"open position: bought at {_price(o.get('entry_price'))}")
        note = ""
        if len(mine) > MAX_MARKERS:
            note = f"Markers of the first {MAX_MARKERS:,} of {len(mine):,} trades."
        out.append(f'<div class="chartbox">{pr.svg()}'
                   + (f'<p class="note">{escape(note)}</p>' if note else "") + "</div>")
    return "".join(out)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "",
           row_cls: Sequence[str] | None = None, num_from: int = 1, pl_cols: Sequence[int] = (),
           text_cols: Sequence[int] = ()) -> str:
    def num(i: int) -> bool:
        return i >= num_from and i not in text_cols

    def td_cls(i: int) -> str:
        return " ".join(c for c in ("n" if num(i) else "", "pl" if i in pl_cols else "") if c)

    th = "".join(f'<th class="{"n" if num(i) else ""}">{escape(h)}</th>' for i, h in enumerate(head))
    body = []
    for k, r in enumerate(rows):
        rc = f' class="{row_cls[k]}"' if row_cls and row_cls[k] else ""
        body.append(f"<tr{rc}>" + "".join(
            f'<td class="{td_cls(i)}">{escape(c)}</td>' for i, c in enumerate(r)) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _denials(rep: Mapping[str, Any]) -> str:
    d = rep.get("denials", {}) or {}
    by = d.get("by_reason", []) or []
    if not by:
        return '<p class="note">No order was denied.</p>'
    top = max(int(x.get("count", 0)) for x in by) or 1
    rows = []
    for x in by:
        c = int(x.get("count", 0))
        w = 160 * c / top
        rows.append(f'<tr><td><code>{escape(str(x.get("reason")))}</code></td><td class="n">{c:,}</td>'
                    '<td><svg width="164" height="10" viewBox="0 0 164 10">'
                    f'<rect x="0" y="1" width="{_c(w)}" height="8" fill="#f97316" fill-opacity="0.7"/>'
                    "</svg></td></tr>")
    return ('<table class="narrow"><thead><tr><th>reason</th><th class="n">count</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody><tfoot><tr><td>total</td><td class="n">{_int(d.get("total"))}'
            "</td><td></td></tr></tfoot></table>")


MAX_PERIOD_ROWS = 50


def _breakers(rep: Mapping[str, Any]) -> str:
    b = rep.get("breakers", {}) or {}
    trips = b.get("trips", []) or []
    states = b.get("bars_by_state", {}) or {}
    parts = []
    if states:
        parts.append('<p class="note">Bars by trading state: ' + ", ".join(
            f"{escape(k.replace('_', '-'))} {int(v):,}" for k, v in sorted(states.items())) + "</p>")
    if not trips:
        parts.append('<p class="note">No breaker tripped.</p>')
    else:
        rows = [[_short_time(t.get("time")), str(t.get("breaker", "")), str(t.get("action", "")),
                 _short_time(t.get("until")) if t.get("until") else "manual reset / end", _int(t.get("bar"))]
                for t in trips]
        parts.append(_table(["tripped at", "breaker", "action", "until", "bar"], rows, "narrow", num_from=4))
    periods = b.get("periods", []) or []
    if periods:  # every stretch not traded normally, and why (a trip, or a breaker that cannot be evaluated)
        rows = [[_short_time(p.get("start")), _short_time(p.get("end")), str(p.get("state", "")),
                 str(p.get("reason") or "-"), _int(p.get("bars"))] for p in periods[:MAX_PERIOD_ROWS]]
        parts.append(_table(["from", "to", "state", "why", "bars"], rows, "narrow", num_from=4))
        if len(periods) > MAX_PERIOD_ROWS:
            parts.append(f'<p class="note">First {MAX_PERIOD_ROWS} of {len(periods):,} periods '
                         "(all are in report.json).</p>")
    return "".join(parts)


def _trades(rep: Mapping[str, Any]) -> str:
    trades = rep.get("trades", []) or []
    s = rep.get("summary", {}) or {}
    exits = s.get("exits", {}) or {}
    head = ""
    if exits:
        head = '<p class="note">Exits: ' + ", ".join(
            f"{escape(k.replace('_', '-'))} {int(v):,}" for k, v in sorted(exits.items())) + "</p>"
    if not trades:
        return head + '<p class="note">No closed trade.</p>'
    shown = trades[:MAX_TABLE_ROWS]
    tf = _n((rep.get("metadata") or {}).get("timeframe_ms"))
    rows, cls = [], []
    for i, t in enumerate(shown, 1):
        rows.append([str(i), str(t.get("symbol")), _fill_time(t.get("entry_time"), tf),
                     _price(t.get("entry_price")), _fill_time(t.get("exit_time"), tf),
                     _price(t.get("exit_price")), _num(t.get("qty"), 6),
                     _int(t.get("bars_held")), _num(t.get("fees")), _num(t.get("pnl")),
                     _pct(t.get("return"), sign=True), str(t.get("exit_kind", "")).replace("_", "-")])
        cls.append({"pos": "rpos", "neg": "rneg"}.get(_cls(t.get("pnl")), ""))
    more = (f'<p class="note">First {MAX_TABLE_ROWS:,} of {len(trades):,} trades; all are in report.json.</p>'
            if len(trades) > MAX_TABLE_ROWS else "")
    more += ('<p class="note">Times are bar opens: a fill at the open of that bar, or "(in bar)" for stops, '
             "take-profits and limit orders filled during it. Prices are fill prices after spread and "
             "slippage; pnl includes every fee.</p>")
    table = _table(["#", "symbol", "entry", "entry price", "exit", "exit price", "qty", "bars", "fees", "pnl",
                    "return", "exit"], rows, "trades", cls, num_from=3, pl_cols=(9, 10),
                   text_cols=(4, 11))
    return (head + f"<details open><summary>{len(trades):,} closed trades</summary>"
            f'<div class="scroll">{table}</div>{more}</details>')


def _open_positions(rep: Mapping[str, Any]) -> str:
    ops = rep.get("open_positions", []) or []
    if not ops:
        return ""
    rows = [[str(o.get("symbol")), _short_time(o.get("entry_time")), _price(o.get("entry_price")),
             _num(o.get("qty"), 6), _price(o.get("mark_price")), _num(o.get("unrealized_pnl"))] for o in ops]
    row_cls = [{"pos": "rpos", "neg": "rneg"}.get(_cls(o.get("unrealized_pnl")), "") for o in ops]
    return ("<h3>Open at the end</h3>"
            + _table(["symbol", "since", "entry price", "qty", "last close", "unrealized pnl"], rows,
                     "narrow", row_cls, num_from=2, pl_cols=(5,)))


def _data_quality(rep: Mapping[str, Any]) -> str:
    dq = rep.get("data_quality", {}) or {}
    syms = dq.get("symbols", {}) or {}
    rows = []
    for sym, d in sorted(syms.items()):
        rows.append([sym, "yes" if d.get("traded") else "no", _int(d.get("gaps")), _int(d.get("gap_bars")),
                     _int(d.get("bad_bars")), _int(d.get("missing_bars"))])
    parts = []
    if not dq.get("total_gaps") and not dq.get("total_bad_bars"):
        parts.append('<p class="note ok">No gaps and no bad bars in the data.</p>')
    parts.append(_table(["symbol", "traded", "gaps", "gap bars", "bad bars", "bars without data"], rows,
                        "narrow", num_from=2))
    for sym, d in sorted(syms.items()):
        gl = d.get("gap_list", []) or []
        bl = d.get("bad_bar_list", []) or []
        if gl:
            more = int(d.get("gaps_not_listed") or 0)
            title = f"{escape(sym)}: {_count(len(gl) + more, 'gap')}"
            parts.append(f"<details><summary>{title}</summary>" + _table(
                ["from", "to (exclusive)", "bars", "kind"],
                [[_short_time(g.get("start")), _short_time(g.get("end")), _int(g.get("bars")),
                  str(g.get("kind"))] for g in gl], "narrow", num_from=2)
                + (f'<p class="note">{more:,} more not listed.</p>' if more else "") + "</details>")
        if bl:
            more = int(d.get("bad_bars_not_listed") or 0)
            parts.append(f"<details><summary>{escape(sym)}: {_count(len(bl) + more, 'bad bar')}</summary>"
                         + _table(
                ["time", "reason", "source"],
                [[_short_time(b.get("time")), str(b.get("reason")), str(b.get("source"))] for b in bl],
                "narrow", num_from=9)
                + (f'<p class="note">{more:,} more not listed.</p>' if more else "") + "</details>")
    rej = rep.get("rejected", {}) or {}
    if rej.get("total"):
        parts.append('<p class="note">Orders the simulated exchange rejected: ' + ", ".join(
            f"{escape(k)} {int(v):,}" for k, v in sorted((rej.get("by_reason") or {}).items())) + "</p>")
    return "".join(parts)


def _kv(d: Mapping[str, Any]) -> str:
    if not d:
        return '<span class="muted">none</span>'
    return "<dl class=\"kv\">" + "".join(
        f"<dt>{escape(str(k))}</dt><dd>{escape(_plain(v))}</dd>" for k, v in sorted(d.items())) + "</dl>"


def _plain(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={_plain(x)}" for k, x in sorted(v.items()))
    return str(v)


def _metadata(rep: Mapping[str, Any]) -> str:
    md = rep.get("metadata", {}) or {}
    main = {k: md.get(k) for k in ("policy", "policy_hash", "symbols", "timeframe", "first_bar", "last_bar",
                                   "end", "bars", "seed", "initial_cash", "decisions")}
    sources = md.get("data", []) or []
    src = _table(["path", "format", "symbol", "rows", "sha256"],
                 [[str(x.get("path")), str(x.get("format")), str(x.get("symbol")), _int(x.get("rows")),
                   str(x.get("sha256"))] for x in sources], "narrow mono", num_from=3) if sources else ""
    return (
        '<div class="meta-grid">'
        f"<div><h3>Run</h3>{_kv(main)}</div>"
        f"<div><h3>Params</h3>{_kv(md.get('params', {}) or {})}"
        f"<h3>Command</h3>{_kv(md.get('run', {}) or {})}</div>"
        f"<div><h3>Fill model</h3>{_kv(md.get('fill_model', {}) or {})}"
        f"<h3>Versions</h3>{_kv(md.get('versions', {}) or {})}</div>"
        "</div>"
        f"<h3>Data</h3>{src}"
    )


_CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f9fafb;--pos:#15803d;--neg:#b91c1c}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
 font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
header h1{margin:0 0 2px;font-size:24px}
header .sub{color:var(--muted)}
.headline{margin:10px 0 18px;font-size:16px}
h2{font-size:17px;margin:30px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:13px;margin:14px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:10px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:9px 12px}
.card .k{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:19px;font-weight:600;margin-top:2px;white-space:nowrap;font-variant-numeric:tabular-nums}
.card .sub{font-size:11px;color:var(--muted);margin-top:1px}
.pos{color:var(--pos)}.neg{color:var(--neg)}
.chartbox{background:#fff;border:1px solid var(--line);border-radius:8px;padding:6px 6px 2px;margin:10px 0}
svg.chart{width:100%;height:auto;display:block}
svg .plot{fill:#fff;stroke:#d1d5db}
svg .grid{stroke:#eef0f3;stroke-width:1}
svg text{font:11px -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Arial,sans-serif;fill:#4b5563}
svg .yl{text-anchor:end}svg .xl{text-anchor:middle}
svg .lab{font-weight:600;fill:#111827;font-size:12px}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:#374151;padding:4px 8px 6px}
.legend span{display:inline-flex;align-items:center;gap:5px}
table{border-collapse:collapse;background:#fff;width:100%;font-variant-numeric:tabular-nums}
table.narrow{width:auto;min-width:360px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:#f3f4f6;font-weight:600;font-size:12px;position:sticky;top:0}
td.n,th.n{text-align:right}
tfoot td{font-weight:600}
tr.rpos td.pl{color:var(--pos)}tr.rneg td.pl{color:var(--neg)}
tbody tr:nth-child(even){background:#fafafa}
.scroll{max-height:520px;overflow:auto;border:1px solid var(--line);border-radius:6px}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
.note{color:var(--muted);margin:6px 0}.note.ok{color:var(--pos)}
.two{display:grid;grid-template-columns:1fr 1fr;gap:24px;align-items:start}
.meta-grid{display:grid;grid-template-columns:1fr 1fr 1fr;gap:18px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
.mono td{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;white-space:normal;
 overflow-wrap:anywhere}
.muted{color:var(--muted)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
footer{margin-top:36px;color:var(--muted);font-size:12px}
@media (max-width:900px){.cards{grid-template-columns:repeat(3,1fr)}
 .two,.meta-grid{grid-template-columns:1fr}}
"""


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML page of a simulation report."""
    md = report.get("metadata", {}) or {}
    s = report.get("summary", {}) or {}
    name = str(md.get("policy", "policy"))
    symbols = md.get("symbols", []) or []
    period = f"{_short_time(md.get('first_bar'))} → {_short_time(md.get('end'))}"
    sub = (f"policy hash {md.get('policy_hash', '?')} · {md.get('timeframe', '?')} bars · "
           f"{_int(md.get('bars'))} bars · {period} · {', '.join(map(str, symbols))} · "
           f"seed {md.get('seed', '?')}")
    ret = escape(_pct(s.get("total_return"), sign=True))
    headline = (f"<b class=\"{_cls(s.get('total_return'))}\">{ret}</b> "
                f"over {escape(_num(s.get('span_days'), 1))} days, "
                f"max drawdown <b>{escape(_pct(s.get('max_drawdown')))}</b>, "
                f"{_count(_n(s.get('trades')), 'trade')}, "
                f"{_count(_n((report.get('denials') or {}).get('total')), 'denial')}, "
                f"{_count(len((report.get('breakers') or {}).get('trips') or []), 'breaker trip')}.")
    body = [
        f"<header><h1>{escape(name)} — simulation report</h1>"
        f'<div class="sub">{escape(sub)}</div></header>',
        f'<p class="headline">{headline}</p>',
        _summary_cards(s, report),
        "<h2>Equity, drawdown and prices</h2>",
        _charts(report),
        '<div class="two"><div><h2>Breakers</h2>' + _breakers(report) + "</div>"
        "<div><h2>Denials by reason</h2>" + _denials(report) + "</div></div>",
        "<h2>Trades</h2>",
        _trades(report),
        _open_positions(report),
        "<h2>Data quality</h2>",
        _data_quality(report),
        "<h2>Metadata</h2>",
        _metadata(report),
        '<footer>Generated by policyctl from report.json. Simulated fills, not live results: see '
        "docs/simulator.md for the fill model.</footer>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(name)} — policyctl simulation</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
