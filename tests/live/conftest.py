"""Fixtures of the live-runtime tests: fresh credentials, the emulator, a runtime session.

Every test gets its own emulator on an ephemeral loopback port and its own state folder;
nothing is shared between tests but the (cached) synthetic candles.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_support import Session, open_session, start_market

from policyctl.emulator import EmulatorHandle


@pytest.fixture
def emu(credentials: tuple[str, str]) -> Iterator[EmulatorHandle]:
    key, secret = credentials
    with start_market(key, secret) as handle:
        yield handle


def _session(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle, mode: str) -> Iterator[Session]:
    key, secret = credentials
    s = open_session(tmp_path, key, secret, mode=mode, emu=emu)
    try:
        yield s
    finally:
        if s.rt.store._db is not None:
            s.close()


@pytest.fixture
def live(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> Iterator[Session]:
    """A live-mode runtime (real orders at the emulator), started."""
    yield from _session(tmp_path, credentials, emu, "live")


@pytest.fixture
def paper(tmp_path: Path, credentials: tuple[str, str], emu: EmulatorHandle) -> Iterator[Session]:
    """A paper-mode runtime (fills simulated against the emulator's quotes), started."""
    yield from _session(tmp_path, credentials, emu, "paper")
