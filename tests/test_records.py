"""``records.fast_init``: the faster ``__init__`` builds the same frozen record."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from policyctl.records import fast_init
from policyctl.runtime.model import Bar, Event, OrderRequest, Side


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "b"
    c: list[int] = dataclasses.field(default_factory=list)


def _reference() -> type:
    @dataclasses.dataclass(frozen=True, slots=True)
    class _Plain:
        a: int
        b: str = "b"
        c: list[int] = dataclasses.field(default_factory=list)

    return _Plain


def test_same_values_defaults_and_factories_as_the_dataclass_init() -> None:
    ref = _reference()
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1,), {}), ((1, "x"), {}), ((1,), {"c": [2]}), ((), {"a": 3, "b": "y", "c": [4]})]
    for args, kwargs in cases:
        got, want = _Plain(*args, **kwargs), ref(*args, **kwargs)
        assert dataclasses.astuple(got) == dataclasses.astuple(want)
    assert _Plain(1).c is not _Plain(1).c  # a fresh default per instance


def test_still_frozen_hashable_comparable_and_picklable() -> None:
    x = _Plain(1, "x", [])
    with pytest.raises(dataclasses.FrozenInstanceError):
        x.a = 2  # type: ignore[misc]
    assert x == _Plain(1, "x", []) and x != _Plain(2, "x", [])
    bar = Bar(0, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert hash(bar) == hash(Bar(0, 1.0, 2.0, 0.5, 1.5, 10.0))
    assert pickle.loads(pickle.dumps(bar)) == bar
    assert Event("fill", "m").data == {}


def test_argument_errors_are_the_usual_ones() -> None:
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'a'"):
        _Plain()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        _Plain(1, d=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        OrderRequest("cid", "BTC/USDT", Side.BUY)


def test_refuses_what_it_cannot_build() -> None:
    with pytest.raises(TypeError, match="frozen dataclass with slots"):
        fast_init(dataclasses.dataclass(slots=True)(type("M", (), {"__annotations__": {"a": "int"}})))

    @dataclasses.dataclass(frozen=True, slots=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__post_init__"):
        fast_init(Post)

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class KwOnly:
        a: int

    with pytest.raises(TypeError, match="positional"):
        fast_init(KwOnly)
