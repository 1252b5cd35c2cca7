"""Prometheus metrics of the live runtime, served on 127.0.0.1 by default.

One registry per runtime (not the global default), so tests can run several. Everything an
operator needs to watch a policy trade: decisions, orders, fills, denials by reason, the
trading state, exposure, the distance to every cap and breaker threshold, tick latency by
stage, API errors by class, and how fast the kill switch halted and canceled.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from policyctl.runtime.model import TradingState

STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, policy: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.policy = policy
        self.decisions = Counter("policyctl_decisions", "Engine ticks decided", ["policy"], registry=r)
        self.orders = Counter("policyctl_orders", "Orders sent", ["policy", "side", "kind"], registry=r)
        self.fills = Counter("policyctl_fills", "Fills booked", ["policy", "side"], registry=r)
        self.denials = Counter("policyctl_denials", "Orders denied, by reason", ["policy", "reason"], registry=r)
        self.state = Gauge("policyctl_trading_state", "1 for the current trading state",
                           ["policy", "state"], registry=r)
        self.equity = Gauge("policyctl_equity", "Equity in the quote currency", ["policy"], registry=r)
        self.exposure = Gauge("policyctl_exposure", "Exposure as a share of equity", ["policy", "scope"],
                              registry=r)
        self.cap_margin = Gauge("policyctl_cap_margin", "Room left under each cap (limit minus value)",
                                ["policy", "cap"], registry=r)
        self.breaker_margin = Gauge("policyctl_breaker_margin",
                                    "Distance of each breaker's value from its threshold (positive: not tripped)",
                                    ["policy", "breaker"], registry=r)
        self.breaker_active = Gauge("policyctl_breaker_active", "1 while a breaker is tripped",
                                    ["policy", "breaker"], registry=r)
        self.latency = Histogram("policyctl_tick_seconds", "Tick latency by stage", ["policy", "stage"],
                                 buckets=STAGE_BUCKETS, registry=r)
        self.api_errors = Counter("policyctl_api_errors", "Exchange API errors by class",
                                  ["policy", "kind", "endpoint"], registry=r)
        self.kill_halt = Gauge("policyctl_kill_switch_halt_seconds", "Time from kill switch to halted",
                               ["policy"], registry=r)
        self.kill_cancel = Gauge("policyctl_kill_switch_cancel_seconds",
                                 "Time from kill switch to every order canceled", ["policy"], registry=r)
        self.missed = Counter("policyctl_missed_ticks", "Scheduled ticks missed and coalesced", ["policy"],
                              registry=r)
        self.set_state(TradingState.ACTIVE)

    def set_state(self, state: TradingState) -> None:
        for s in TradingState:
            self.state.labels(self.policy, s.value).set(1.0 if s is state else 0.0)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics. Binds 127.0.0.1 unless told otherwise."""
        start_http_server(port, addr=host, registry=self.registry)
