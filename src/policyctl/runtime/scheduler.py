"""Scheduling with APScheduler: ticks on candle closes, reconciliation, the kill-switch poll.

* The tick runs a few seconds after each candle of the policy's timeframe closes (the
  exchange needs a moment to close it), with jitter, never twice at once
  (``max_instances=1``); ticks missed while the process was busy or asleep are coalesced
  into one and logged.
* Reconciliation of orders and fills runs every 30 s; the kill switch and the operator's
  breaker resets are polled every 200 ms.
* SIGINT and SIGTERM stop the scheduler cleanly: the running tick finishes, open orders are
  canceled if the policy says so (``execution.cancel_on_shutdown``), the state is flushed,
  and the process exits 0.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from policyctl.runtime.live import LiveRuntime

TICK_DELAY_S = 2.0
JITTER_S = 1.0
RECONCILE_S = 30.0
KILL_POLL_S = 0.2


def first_close_after(now_ms: int, timeframe_s: float) -> datetime:
    """The next candle close (plus the tick delay) strictly after ``now_ms``."""
    tf_ms = int(timeframe_s * 1000)
    nxt = (now_ms // tf_ms + 1) * tf_ms
    return datetime.fromtimestamp(nxt / 1000, UTC) + timedelta(seconds=TICK_DELAY_S)


def build_scheduler(rt: LiveRuntime, interval_s: float | None = None) -> Any:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    tf = rt.cp.timeframe_seconds
    sched = BackgroundScheduler(timezone=UTC)
    if interval_s is None:  # on candle closes of the policy's timeframe (wall time)
        from policyctl.clock import wall_ms

        trigger = IntervalTrigger(seconds=tf, start_date=first_close_after(wall_ms(), tf), jitter=JITTER_S,
                                  timezone=UTC)
    else:  # a fixed interval: for an emulator replaying candles faster than real time
        trigger = IntervalTrigger(seconds=interval_s, timezone=UTC)
        tf = interval_s
    sched.add_job(rt.tick, trigger, id="tick", max_instances=1, coalesce=True,
                  misfire_grace_time=int(max(tf / 2, 1)))
    sched.add_job(rt.reconcile, IntervalTrigger(seconds=RECONCILE_S, timezone=UTC), id="reconcile",
                  max_instances=1, coalesce=True)
    sched.add_job(rt.check_kill, IntervalTrigger(seconds=KILL_POLL_S, timezone=UTC), id="kill",
                  max_instances=1, coalesce=True)
    sched.add_job(rt.check_resets, IntervalTrigger(seconds=KILL_POLL_S, timezone=UTC), id="resets",
                  max_instances=1, coalesce=True)

    def on_event(event: Any) -> None:
        if event.code == EVENT_JOB_MISSED:
            if event.job_id == "tick":
                rt.metrics.missed.labels(rt.cp.policy.name).inc()
            rt.log.warning(f"job {event.job_id} missed its run at {event.scheduled_run_time}: coalesced")
        elif event.code == EVENT_JOB_MAX_INSTANCES:  # still running from the last run: this one is skipped
            if event.job_id == "tick":
                rt.metrics.missed.labels(rt.cp.policy.name).inc()
                when = min(event.scheduled_run_times, default=None)
                rt.log.warning(f"tick of {when} skipped: the previous tick is still running")
        elif event.code == EVENT_JOB_ERROR:
            rt.log.error(f"job {event.job_id} failed: {type(event.exception).__name__}: {event.exception}")

    sched.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)
    return sched


def run_forever(rt: LiveRuntime, cancel_on_shutdown: bool, stop: threading.Event | None = None,
                interval_s: float | None = None) -> int:
    """Run until SIGINT/SIGTERM (or ``stop`` is set); returns the exit code."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        rt.log.info(f"received {signal.Signals(signum).name}: shutting down")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        rt.kill.install_signal()
    sched = build_scheduler(rt, interval_s)
    sched.start()
    rt.log.info(f"running `{rt.cp.policy.name}` in {rt.cfg.mode} mode; first tick at "
                f"{sched.get_job('tick').next_run_time}")
    stop.wait()
    sched.shutdown(wait=True)
    rt.shutdown(cancel_open=cancel_on_shutdown)
    rt.log.info("stopped cleanly")
    return 0
