"""The account's sums follow the orders a tick decides, as if summed again each time."""

from __future__ import annotations

import math
import random

from policyctl.runtime.account import Account
from policyctl.runtime.state import EngineState, PendingOrder

SYMBOLS = tuple(f"S{k}/USDT" for k in range(6))


def _fresh(acct: Account) -> Account:
    return Account(acct.equity, acct.cash, dict(acct.prices), dict(acct.price_age), dict(acct.position_value),
                   dict(acct.pending_buys), dict(acct.strategy_exposure), set(acct.open))


def test_sums_moved_by_each_order_match_sums_taken_again() -> None:
    rng = random.Random(7)
    for _ in range(200):
        held = {s: rng.uniform(0, 5000) for s in SYMBOLS if rng.random() < 0.5}
        acct = Account(20_000.0, 8_000.0, {s: 1.0 for s in SYMBOLS}, {s: 0 for s in SYMBOLS}, held,
                       {}, {}, set(held))
        state = EngineState()
        groups = [SYMBOLS[:3], SYMBOLS[2:], SYMBOLS]
        for _ in range(rng.randint(1, 12)):
            for g in groups:  # sums taken (and cached) before the order
                acct.notional_of(g)
            _ = acct.exposure_total, acct.held_or_opening(state)
            s = rng.choice(SYMBOLS)
            n = rng.uniform(1, 2000)
            state.pending[f"c{len(state.pending)}"] = PendingOrder(f"c{len(state.pending)}", s, "buy", 1.0, n,
                                                                   "entry", "r", 0)
            acct.add_pending(s, n, rng.choice([None, "a"]))
            fresh = _fresh(acct)
            for g in groups:
                assert math.isclose(acct.notional_of(g), fresh.notional_of(g), rel_tol=1e-12)
                assert math.isclose(acct.exposure_of(g), fresh.exposure_of(g), rel_tol=1e-12)
            assert math.isclose(acct.exposure_total, fresh.exposure_total, rel_tol=1e-12)
            assert acct.exposure_symbol(s) == fresh.exposure_symbol(s)
            assert acct.held_or_opening(state) == fresh.held_or_opening(state)
