"""The engine state's bounded memory of ids (sent client ids, booked fills)."""

from __future__ import annotations

from policyctl.runtime.state import EngineState


def test_remember_keeps_exactly_the_newest_ids() -> None:
    state = EngineState()
    cap = EngineState.MAX_IDS
    for k in range(3 * cap + 17):
        state.remember(state.fills_seen, f"id{k}", k)
        assert len(state.fills_seen) == min(k + 1, cap)
    assert list(state.fills_seen) == [f"id{k}" for k in range(2 * cap + 17, 3 * cap + 17)]  # oldest went first


def test_remembering_an_id_again_keeps_its_place() -> None:
    state = EngineState()
    for k in range(3):
        state.remember(state.sent_ids, f"c{k}", k)
    state.remember(state.sent_ids, "c0", 9)
    assert list(state.sent_ids.items()) == [("c0", 9), ("c1", 1), ("c2", 2)]


def test_the_memory_survives_a_round_trip() -> None:
    state = EngineState()
    for k in range(EngineState.MAX_IDS + 5):
        state.remember(state.fills_seen, f"f{k}", k)
    back = EngineState.from_json(state.to_json())
    assert dict(back.fills_seen) == dict(state.fills_seen)
    back.remember(back.fills_seen, "new", 1)  # and it stays bounded
    assert "new" in back.fills_seen and len(back.fills_seen) == EngineState.MAX_IDS
