"""Rate limits and quotas: fixed windows per project and per key, and the in-process counters.

The shared counters (Redis, the database) build on this module in `llavero.store`.

A verify is judged against up to eight counters at once (rpm, rpd, upm, upd, each for the
project and for the key) and must be all-or-nothing: a refused request consumes nothing, on any
counter. The answer also carries `remaining` and `reset_seconds` for every limit.

Why hand-written rather than the `limits` library (installed, well kept): `limits` judges one
item per call, and its fixed window increments before comparing, so a refused hit still counts
and several limits cost several round trips with no atomicity between them. Its fixed window
starts at the first hit rather than at the minute or at UTC midnight, and it reads the wall
clock itself, so tests cannot move time. Its moving window keeps one entry per hit, which grows
with the limit (it stalled Redis at 70,000/day, alisaifee/limits#268). What we need is small:
one integer per (limit, scope, window), windows aligned to the epoch (O(1) memory per counter),
and, for Redis, one Lua script that reads and bumps all counters of a request in one round trip.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from llavero.core import text
from llavero.core.plans import LIMIT_NAMES, MAX_LIMIT, Plan
from llavero.errors import InvalidArgument

WINDOW_SECONDS = {"rpm": 60, "rpd": 86400, "upm": 60, "upd": 86400}
QUOTA_LIMITS = frozenset({"rpd", "upd"})
REQUEST_LIMITS = frozenset({"rpm", "rpd"})
RATE_LIMITED = "RATE_LIMITED"
QUOTA_EXCEEDED = "QUOTA_EXCEEDED"


# Named tuples, not frozen dataclasses: a verify builds about ten of these, and a frozen
# dataclass's __init__ sets each field through object.__setattr__, several times the cost.
class Check(NamedTuple):
    name: str
    scope: str
    limit: int
    amount: int


class LimitStatus(NamedTuple):
    limit: int
    remaining: int
    reset_seconds: int


class Decision(NamedTuple):
    allowed: bool
    code: str | None
    limits: dict[str, LimitStatus]
    retry_after: int | None


class Limiter(Protocol):
    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        """Consume every check if all pass, otherwise none (atomic)."""

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        """`hit` for the event loop: awaits I/O instead of blocking on it."""

    def add(self, checks: Sequence[Check], now: float) -> None:
        """Consume unconditionally: units learned after the answer (usage:report)."""

    def peek(self, checks: Sequence[Check], now: float) -> Decision:
        """What `hit` would answer, without consuming anything."""

    def close(self) -> None: ...


def normalize_key_limits(data: Mapping[str, Any] | None, field: str = "limits") -> dict[str, int]:
    """Validate per-key overrides; a null value means "no key limit" so a PATCH can clear one."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidArgument("must be an object with rpm, rpd, upm or upd", field=field)
    limits: dict[str, int] = {}
    for name, value in data.items():
        if name not in LIMIT_NAMES:
            raise InvalidArgument(
                f"unknown limit; use one of {', '.join(LIMIT_NAMES)}", field=text.child(field, name)
            )
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
            raise InvalidArgument(
                f"must be an integer from 1 to {MAX_LIMIT}", field=f"{field}.{name}"
            )
        limits[name] = value
    return limits


def checks_for(
    plan: Plan, key_limits: Mapping[str, int], project_id: str, key_id: str, cost: int
) -> list[Check]:
    """Project checks from the plan plus key checks from the key's own limits; both must pass.

    Called on every verify, so it reads the plan's fields directly instead of building
    `plan.limits()`, and builds each scope string once."""
    if cost < 0:
        raise InvalidArgument("must be 0 or more", field="cost")
    project_scope = f"p:{project_id}"
    key_scope = f"k:{key_id}" if key_limits else ""
    checks: list[Check] = []
    for name in LIMIT_NAMES:
        amount = 1 if name in REQUEST_LIMITS else cost
        plan_limit = getattr(plan, name)
        if plan_limit is not None:
            checks.append(Check(name, project_scope, plan_limit, amount))
        key_limit = key_limits.get(name) if key_limits else None
        if key_limit is not None:
            checks.append(Check(name, key_scope, key_limit, amount))
    return checks


def limit_dicts(statuses: Mapping[str, LimitStatus]) -> dict[str, dict[str, int]]:
    """The `limits` of an answer: `{"rpm": {"limit", "remaining", "reset_seconds"}, ...}`."""
    return {
        name: {
            "limit": status.limit,
            "remaining": status.remaining,
            "reset_seconds": status.reset_seconds,
        }
        for name, status in statuses.items()
    }


