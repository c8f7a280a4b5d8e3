"""Rate-limit counters in Redis: shared by every instance, exact, one script call per round trip.

One Lua script judges and counts whole requests: for each request it reads every counter,
decides with the rule of `llavero.core.limits._decide`, and bumps the counters only if all
pass, so a refused request consumes nothing. A script call carries one request (the sync
calls: the CLI, worker threads, WSGI apps) or every verify the event loop gathered while the
previous call was on the wire (`ahit`): under load a round trip and its parsing are shared by
tens of verifies instead of paid by each. The requests of one call are judged in order, each
against the counters as the ones before it left them, exactly as separate calls would be.

When Redis fails, answers come from an in-process MemoryLimiter (verify keeps serving, with
per-instance limits) and one caller per back-off interval tries Redis again
(`llavero.store.outage`). Counts made during the outage stay in the process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import anyio.to_thread
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.retry import Retry

from llavero.core.limits import (
    QUOTA_LIMITS,
    Check,
    Decision,
    MemoryLimiter,
    _decide,
    window_end,
)
from llavero.store.outage import BACKOFF_SECONDS, Outage

logger = logging.getLogger("llavero.limits")

Mode = Literal["hit", "add", "peek"]

# ARGV[1] is the mode, ARGV[2] the key prefix, ARGV[3] all requests, space-separated: per
# request its number of checks n, then per check its counter's name (after the prefix), limit,
# amount and TTL. Returns, space-separated, each request's counters as they were before it; the
# caller applies `_decide` to them. Three strings rather than a key and three arguments per
# check and an array back: redis-py packs and parses each element in Python, which was most of
# a call's cost. The script names its counters itself instead of declaring them as KEYS, which
# a single Redis allows (Redis Cluster, which needs KEYS, is not supported: docs/limits.md).
_LUA: Final = """
local mode = ARGV[1]
local prefix = ARGV[2]
local words = {}
for word in string.gmatch(ARGV[3], '%S+') do
  words[#words + 1] = word
end
local used = {}
local at = 1
while at <= #words do
  local n = tonumber(words[at])
  local allowed = true
  for i = 1, n do
    local base = at + 4 * i - 4
    local count = redis.call('GET', prefix .. words[base + 1]) or '0'
    used[#used + 1] = count
    count = tonumber(count)
    local limit = tonumber(words[base + 2])
    local amount = tonumber(words[base + 3])
    if (amount == 0 and count >= limit) or (amount > 0 and count + amount > limit) then
      allowed = false
    end
  end
  if mode == 'add' or (mode == 'hit' and allowed) then
    for i = 1, n do
      local base = at + 4 * i - 4
      local amount = words[base + 3]
      if amount ~= '0' then
        local key = prefix .. words[base + 1]
        if redis.call('INCRBY', key, amount) == tonumber(amount) then
          redis.call('EXPIRE', key, words[base + 4])
        end
      end
    end
  end
  at = at + 4 * n + 1
end
return table.concat(used, ' ')
"""

TTL_MARGIN_SECONDS: Final = 60
CONNECT_TIMEOUT_SECONDS: Final = 0.2
READ_TIMEOUT_SECONDS: Final = 0.2
MAX_BATCH: Final = 256  # requests per script call: bounds the time Redis spends in one call
REDIS_ERRORS: Final = (redis.RedisError, OSError)
AsyncClientFactory = Callable[[], "redis.asyncio.Redis"]
Request = tuple[Sequence[Check], float]


class RedisLimiter:
    """Counters shared by every instance (see the module docstring).

    The event loop awaits `ahit` on `redis.asyncio`, so a verify with Redis needs no worker
    thread; `hit`, `add` and `peek` block, for the CLI, the threadpool and WSGI apps.
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
        self.outage = Outage(
            f"rate limit backend Redis at {_describe(client)}",
            logger,
            backoff_seconds=backoff_seconds,
            monotonic=monotonic,
        )
        self._new_async_client = async_client
        self._batcher: _Batcher | None = None

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
        used = self._call("hit", checks, now)
        if used is None:
            return self._fallback.hit(checks, now)
        return _decide(checks, used, now, consume=True)

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        """`hit`, awaited in the running event loop, in the next script call it sends."""
        if not checks:
            return _decide(checks, [], now, consume=True)
        if self._new_async_client is None:
            return await anyio.to_thread.run_sync(self.hit, checks, now)
        if not self.outage.may_try():
            return self._fallback.hit(checks, now)
        used = await self._loop_batcher().submit(checks, now)
        if used is None:
            return self._fallback.hit(checks, now)
        return _decide(checks, used, now, consume=True)

    def hit_held(self, checks: Sequence[Check], now: float) -> None:
        return None  # every hit is a round trip to Redis

    def add(self, checks: Sequence[Check], now: float) -> None:
        if self._call("add", checks, now) is None:
            self._fallback.add(checks, now)

    def peek(self, checks: Sequence[Check], now: float) -> Decision:
        used = self._call("peek", checks, now)
        if used is None:
            return self._fallback.peek(checks, now)
        return _decide(checks, used, now, consume=False)

    def close(self) -> None:
        self._client.close()
        self._fallback.close()

    async def aclose(self) -> None:
        """Close the event loop's connections (at the app's shutdown, in that loop)."""
        if self._batcher is not None:
            batcher, self._batcher = self._batcher, None
            await batcher.client.aclose()

    def key_for(self, check: Check, now: float) -> str:
        return f"{self._prefix}{check.name}:{check.scope}:{window_end(check.name, now)}"

    def script_args(self, mode: Mode, requests: Sequence[Request]) -> list[str]:
        """ARGV of one script call judging `requests` in order."""
        words: list[str] = []
        for checks, now in requests:
            words.append(str(len(checks)))
            minute, day = _window("rpm", now), _window("rpd", now)
            for name, scope, limit, amount in checks:
                end, ttl = day if name in QUOTA_LIMITS else minute
                words.append(f"{name}:{scope}:{end} {limit} {amount} {ttl}")
        return [mode, self._prefix, " ".join(words)]

    def _call(self, mode: Mode, checks: Sequence[Check], now: float) -> list[int] | None:
        """The counters before the call, or None when Redis is failing (use the fallback)."""
        if not checks:
            return []
        if not self.outage.may_try():
            return None
        args = self.script_args(mode, [(checks, now)])
        try:
            used: bytes = self._script(args=args, client=self._client)
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return None
        self.outage.succeeded()
        return [int(count) for count in used.split()]

    def _loop_batcher(self) -> _Batcher:
        """The batcher of the running loop: redis.asyncio connections belong to the loop that
        opened them, so a new loop (a test's `asyncio.run`) gets a new client."""
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._batcher.loop is not loop:
            assert self._new_async_client is not None
            self._batcher = _Batcher(self, loop, self._new_async_client())
        return self._batcher


class _Batcher:
    """Gathers the loop's verifies and sends them as one script call, one call on the wire at
    a time: while a call is out, the next one fills, so the batch grows with the load and a
    lone verify waits for nothing but its own round trip."""

    def __init__(
        self, limiter: RedisLimiter, loop: asyncio.AbstractEventLoop, client: redis.asyncio.Redis
    ) -> None:
        self.limiter = limiter
        self.loop = loop
        self.client = client
        self._script: AsyncScript = client.register_script(_LUA)
        self._pending: list[tuple[Sequence[Check], float, asyncio.Future[list[int] | None]]] = []
        self._sending = False

    def submit(self, checks: Sequence[Check], now: float) -> asyncio.Future[list[int] | None]:
        future: asyncio.Future[list[int] | None] = self.loop.create_future()
        self._pending.append((checks, now, future))
        if not self._sending:
            self._sending = True
            self.loop.create_task(self._send_all())
        return future

    async def _send_all(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._send(batch)
        finally:
            self._sending = False

    async def _send(
        self, batch: list[tuple[Sequence[Check], float, asyncio.Future[list[int] | None]]]
    ) -> None:
        limiter = self.limiter
        args = limiter.script_args("hit", [(checks, now) for checks, now, _ in batch])
        try:
            used = (await self._script(args=args)).split()
        except REDIS_ERRORS as exc:
            limiter.outage.failed(exc)
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)
            return
        except BaseException as exc:  # a bug or a cancelled loop: no verify waits forever
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        limiter.outage.succeeded()
        start = 0
        for checks, _, future in batch:
            end = start + len(checks)
            if not future.done():  # a cancelled verify: counted, but nobody waits for it
                future.set_result([int(count) for count in used[start:end]])
            start = end


def _window(name: str, now: float) -> tuple[int, int]:
    """The end of the window of `name` holding `now`, and the TTL its counter gets."""
    end = window_end(name, now)
    return end, math.ceil(end - now) + TTL_MARGIN_SECONDS


def _describe(client: redis.Redis) -> str:
    """Where Redis is, for log lines: host, port and db, never the password."""
    options = client.connection_pool.connection_kwargs
    if "path" in options:
        return str(options["path"])
    return f"{options.get('host', '?')}:{options.get('port', '?')}/{options.get('db', 0)}"
