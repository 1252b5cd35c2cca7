"""A runtime in its own process, for the crash tests: build it, then tick on command.

    python live_child.py POLICY STATE_DIR EXCHANGE_URL MODE TIMEOUT_MS WARMUP

Credentials and the live opt-in come from the environment, as for ``policyctl run``. It
prints ``ready`` once started, then reads one command a line from stdin: ``tick`` runs one
decision cycle and prints ``done ORDERS`` (orders the tick sent), ``quit`` shuts down.
The test kills it with SIGKILL whenever it likes (e.g. while an order is in flight).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from policyctl.exchanges.ratelimit import RateLimit
from policyctl.exchanges.retry import RetryPolicy
from policyctl.rules.compiler import load_and_compile
from policyctl.runtime.app import Options, build
from policyctl.runtime.observe import configure_logging


def main(argv: list[str]) -> int:
    policy, state_dir, url, mode, timeout_ms, warmup = argv
    cp = load_and_compile(Path(policy))
    roomy = RateLimit(rate=1000.0, burst=1000.0)
    adapter = {
        "timeout_ms": int(timeout_ms),
        "retry": RetryPolicy(max_attempts=3, base_delay=0.005, max_delay=0.02, max_total=5.0, rng=random.Random(1)),
        "rate_limits": {"market_data": roomy, "account": roomy, "orders": roomy},
    }
    log = configure_logging("INFO", sink=sys.stderr)
    opts = Options(mode=mode, state_dir=Path(state_dir), exchange_url=url, confirm_live=mode == "live",
                   warmup_bars=int(warmup))
    rt = build(cp, opts, log=log, adapter_kwargs=adapter)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "tick":
            d = rt.tick()
            print(f"done {len(d.orders) if d is not None else -1}", flush=True)
        elif cmd == "quit":
            break
    rt.shutdown(cancel_open=False)
    print("bye", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
