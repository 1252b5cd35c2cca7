"""Simulation report: metrics against hand-computed values, report layout and determinism, HTML."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from policyctl.rules.compiler import load_and_compile
from policyctl.runtime.model import Fill, Side
from policyctl.simulator import metrics as mx
from policyctl.simulator.data import load
from policyctl.simulator.html import render_html
from policyctl.simulator.report import (
    MAX_POINTS,
    build_report,
    canonical,
    downsample_indices,
    dumps_report,
    iso_ms,
    state_periods,
)
from policyctl.simulator.run import SimConfig, SimResult, simulate
from policyctl.simulator.synthetic import synthetic_market

ROOT = Path(__file__).resolve().parents[1]
TREND = ROOT / "policies" / "trend.yaml"
T0 = 1_704_067_200_000  # 2024-01-01
TF = 60_000
TS = T0 + TF * np.arange(12, dtype=np.int64)


def fill(n: int, symbol: str, side: str, qty: float, price: float, fee: float, bar: int,
         intrabar: bool = False, kind: str = "") -> Fill:
    ts = int(TS[bar]) + (TF - 1 if intrabar else 0)
    return Fill(f"f{n}", f"c{n}", symbol, Side(side), qty, price, fee, ts, kind)


# --------------------------------------------------------------------------------------
# the equity curve


def test_bar_returns_start_from_the_initial_cash() -> None:
    r = mx.bar_returns(np.array([110.0, 99.0, 99.0]), 100.0)
    assert r.tolist() == pytest.approx([0.1, -0.1, 0.0])


def test_sharpe_and_sortino_by_hand() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])
    # mean 0.005; sample variance (0.005² + 0.015² + 0.015² + 0.005²) / 3 = 5e-4 / 3
    sd = math.sqrt(5e-4 / 3)
    assert mx.sharpe(r, 100.0) == pytest.approx(0.005 / sd * 10)
    assert mx.sharpe(r, 100.0) == pytest.approx(3.872983346)
    # downside deviation: sqrt((0.01²) / 4) = 0.005
    assert mx.sortino(r, 100.0) == pytest.approx(10.0)
    assert mx.sharpe(np.array([0.01, 0.01]), 100.0) is None  # no variation
    assert mx.sortino(np.array([0.01, 0.02]), 100.0) is None  # no losing bar
    assert mx.sharpe(np.array([0.01]), 100.0) is None


def test_bars_per_year_is_a_365_day_year() -> None:
    assert mx.bars_per_year(3_600_000) == 8760
    assert mx.bars_per_year(300_000) == 105_120
    assert mx.bars_per_year(86_400_000) == 365


def test_cagr_by_hand() -> None:
    two_years = 2 * mx.YEAR_MS
    assert mx.cagr(100.0, 121.0, two_years) == pytest.approx(0.1)
    assert mx.cagr(100.0, 81.0, two_years) == pytest.approx(-0.1)
    assert mx.cagr(100.0, 110.0, mx.YEAR_MS // 2) == pytest.approx(0.21)
    assert mx.cagr(100.0, 0.0, two_years) == -1.0
    assert mx.cagr(100.0, 110.0, 0) is None
    assert mx.cagr(100.0, 1e300, 1) is None  # overflows: undefined, not inf


def test_max_drawdown_by_hand() -> None:
    eq = np.array([100.0, 120.0, 90.0, 130.0, 80.0, 100.0])
    dd = mx.max_drawdown(eq, 100.0)
    assert dd.depth == pytest.approx(1 - 80 / 130)
    assert (dd.peak_bar, dd.trough_bar, dd.recovery_bar) == (3, 4, None)
    assert (dd.peak_equity, dd.trough_equity) == (130.0, 80.0)
    series = mx.drawdown_series(eq, 100.0)
    assert series.tolist() == pytest.approx([0.0, 0.0, 0.25, 0.0, 1 - 80 / 130, 1 - 100 / 130])


def test_max_drawdown_recovery_and_the_starting_cash_peak() -> None:
    dd = mx.max_drawdown(np.array([100.0, 90.0, 100.0, 105.0]), 100.0)
    assert dd.depth == pytest.approx(0.1)
    assert (dd.peak_bar, dd.trough_bar, dd.recovery_bar) == (0, 1, 2)
    first = mx.max_drawdown(np.array([90.0, 95.0]), 100.0)
    assert first.depth == pytest.approx(0.1)
    assert (first.peak_bar, first.trough_bar, first.recovery_bar) == (None, 0, None)
    flat = mx.max_drawdown(np.array([100.0, 101.0]), 100.0)
    assert flat.depth == 0.0 and flat.trough_bar is None


# --------------------------------------------------------------------------------------
# trades


def sample_fills() -> list[Fill]:
    return [
        # 1: BTC, buy at bar 1's open, sell at bar 3's open (signal): +9.79
        fill(1, "BTC/USDT", "buy", 1.0, 100.0, 0.10, 1),
        fill(2, "BTC/USDT", "sell", 1.0, 110.0, 0.11, 3),
        # 2: ETH scaled in and out; closed by a take-profit inside bar 6
        fill(3, "ETH/USDT", "buy", 1.0, 100.0, 0.10, 2),
        fill(4, "ETH/USDT", "buy", 1.0, 90.0, 0.09, 3),
        fill(5, "ETH/USDT", "sell", 0.5, 95.0, 0.05, 4, intrabar=True),
        fill(6, "ETH/USDT", "sell", 1.5, 120.0, 0.18, 6, intrabar=True, kind="take_profit"),
        # 3: BTC stopped out inside the bar it was bought in
        fill(7, "BTC/USDT", "buy", 2.0, 50.0, 0.10, 7),
        fill(8, "BTC/USDT", "sell", 2.0, 45.0, 0.09, 7, intrabar=True, kind="stop_loss"),
        # still open at the end
        fill(9, "ETH/USDT", "buy", 1.0, 80.0, 0.08, 9),
    ]


def test_round_trips_by_hand() -> None:
    trades, still = mx.build_trades(sample_fills(), TS, {"ETH/USDT": 85.0})
    assert [(t.symbol, t.entry_bar, t.exit_bar, t.exit_kind) for t in trades] == [
        ("BTC/USDT", 1, 3, "signal"), ("ETH/USDT", 2, 6, "take_profit"), ("BTC/USDT", 7, 7, "stop_loss")]
    a, b, c = trades
    assert a.pnl == pytest.approx(110 - 100 - 0.21)
    assert a.ret == pytest.approx(9.79 / 100.10)
    assert (a.entry_price, a.exit_price, a.qty, a.fills) == (100.0, 110.0, 1.0, 2)
    assert a.fees == pytest.approx(0.21)
    assert a.exit_at_open and a.bars_held == 2
    assert a.entry_ts == TS[1] and a.exit_ts == TS[3]
    assert b.entry_price == pytest.approx(95.0)  # (100 + 90) / 2
    assert b.exit_price == pytest.approx((0.5 * 95 + 1.5 * 120) / 2)
    assert b.qty == 2.0
    assert b.fees == pytest.approx(0.42)
    assert b.pnl == pytest.approx(47.5 + 180 - 190 - 0.42)
    assert b.ret == pytest.approx(b.pnl / (190 + 0.19))
    assert not b.exit_at_open and b.exit_ts == TS[6] + TF - 1
    assert c.pnl == pytest.approx(90 - 100 - 0.19)
    assert c.bars_held == 0
    [p] = still
    assert (p.symbol, p.qty, p.entry_bar, p.entry_price, p.mark_price) == ("ETH/USDT", 1.0, 9, 80.0, 85.0)
    assert p.cost == pytest.approx(80.08)
    assert p.unrealized_pnl == pytest.approx(85 - 80.08)


def test_a_sell_while_flat_is_ignored_and_unmarked_positions_have_no_pnl() -> None:
    fills = [fill(1, "BTC/USDT", "sell", 1.0, 100.0, 0.1, 1), fill(2, "BTC/USDT", "buy", 1.0, 100.0, 0.1, 2)]
    trades, still = mx.build_trades(fills, TS)
    assert trades == []
    assert still[0].mark_price is None and still[0].unrealized_pnl is None


def test_exposure_counts_bars_with_a_position() -> None:
    trades, still = mx.build_trades(sample_fills(), TS)
    mask = mx.exposure_mask(trades, still, len(TS))
    # BTC 1..2 (sold at bar 3's open), ETH 2..6, BTC 7 (in and out inside the bar), ETH 9..11
    assert np.flatnonzero(mask).tolist() == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]


def test_compute_metrics_trade_statistics_by_hand() -> None:
    eq = np.full(len(TS), 10_000.0)
    m = mx.compute_metrics(eq, sample_fills(), TS, TF, 10_000.0, closes={"ETH/USDT": np.full(len(TS), 85.0)},
                           slippage=1.5)
    pnls = [9.79, 47.5 + 180 - 190 - 0.42, -10.19]
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.gross_profit == pytest.approx(pnls[0] + pnls[1])
    assert m.gross_loss == pytest.approx(10.19)
    assert m.profit_factor == pytest.approx((pnls[0] + pnls[1]) / 10.19)
    s = m.summary()
    assert s["avg_win"] == pytest.approx((pnls[0] + pnls[1]) / 2)
    assert s["avg_loss"] == pytest.approx(-10.19)
    assert s["trades"] == 3 and s["wins"] == 2 and s["losses"] == 1
    assert s["exits"] == {"signal": 1, "stop_loss": 1, "take_profit": 1}
    assert s["fees"] == pytest.approx(0.10 + 0.11 + 0.10 + 0.09 + 0.05 + 0.18 + 0.10 + 0.09 + 0.08)
    assert s["slippage"] == 1.5
    assert s["fills"] == 9
    assert s["exposure"] == pytest.approx(10 / 12)
    assert s["open_positions"] == 1
    assert s["unrealized_pnl"] == pytest.approx(85 - 80.08)
    assert s["span_days"] == pytest.approx(12 * TF / mx.DAY_MS)
    assert s["total_return"] == 0.0 and s["max_drawdown"] == 0.0
    assert s["sharpe"] is None  # a flat curve has no Sharpe ratio


def test_no_trades_gives_none_not_nan() -> None:
    m = mx.compute_metrics(np.array([100.0, 100.0]), [], TS[:2], TF, 100.0)
    s = m.summary()
    assert s["win_rate"] is None and s["profit_factor"] is None and s["avg_win"] is None
    assert s["trades"] == 0 and s["exposure"] == 0.0


# --------------------------------------------------------------------------------------
# report helpers


def test_iso_and_state_periods() -> None:
    assert iso_ms(T0) == "2024-01-01T00:00:00Z"
    assert iso_ms(T0 + 59_999) == "2024-01-01T00:00:59.999Z"
    codes = np.array([0, 1, 1, 0, 3, 3, 3, 2], dtype=np.int8)
    periods = state_periods(codes, TS[:8], TF)
    assert [(p["state"], p["start_bar"], p["end_bar"], p["bars"]) for p in periods] == [
        ("paused", 1, 2, 2), ("halted", 4, 6, 3), ("reduce_only", 7, 7, 1)]
    assert periods[0]["start"] == iso_ms(int(TS[1]) + TF)
    assert all(p["reason"] == "" for p in periods)  # no reasons given
    why = state_periods(codes, TS[:8], TF, {1: ["breaker `a` (pause)"], 4: ["kill switch engaged"], 7: ["x", "y"]})
    assert [p["reason"] for p in why] == ["breaker `a` (pause)", "kill switch engaged", "x; y"]


def test_every_restricted_period_of_a_simulation_says_why() -> None:
    from policyctl.simulator.feed import market_for
    from policyctl.simulator.report import build_report
    from policyctl.simulator.run import SimConfig, simulate

    cp = load_and_compile(Path(__file__).resolve().parents[1] / "policies" / "trend.yaml")
    md, _ = market_for(cp, None, 42)
    rep = build_report(simulate(cp, md, SimConfig(seed=42)))
    periods = rep["breakers"]["periods"]
    assert periods and all(p["reason"] for p in periods), periods
    assert "cannot be evaluated" in periods[0]["reason"]  # the warm-up of a breaker's indicator


def test_downsampling_keeps_extremes_and_is_bounded() -> None:
    rng = np.random.default_rng(1)
    eq = 1000 + np.cumsum(rng.normal(size=50_000))
    idx = downsample_indices(eq, 2000, (123,))
    assert len(idx) <= 2000
    assert idx[0] == 0 and idx[-1] == len(eq) - 1 and 123 in idx
    assert int(np.argmin(eq)) in idx and int(np.argmax(eq)) in idx
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, downsample_indices(eq, 2000, (123,)))
    assert downsample_indices(eq[:10]).tolist() == list(range(10))


def test_canonical_json_rounds_and_normalises() -> None:
    out = dumps_report({"b": [0.1 + 0.2, float("nan"), -0.0, np.float64(1 / 3), np.int64(7)],
                        "a": {"z": True, "y": None}})
    assert out.endswith("\n")
    back = json.loads(out)
    assert back == {"a": {"y": None, "z": True}, "b": [0.3, None, 0.0, 0.3333333333, 7]}
    assert out.index('"a"') < out.index('"b"')
    assert dumps_report(back) == out
    assert canonical({1: (1.23456789012345,)}) == {"1": [1.23456789]}


# --------------------------------------------------------------------------------------
# a real run


@pytest.fixture(scope="module")
def run() -> SimResult:
    cp = load_and_compile(TREND)
    md = synthetic_market(42, bars=3000, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    return simulate(cp, md, SimConfig(seed=42))


@pytest.fixture(scope="module")
def report(run: SimResult) -> dict[str, object]:
    return build_report(run, {"command": "simulate", "params": {"fast": "20"}})


def test_report_layout(report: dict[str, object], run: SimResult) -> None:
    assert set(report) == {"format", "version", "metadata", "summary", "trades", "open_positions", "breakers",
                           "denials", "rejected", "events", "data_quality", "regression_keys", "series"}
    md = report["metadata"]
    assert isinstance(md, dict)
    assert md["policy"] == "trend" and md["policy_hash"] == run.policy.hash
    assert md["seed"] == 42 and md["timeframe"] == "5m" and md["bars"] == 3000
    assert md["first_bar"] == "2024-01-01T00:00:00Z"
    assert md["params"] == dict(sorted(run.policy.params.items()))
    assert md["data"][0]["sha256"] == run.data.sources[0].sha256  # type: ignore[index]
    assert set(md["versions"]) == {"policyctl", "python", "numpy"}  # type: ignore[arg-type]
    assert md["run"] == {"command": "simulate", "params": {"fast": "20"}}
    assert md["fill_model"]["taker_fee"] == pytest.approx(0.001)  # type: ignore[index]
    keys = report["regression_keys"]
    assert isinstance(keys, dict)
    assert set(keys) >= {"final_equity", "total_return", "max_drawdown", "trades", "win_rate", "fees",
                         "denials_total", "breaker_trips"}
    assert keys["final_equity"] == pytest.approx(float(run.equity[-1]))
    assert keys["trades"] == len(report["trades"])  # type: ignore[arg-type]
    assert keys["denials_total"] == sum(run.denials.values())
    assert keys["fees"] == pytest.approx(run.fees)
    denials = report["denials"]
    assert isinstance(denials, dict)
    counts = [d["count"] for d in denials["by_reason"]]
    assert counts == sorted(counts, reverse=True)


def test_trades_reconcile_with_the_equity(report: dict[str, object], run: SimResult) -> None:
    s = report["summary"]
    assert isinstance(s, dict)
    unreal = s["unrealized_pnl"]
    assert s["net_trade_pnl"] + unreal == pytest.approx(s["final_equity"] - 10_000.0, abs=1e-6)
    assert s["trades"] > 0
    t0 = report["trades"][0]  # type: ignore[index]
    assert set(t0) == {"symbol", "entry_bar", "entry_time", "entry_price", "exit_bar", "exit_time",
                       "exit_price", "qty", "fees", "pnl", "return", "exit_kind", "bars_held", "fills"}


def test_series_are_downsampled_consistently(report: dict[str, object]) -> None:
    ser = report["series"]
    assert isinstance(ser, dict)
    n = len(ser["bar"])
    assert n <= MAX_POINTS < 3000
    assert len(ser["ts"]) == len(ser["equity"]) == len(ser["drawdown"]) == n
    assert set(ser["close"]) == {"BTC/USDT", "ETH/USDT"}
    assert all(len(v) == n for v in ser["close"].values())
    assert ser["bar"][0] == 0 and ser["bar"][-1] == 2999


def test_report_is_byte_identical(run: SimResult, report: dict[str, object]) -> None:
    text = dumps_report(report)
    assert dumps_report(build_report(run, {"command": "simulate", "params": {"fast": "20"}})) == text
    assert dumps_report(json.loads(text)) == text
    # a second simulation of the same inputs gives the same bytes
    cp = load_and_compile(TREND)
    md = synthetic_market(42, bars=3000, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    meta = {"command": "simulate", "params": {"fast": "20"}}
    again = build_report(simulate(cp, md, SimConfig(seed=42)), meta)
    assert dumps_report(again) == text
    # floats carry at most 10 significant digits
    for num in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text):
        digits = num.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
        assert len(digits) <= 10, num


def test_html_is_self_contained_with_charts(report: dict[str, object]) -> None:
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 4  # equity, drawdown, one chart per symbol (+ legends)
    assert "Equity" in page and "Drawdown" in page
    assert "BTC/USDT close" in page and "ETH/USDT close" in page
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert "Denials by reason" in page and "closed trades" in page and "Data quality" in page
    assert report["metadata"]["policy_hash"] in page  # type: ignore[index]
    assert render_html(json.loads(dumps_report(report))) == render_html(json.loads(dumps_report(report)))


def test_data_quality_with_gaps_and_bad_bars(tmp_path: Path) -> None:
    cp = load_and_compile(TREND)
    md = synthetic_market(7, bars=1200, timeframe="5m", symbols=cp.symbols)
    for sym in cp.symbols:
        ser = md.series[sym]
        lines = ["timestamp,open,high,low,close,volume"]
        for i, t in enumerate(md.timestamps):
            if sym == "ETH/USDT" and (300 <= i < 320 or 700 <= i < 703):
                continue
            o, h, lo, c, v = (float(getattr(ser, k)[i]) for k in ("open", "high", "low", "close", "volume"))
            if sym == "BTC/USDT" and i == 500:
                h = lo * 0.5  # not a candle: becomes a bad bar
            lines.append(f"{int(t)},{o!r},{h!r},{lo!r},{c!r},{v!r}")
        (tmp_path / f"binance_{sym.replace('/', '-')}_5m.csv").write_text("\n".join(lines) + "\n")
    data = load([tmp_path], "5m")
    rep = build_report(simulate(cp, data, SimConfig(seed=42)), {})
    dq = rep["data_quality"]
    assert isinstance(dq, dict)
    assert dq["total_gaps"] == 2 and dq["total_bad_bars"] == 1
    eth, btc = dq["symbols"]["ETH/USDT"], dq["symbols"]["BTC/USDT"]
    assert (eth["gaps"], eth["gap_bars"], eth["missing_bars"]) == (2, 23, 23)
    start, end = iso_ms(int(md.timestamps[300])), iso_ms(int(md.timestamps[320]))
    assert eth["gap_list"][0] == {"start": start, "end": end, "bars": 20, "kind": "internal"}
    assert (btc["bad_bars"], btc["bad_bar_list"][0]["reason"]) == (1, "high below open/close/low")
    paths = sorted(d["path"] for d in rep["metadata"]["data"])  # type: ignore[index]
    assert paths == sorted(str(p) for p in tmp_path.iterdir())
    page = render_html(rep)
    assert "no data" in page and "2 gaps" in page and "1 bad bar<" in page
