"""Structured logs with secrets redacted, and alerts to a webhook.

Secrets come from the environment only (``POLICYCTL_API_KEY``, ``POLICYCTL_API_SECRET``,
``POLICYCTL_WEBHOOK_URL`` and any variable whose name ends in ``_SECRET``, ``_KEY`` or
``_TOKEN``); every log record passes a filter that replaces their values with ``***``
wherever they appear, so a secret cannot reach a log even inside an exception message.

Alerts are de-duplicated (the same key is sent at most once per quiet period) and escalate:
a key that keeps firing is re-sent with a higher severity after every ``escalate_after``
repeats.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SECRET_SUFFIXES = ("_SECRET", "_KEY", "_TOKEN", "_PASSWORD")
SECRET_NAMES = ("POLICYCTL_API_KEY", "POLICYCTL_API_SECRET", "POLICYCTL_WEBHOOK_URL")


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    out = [v for k, v in env.items()
           if v and len(v) >= 6 and (k in SECRET_NAMES or k.upper().endswith(SECRET_SUFFIXES))]
    return sorted(set(out), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


def configure_logging(level: str = "INFO", json_logs: bool = False, sink: Any = None,
                      env: Mapping[str, str] | None = None) -> Any:
    """Configure loguru: one sink (stderr by default), secrets redacted, optional JSON lines."""
    from loguru import logger

    secrets = secrets_from_env(env)
    logger.remove()

    def patch(record: Any) -> None:
        record["message"] = redact(record["message"], secrets)
        if record["exception"] is not None:
            exc = record["exception"]
            if exc.value is not None:
                record["extra"]["error"] = redact(f"{type(exc.value).__name__}: {exc.value}", secrets)
                record["exception"] = None  # tracebacks may quote secrets: keep the redacted line only
        for k, v in list(record["extra"].items()):
            if isinstance(v, str):
                record["extra"][k] = redact(v, secrets)

    def line(record: Any) -> str:  # the record's extra fields only when it has some
        extra = " {extra}" if record["extra"] else ""
        return "{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level: <7} {message}" + extra + "\n{exception}"

    patched = logger.patch(patch)
    patched.add(sink if sink is not None else sys.stderr, level=level, serialize=json_logs,
                format=line, backtrace=False, diagnose=False)
    _route_std_logging("apscheduler", patched)
    return patched


def _route_std_logging(name: str, log: Any) -> None:
    """Send a library's standard-library log records through ``log`` (the same format, the same
    redaction). Only its errors: what it warns about (a skipped or missed run) the runtime hears
    as an event, and logs and counts itself."""
    class Route(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            log.opt(exception=record.exc_info).log(record.levelname, f"{record.name}: {record.getMessage()}")

    std = logging.getLogger(name)
    std.handlers = [Route()]
    std.setLevel(logging.ERROR)
    std.propagate = False


@dataclass
class Alerter:
    """Sends alerts to a webhook (or any callable), de-duplicated and escalating."""

    send: Callable[[dict[str, Any]], None] | None
    quiet_ms: int = 15 * 60 * 1000
    escalate_after: int = 3
    _seen: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # key -> (last sent, count, level)
    sent: list[dict[str, Any]] = field(default_factory=list)

    LEVELS = ("info", "warning", "critical")

    def alert(self, key: str, message: str, now_ms: int, level: str = "warning") -> bool:
        """Returns True if the alert went out (False: de-duplicated)."""
        last, count, lvl = self._seen.get(key, (-(1 << 62), 0, self.LEVELS.index(level)))
        count += 1
        escalate = count > 1 and (count - 1) % self.escalate_after == 0 and level != "info"  # news, not a problem
        if escalate:
            lvl = min(lvl + 1, len(self.LEVELS) - 1)
        due = now_ms - last >= self.quiet_ms or escalate
        self._seen[key] = (now_ms if due else last, count, lvl)
        if not due:
            return False
        payload = {"key": key, "level": self.LEVELS[lvl], "message": message, "count": count, "ts": now_ms}
        self.sent.append(payload)
        if self.send is not None:
            try:
                self.send(payload)
            except Exception:  # an alert channel that fails must never stop trading decisions
                return False
        return True


def webhook(url: str, timeout: float = 5.0, log: Any = None) -> Callable[[dict[str, Any]], None]:
    """POST each alert as JSON to ``url``, from a thread of its own, in order: a webhook that
    hangs or fails delays neither a tick nor the kill switch. A failed post is logged (when a
    ``log`` is given); alerts beyond a backlog of 1000 are dropped, and logged."""
    backlog: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)

    def post(payload: dict[str, Any]) -> None:
        req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # the operator's own URL
            resp.read()

    def worker() -> None:
        while True:
            payload = backlog.get()
            try:
                post(payload)
            except Exception as e:  # the channel failed: say so, keep going
                if log is not None:
                    log.warning(f"alert `{payload.get('key')}` not delivered to the webhook: {type(e).__name__}: {e}")

    threading.Thread(target=worker, name="policyctl-alerts", daemon=True).start()

    def send(payload: dict[str, Any]) -> None:
        try:
            backlog.put_nowait(payload)
        except queue.Full:
            if log is not None:
                log.warning(f"alert `{payload.get('key')}` dropped: 1000 alerts wait for the webhook")

    return send
