"""``vectorized.Partial``: evaluation over a segment where some inputs are constants (floats).

It must give, at every bar and for every symbol, exactly what ``vectorized.evaluate`` gives
with every input spelled out as a full array: the simulator's fast path relies on it
(``tests/test_simulator_fast.py``). Floats stay floats through operators on floats alone
(the scalar functions), ``and``/``or`` stop at a decisive constant, and shapes broadcast.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from policyctl.diagnostics import Diagnostics
from policyctl.dsl.parser import TextSource, parse
from policyctl.rules import scanplan, vectorized
from policyctl.rules.checker import Ctx, Env, Lowerer
from policyctl.rules.graph import Graph
from policyctl.rules.incremental import MARKET_FIELDS, node_state_key

NAN = math.nan
INF = math.inf
SYMBOLS = ("BTC/USDT", "ETH/USDT")
BARS = 7
SPECIAL = [0.0, -0.0, 1.0, 0.5, -2.0, 3.0, 97.0, 100.0, 1.0 + 1e-13, 1e-300, 1e308, -1e308, INF, -INF, NAN]


def compile_expr(text: str) -> tuple[Graph, int]:
    diags = Diagnostics()
    tree = parse(text, "expr", TextSource("test", text), diags)
    assert tree is not None, [d.to_json() for d in diags]
    graph = Graph()
    env = Env(SYMBOLS, {"majors": SYMBOLS}, 300.0, "USDT", {})
    node = Lowerer(graph, env, diags).expr(tree, Ctx("trigger", "t", per_symbol=True))
    assert node is not None and not diags.items, [d.to_json() for d in diags]
    graph.output("trigger", "t", "when", node)
    return graph, node


def same(a: Any, b: Any) -> bool:
    """Equal at every bar and symbol (NaN equal to NaN), once both are broadcast."""
    shape = (len(SYMBOLS), BARS)
    x, y = np.broadcast_to(np.asarray(a, float), shape), np.broadcast_to(np.asarray(b, float), shape)
    return bool(np.array_equal(x, y, equal_nan=True))


# ---- scalar operators ---------------------------------------------------------------------

ARITY = {"gt": 2, "ge": 2, "lt": 2, "le": 2, "eq": 2, "ne": 2, "and": 2, "or": 2, "not": 1, "min": 2,
         "max": 3, "clamp": 3, "any": 1, "all": 1, "add": 2, "sub": 2, "mul": 2, "div": 2, "neg": 1, "abs": 1}


@pytest.mark.parametrize("op", sorted(ARITY))
def test_scalar_operators_equal_the_vectorized_ones(op: str) -> None:
    """Every special value (NaN, infinities, overflow, signed zeros, near-ties): the scalar
    form gives the vectorized form's value, bit for bit."""
    assert set(ARITY) == set(vectorized._SCALAR)
    values = SPECIAL if ARITY[op] < 3 else [0.0, 1.0, -2.0, 1e308, INF, -INF, NAN]
    for xs in itertools.product(values, repeat=ARITY[op]):
        got = vectorized._SCALAR[op](*xs)
        shape = (1, 1) if op in ("any", "all") else (1,)  # any/all reduce over symbols
        with np.errstate(all="ignore"):  # numpy warns of overflows; the scalar form must not
            want = np.asarray(vectorized._pure(op, [np.full(shape, x) for x in xs])).reshape(-1)[0]
        assert isinstance(got, float), (op, xs, got)
        assert (math.isnan(got) and math.isnan(want)) or (got == want and math.copysign(1, got) == math.copysign(
            1, want)), (op, xs, got, want)


# ---- mixed evaluation equals the full one -------------------------------------------------

