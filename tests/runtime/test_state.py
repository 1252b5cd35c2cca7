"""The engine state's bounded memory of ids (sent client ids, booked fills)."""

from __future__ import annotations

from policyctl.runtime.state import EngineState


def test_remember_keeps_at_least_the_newest_ids_and_stays_bounded() -> None:
    state = EngineState()
    ids: dict[str, int] = {}
    cap = EngineState.MAX_IDS
    for k in range(5 * cap + 17):
        state.remember(ids, f"id{k}", k)
        assert min(k + 1, cap) <= len(ids) <= cap + cap // 8
        assert f"id{k}" in ids and (k < cap or f"id{k - cap + 1}" in ids)  # the newest MAX_IDS stay
    assert list(ids) == [f"id{k}" for k in range(5 * cap + 17 - len(ids), 5 * cap + 17)]  # oldest went first


def test_remembering_an_id_again_does_not_grow_the_memory() -> None:
    state = EngineState()
    ids: dict[str, int] = {}
    for _ in range(3):
        state.remember(ids, "same", 1)
    assert ids == {"same": 1}