def window_end(name: str, now: float) -> int:
    """End of the epoch-aligned window holding `now`: the next minute, or the next UTC midnight."""
    length = WINDOW_SECONDS[name]
    return (int(now // length) + 1) * length


def _resets(now: float) -> tuple[int, int]:
    """Seconds until the minute window and the day window holding `now` end (at least 1)."""
    return (
        max(1, math.ceil((int(now // 60) + 1) * 60 - now)),
        max(1, math.ceil((int(now // 86400) + 1) * 86400 - now)),
    )


def _decide(checks: Sequence[Check], used: Sequence[int], now: float, *, consume: bool) -> Decision:
    """The verdict from the counters as they were before the call.

    The rule: a check refuses when `used + amount > limit`, and a zero-unit check once the
    quota is spent (`used >= limit`). Runs on every verify, hence the unpacked loops and no
    helper call per check. A day window never ends before the minute window holding the same
    instant, so when a daily limit refuses, the day's reset is the longest wait."""
    refused_quota = refused_rate = False
    for (name, _, limit, amount), count in zip(checks, used, strict=True):
        if count >= limit if amount == 0 else count + amount > limit:
            if name in QUOTA_LIMITS:
                refused_quota = True
            else:
                refused_rate = True
    allowed = not (refused_quota or refused_rate)
    bump = allowed and consume
    minute_reset, day_reset = _resets(now)
    statuses: dict[str, LimitStatus] = {}
    for (name, _, limit, amount), count in zip(checks, used, strict=True):
        remaining = max(0, limit - (count + amount if bump else count))
        current = statuses.get(name)
        if current is None or (remaining, limit) < (current.remaining, current.limit):
            reset = day_reset if name in QUOTA_LIMITS else minute_reset
            statuses[name] = LimitStatus(limit, remaining, reset)
    if allowed:
        return Decision(True, None, statuses, None)
    if refused_quota:
        return Decision(False, QUOTA_EXCEEDED, statuses, day_reset)
    return Decision(False, RATE_LIMITED, statuses, minute_reset)


Counters = dict[tuple[str, str], int]
_NO_COUNTERS: Counters = {}


class MemoryLimiter:
    """Counters of this process: exact for one instance; several instances need Redis.

    Counters are grouped by the end of their window, so dropping ended windows costs one dict
    deletion per window rather than a scan of every counter, and happens only once one ended.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[int, Counters] = {}
        self._next_end = math.inf

    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        with self._lock:
            minute, day = self._counters(now)
            used = [
                (day if name in QUOTA_LIMITS else minute).get((name, scope), 0)
                for name, scope, _, _ in checks
            ]
            decision = _decide(checks, used, now, consume=True)
            if decision.allowed:
                self._consume(checks, now)
        return decision

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        return self.hit(checks, now)  # no I/O: a few dict operations under a lock

    def add(self, checks: Sequence[Check], now: float) -> None:
        with self._lock:
            self._consume(checks, now)

    def peek(self, checks: Sequence[Check], now: float) -> Decision:
        with self._lock:
            minute, day = self._counters(now)
            used = [
                (day if name in QUOTA_LIMITS else minute).get((name, scope), 0)
                for name, scope, _, _ in checks
            ]
            return _decide(checks, used, now, consume=False)

    def close(self) -> None:
        with self._lock:
            self._windows.clear()
            self._next_end = math.inf

    def _counters(
        self, now: float
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """The live minute and day counters at `now` (read-only views when none exist yet)."""
        if now >= self._next_end:
            self._drop_ended(now)
        minute_end = (int(now // 60) + 1) * 60
        day_end = (int(now // 86400) + 1) * 86400
        return (
            self._windows.get(minute_end, _NO_COUNTERS),
            self._windows.get(day_end, _NO_COUNTERS),
        )

    def _consume(self, checks: Sequence[Check], now: float) -> None:
        if now >= self._next_end:
            self._drop_ended(now)
        for name, scope, _, amount in checks:
            if amount > 0:
                end = window_end(name, now)
                counters = self._windows.get(end)
                if counters is None:
                    counters = self._windows[end] = {}
                    self._next_end = min(self._next_end, end)
                counters[name, scope] = counters.get((name, scope), 0) + amount

    def _drop_ended(self, now: float) -> None:
        for end in [end for end in self._windows if end <= now]:
            del self._windows[end]
        self._next_end = min(self._windows, default=math.inf)
