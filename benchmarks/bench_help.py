"""Process time of `policyctl --help` (goal: under 0.3 s), against bare `python -c pass`.

Runs each command several times in fresh processes and reports the best user+system CPU
time, measured with `resource.getrusage(RUSAGE_CHILDREN)` around each child.

    python benchmarks/bench_help.py
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys


def cpu_of(cmd: list[str], repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, cpu)
    return best


def main() -> None:
    base = cpu_of([sys.executable, "-c", "pass"])
    exe = shutil.which("policyctl")
    helps = cpu_of([exe, "--help"] if exe else [sys.executable, "-m", "policyctl.cli", "--help"])
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, policyctl.cli; "
         "print(sorted(m for m in ('ccxt','numpy','scipy','apscheduler','lark','yaml','jsonschema')"
         " if m in sys.modules))"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"python -c pass:        {base * 1000:7.1f} ms CPU")
    print(f"policyctl --help:      {helps * 1000:7.1f} ms CPU   goal < 300 ms   "
          f"{'OK' if helps < 0.3 else 'MISSED'}")
    print(f"ratio to bare python:  {helps / base:7.2f}x")
    print(f"heavy modules imported by the CLI module: {heavy}")


if __name__ == "__main__":
    main()
