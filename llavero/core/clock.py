"""Time as a dependency, so that tests can move it: expiry, grace periods and rate windows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""

    def now(self) -> datetime:
        """The same instant as an aware UTC datetime."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps back: how long cached records live."""


class SystemClock:
    # The C functions themselves, not methods calling them: a verify reads both clocks, and a
    # Python frame each cost more than the call (bench/notes.md, item 14).
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)  # the module `time` in this class body until here

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_754_006_400.0) -> None:  # 2025-08-01T00:00:00Z
        self._t = start

    def time(self) -> float:
        return self._t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def monotonic(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def set(self, when: datetime) -> None:
        self._t = when.timestamp()


def utc(dt: datetime) -> datetime:
    """Databases hand back naive datetimes (SQLite) or aware ones (PostgreSQL); compare in UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


SYSTEM_CLOCK = SystemClock()
__all__ = ["Clock", "FrozenClock", "SYSTEM_CLOCK", "SystemClock", "timedelta", "utc"]
