"""Rate limits and quotas: fixed windows per project and per key, counted in memory or in Redis.

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

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, Protocol, cast

import anyio.to_thread
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.retry import Retry

from llavero.config import Settings
from llavero.core import text
from llavero.core.codes import Code
from llavero.core.plans import LIMIT_NAMES, MAX_LIMIT, Plan
from llavero.errors import InvalidArgument
from llavero.store.outage import BACKOFF_SECONDS, Outage

if TYPE_CHECKING:
    from llavero.store import Database

logger = logging.getLogger("llavero.limits")

WINDOW_SECONDS = {"rpm": 60, "rpd": 86400, "upm": 60, "upd": 86400}
QUOTA_LIMITS = frozenset({"rpd", "upd"})
REQUEST_LIMITS = frozenset({"rpm", "rpd"})
RATE_LIMITED = Code.RATE_LIMITED
QUOTA_EXCEEDED = Code.QUOTA_EXCEEDED

Mode = Literal["hit", "add", "peek"]


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
    code: Code | None
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


def _decide(checks: Sequence[Check], used: Sequence[int], now: float, *, consume: bool) -> Decision:
    """The verdict from the counters as they were before the call.

    The rule: a check refuses when `used + amount > limit`, and a zero-unit check once the
    quota is spent (`used >= limit`). A day window never ends before the minute window holding
    the same instant, so when a daily limit refuses, the day's reset is the longest wait."""
    refused_quota = refused_rate = False
    for (name, _, limit, amount), count in zip(checks, used, strict=True):
        if count >= limit if amount == 0 else count + amount > limit:
            if name in QUOTA_LIMITS:
                refused_quota = True
            else:
                refused_rate = True
    # Seconds until the window holding `now` ends, `ceil(end - now)`: as the windows end on
    # whole seconds, that is `end - floor(now)`, always at least 1.
    second = int(now)
    minute_reset = 60 - second % 60
    day_reset = 86400 - second % 86400
    if not (refused_quota or refused_rate):
        statuses = _statuses(checks, used, minute_reset, day_reset, consume)
        return _new_tuple(Decision, (True, None, statuses, None))
    statuses = _statuses(checks, used, minute_reset, day_reset, False)
    if refused_quota:
        return _new_tuple(Decision, (False, QUOTA_EXCEEDED, statuses, day_reset))
    return _new_tuple(Decision, (False, RATE_LIMITED, statuses, minute_reset))


# Builds a named tuple without its generated Python `__new__`: a third of `_decide`'s cost.
_new_tuple: Final = tuple.__new__


def _statuses(
    checks: Sequence[Check], used: Sequence[int], minute_reset: int, day_reset: int, bump: bool
) -> dict[str, LimitStatus]:
    """Per limit name, the tightest of its checks: least remaining, then lowest limit. Runs on
    every verify, hence the unpacked loop and no helper call per check."""
    statuses: dict[str, LimitStatus] = {}
    for (name, _, limit, amount), count in zip(checks, used, strict=True):
        remaining = limit - count - amount if bump else limit - count
        if remaining < 0:
            remaining = 0
        current = statuses.get(name)
        if (
            current is None
            or remaining < current[1]
            or (remaining == current[1] and limit < current[0])
        ):
            reset = day_reset if name in QUOTA_LIMITS else minute_reset
            statuses[name] = _new_tuple(LimitStatus, (limit, remaining, reset))
    return statuses


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


# KEYS[i] is the counter of check i in its current window. ARGV[1] is the mode; then, per check,
# its limit, amount and TTL. Returns the counters as they were before the call; the caller applies
# the same rule (`_decide`) to them to build the answer.
_LUA = """
local mode = ARGV[1]
local used = {}
local allowed = true
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 1])
  local amount = tonumber(ARGV[3 * i])
  used[i] = tonumber(redis.call('GET', key) or '0')
  if (amount == 0 and used[i] >= limit) or (amount > 0 and used[i] + amount > limit) then
    allowed = false
  end
end
if mode == 'add' or (mode == 'hit' and allowed) then
  for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[3 * i])
    if amount > 0 and redis.call('INCRBY', key, amount) == amount then
      redis.call('EXPIRE', key, ARGV[3 * i + 1])
    end
  end
end
return used
"""

TTL_MARGIN_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 0.2
READ_TIMEOUT_SECONDS = 0.2
AsyncClientFactory = Callable[[], "redis.asyncio.Redis"]


