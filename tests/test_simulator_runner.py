"""The simulator's per-bar helpers compute exactly what their plain forms compute."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from policyctl.rules.compiler import load_and_compile
from policyctl.simulator.exchange import FillModel
from policyctl.simulator.quiet import VOLUME_RUN, Precomputed
from policyctl.simulator.run import SimConfig, _Runner
from policyctl.simulator.synthetic import synthetic_market

ROOT = Path(__file__).resolve().parents[1]


def test_volume_average_is_the_engines_recursion_bar_after_bar() -> None:
    """Runs filtered ahead serve segments that continue them, and are refiltered from the books'
    average when it is not the run's (a tick that dropped a bar, a segment past the run)."""
    cp = load_and_compile(ROOT / "policies" / "trend.yaml")
    md = synthetic_market(4, bars=3 * VOLUME_RUN, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    pre = Precomputed(cp, md)
    volume = pre.market["volume"][0].tolist()
    rng = np.random.default_rng(2)
    avg, a = volume[0], 1
    while a < len(volume) - 1:
        e = min(len(volume), a + int(rng.integers(1, 300)))
        want = avg
        for x in volume[a:e]:
            want = 0.95 * want + 0.05 * x
        got = pre.volume_average(0, a, e, avg)
        assert got == want, (a, e)
        avg = got
        if rng.random() < 0.5 and e < len(volume):  # a full tick on bar e, sometimes dropping it
            if rng.random() < 0.9:
                avg = 0.95 * avg + 0.05 * volume[e]
            e += 1
        a = e


def test_spreads_per_bar_are_the_exchanges() -> None:
    cp = load_and_compile(ROOT / "policies" / "trend.yaml")
    md = synthetic_market(5, bars=500, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    s = cp.symbols[0]
    bps = np.array(md.spreads[s], dtype=np.float64)
    bps[[3, 10, 11]] = [np.nan, np.inf, -np.inf]
    md = replace(md, spreads={s: bps})
    for fill in (FillModel(), FillModel(spread=0.003)):
        runner = _Runner(cp, md, SimConfig(fill=fill), fast=True)
        want = [runner.ex.spread_at(s, t) for t in range(len(md.timestamps))]
        assert runner.spreads[s].tolist() == want
