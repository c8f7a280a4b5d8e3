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
from typing import Any, Final, NamedTuple, Protocol, TypedDict

from llavero.core import text
from llavero.core.codes import Code
from llavero.core.plans import LIMIT_NAMES, MAX_LIMIT, Plan
from llavero.errors import InvalidArgument

# Final, so that compiled code (setup.py) reads them as constants, not from the module's dict.
WINDOW_SECONDS: Final = {"rpm": 60, "rpd": 86400, "upm": 60, "upd": 86400}
QUOTA_LIMITS: Final = frozenset({"rpd", "upd"})
REQUEST_LIMITS: Final = frozenset({"rpm", "rpd"})
RATE_LIMITED: Final = Code.RATE_LIMITED
QUOTA_EXCEEDED: Final = Code.QUOTA_EXCEEDED


# Named tuples, not frozen dataclasses: a verify builds about ten of these, and a frozen
# dataclass's __init__ sets each field through object.__setattr__, several times the cost.
class Check(NamedTuple):
    name: str
    scope: str
    limit: int
    amount: int


class LimitStatus(TypedDict):
    """One limit of an answer, in the shape the answer carries it (`VerifyResult.limits`, the
    API's `limits`): built so by `_decide`, rather than as a tuple turned into a dict later."""

    limit: int
    remaining: int
    reset_seconds: int


class Decision(NamedTuple):
    allowed: bool
    code: Code | None
    limits: dict[str, LimitStatus]
    retry_after: int | None


class Limiter(Protocol):
    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        """Consume every check if all pass, otherwise none (atomic)."""

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        """`hit` for the event loop: awaits I/O instead of blocking on it."""

    def hit_held(self, checks: Sequence[Check], now: float) -> Decision | None:
        """`hit` when this process can answer it with no I/O (its own counters, slices it
        holds), else None: then `ahit`. A cached verify in the event loop then awaits nothing."""

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


def window_end(name: str, now: float) -> int:
    """End of the epoch-aligned window holding `now`: the next minute, or the next UTC midnight."""
    length = WINDOW_SECONDS[name]
    second = int(now)  # integer arithmetic from here: a float's `//` is a libm fmod call
    return second - second % length + length


def _decide(checks: Sequence[Check], used: Sequence[int], now: float, *, consume: bool) -> Decision:
    """The verdict from the counters as they were before the call.

    The rule: a check refuses when `used + amount > limit`, and a zero-unit check once the
    quota is spent (`used >= limit`). A day window never ends before the minute window holding
    the same instant, so when a daily limit refuses, the day's reset is the longest wait."""
    # Seconds until the window holding `now` ends, `ceil(end - now)`: as the windows end on
    # whole seconds, that is `end - floor(now)`, always at least 1.
    second = int(now)
    minute_reset = 60 - second % 60
    day_reset = 86400 - second % 86400
    statuses, refusal = _statuses(checks, used, minute_reset, day_reset, consume)
    if refusal is None:
        return _new_tuple(Decision, (True, None, statuses, None))
    if consume:  # a refused request consumes nothing: it is answered with the counters as they are
        statuses = _statuses(checks, used, minute_reset, day_reset, False)[0]
    retry_after = day_reset if refusal is QUOTA_EXCEEDED else minute_reset
    return _new_tuple(Decision, (False, refusal, statuses, retry_after))


# Builds a named tuple without its generated Python `__new__`: a third of `_decide`'s cost.
_new_tuple: Final = tuple.__new__