class RedisLimiter:
    """Counters shared by every instance, one round trip per call.

    The event loop awaits its calls (`ahit`, on `redis.asyncio`), so a verify with Redis needs
    no worker thread; the sync calls serve the CLI, the threadpool and WSGI apps. When Redis
    fails, answers come from an in-process MemoryLimiter (so verify keeps serving, with
    per-instance limits) and one caller per `backoff_seconds` tries Redis again
    (`llavero.store.outage`). Counts made during the outage stay in the process; they are not copied
    to Redis afterwards.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "llavero:rl:",
        backoff_seconds: float = BACKOFF_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        async_client: AsyncClientFactory | None = None,
    ) -> None:
        self._client = client
        self._script = client.register_script(_LUA)
        self._prefix = prefix
        self._fallback = MemoryLimiter()
        where = _describe(client)
        self.outage = Outage(
            f"rate limit backend Redis at {where}",
            logger,
            backoff_seconds=backoff_seconds,
            monotonic=monotonic,
        )
        self._new_async_client = async_client
        # redis.asyncio connections belong to the event loop that opened them.
        self._async: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis, AsyncScript] | None = (
            None
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLimiter:
        """Short timeouts and one immediate retry on ConnectionError only: a pooled connection
        left over from before a Redis restart fails once and is replaced, rather than starting
        a new outage right after the old one ended; a dead Redis still costs only the probe."""
        options: dict[str, Any] = {
            "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "socket_timeout": READ_TIMEOUT_SECONDS,
        }
        stale = (redis.exceptions.ConnectionError,)
        client = redis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 1, supported_errors=stale), **options
        )

        def async_client() -> redis.asyncio.Redis:
            retry = AsyncRetry(NoBackoff(), 1, supported_errors=stale)
            return redis.asyncio.Redis.from_url(url, retry=retry, **options)

        return cls(client, async_client=async_client, **kwargs)

    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        used = self._run("hit", checks, now)
        if used is None:
            return self._fallback.hit(checks, now)
        return _decide(checks, used, now, consume=True)

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        """`hit`, awaited in the running event loop."""
        if self._new_async_client is None:
            return await anyio.to_thread.run_sync(self.hit, checks, now)
        used = await self._arun("hit", checks, now)
        if used is None:
            return self._fallback.hit(checks, now)
        return _decide(checks, used, now, consume=True)

    def add(self, checks: Sequence[Check], now: float) -> None:
        if self._run("add", checks, now) is None:
            self._fallback.add(checks, now)

    def peek(self, checks: Sequence[Check], now: float) -> Decision:
        used = self._run("peek", checks, now)
        if used is None:
            return self._fallback.peek(checks, now)
        return _decide(checks, used, now, consume=False)

    def close(self) -> None:
        self._client.close()
        self._fallback.close()

    async def aclose(self) -> None:
        """Close the event loop's connections (at the app's shutdown, in that loop)."""
        if self._async is not None:
            _, client, _ = self._async
            self._async = None
            await client.aclose()

    def key_for(self, check: Check, now: float) -> str:
        return f"{self._prefix}{check.name}:{check.scope}:{window_end(check.name, now)}"

    def _script_args(
        self, mode: Mode, checks: Sequence[Check], now: float
    ) -> tuple[list[str], list[str | int]]:
        args: list[str | int] = [mode]
        for check in checks:
            ttl = math.ceil(window_end(check.name, now) - now) + TTL_MARGIN_SECONDS
            args += [check.limit, check.amount, ttl]
        return [self.key_for(check, now) for check in checks], args

    def _run(self, mode: Mode, checks: Sequence[Check], now: float) -> list[int] | None:
        """The counters before the call, or None when Redis is failing (use the fallback)."""
        if not checks:
            return []
        if not self.outage.may_try():
            return None
        keys, args = self._script_args(mode, checks, now)
        try:
            used = cast(list[int], self._script(keys=keys, args=args, client=self._client))
        except (redis.RedisError, OSError) as exc:
            self.outage.failed(exc)
            return None
        self.outage.succeeded()
        return [int(count) for count in used]

    async def _arun(self, mode: Mode, checks: Sequence[Check], now: float) -> list[int] | None:
        if not checks:
            return []
        if not self.outage.may_try():
            return None
        keys, args = self._script_args(mode, checks, now)
        try:
            script = self._async_script()
            used = cast(list[int], await script(keys=keys, args=args))
        except (redis.RedisError, OSError) as exc:
            self.outage.failed(exc)
            return None
        self.outage.succeeded()
        return [int(count) for count in used]

    def _async_script(self) -> AsyncScript:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            assert self._new_async_client is not None
            client = self._new_async_client()
            self._async = (loop, client, client.register_script(_LUA))
        return self._async[2]


def _describe(client: redis.Redis) -> str:
    """Where Redis is, for log lines: host, port and db, never the password."""
    options = client.connection_pool.connection_kwargs
    if "path" in options:
        return str(options["path"])
    return f"{options.get('host', '?')}:{options.get('port', '?')}/{options.get('db', 0)}"


BACKENDS = ("database", "redis", "memory")


def create_limiter(settings: Settings, db: Database | None = None) -> Limiter:
    """The limiter `LLAVERO_RATE_LIMIT_BACKEND` names; `database` needs the service's `db`."""
    backend = settings.rate_limit_backend
    if backend == "memory":
        return MemoryLimiter()
    if backend == "redis":
        return RedisLimiter.from_url(settings.redis_url)
    if backend == "database":
        from llavero.store.db_limiter import DatabaseLimiter  # it builds on this module

        if db is None:
            raise ValueError("LLAVERO_RATE_LIMIT_BACKEND=database needs the service's database")
        return DatabaseLimiter(db)
    raise ValueError(
        f"LLAVERO_RATE_LIMIT_BACKEND: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}"
    )
