"""Assemble a live runtime from a policy and the operator's options.

Modes:

* ``dry-run`` (the default): decisions and the journal only. Market data comes from the
  exchange; the account is simulated (``--cash``), and no order is ever sent.
* ``paper``: the same, and orders are filled by the paper adapter against live quotes.
* ``live``: real orders through ccxt. It starts only with BOTH the ``--confirm-live`` flag
  and the environment variable ``POLICYCTL_LIVE_TRADING=yes``, and credentials from the
  environment (``POLICYCTL_API_KEY``, ``POLICYCTL_API_SECRET``). Nothing else arms it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyctl.clock import Clock, SourceClock
from policyctl.rules.compiler import CompiledPolicy

LIVE_ENV = "POLICYCTL_LIVE_TRADING"
LIVE_ENV_VALUE = "yes"
WEBHOOK_ENV = "POLICYCTL_WEBHOOK_URL"


class StartError(Exception):
    """The runtime refuses to start; the message says why and what to do."""


@dataclass
class Options:
    mode: str = "dry-run"
    state_dir: Path = Path("state")
    exchange_url: str | None = None  # e.g. the loopback emulator
    cash: float = 10_000.0
    confirm_live: bool = False
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    json_logs: bool = False
    log_level: str = "INFO"
    warmup_bars: int = 500


def check_live(opts: Options, env: Mapping[str, str]) -> bool:
    """Whether live trading is armed; raise :class:`StartError` if live was asked for half-way."""
    if opts.mode != "live":
        return False
    if not opts.confirm_live:
        raise StartError("live trading needs the --confirm-live flag (and POLICYCTL_LIVE_TRADING=yes)")
    if env.get(LIVE_ENV) != LIVE_ENV_VALUE:
        raise StartError(f"live trading needs the environment variable {LIVE_ENV}={LIVE_ENV_VALUE} "
                         "(and the --confirm-live flag)")
    return True


def build(cp: CompiledPolicy, opts: Options, env: Mapping[str, str] | None = None, clock: Clock | None = None,
          log: Any = None, adapter_kwargs: Mapping[str, Any] | None = None) -> Any:
    """A started :class:`~policyctl.runtime.live.LiveRuntime` (markets loaded, state restored).

    ``adapter_kwargs`` go to :class:`~policyctl.exchanges.ccxt_adapter.CcxtAdapter` as they
    are (``timeout_ms``, ``retry``, ``rate_limits``): tests use short timeouts and retries."""
    from policyctl.exchanges.ccxt_adapter import CcxtAdapter
    from policyctl.exchanges.paper import Fees, PaperAdapter
    from policyctl.runtime.live import LiveRuntime, RuntimeConfig
    from policyctl.runtime.metrics import Metrics
    from policyctl.runtime.observe import Alerter, configure_logging, webhook
    from policyctl.runtime.store import StateStore

    env = os.environ if env is None else env
    if opts.mode not in ("dry-run", "paper", "live"):
        raise StartError(f"unknown mode `{opts.mode}`: dry-run, paper or live")
    armed = check_live(opts, env)
    log = log or configure_logging(opts.log_level, opts.json_logs, env=env)
    exchange = cp.policy.market.exchange
    market_data = CcxtAdapter.from_env(exchange, env=env, base_url=opts.exchange_url, require_credentials=armed,
                                       **dict(adapter_kwargs or {}))
    clock = clock or SourceClock(market_data.time_ms)
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    store = StateStore(opts.state_dir / "state.sqlite", cp.policy.name, cp.hash)
    try:
        if armed:
            adapter: Any = market_data
        else:
            fees = Fees(maker=cp.settings.get("fees.maker", 0.001), taker=cp.settings.get("fees.taker", 0.001))
            quote = cp.policy.market.quote or "USDT"
            # a fresh id prefix per session: fill ids must never repeat those of an earlier session
            adapter = PaperAdapter(market_data, cash=_simulated_account(store, quote, opts.cash), fees=fees,
                                   seed=random.SystemRandom().getrandbits(64), quote_asset=quote)
        metrics = Metrics(cp.policy.name)
        if opts.metrics_port is not None:
            metrics.serve(opts.metrics_port, opts.metrics_host)
        url = env.get(WEBHOOK_ENV)
        alerter = Alerter(webhook(url, log=log) if url else None)
        cfg = RuntimeConfig(mode=opts.mode, state_dir=opts.state_dir, live_armed=armed,
                            cash=None if armed else opts.cash, warmup_bars=opts.warmup_bars)
        rt = LiveRuntime(cp, adapter, store, cfg, clock, metrics, alerter, log)
        rt.start()
    except Exception:
        store.close()
        raise
    return rt


def _simulated_account(store: Any, quote: str, cash: float) -> float | dict[str, float]:
    """The paper account's balances: ``cash`` for a new state; after a restart, the stored
    books (the simulated account lives in memory only, the books are durable)."""
    state = store.load_state()
    if state is None:
        return cash
    balances = {quote: state.cash}
    for symbol, p in state.positions.items():
        base = symbol.split("/")[0]
        balances[base] = balances.get(base, 0.0) + p.qty
    return balances
