"""``kill -9`` at random points: the database survives, whole ticks or nothing.

A child process opens a store (resuming from the stored state), starts a session and
commits ticks in a loop (state, journal entries of varying size, an order recorded as
submitting, a fill, an equity mark), printing each tick number once its commit returned.
The test kills it with SIGKILL at a seeded random point, then checks that the lock was
released, the database passes ``PRAGMA integrity_check``, the last committed state loads,
and every tick is in the database completely or not at all. Then it starts the next child
on the same database.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from policyctl.runtime import journal as jr
from policyctl.runtime.journal import Journal
from policyctl.runtime.store import StateStore

T0 = 1_704_067_200_000
ITERATIONS = 8

CHILD = r"""
import random
import sys

from policyctl.runtime import journal as jr
from policyctl.runtime.model import Bar, Fill, OpenOrder, OrderRequest, Quote, Side, Snapshot
from policyctl.runtime.state import EngineState
from policyctl.runtime.store import StateStore

T0 = 1_704_067_200_000
path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
store = StateStore(path, "crash-test", "hash-c")
state = store.load_state() or EngineState.initial(10_000.0, T0)
store.journal_initial(state, state.now, mode="paper")
symbols = [f"S{k}/USDT" for k in range(8)]
i = state.bars_seen
while True:
    i += 1
    now = T0 + i * 300_000
    state.now, state.bars_seen = now, i
    state.cash -= 1.0
    state.equity_marks.append((now, state.cash))
    state.remember(state.sent_ids, f"c{i}", now)
    px = 100.0 + i
    snap = Snapshot(
        now=now,
        bars={s: Bar(now - 300_000, px, px + 1, px - 1, px + 0.5, 10.0 * i) for s in symbols},
        quotes={s: Quote(px - 0.01, px + 0.01, px, now) for s in symbols},
        cash=state.cash,
        open_orders=tuple(OpenOrder(f"c{j}", "S0/USDT", Side.BUY, 1.0, px, 0.0, now) for j in range(i % 5)),
        fills=(Fill(f"f{i}", f"c{i - 1}", "S0/USDT", Side.BUY, 0.5, px, 0.01, now - 1),),
    )
    bulk = "x" * rng.randint(0, 30_000)  # some ticks span many pages
    entries = [jr.snapshot_entry(snap), jr.Entry("decision", {"tick": i, "trace": [bulk]})]
    order = OrderRequest(f"c{i}", "S0/USDT", Side.BUY, "0.5", None, "entry", "r", False, px)
    store.commit(state, now, [order], entries, fills=snap.fills, equity=state.cash)
    print(i, flush=True)
"""


def run_and_kill(db: Path, seed: int, rng: random.Random) -> int:
    """Start a child, let it commit a random number of ticks, SIGKILL it; the last tick it reported."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(seed)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    target = rng.randint(1, 40)
    last = 0
    try:
        for _ in range(target):
            line = child.stdout.readline()
            assert line, child.stderr.read()
            last = int(line)
        time.sleep(rng.uniform(0.0, 0.03))  # land somewhere inside a later commit
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        rest = child.stdout.read()  # what it printed while we were not reading
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    done = [int(x) for x in rest.split("\n")[:-1]]  # complete lines only
    return max([last, *done])


def test_sigkill_at_random_points_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    rng = random.Random(20240101)
    for iteration in range(1, ITERATIONS + 1):
        printed = run_and_kill(db, iteration, rng)

        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.close()

        with StateStore(db, "crash-test", "hash-c") as store:  # the dead child's lock is gone
            state = store.load_state()
            assert state is not None
            n = state.bars_seen
            assert printed <= n <= printed + 1  # killed after the last print, or between a commit and its print
            assert state.cash == 10_000.0 - n and state.now == T0 + n * 300_000
            assert [o.client_id for o in store.orders_in(["submitting"])] == [f"c{k}" for k in range(1, n + 1)]
            assert sorted(f.id for f in store.fills()) == sorted(f"f{k}" for k in range(1, n + 1))
            assert store.record_fills([]) == []  # every stored fill was booked by its committed tick
            assert [t for t, _ in store.marks()] == [T0 + k * 300_000 for k in range(1, n + 1)]

        with Journal.open(db) as j:
            records = list(j.entries())
        seqs = [r.seq for r in records]
        assert seqs == sorted(set(seqs))
        for r in records:  # every row is whole: the payload parses, and snapshots decode
            json.loads(json.dumps(r.payload))
            assert r.policy_hash == "hash-c"
        assert sum(r.kind == "state_initial" for r in records) == iteration
        snaps = [jr.snapshot_from_dict(r.payload["snapshot"]) for r in records if r.kind == "snapshot"]
        ticks = [r.payload["tick"] for r in records if r.kind == "decision"]
        assert ticks == list(range(1, n + 1))  # each committed tick once, none half there
        assert [s.now for s in snaps] == [T0 + k * 300_000 for k in range(1, n + 1)]
        assert [r.kind for r in records].count("order") == n and [r.kind for r in records].count("fill") == n
