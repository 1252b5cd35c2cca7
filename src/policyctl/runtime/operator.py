"""Operator requests to a runtime: resetting breakers.

A breaker without a duration (``then: pause``) stays tripped until an operator resets it:
``policyctl reset NAME`` (or ``--all``). When no runtime holds the state, the reset is
applied to the stored state directly and journaled. When a runtime is running, the request
is left as a file ``RESET-<name>`` in its state folder; the runtime picks it up within a
second (with the kill-switch poll), applies it between ticks, journals it, and removes the
file. Either way the next tick decides with the breaker cleared (it trips again at once if
its condition still holds).
"""

from __future__ import annotations

from pathlib import Path

from policyctl.clock import wall_ms
from policyctl.runtime.breakers import reset_breaker
from policyctl.runtime.state import EngineState

PREFIX = "RESET-"
ALL = "*"


def request_reset(state_dir: Path, name: str | None) -> Path:
    """Leave a reset request for a running runtime; ``None`` resets every breaker."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"{PREFIX}{name or ALL}"
    path.write_text(f"{wall_ms()}\n", encoding="utf-8")
    return path


def pending_resets(state_dir: Path) -> list[tuple[Path, str | None]]:
    """Reset requests waiting in the state folder: (file, breaker name or None for all)."""
    out = []
    for p in sorted(state_dir.glob(f"{PREFIX}*")):
        name = p.name[len(PREFIX):]
        out.append((p, None if name == ALL else name))
    return out


def apply_resets(state: EngineState, state_dir: Path) -> list[str]:
    """Apply and remove every waiting request; returns the breakers cleared."""
    cleared: list[str] = []
    for path, name in pending_resets(state_dir):
        cleared += reset_breaker(state, name)
        path.unlink(missing_ok=True)
    return cleared
