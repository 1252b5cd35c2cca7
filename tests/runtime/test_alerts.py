"""Alerts: de-duplicated, escalating, and posted to a webhook without blocking the caller."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from policyctl.runtime.observe import Alerter, webhook

MIN = 60_000


def test_a_repeated_alert_is_sent_once_per_quiet_period_and_escalates() -> None:
    got: list[dict[str, Any]] = []
    a = Alerter(got.append, quiet_ms=15 * MIN, escalate_after=3)
    sent = [a.alert("feed", "stale", t * MIN) for t in range(8)]
    # 1st sent; 2nd, 3rd quiet; 4th escalates (warning -> critical); 5th, 6th quiet; 7th again
    assert sent == [True, False, False, True, False, False, True, False]
    assert [x["level"] for x in got] == ["warning", "critical", "critical"]
    assert [x["count"] for x in got] == [1, 4, 7]
    assert a.alert("feed", "stale", 30 * MIN)  # the quiet period is over
    assert a.alert("other", "x", 30 * MIN)  # keys are independent


def test_good_news_never_escalates() -> None:
    got: list[dict[str, Any]] = []
    a = Alerter(got.append, quiet_ms=0)
    for t in range(7):
        a.alert("state_change:active", "paused -> active", t, level="info")
    assert {x["level"] for x in got} == {"info"}


def test_a_failing_channel_never_raises() -> None:
    def boom(payload: dict[str, Any]) -> None:
        raise OSError("down")

    a = Alerter(boom)
    assert a.alert("k", "m", 0) is False
    assert a.sent and a.sent[0]["key"] == "k"  # recorded all the same


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, msg: str) -> None:
        self.lines.append(msg)


def test_the_webhook_posts_in_order_from_its_own_thread_and_logs_failures() -> None:
    received: list[dict[str, Any]] = []
    gate = threading.Event()
    done = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            gate.wait(10)  # held: the caller must not wait for it
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            if len(received) == 3:
                done.set()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        send = webhook(f"http://127.0.0.1:{server.server_address[1]}/h", timeout=10)
        for k in range(3):
            send({"key": f"k{k}"})  # returns at once, though the server holds every post
        assert received == []
        gate.set()
        assert done.wait(10)
        assert [x["key"] for x in received] == ["k0", "k1", "k2"]
    finally:
        server.shutdown()
        server.server_close()
    log = _Log()
    broken = webhook("http://127.0.0.1:1/nothing-listens", timeout=1, log=log)
    broken({"key": "lost"})
    for _ in range(100):
        if log.lines:
            break
        threading.Event().wait(0.05)
    assert log.lines and "alert `lost` not delivered to the webhook" in log.lines[0]