def _statuses(
    checks: Sequence[Check], used: Sequence[int], minute_reset: int, day_reset: int, bump: bool
) -> tuple[dict[str, LimitStatus], Code | None]:
    """Per limit name, the tightest of its checks (least remaining, then lowest limit), and the
    refusal if any check refuses: QUOTA_EXCEEDED before RATE_LIMITED. One pass over the checks
    judges and answers, as it runs on every verify; hence the unpacked loop, no helper call."""
    if len(used) != len(checks):
        raise ValueError(f"{len(used)} counters for {len(checks)} checks")
    statuses: dict[str, LimitStatus] = {}
    refused_quota = refused_rate = False
    # By index, not `zip(..., strict=True)`: mypyc compiles this loop into C, not that one.
    for index, (name, _, limit, amount) in enumerate(checks):
        left = limit - used[index]
        quota = name in QUOTA_LIMITS
        if left <= 0 if amount == 0 else left < amount:
            if quota:
                refused_quota = True
            else:
                refused_rate = True
        remaining = left - amount if bump else left
        if remaining < 0:
            remaining = 0
        current = statuses.get(name)
        if (
            current is None
            or remaining < current["remaining"]
            or (remaining == current["remaining"] and limit < current["limit"])
        ):
            reset = day_reset if quota else minute_reset
            statuses[name] = {"limit": limit, "remaining": remaining, "reset_seconds": reset}
    if refused_quota:
        return statuses, QUOTA_EXCEEDED
    return statuses, RATE_LIMITED if refused_rate else None


_NO_COUNTS: Final[dict[str, int]] = {}  # stands in for a window not counted in yet; never written


class MemoryLimiter:
    """Counters of this process: exact for one instance; several instances need Redis.

    Counters are grouped by the end of their window, then by limit name, then by scope, so
    dropping ended windows costs one dict deletion per window rather than a scan of every
    counter. `_live` maps each limit name to its counters in the windows holding the current
    minute, found again only when the minute changes: a call then costs two dict lookups per
    check, with no key tuple built and no window arithmetic per check.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[int, dict[str, dict[str, int]]] = {}
        self._next_end: float = math.inf
        self._live: dict[str, dict[str, int]] = {}
        self._live_from = self._live_until = 0  # the minute `_live` serves: [from, until)

    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        second = int(now)
        with self._lock:
            live = self._live_at(second)
            used = [live[name].get(scope, 0) for name, scope, _, _ in checks]
            decision = _decide(checks, used, now, consume=True)
            if decision.allowed:
                self._count(live, checks)
        return decision

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        return self.hit(checks, now)  # no I/O: a few dict operations under a lock

    def hit_held(self, checks: Sequence[Check], now: float) -> Decision:
        return self.hit(checks, now)

    def add(self, checks: Sequence[Check], now: float) -> None:
        with self._lock:
            self._count(self._live_at(int(now)), checks)

    def peek(self, checks: Sequence[Check], now: float) -> Decision:
        with self._lock:
            live = self._live_at(int(now))
            used = [live[name].get(scope, 0) for name, scope, _, _ in checks]
            return _decide(checks, used, now, consume=False)

    def close(self) -> None:
        with self._lock:
            self._windows.clear()
            self._next_end = math.inf
            self._live_from = self._live_until = 0

    def _live_at(self, second: int) -> dict[str, dict[str, int]]:
        """Counters by limit name at `second` (`_NO_COUNTS` for a window not counted in yet)."""
        if self._live_from <= second < self._live_until:
            return self._live
        if second >= self._next_end:
            self._drop_ended(second)
        live: dict[str, dict[str, int]] = {}
        for name, length in WINDOW_SECONDS.items():
            window = self._windows.get(second - second % length + length)
            live[name] = _NO_COUNTS if window is None else window.get(name, _NO_COUNTS)
        self._live = live
        self._live_from = second - second % 60
        self._live_until = self._live_from + 60
        return live

    def _count(self, live: dict[str, dict[str, int]], checks: Sequence[Check]) -> None:
        for name, scope, _, amount in checks:
            if amount > 0:
                counts = live[name]
                if counts is _NO_COUNTS:
                    counts = live[name] = self._new_counts(name)
                counts[scope] = counts.get(scope, 0) + amount

    def _new_counts(self, name: str) -> dict[str, int]:
        """The counters of `name` in its window holding the live minute, created."""
        end = window_end(name, self._live_from)
        window = self._windows.get(end)
        if window is None:
            window = self._windows[end] = {}
            self._next_end = min(self._next_end, end)
        return window.setdefault(name, {})

    def _drop_ended(self, second: int) -> None:
        for end in [end for end in self._windows if end <= second]:
            del self._windows[end]
        self._next_end = min(self._windows, default=math.inf)