EXPRESSIONS = [
    "not position.open and close > 100 USDT and trades(1h) < 3",
    "position.open and (close <= 0.97 * position.entry or close >= 1.06 * position.entry)",
    'any(position.open or close of "BTC/USDT" > 100 USDT)',
    "all(not position.open or close > position.entry)",
    "kill_switch or drawdown >= 10% or pnl(1d) <= -2%",
    "clamp(trades(1h), 1, 3) == positions.open",
    "abs(-position.size) > 0 and position.size != 0",
    'exposure.total <= 25% and positions.open < 5 or exposure.theme > 10% or exposure.theme of "majors" > 20%',
    "min(position.size, 2) + max(position.size, volume / 100, 1) - position.size * 2 >= 1",
    "(position.size * 1e300 * 1e300 > 0) or not (position.bars >= 3 and kill_switch)",
    "position.open and kill_switch or product.halted and not position.open",
]


def scenario(graph: Graph, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Random inputs: each state value a float, a (symbols, 1) column or a full array."""
    market = {f: rng.choice(SPECIAL, size=(len(SYMBOLS), BARS)) for f in MARKET_FIELDS}
    kinds: dict[str, tuple[int, bool, list[float]]] = {}
    for n in graph.nodes:
        if n.op not in ("field", "window") or n.market:
            continue
        key = node_state_key(n) if n.op == "window" or (n.attr[1] and n.attr[1] not in SYMBOLS) else str(n.attr[0])
        per_symbol = n.per_symbol or (n.op == "field" and n.attr[1] in SYMBOLS)
        kind = int(rng.integers(3))
        pool = [0.0, 1.0, NAN] if n.type.kind.name == "BOOL" and rng.random() < 0.8 else SPECIAL
        kinds[key] = (kind, per_symbol, pool)
    return draw(kinds, rng), market


def source_for(graph: Graph, state: dict[str, Any], market: dict[str, np.ndarray],
               asked: list[int] | None = None) -> Callable[[int], vectorized.Value | None]:
    """Read fields and windows as the simulator's scan does."""
    index = {s: i for i, s in enumerate(SYMBOLS)}

    def source(i: int) -> vectorized.Value | None:
        n = graph[i]
        if n.op not in ("field", "window"):
            return None
        if asked is not None:
            asked.append(i)
        if n.op == "window":
            return state.get(node_state_key(n), NAN)  # type: ignore[no-any-return]
        name, target = str(n.attr[0]), n.attr[1]
        row = index.get(target) if isinstance(target, str) else None
        if name in MARKET_FIELDS:
            return market[name][row] if row is not None else market[name]
        if target is not None and row is None:
            return state.get(node_state_key(n), NAN)  # type: ignore[no-any-return]
        v = state.get(name, NAN)
        if row is not None and isinstance(v, np.ndarray) and v.ndim == 2:
            return float(v[row][0]) if v.shape[1] == 1 else v[row]
        return v  # type: ignore[no-any-return]

    return source


def full(graph: Graph, state: dict[str, Any]) -> dict[str, np.ndarray]:
    """The same inputs as full arrays, for ``vectorized.evaluate``."""
    k = len(SYMBOLS)
    per_symbol = {str(n.attr[0]) for n in graph.nodes if n.op == "field" and (n.per_symbol or n.attr[1] in SYMBOLS)}
    return {key: np.broadcast_to(np.asarray(v, float), (k, BARS) if key in per_symbol else (BARS,)).copy()
            for key, v in state.items()}


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_mixed_evaluation_equals_the_full_one(text: str) -> None:
    graph, root = compile_expr(text)
    rng = np.random.default_rng(sum(map(ord, text)))
    for _ in range(300):
        state, market = scenario(graph, rng)
        with np.errstate(all="ignore"):  # overflows on purpose
            want = vectorized.evaluate(graph, SYMBOLS, market, full(graph, state), bars=BARS)[root]
            ev = vectorized.Partial(graph, len(SYMBOLS), BARS, source_for(graph, state, market))
            got = ev.value(root)
        assert same(got, want), (text, state, got, want)
        for i, v in ev.values.items():  # every value computed on the way, constants included
            if isinstance(v, np.ndarray) and graph[i].per_symbol:
                assert v.ndim == 2, (text, graph[i].label(), v.shape)  # rows per symbol, for any/all


def test_all_constant_inputs_give_a_float() -> None:
    graph, root = compile_expr("not position.open and (trades(1h) + 1) / 2 < 3 or kill_switch")
    state = {"position.open": 0.0, "trades:3600": 4.0, "kill_switch": NAN}
    v = vectorized.Partial(graph, 2, BARS, source_for(graph, state, {})).value(root)
    assert v == 1.0 and type(v) is float
    state["trades:3600"] = 5.0  # (5 + 1) / 2 < 3 is false; false or unavailable is unavailable
    assert math.isnan(vectorized.Partial(graph, 2, BARS, source_for(graph, state, {})).value(root))


# ---- short circuits -------------------------------------------------------------------------


def asked_labels(text: str, state: dict[str, Any]) -> tuple[vectorized.Value, list[str]]:
    graph, root = compile_expr(text)
    market = {f: np.full((2, BARS), NAN) for f in MARKET_FIELDS}
    asked: list[int] = []
    v = vectorized.Partial(graph, 2, BARS, source_for(graph, state, market, asked)).value(root)
    return v, [graph[i].label() for i in asked]


def test_false_and_stops_without_evaluating_the_other_side() -> None:
    v, asked = asked_labels("position.open and (close > 100 USDT or trades(1h) > 2)", {"position.open": 0.0})
    assert v == 0.0 and asked == ["position.open"]
    v, asked = asked_labels("not position.open and close > 100 USDT", {"position.open": 1.0})
    assert v == 0.0 and asked == ["position.open"]


def test_true_or_stops_without_evaluating_the_other_side() -> None:
    v, asked = asked_labels("kill_switch or drawdown > 10%", {"kill_switch": 1.0, "drawdown": np.full(BARS, NAN)})
    assert v == 1.0 and asked == ["kill_switch"]


def test_a_decisive_right_operand_wins_over_an_unavailable_left_one() -> None:
    """Kleene: unavailable and false is false, unavailable or true is true, at every bar."""
    v, _ = asked_labels("trades(1h) > 2 and position.open", {"trades:3600": np.full(BARS, NAN), "position.open": 0.0})
    assert v == 0.0 and type(v) is float
    v, _ = asked_labels("trades(1h) > 2 or kill_switch", {"trades:3600": np.full(BARS, NAN), "kill_switch": 1.0})
    assert v == 1.0


def test_unavailable_constants_do_not_short_circuit() -> None:
    v, asked = asked_labels("kill_switch and trades(1h) > 2",
                            {"kill_switch": NAN, "trades:3600": np.array([0, 3, NAN, 5, 1, 2, 9.0])})
    assert asked == ["kill_switch", "trades(1h)"]
    assert same(v, [0.0, NAN, NAN, NAN, 0.0, 0.0, NAN])  # NaN and false = false, else NaN


def test_true_and_a_condition_is_the_condition() -> None:
    """``true and x`` is ``x`` itself when x is a comparison (1, 0 or NaN only)..."""
    trades = np.array([0, 3, NAN, 5, 1, 2, 9.0])
    graph, root = compile_expr("kill_switch and trades(1h) > 2")
    ev = vectorized.Partial(graph, 2, BARS, source_for(graph, {"kill_switch": 1.0, "trades:3600": trades}, {}))
    v = ev.value(root)
    assert v is ev.values[graph[root].args[1]]
    assert same(v, [0.0, 1.0, NAN, 1.0, 0.0, 0.0, 1.0])
    # ... but not when x may hold another value: `and` makes it 1
    odd = np.array([0.5, 1.0, 0.0, NAN, 2.0, 0.0, 1.0])
    v, _ = asked_labels("kill_switch and product.halted", {"kill_switch": 1.0, "product.halted": odd})
    assert same(v, [1.0, 1.0, 0.0, NAN, 1.0, 0.0, 1.0])


def test_comparing_a_constant_with_a_series_broadcasts() -> None:
    close = np.array([[96.0, 97.0, 97.0 * (1 + 1e-13), 98.0, NAN, INF, 1.0], [1.0] * BARS])
    graph, root = compile_expr("close <= 0.97 * position.entry")
    state = {"position.entry": np.array([[100.0], [NAN]])}  # one entry per symbol, the same at every bar
    ev = vectorized.Partial(graph, 2, BARS, source_for(graph, state, {"close": close}))
    v = ev.value(root)
    assert isinstance(v, np.ndarray) and v.shape == (2, BARS)
    assert same(v, [[1.0, 1.0, 1.0, 0.0, NAN, NAN, 1.0], [NAN] * BARS])
    mul = graph[root].args[1]
    assert isinstance(ev.values[mul], np.ndarray) and ev.values[mul].shape == (2, 1)  # 0.97 * entry: per symbol
    want = vectorized.evaluate(graph, SYMBOLS, {"close": close}, full(graph, state), bars=BARS)[root]
    assert same(v, want)


# ---- compiled plans -------------------------------------------------------------------------
#
# A plan is the trace of one evaluation turned into straight-line code: for every other segment
# whose inputs have the same kinds (floats, columns, arrays) and whose constants decide the same
# way, it must give what the evaluation gives (the first bar where a condition holds, and every
# bar when none holds at the first); for any other segment it must refuse, leaving the mask alone.

WHOLE = 20  # bars of the series the fixed (market) inputs cover; a segment is BARS of them

PLAN_EXPRESSIONS = [
    "pnl(1d) <= -2% or pnl(7d) <= -5% or drawdown >= 10% or trades(1h) > 3",
    "not position.open and close > 100 USDT and close < 1000 USDT",
    "position.open and (close <= 0.97 * position.entry or close >= 1.06 * position.entry or volume < 1)",
    "any(product.halted or close > 100 USDT) or all(position.open and close < position.entry)",
    "kill_switch and (pnl(1d) <= -2% or exposure.total > 50%) and not (drawdown < 5%)",
    "(position.pnl > 1% or position.bars >= 3) and (spread < 1% or close / position.entry - 1 > 2%)",
    "any(position.open and position.size > 1) and close > 100 USDT or all(position.size < 3) or trades(1h) > 2",
]


def kinds_for(graph: Graph, rng: np.random.Generator) -> dict[str, tuple[int, bool, list[float]]]:
    """A kind for each state value: 0 a float, 1 a (symbols, 1) column, 2 an array."""
    out = {}
    for n in graph.nodes:
        if n.op not in ("field", "window") or n.market:
            continue
        key = node_state_key(n) if n.op == "window" or (n.attr[1] and n.attr[1] not in SYMBOLS) else str(n.attr[0])
        per_symbol = n.per_symbol or (n.op == "field" and n.attr[1] in SYMBOLS)
        pool = [0.0, 1.0, NAN] if n.type.kind.name == "BOOL" and rng.random() < 0.8 else SPECIAL
        out[key] = (int(rng.integers(3)), per_symbol, pool)
    return out


def draw(kinds: dict[str, tuple[int, bool, list[float]]], rng: np.random.Generator) -> dict[str, Any]:
    k = len(SYMBOLS)
    state: dict[str, Any] = {}
    for key, (kind, per_symbol, pool) in kinds.items():
        if kind == 0:
            state[key] = float(rng.choice(pool))
        elif kind == 1 and per_symbol:
            state[key] = rng.choice(pool, size=(k, 1))
        else:
            state[key] = rng.choice(pool, size=(k, BARS) if per_symbol else (BARS,))
    return state


def fixed_inputs(graph: Graph, market: dict[str, np.ndarray]) -> dict[int, vectorized.Value]:
    """The market fields over the whole series: what a plan takes slices of."""
    index = {s: i for i, s in enumerate(SYMBOLS)}
    out: dict[int, vectorized.Value] = {}
    for n in graph.nodes:
        if n.op == "field" and n.market:
            name, target = str(n.attr[0]), n.attr[1]
            row = index.get(target) if isinstance(target, str) else None
            out[n.id] = market[name][row] if row is not None else market[name]
    return out


def interpreted(graph: Graph, conditions: list[scanplan.Condition], state: dict[str, Any],
                market: dict[str, np.ndarray], a: int, record: bool = False) -> tuple[np.ndarray, vectorized.Partial]:
    """Where the conditions hold over [a, a + BARS), as the scan interprets them."""
    segment = {f: m[:, a:a + BARS] for f, m in market.items()}
    ev = vectorized.Partial(graph, len(SYMBOLS), BARS, source_for(graph, state, segment), record=record)
    event = np.zeros(BARS, dtype=bool)
    for c in conditions:
        x = scanplan._holds(ev.value(c.node), c.holds)
        if isinstance(x, np.ndarray):
            if x.ndim == 2:
                x = x[list(c.rows if c.rows is not None else range(len(SYMBOLS)))].any(axis=0)
            event |= x
        elif x:
            event[0] = True
    return event, ev


def planned(plan: scanplan.Plan, graph: Graph, state: dict[str, Any], market: dict[str, np.ndarray],
            a: int) -> np.ndarray | None:
    segment = {f: m[:, a:a + BARS] for f, m in market.items()}
    event = np.zeros(BARS, dtype=bool)
    if plan(source_for(graph, state, segment), a, a + BARS, event):  # type: ignore[arg-type]
        return event
    assert not event.any()  # refused: the mask is left alone
    return None


def conditions_of(graph: Graph, root: int, holds: str) -> list[scanplan.Condition]:
    return [scanplan.Condition(root, holds, (1,) if graph[root].per_symbol else None)]


def record_plan(graph: Graph, conditions: list[scanplan.Condition], state: dict[str, Any],
                market: dict[str, np.ndarray], a: int = 0,
                whole: dict[Any, Any] | None = None) -> tuple[scanplan.Plan, np.ndarray]:
    want, ev = interpreted(graph, conditions, state, market, a, record=True)
    plan = scanplan.compile_plan(ev, conditions, fixed_inputs(graph, market), {} if whole is None else whole)
    assert plan is not None
    return plan, want


def same_events(got: np.ndarray, want: np.ndarray) -> bool:
    """The same first event; and the same mask when the first bar is none (a plan may stop at
    an event on the first bar: nothing comes earlier)."""
    return bool(got[0]) if want[0] else bool(np.array_equal(got, want))


@pytest.mark.parametrize("holds", [scanplan.TRUE, scanplan.NOT_FALSE])
@pytest.mark.parametrize("text", EXPRESSIONS + PLAN_EXPRESSIONS)
def test_a_plan_evaluates_every_segment_of_its_shape_as_the_interpretation_does(text: str, holds: str) -> None:
    graph, root = compile_expr(text)
    conditions = conditions_of(graph, root, holds)
    rng = np.random.default_rng(sum(map(ord, text + holds)))
    accepted = 0
    with np.errstate(all="ignore"):  # overflows on purpose
        for _ in range(40):
            kinds = kinds_for(graph, rng)
            market = {f: rng.choice(SPECIAL, size=(len(SYMBOLS), WHOLE)) for f in MARKET_FIELDS}
            a0 = int(rng.integers(WHOLE - BARS + 1))
            plan, want = record_plan(graph, conditions, draw(kinds, rng), market, a0)
            for _ in range(8):  # same kinds, other values, other segments
                state, a = draw(kinds, rng), int(rng.integers(WHOLE - BARS + 1))
                got = planned(plan, graph, state, market, a)
                if got is not None:
                    accepted += 1
                    want, _ = interpreted(graph, conditions, state, market, a)
                    assert same_events(got, want), (text, plan.source, state, a, got, want)
    assert accepted > 40, accepted


def test_a_plan_computes_the_values_of_its_segment() -> None:
    """Same shape, other values: another entry price moves the exit."""
    graph, root = compile_expr("position.open and close <= 0.97 * position.entry")
    close = 100.0 - np.arange(WHOLE)  # 100, 99, ..., 81
    market = {f: np.vstack([close, close]) for f in MARKET_FIELDS}
    conditions = conditions_of(graph, root, scanplan.TRUE)
    plan, want = record_plan(graph, conditions, {"position.open": 1.0, "position.entry": 100.0}, market)
    assert want.tolist() == [False, False, False, True, True, True, True]  # 97 is 0.97 * 100
    firsts = []
    for entry, a in ((100.0, 10), (95.0, 0), (99.0, 0), (100.0, 0)):
        state = {"position.open": 1.0, "position.entry": entry}
        got = planned(plan, graph, state, market, a)
        want, _ = interpreted(graph, conditions, state, market, a)
        assert got is not None and np.array_equal(got, want)
        firsts.append(int(np.argmax(got)) if got.any() else None)
    assert firsts == [0, None, 4, 3]  # 0.97 * 99 = 96.03


def test_a_plan_refuses_a_segment_of_another_shape() -> None:
    graph, root = compile_expr("position.open and close <= 0.97 * position.entry")
    market = {f: np.full((2, WHOLE), 90.0) for f in MARKET_FIELDS}
    conditions = conditions_of(graph, root, scanplan.TRUE)
    plan, _ = record_plan(graph, conditions, {"position.open": 1.0, "position.entry": 100.0}, market)
    assert planned(plan, graph, {"position.open": 1.0, "position.entry": 80.0}, market, 3) is not None
    for state in ({"position.open": 0.0, "position.entry": 100.0},  # decides otherwise: false at once
                  {"position.open": NAN, "position.entry": 100.0},  # unavailable: no short cut either way
                  {"position.open": 1.0, "position.entry": np.array([[100.0], [90.0]])},  # a column
                  {"position.open": np.ones((2, BARS)), "position.entry": 100.0}):  # an array
        assert planned(plan, graph, state, market, 3) is None, state
        # ... and the plan of that shape gives what the evaluation gives
        other, want = record_plan(graph, conditions, state, market, 3)
        assert np.array_equal(planned(other, graph, state, market, 3), want)  # type: ignore[arg-type]
    # the first plan still stands for its shape
    got = planned(plan, graph, {"position.open": 1.0, "position.entry": 95.0}, market, 0)
    assert got is not None and got.all()


def test_a_plan_computes_once_what_does_not_depend_on_the_segment() -> None:
    """Flat, ``not position.open and c1 and c2`` is ``c1 and c2`` on candles alone: its mask is
    made once over the whole series, and shared with any other plan that needs it."""
    graph, root = compile_expr("not position.open and close > 100 USDT and close < 1000 USDT")
    rng = np.random.default_rng(7)
    market = {f: rng.choice([50.0, 150.0, 2000.0, NAN], size=(2, WHOLE)) for f in MARKET_FIELDS}
    conditions = conditions_of(graph, root, scanplan.TRUE)
    whole: dict[Any, Any] = {}
    plan, _ = record_plan(graph, conditions, {"position.open": 0.0}, market, whole=whole)
    assert "read(" in plan.source and "m0[a:b]" in plan.source and "V_" not in plan.source, plan.source
    masks = [v for key, v in whole.items() if key[0] == "mask"]
    assert len(masks) == 1 and masks[0].shape == (WHOLE,)
    for a in range(WHOLE - BARS + 1):
        got = planned(plan, graph, {"position.open": 0.0}, market, a)
        want, _ = interpreted(graph, conditions, {"position.open": 0.0}, market, a)
        assert got is not None and np.array_equal(got, want)
    again, _ = record_plan(graph, conditions, {"position.open": 0.0}, market, 4, whole=whole)
    assert again.namespace["m0"] is masks[0] and len([k for k in whole if k[0] == "mask"]) == 1


def test_a_plan_runs_a_level_s_comparisons_as_one_call() -> None:
    """Independent comparisons run as one call on their operands stacked (``>=`` as ``<=``,
    its operands swapped), and their rows are tested together."""
    graph, root = compile_expr("pnl(1d) <= -2% or pnl(7d) <= -5% or drawdown >= 10%")
    rng = np.random.default_rng(3)
    market = {f: np.ones((2, WHOLE)) for f in MARKET_FIELDS}
    conditions = conditions_of(graph, root, scanplan.NOT_FALSE)

    def state() -> dict[str, Any]:
        return {k: rng.choice([-0.1, -0.05, -0.02, 0.0, 0.1, 0.2, NAN], size=BARS)
                for k in ("pnl:86400", "pnl:604800", "drawdown")}

    plan, _ = record_plan(graph, conditions, state(), market)
    assert plan.source.count("V_le(") == 1 and "V_ge" not in plan.source and "V_or" not in plan.source, plan.source
    for _ in range(50):
        s = state()
        got = planned(plan, graph, s, market, 0)
        want, _ = interpreted(graph, conditions, s, market, 0)
        assert got is not None and same_events(got, want)


def test_flipped_comparisons_are_the_same_bit_for_bit() -> None:
    """``a >= b`` is ``b <= a`` and ``a < b`` is ``b > a``, at every special value."""
    a, b = (np.array(x) for x in zip(*itertools.product(SPECIAL, repeat=2), strict=True))
    with np.errstate(all="ignore"):
        for op, flipped in scanplan._FLIPPED.items():
            x, y = vectorized._VECTOR[op](a, b), vectorized._VECTOR[flipped](b, a)
            assert np.array_equal(x, y, equal_nan=True) and np.array_equal(np.signbit(x), np.signbit(y)), op


@pytest.mark.parametrize("op", ["and", "or"])
def test_masks_split_over_and_or_as_the_operators_decide(op: str) -> None:
    """``x or y`` is 1 where x or y is 1; ``x and y`` is not 0 where neither is; and, for values
    1, 0 or NaN only, ``x or y`` is not 0 where x or y is not, ``x and y`` is 1 where both are."""
    a, b = (np.array(x) for x in zip(*itertools.product(SPECIAL, repeat=2), strict=True))
    v = vectorized._VECTOR[op](a, b)
    join = np.logical_or if op == "or" else np.logical_and
    if op == "or":
        assert np.array_equal(v == 1.0, join(a == 1.0, b == 1.0))
    else:
        assert np.array_equal(v != 0.0, join(a != 0.0, b != 0.0))
    logical = np.isin(a, [0.0, 1.0]) | np.isnan(a)
    logical &= np.isin(b, [0.0, 1.0]) | np.isnan(b)
    if op == "or":
        assert np.array_equal((v != 0.0)[logical], join(a != 0.0, b != 0.0)[logical])
    else:
        assert np.array_equal((v == 1.0)[logical], join(a == 1.0, b == 1.0)[logical])


def test_logical_operators_give_only_true_false_or_unavailable() -> None:
    """What ``true and x`` may be taken for: x itself (and what a mask of a value of x may split
    over), at every special value; crossings included."""
    a, b = (np.array(x) for x in zip(*itertools.product(SPECIAL, repeat=2), strict=True))
    with np.errstate(all="ignore"):
        for op in sorted(vectorized._LOGICAL):
            if op == "cross":
                values = [vectorized._series_op("cross", (side,), [a, b], False, 1) for side in ("above", "below")]
            elif op in ("any", "all"):
                values = [vectorized._pure(op, [np.vstack([a, b])])]
            else:
                values = [vectorized._pure(op, [a, b])]
            for v in values:
                assert np.isin(v, [0.0, 1.0]).sum() + np.isnan(v).sum() == v.size, op
                assert not np.signbit(v[v == 0.0]).any(), op  # no -0.0 either
