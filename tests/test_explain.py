"""``policyctl explain``: one bar's decision in full, the same as the simulator's on that bar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policyctl import explain as ex
from policyctl.rules import indicators
from policyctl.rules.compiler import CompiledPolicy, load_and_compile
from policyctl.simulator.data import DataError, MarketData
from policyctl.simulator.feed import market_for
from policyctl.simulator.run import SimConfig, SimResult, simulate

ROOT = Path(__file__).resolve().parents[1]
TREND = ROOT / "policies" / "trend.yaml"


@pytest.fixture(scope="module")
def trend() -> tuple[CompiledPolicy, MarketData, SimResult]:
    cp = load_and_compile(TREND)
    md, _ = market_for(cp, None, 42)
    return cp, md, simulate(cp, md, SimConfig(seed=42))


def _decision_bar(md: MarketData, fill_ts: int) -> int:
    """The bar whose close decided an order that filled at ``fill_ts`` (the next bar's open)."""
    return int(np.searchsorted(md.timestamps, fill_ts, side="right")) - 2


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "policyctl.cli", "explain", *args], capture_output=True,
                          text=True, timeout=120)


def test_the_explained_bar_decides_what_the_simulation_decided(trend: tuple[CompiledPolicy, MarketData, SimResult],
                                                               ) -> None:
    cp, md, run = trend
    for fill in run.fills[:4]:
        t = _decision_bar(md, fill.ts)
        d, bar = ex.explain(cp, md, int(md.timestamps[t]), SimConfig(seed=42))
        assert bar == t
        orders = [o for o in d.orders if o.client_id == fill.client_id]
        assert len(orders) == 1, "the order the simulation filled is the one explained"
        assert orders[0].symbol == fill.symbol and orders[0].side == fill.side
        stages = [e["stage"] for e in d.trace]
        assert "trigger" in stages and "order" in stages and "guard" in stages


def test_human_output_shows_the_values_a_rule_read(trend: tuple[CompiledPolicy, MarketData, SimResult]) -> None:
    _, md, run = trend
    entry = next(f for f in run.fills if f.side.value == "buy")
    t = _decision_bar(md, entry.ts)
    out = _cli(str(TREND), "--at", str(int(md.timestamps[t])))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"bar {t} opening" in text
    assert f"trigger `golden_cross` on {entry.symbol}: FIRED" in text
    assert f"client id {entry.client_id}" in text
    # the two averages the crossing compared, as the vectorized indicators give them
    close = np.asarray(md.series[entry.symbol].close, dtype=np.float64)
    block = text.split(f"trigger `golden_cross` on {entry.symbol}: FIRED")[1]
    for n in (20, 50):
        shown = float(block.split(f"sma(close, {n}) = ")[1].split()[0])
        assert shown == pytest.approx(indicators.sma(close, n)[t], rel=1e-5)
    # a cap's room is in its own unit: exposure caps in percent, counts as counts
    room = next(line for line in text.splitlines() if line.strip().startswith("room left:"))
    assert "total_exposure" in room and "%" in room.split("total_exposure")[1].split(",")[0]
    assert "daily_trades" in room and "%" not in room.split("daily_trades")[1].split(",")[0]


def test_json_output_is_the_decision(trend: tuple[CompiledPolicy, MarketData, SimResult]) -> None:
    cp, md, run = trend
    fill = run.fills[0]
    t = _decision_bar(md, fill.ts)
    out = _cli(str(TREND), "--at", str(int(md.timestamps[t])), "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["bar"] == t and doc["policy_hash"] == cp.hash and doc["trading_state"] == "active"
    assert [o["client_id"] for o in doc["orders"]] == [fill.client_id]
    fired = [e for e in doc["trace"] if e["stage"] == "trigger" and e["fired"]]
    assert fired and all(e["inputs"] for e in fired)


def test_a_time_before_the_data_is_an_error_not_a_traceback(trend: tuple[CompiledPolicy, MarketData, SimResult],
                                                            ) -> None:
    _, md, _ = trend
    with pytest.raises(DataError, match="starts after"):
        ex.bar_at(md, int(md.timestamps[0]) - 1)
    out = _cli(str(TREND), "--at", "2000-01-01T00:00Z")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "starts after" in out.stderr


def test_a_time_after_the_data_is_an_error(trend: tuple[CompiledPolicy, MarketData, SimResult]) -> None:
    _, md, _ = trend
    last = int(md.timestamps[-1])
    assert ex.bar_at(md, last + md.timeframe_ms - 1) == len(md.timestamps) - 1  # inside the last bar
    with pytest.raises(DataError, match="the data ends before"):
        ex.bar_at(md, last + md.timeframe_ms)
