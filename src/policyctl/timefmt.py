"""Epoch milliseconds as ISO-8601 UTC text, for messages, reports and status.

Formatting only: nothing here reads a clock (see :mod:`policyctl.clock`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_seconds(ms: int) -> str:
    """``2024-01-31T12:00:00Z``: to the second (milliseconds dropped)."""
    return (_EPOCH + timedelta(milliseconds=int(ms))).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(ms: int) -> str:
    """``2024-01-31T12:00:00Z``, or ``...:00.250Z`` when the time has milliseconds."""
    ms = int(ms)
    dt = _EPOCH + timedelta(milliseconds=ms)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
