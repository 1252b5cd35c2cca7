"""The fast path (skipping provably quiet bars) must decide exactly as the plain loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policyctl.rules.compiler import load_and_compile
from policyctl.simulator.run import SimConfig, simulate
from policyctl.simulator.synthetic import synthetic_market

ROOT = Path(__file__).resolve().parents[1]
POLICIES = sorted(p.name for p in (ROOT / "policies").glob("*.yaml") if not p.name.endswith(".test.yaml"))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", [3, 42])
def test_fast_path_equals_plain_loop(policy: str, seed: int) -> None:
    cp = load_and_compile(ROOT / "policies" / policy)
    md = synthetic_market(seed, bars=2500, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    cfg = SimConfig(seed=seed)
    slow = simulate(cp, md, cfg, fast=False)
    fast = simulate(cp, md, cfg, fast=True)
    key = lambda f: (f.symbol, f.side.value, f.qty, f.price, f.ts, f.kind)  # noqa: E731
    assert [key(f) for f in fast.fills] == [key(f) for f in slow.fills]
    np.testing.assert_array_equal(fast.equity, slow.equity)
    np.testing.assert_array_equal(fast.state_codes, slow.state_codes)
    assert fast.denials == slow.denials
    assert fast.breaker_trips == slow.breaker_trips
    assert fast.events == slow.events
    # and it is fast: most bars are provably quiet (a scan that cannot read a condition would
    # tick the engine on every bar, still correct but slow)
    assert slow.decisions == len(md.timestamps)
    assert fast.decisions < slow.decisions / 2, (fast.decisions, slow.decisions)


def test_candle_only_breaker_does_not_force_ticks() -> None:
    """Regression: a breaker built from candles alone must be read by the scan, not treated as
    'could fire anywhere' (which ticked the engine on every bar)."""
    cp = load_and_compile(ROOT / "benchmarks" / "reference_risk.yaml")
    md = synthetic_market(42, bars=3000, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    fast = simulate(cp, md, SimConfig(seed=42), fast=True)
    assert fast.decisions < len(md.timestamps) / 4
