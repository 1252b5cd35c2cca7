"""Lint a generated policy of 5,000 rules (goal: under 2 s).

Prints the wall time of a whole `lint_paths` run (load, parse, check, compile, lints) and
its split, best of 3, next to the time the parser alone takes on the same text.

    python benchmarks/bench_lint.py [--rules 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen import SYMBOLS, policy_yaml, rules_text
from policyctl.diagnostics import Diagnostics
from policyctl.dsl import parser
from policyctl.lint import lint_paths


def best(f, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=5000)
    args = ap.parse_args()
    text = rules_text(args.rules)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "big.rules").write_text(text)
        (folder / "policy.yaml").write_text(policy_yaml("big.rules", SYMBOLS))
        parser._parsers()  # build the LALR tables once, as any run does at start-up
        diags, _ = lint_paths([folder / "policy.yaml"])
        assert not diags.items, [d.message for d in diags.items[:5]]
        lint_s = best(lambda: lint_paths([folder / "policy.yaml"]))
        parse_s = best(lambda: parser.parse_rules(text, "big.rules", Diagnostics()))
    print(f"rules:               {args.rules}")
    print(f"lines:               {text.count(chr(10))}")
    print(f"lint (whole run):    {lint_s:.3f} s   goal < 2 s   {'OK' if lint_s < 2 else 'MISSED'}")
    print(f"  of which parsing:  {parse_s:.3f} s ({parse_s / lint_s:.0%})")
    print(f"  check + compile + lints: {lint_s - parse_s:.3f} s")
    print(f"rules per second:    {args.rules / lint_s:,.0f}")


if __name__ == "__main__":
    main()
