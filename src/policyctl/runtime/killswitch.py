"""The kill switch: a file, a signal, or ``policyctl kill``; the runtime halts within a second.

Engaged when the file ``KILL`` exists in the runtime's state folder (``policyctl kill``
writes it, with the time it was pulled), or when the process receives SIGUSR1. The
runtime polls it every 200 ms; once engaged, every open order is canceled, nothing new is
sent, and the times from switch to halt and to all-canceled are exported as metrics.
Releasing it (``policyctl kill --off``) removes the file; the engine stays halted until the
switch is off.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from policyctl.clock import wall_ms

FILE = "KILL"


class KillSwitch:
    def __init__(self, state_dir: Path):
        self.path = state_dir / FILE
        self._signalled_ms: int | None = None

    def install_signal(self) -> None:
        signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        # `policyctl kill` writes the file before it signals: the file rules then, and
        # `policyctl kill --off` releases it. A signal on its own holds until a restart.
        if not self.path.exists():
            self._signalled_ms = wall_ms()

    def engaged_since(self) -> int | None:
        """When the switch was pulled (epoch ms), or None if it is off."""
        if self._signalled_ms is not None:
            return self._signalled_ms
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError:
            return wall_ms()  # unreadable but present: engaged, fail closed
        try:
            return int(text.split()[0])
        except (ValueError, IndexError):
            return int(self.path.stat().st_mtime * 1000)

    def release(self) -> None:
        self._signalled_ms = None
        self.path.unlink(missing_ok=True)


def pull(state_dir: Path, reason: str = "operator") -> int:
    """Engage the switch for the runtime using ``state_dir``; signal it if its pid is known."""
    state_dir.mkdir(parents=True, exist_ok=True)
    now = wall_ms()
    tmp = state_dir / f".{FILE}.tmp"
    tmp.write_text(f"{now} {reason}\n", encoding="utf-8")
    os.replace(tmp, state_dir / FILE)
    pid = runtime_pid(state_dir)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGUSR1)
    return now


def runtime_pid(state_dir: Path) -> int | None:
    lock = state_dir / "state.sqlite.lock"
    try:
        return int(lock.read_text().strip().split()[0])
    except (OSError, ValueError, IndexError):
        return None
