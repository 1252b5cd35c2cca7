"""The audit journal: snapshot JSON round trips, append-only rows, export and read-back."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.runtime import journal as jr
from policyctl.runtime.journal import Journal, JournalError, snapshot_from_json, snapshot_to_json
from policyctl.runtime.model import Bar, Fill, MarketRules, OpenOrder, OrderRequest, Quote, Side, Snapshot
from policyctl.runtime.state import EngineState
from policyctl.runtime.store import StateStore

T0 = 1_704_067_200_000


def _strict(text: str) -> object:
    """Parse JSON refusing the non-standard NaN / Infinity tokens."""
    def refuse(token: str) -> object:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _same(a: object, b: object) -> bool:
    """Equal, with NaN equal to NaN and types compared (repr shows both)."""
    return repr(a) == repr(b)


def full_snapshot() -> Snapshot:
    return Snapshot(
        now=T0 + 300_000,
        bars={"BTC/USDT": Bar(T0, 42000.5, 42100.0, 41950.25, 42010.0, 12.5),
              "ETH/USDT": Bar(T0, math.nan, math.inf, -math.inf, 2200.0, 0.0)},
        quotes={"BTC/USDT": Quote(42009.0, 42011.0, 42010.0, T0 + 299_000)},
        cash=10_000.123456789,
        balances={"BTC": 0.1 + 0.2, "ETH": -0.0},
        open_orders=(OpenOrder("pc1", "BTC/USDT", Side.BUY, 0.01, None, 0.0, T0, False),
                     OpenOrder("pc2", "ETH/USDT", Side.SELL, 1.5, 2250.5, 0.5, T0 - 1, True)),
        fills=(Fill("f1", "pc0", "BTC/USDT", Side.BUY, 0.02, 41000.0, 0.82, T0 - 5, ""),
               Fill("f2", "pc9", "ETH/USDT", Side.SELL, 1.0, 2100.0, 2.1, T0 - 4, "stop_loss")),
        markets={"BTC/USDT": MarketRules(0.01, 0.00001, 0.00001, 5.0, "trading"),
                 "ETH/USDT": MarketRules(status="halted")},
        api_errors=(T0 - 10, T0 - 3),
        kill_switch=True,
        new_bar=False,
    )


def test_snapshot_round_trip_is_exact() -> None:
    s = full_snapshot()
    text = snapshot_to_json(s)
    _strict(text)  # strict JSON: no NaN tokens
    back = snapshot_from_json(text)
    assert _same(back, s)
    assert snapshot_to_json(back) == text
    assert math.isnan(back.bars["ETH/USDT"].open)
    assert back.bars["ETH/USDT"].high == math.inf and back.bars["ETH/USDT"].low == -math.inf
    assert math.copysign(1.0, back.balances["ETH"]) == -1.0
    assert back.open_orders[1].side is Side.SELL and back.open_orders[0].price is None
    assert back.fills[1].kind == "stop_loss"


def test_empty_snapshot_round_trip() -> None:
    s = Snapshot(now=T0)
    assert snapshot_from_json(snapshot_to_json(s)) == s


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
ints = st.integers(min_value=0, max_value=2**62)
names = st.sampled_from(["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "Ünïcode/USDT"])
ids = st.text(min_size=1, max_size=12)
sides = st.sampled_from([Side.BUY, Side.SELL])
bars = st.builds(Bar, ints, floats, floats, floats, floats, floats)
quotes = st.builds(Quote, floats, floats, floats, ints)
rules = st.builds(MarketRules, floats, floats, floats, floats, st.sampled_from(["trading", "halted", "post_only"]))
open_orders = st.builds(OpenOrder, ids, names, sides, floats, st.none() | floats, floats, ints, st.booleans())
fills = st.builds(Fill, ids, ids, names, sides, floats, floats, floats, ints, st.sampled_from(["", "stop_loss"]))
snapshots = st.builds(
    Snapshot, now=ints, bars=st.dictionaries(names, bars, max_size=4), quotes=st.dictionaries(names, quotes),
    cash=st.none() | floats, balances=st.dictionaries(st.sampled_from(["BTC", "ETH", "SOL"]), floats),
    open_orders=st.lists(open_orders, max_size=3).map(tuple), fills=st.lists(fills, max_size=3).map(tuple),
    markets=st.dictionaries(names, rules), api_errors=st.lists(ints, max_size=3).map(tuple),
    kill_switch=st.booleans(), new_bar=st.booleans())


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(snapshots)
def test_snapshot_round_trip_property(s: Snapshot) -> None:
    text = snapshot_to_json(s)
    _strict(text)
    back = snapshot_from_json(text)
    assert _same(back, s)
    assert snapshot_to_json(back) == text


def test_order_round_trip() -> None:
    o = OrderRequest("pc1", "BTC/USDT", Side.SELL, "0.01234", "42000.10", "stop_loss", "stop_loss", True,
                     41999.5, 40000.0, None, "trend", math.nan)
    back = jr.order_from_dict(json.loads(jr.dumps(jr.order_to_dict(o))))
    assert _same(back, o)


def test_to_jsonable_handles_engine_values() -> None:
    value = {"nan": math.nan, "t": (1, 2.5, Side.BUY), "s": {3, 1}, "none": None, "inf": -math.inf}
    text = jr.dumps(value)
    assert _strict(text) == {"nan": "NaN", "t": [1, 2.5, "buy"], "s": [1, 3], "none": None, "inf": "-Infinity"}


# ---- the journal table -------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(tmp_path / "state.db", "journal-test", "hash-a")
    s.journal_initial(EngineState.initial(1000.0, T0), T0)
    s.commit(EngineState.initial(1000.0, T0), T0 + 1, [], [jr.snapshot_entry(full_snapshot()),
                                                         jr.note_entry("hello", n=math.nan)])
    s.append([jr.note_entry("later")], T0 + 2)
    return s


def test_entries_in_order_with_filters(store: StateStore) -> None:
    with store.journal() as j:
        allr = list(j.entries())
        assert [r.kind for r in allr] == ["state_initial", "snapshot", "note", "note"]
        assert [r.seq for r in allr] == sorted(r.seq for r in allr)
        assert all(r.policy_hash == "hash-a" for r in allr)
        assert [r.ts for r in allr] == [T0, T0 + 1, T0 + 1, T0 + 2]
        assert [r.kind for r in j.entries(kinds=["note"])] == ["note", "note"]
        assert [r.seq for r in j.entries(since_seq=allr[1].seq)] == [allr[2].seq, allr[3].seq]
        snap = jr.snapshot_from_dict(allr[1].payload["snapshot"])
        assert _same(snap, full_snapshot())
        assert allr[2].payload == {"message": "hello", "n": "NaN"}
    store.close()


def test_rows_cannot_be_updated_or_deleted(store: StateStore) -> None:
    store.close()
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE journal SET kind = 'note' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM journal WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM journal")
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM journal").fetchone()[0] == 4
    with pytest.raises(sqlite3.DatabaseError):  # and a payload must be JSON
        conn.execute("INSERT INTO journal (ts, policy_hash, kind, payload) VALUES (1, 'h', 'note', '{oops')")
    conn.close()


def test_unknown_kind_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="unknown journal entry kind"):
        store.append([jr.Entry("gossip", {})], T0)
    with store.journal() as j:
        assert len(list(j.entries())) == 4  # the failed append left nothing
    store.close()


def test_export_and_read_back(store: StateStore, tmp_path: Path) -> None:
    out = tmp_path / "journal.jsonl"
    with store.journal() as j:
        n = j.export(out)
        from_db = [r.to_dict() for r in j.entries()]
    assert n == 4
    lines = out.read_text(encoding="utf-8").splitlines()
    assert _strict(lines[0]) == {"format": "policyctl-journal", "version": 1}
    for line in lines:
        _strict(line)
    with Journal.open(out) as j:
        assert [r.to_dict() for r in j.entries()] == from_db
        assert [r.kind for r in j.entries(kinds=("snapshot",))] == ["snapshot"]
    store.close()


def test_last_entries_read_from_the_end(store: StateStore, tmp_path: Path) -> None:
    store.append([jr.note_entry(f"n{k}") for k in range(5)], T0 + 3)
    out = tmp_path / "journal.jsonl"
    with store.journal() as j:
        j.export(out)
        every = [r.to_dict() for r in j.entries(kinds=("note", "snapshot"))]
        for n in (0, 1, 3, 7, 50):
            want = every[-n:] if n else []
            assert [r.to_dict() for r in j.last(("note", "snapshot"), n)] == want
        assert j.last(("decision",), 5) == []
    with Journal.open(out) as j:  # an exported journal gives the same
        assert [r.to_dict() for r in j.last(("note", "snapshot"), 3)] == every[-3:]
    store.close()


def test_reader_works_while_the_store_is_live(store: StateStore) -> None:
    with store.journal() as j:
        before = len(list(j.entries()))
        store.append([jr.note_entry("more")], T0 + 3)
        assert len(list(j.entries())) == before + 1
    store.close()


def test_unreadable_journals(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot read"):
        Journal.open(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "policyctl-journal", "version": 1}\n{"seq": 1}\n', encoding="utf-8")
    with Journal.open(bad) as j, pytest.raises(JournalError, match=r"bad\.jsonl:2"):
        list(j.entries())
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="no readable journal"):
        Journal.open(other)
