"""Replay: journaled ticks fed back through a fresh engine give the same decisions.

Two journals are produced with the real engine on the embedded synthetic market:

* the simulator's own loop (``policyctl.simulator.run.simulate``, every bar ticked), with its
  engine journaling each tick through a :class:`StateStore` exactly as the live runtime does
  (``journal_initial`` before the first tick, ``commit_tick`` after each);
* a small runtime-shaped loop with what the live runtime adds: an indicator warm-up, missed
  bars coalesced into the next tick, a stop and a restart from the stored state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from policyctl.cli import main
from policyctl.rules.compiler import CompiledPolicy, load_and_compile
from policyctl.runtime import journal as jr
from policyctl.runtime.engine import Decision, Engine
from policyctl.runtime.journal import Journal
from policyctl.runtime.model import Bar, MarketRules, Quote, Snapshot
from policyctl.runtime.replay import ReplayError, render_human, render_json, replay
from policyctl.runtime.state import EngineState
from policyctl.runtime.store import StateStore
from policyctl.simulator import run as sim_run
from policyctl.simulator.data import MarketData
from policyctl.simulator.run import SimConfig
from policyctl.simulator.synthetic import synthetic_market

POLICIES = Path(__file__).resolve().parents[2] / "policies"
POLICY = POLICIES / "mean_reversion.yaml"
SEED = 1
BARS = 600
CANDIDATE = {"width": "1.5"}


def market(cp: CompiledPolicy, bars: int = BARS) -> MarketData:
    return synthetic_market(SEED, bars=bars, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)


def journaling_engine(store: StateStore) -> type[Engine]:
    """An Engine that journals every tick the way the live runtime does."""

    class Journaling(Engine):
        started = False

        def tick(self, snap: Snapshot, state: EngineState) -> Decision:
            if not Journaling.started:
                store.journal_initial(state, snap.now, mode=self.mode, live_armed=self.live_armed)
                Journaling.started = True
            d = super().tick(snap, state)
            store.commit_tick(state, snap, d, d.orders)
            return d

    return Journaling


@pytest.fixture(scope="module")
def sim_journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, sim_run.SimResult]]:
    """(database, ticks, simulation result) of the policy simulated on every bar."""
    cp = load_and_compile(POLICY)
    db = tmp_path_factory.mktemp("sim") / "state.db"
    store = StateStore(db, cp.policy.name, cp.hash)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sim_run, "Engine", journaling_engine(store))
        result = sim_run.simulate(cp, market(cp), SimConfig(seed=SEED), fast=False)
    store.close()
    yield db, result.decisions, result


def test_the_journal_is_not_trivial(sim_journal: tuple[Path, int, sim_run.SimResult]) -> None:
    db, ticks, result = sim_journal
    assert ticks == BARS
    assert len(result.fills) > 5 and sum(result.denials.values()) > 0 and result.breaker_trips
    with Journal.open(db) as j:
        counts: dict[str, int] = {}
        for r in j.entries():
            counts[r.kind] = counts.get(r.kind, 0) + 1
    assert counts["state_initial"] == 1 and counts["snapshot"] == counts["decision"] == ticks
    assert counts["order"] > 5 and counts["fill"] == len(result.fills)


def test_same_policy_replays_identically(sim_journal: tuple[Path, int, sim_run.SimResult]) -> None:
    db, ticks, _ = sim_journal
    cp = load_and_compile(POLICY)
    with Journal.open(db) as j:
        res = replay(cp, j)
    assert res.identical, render_human(res)
    assert (res.ticks, res.sessions, res.unpaired) == (ticks, 1, 0)
    assert res.journal_hashes == [cp.hash]
    assert render_human(res).endswith(f"{ticks} ticks, all decisions identical\n")


def test_exported_journal_replays_identically(sim_journal: tuple[Path, int, sim_run.SimResult],
                                             tmp_path: Path) -> None:
    db, ticks, _ = sim_journal
    out = tmp_path / "journal.jsonl"
    with Journal.open(db) as j:
        j.export(out)
    with Journal.open(out) as j:
        res = replay(load_and_compile(POLICY), j)
    assert res.identical and res.ticks == ticks


def test_candidate_policy_differences_are_reported(sim_journal: tuple[Path, int, sim_run.SimResult]) -> None:
    db, ticks, _ = sim_journal
    cp = load_and_compile(POLICY, CANDIDATE)
    assert cp.hash != load_and_compile(POLICY).hash
    with Journal.open(db) as j:
        res = replay(cp, j)
    assert not res.identical and res.ticks == ticks
    assert any(d.orders_added or d.orders_removed or d.orders_changed for d in res.diffs)
    assert not any(d.state_differs for d in res.diffs)  # states are compared for the journal's own policy only
    first = res.diffs[0]
    assert 1 <= first.tick <= ticks and first.seq > 0
    text = render_human(res)
    assert f"tick {first.tick} at " in text and "with different decisions" in text
    data = json.loads(render_json(res))
    assert data["identical"] is False and data["differing_ticks"] == len(res.diffs)


def test_cli_replay(sim_journal: tuple[Path, int, sim_run.SimResult], tmp_path: Path) -> None:
    db, ticks, _ = sim_journal
    runner = CliRunner()
    same = runner.invoke(main, ["replay", str(db), "--policy", str(POLICY)])
    assert same.exit_code == 0, same.output
    assert f"{ticks} ticks, all decisions identical" in same.output
    other = runner.invoke(main, ["replay", str(db), "--policy", str(POLICY), "--param", "width=1.5"])
    assert other.exit_code == 1, other.output
    assert "with different decisions" in other.output
    js = runner.invoke(main, ["replay", str(db), "--policy", str(POLICY), "--format", "json"])
    assert js.exit_code == 0 and json.loads(js.output)["identical"] is True
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n", encoding="utf-8")
    bad = runner.invoke(main, ["replay", str(garbage), "--policy", str(POLICY)])
    assert bad.exit_code == 2 and "not a journal line" in bad.output


def test_a_tampered_export_is_caught(sim_journal: tuple[Path, int, sim_run.SimResult], tmp_path: Path) -> None:
    db, _, _ = sim_journal
    out = tmp_path / "journal.jsonl"
    with Journal.open(db) as j:
        j.export(out)
    lines = out.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec.get("kind") == "decision" and rec["payload"]["orders"]:
            o = rec["payload"]["orders"][0]
            o["qty"] = str(float(o["qty"]) * 2)
            lines[i] = json.dumps(rec)
            break
    else:
        pytest.fail("no decision with orders")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["replay", str(out), "--policy", str(POLICY)])
    assert result.exit_code == 1
    assert "~ order" in result.output and "qty" in result.output


def test_a_tick_before_any_session_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "journal.jsonl"
    snap = jr.snapshot_entry(Snapshot(now=1))
    out.write_text(json.dumps({"seq": 1, "ts": 1, "policy_hash": "h", "kind": "snapshot",
                               "payload": dict(snap.payload)}) + "\n", encoding="utf-8")
    with Journal.open(out) as j, pytest.raises(ReplayError, match="before any state_initial"):
        replay(load_and_compile(POLICY), j)


# ---- a runtime-shaped journal: warm-up, missed bars, restart ------------------------------------


class MiniRuntime:
    """What the live runtime does around the engine, on recorded bars, with no exchange."""

    WARMUP = 60

    def __init__(self, cp: CompiledPolicy, md: MarketData, db: Path):
        self.cp, self.md, self.db = cp, md, db
        self.tf = md.timeframe_ms
        self.cols = {s: [np.asarray(getattr(md.series[s], f), dtype=np.float64)
                         for f in ("open", "high", "low", "close", "volume")] for s in cp.symbols}
        self.markets = {s: MarketRules(tick_size=0.0001, step_size=0.0001) for s in cp.symbols}
        self.ticks = 0

    def bars_at(self, t: int) -> dict[str, Bar]:
        ts = int(self.md.timestamps[t])
        out = {}
        for s, cols in self.cols.items():
            vals = [float(c[t]) for c in cols]
            if all(math.isfinite(v) for v in vals):
                out[s] = Bar(ts, *vals)
        return out

    def session(self, start: int, end: int, skip_every: int) -> None:
        store = StateStore(self.db, self.cp.policy.name, self.cp.hash)
        now = int(self.md.timestamps[start])
        state = store.load_state() or EngineState.initial(10_000.0, now)
        engine = Engine(self.cp, mode="paper")
        store.journal_initial(state, now, mode="paper")
        # one on_bar call per bar time, every symbol's bar in it (each call is one step of every indicator)
        warm: list[dict[str, Bar]] = [self.bars_at(t) for t in range(max(0, start - self.WARMUP), start)]
        for call in warm:
            engine.source.on_bar(call)
        store.journal_warmup(warm, now)
        t = start
        while t < end:
            missed: list[dict[str, Bar]] = []
            if t % skip_every == 0 and t + 1 < end:  # this bar was missed: it only feeds the indicators
                bars = self.bars_at(t)
                engine.source.on_bar(bars)
                for s, b in bars.items():
                    state.last_bar_ts[s] = b.ts
                missed.append(bars)
                t += 1
            bars = self.bars_at(t)
            now = int(self.md.timestamps[t]) + self.tf
            quotes = {s: Quote(b.close * 0.9999, b.close * 1.0001, b.close, now) for s, b in bars.items()}
            snap = Snapshot(now=now, bars=bars, quotes=quotes, markets=self.markets)
            d = engine.tick(snap, state)
            store.commit_tick(state, snap, d, d.orders, missed=missed)
            self.ticks += 1
            t += 1
        store.save_state(state, now, reason="shutdown")
        store.close()


def test_runtime_shaped_journal_replays_identically(tmp_path: Path) -> None:
    cp = load_and_compile(POLICY)
    rt = MiniRuntime(cp, market(cp, 400), tmp_path / "state.db")
    rt.session(100, 250, skip_every=7)
    rt.session(250, 400, skip_every=5)  # a restart from the stored state
    with Journal.open(rt.db) as j:
        res = replay(cp, j)
        decisions = [r.payload for r in j.entries(kinds=["decision"])]
    assert res.identical, render_human(res)
    assert (res.ticks, res.sessions) == (rt.ticks, 2)
    assert sum(len(d["orders"]) for d in decisions) > 0
    with Journal.open(rt.db) as j:
        candidate = replay(load_and_compile(POLICY, CANDIDATE), j)
    assert not candidate.identical


def test_warmup_and_missed_bars_are_part_of_the_replay(tmp_path: Path) -> None:
    """Without the journaled warm-up or missed bars the indicators differ: the runtime must write them."""
    cp = load_and_compile(POLICY)
    rt = MiniRuntime(cp, market(cp, 400), tmp_path / "state.db")
    rt.session(100, 250, skip_every=7)
    rt.session(250, 400, skip_every=5)
    with Journal.open(rt.db) as j:
        records = [r.to_dict() for r in j.entries()]

    def replay_of(recs: list[dict[str, object]]) -> bool:
        out = tmp_path / "edited.jsonl"
        out.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
        with Journal.open(out) as j:
            return replay(cp, j).identical

    assert replay_of(records)
    assert not replay_of([r for r in records if r["kind"] != "warmup"])
    no_missed = [{**r, "payload": {**r["payload"], "missed": []}} if r["kind"] == "snapshot" else r
                 for r in records]
    assert not replay_of(no_missed)
