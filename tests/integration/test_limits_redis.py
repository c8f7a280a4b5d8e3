"""RedisLimiter against a real Redis (db 15 by default), and its fallback when Redis is gone."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import REGISTRY

from llavero.core.limits import Check, LimitStatus, checks_for
from llavero.core.plans import Plan, default_plans
from llavero.store.redis_limiter import RedisLimiter
from tests.conftest import require

T0 = 1_754_006_400.0  # 2025-08-01T00:00:00Z: a minute and a UTC day start here
FREE = default_plans()["free"]
ERRORS = "llavero_rate_limit_backend_errors_total"


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("LLAVERO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        require(f"Redis at {url}", False)
    finally:
        client.close()
    return url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test only; its keys are removed afterwards."""
    prefix = f"llavero-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def limiter(client: redis.Redis, prefix: str) -> RedisLimiter:
    """Generous timeouts: these tests are about the script, not about a slow Redis."""
    return RedisLimiter(client, prefix=prefix)


def errors_count() -> float:
    return REGISTRY.get_sample_value(ERRORS) or 0.0


def hit_many(url: str, prefix: str, hits: int, now: float) -> int:
    """One process of the race: its own client and limiter, like one server instance."""
    client = redis.Redis.from_url(url, socket_timeout=30)
    try:
        limiter = RedisLimiter(client, prefix=prefix)
        return sum(limiter.hit([Check("rpm", "p:race", 100, 1)], now).allowed for _ in range(hits))
    finally:
        client.close()


@pytest.mark.redis
def test_free_project_is_refused_at_rpm_plus_one_until_the_minute_ends(
    limiter: RedisLimiter,
) -> None:
    checks = checks_for(FREE, {}, "proj", "key-a", 0)

    allowed = [limiter.hit(checks, T0 + 15 + i).allowed for i in range(10)]
    refused = limiter.hit(checks, T0 + 30)
    again = limiter.hit(checks, T0 + 60)

    assert allowed == [True] * 10
    assert (refused.allowed, refused.code, refused.retry_after) == (False, "RATE_LIMITED", 30)
    assert refused.limits["rpm"] == LimitStatus(limit=10, remaining=0, reset_seconds=30)
    assert refused.limits["rpd"] == LimitStatus(limit=250, remaining=240, reset_seconds=86_370)
    assert again.allowed is True
    assert again.limits["rpm"] == LimitStatus(limit=10, remaining=9, reset_seconds=60)


@pytest.mark.redis
def test_a_tighter_key_limit_wins(limiter: RedisLimiter) -> None:
    checks = checks_for(FREE, {"rpm": 2}, "proj", "key-a", 0)

    results = [limiter.hit(checks, T0 + i).allowed for i in range(3)]
    other_key = limiter.hit(checks_for(FREE, {}, "proj", "key-b", 0), T0 + 4)

    assert results == [True, True, False]
    assert other_key.limits["rpm"]["remaining"] == 10 - 3


@pytest.mark.redis
def test_a_refused_hit_consumes_nothing(limiter: RedisLimiter) -> None:
    plan = Plan("p", "P", rpm=5, upm=100)
    limiter.hit(checks_for(plan, {}, "proj", "key-a", 60), T0)

    refused = limiter.hit(checks_for(plan, {}, "proj", "key-a", 50), T0 + 1)
    after = limiter.peek(checks_for(plan, {}, "proj", "key-a", 0), T0 + 2)

    assert refused.allowed is False
    assert (after.limits["rpm"]["remaining"], after.limits["upm"]["remaining"]) == (4, 40)


@pytest.mark.redis
def test_units_with_cost_and_cost_zero(limiter: RedisLimiter) -> None:
    plan = Plan("p", "P", rpm=100, upd=250)
    costs = [100, 100, 100, 50, 0]

    answers = [
        limiter.hit(checks_for(plan, {}, "proj", "key-a", cost), T0 + i)
        for i, cost in enumerate(costs)
    ]

    assert [a.allowed for a in answers] == [True, True, False, True, False]
    assert [a.code for a in answers] == [None, None, "QUOTA_EXCEEDED", None, "QUOTA_EXCEEDED"]
    assert answers[3].limits["upd"] == LimitStatus(limit=250, remaining=0, reset_seconds=86_397)


@pytest.mark.redis
def test_daily_quota_wins_over_the_minute_rate(limiter: RedisLimiter) -> None:
    checks = checks_for(Plan("p", "P", rpm=2, rpd=2), {}, "proj", "key-a", 0)
    limiter.hit(checks, T0 + 10)
    limiter.hit(checks, T0 + 11)

    refused = limiter.hit(checks, T0 + 12)

    assert (refused.code, refused.retry_after) == ("QUOTA_EXCEEDED", 86_388)


@pytest.mark.redis
def test_add_consumes_unconditionally(limiter: RedisLimiter) -> None:
    units = [Check("upm", "p:proj", 100, 150)]

    limiter.add(units, T0)
    shown = limiter.peek([Check("upm", "p:proj", 100, 0)], T0 + 1)

    assert (shown.allowed, shown.code) == (False, "RATE_LIMITED")
    assert shown.limits["upm"] == LimitStatus(limit=100, remaining=0, reset_seconds=59)


@pytest.mark.redis
def test_counters_expire_after_their_window(
    limiter: RedisLimiter, client: redis.Redis, prefix: str
) -> None:
    checks = checks_for(FREE, {}, "proj", "key-a", 5)

    limiter.hit(checks, T0 + 20)

    keys = sorted(key.decode() for key in client.scan_iter(match=f"{prefix}*"))
    assert keys == [
        f"{prefix}rpd:p:proj:{int(T0) + 86_400}",
        f"{prefix}rpm:p:proj:{int(T0) + 60}",
        f"{prefix}upd:p:proj:{int(T0) + 86_400}",
        f"{prefix}upm:p:proj:{int(T0) + 60}",
    ]
    assert 0 < client.ttl(f"{prefix}rpm:p:proj:{int(T0) + 60}") <= 40 + 60
    assert 40 + 60 < client.ttl(f"{prefix}rpd:p:proj:{int(T0) + 86_400}") <= 86_380 + 60


@pytest.mark.redis
def test_from_url_talks_to_redis(redis_url: str, prefix: str) -> None:
    limiter = RedisLimiter.from_url(redis_url, prefix=prefix)
    checks = [Check("rpm", "p:proj", 1, 1)]
    before = errors_count()

    try:
        first, second = limiter.hit(checks, T0), limiter.hit(checks, T0 + 1)
    finally:
        limiter.close()

    assert (first.allowed, second.allowed) == (True, False)
    assert errors_count() == before


@pytest.mark.redis
def test_several_processes_allow_exactly_the_limit(redis_url: str, prefix: str) -> None:
    context = multiprocessing.get_context("spawn")

    with context.Pool(4) as pool:
        allowed = pool.starmap(hit_many, [(redis_url, prefix, 50, T0 + 1)] * 4)

    assert sum(allowed) == 100


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_redis_falls_back_to_memory_and_retries_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [1_000.0]
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    limiter = RedisLimiter.from_url(url, backoff_seconds=5, monotonic=lambda: clock[0])
    checks = checks_for(Plan("p", "P", rpm=3), {}, "proj", "key-a", 0)
    before = errors_count()

    with caplog.at_level(logging.WARNING, logger="llavero.limits"):
        answers = [limiter.hit(checks, T0 + i).allowed for i in range(4)]
        errors_during_backoff = errors_count() - before
        clock[0] += 5
        retried = limiter.peek(checks, T0 + 5)
    limiter.close()

    assert answers == [True, True, True, False]
    assert errors_during_backoff == 1
    assert errors_count() - before == 2
    assert (retried.allowed, retried.limits["rpm"]["remaining"]) == (False, 0)
    warnings = [r for r in caplog.records if r.name == "llavero.limits"]
    assert len(warnings) == 1
    assert "ConnectionError" in warnings[0].getMessage()
    assert "hunter2" not in caplog.text


@pytest.mark.redis
def test_ahit_counts_in_redis_from_the_event_loop(redis_url: str, prefix: str) -> None:
    limiter = RedisLimiter.from_url(redis_url, prefix=prefix)
    checks = [Check("rpm", "p:async", 3, 1)]

    async def burst() -> list[bool]:
        answers = await asyncio.gather(*(limiter.ahit(checks, T0 + 1) for _ in range(5)))
        await limiter.aclose()
        return [answer.allowed for answer in answers]

    try:
        allowed = asyncio.run(burst())
        seen = limiter.peek(checks, T0 + 1)  # the sync client sees what the async one counted
    finally:
        limiter.close()

    assert sorted(allowed) == [False, False, True, True, True]
    assert seen.limits["rpm"]["remaining"] == 0


def test_a_dead_redis_is_tried_by_one_caller_per_interval_in_the_event_loop() -> None:
    clock = [1_000.0]
    url = f"redis://127.0.0.1:{closed_port()}/0"
    limiter = RedisLimiter.from_url(url, backoff_seconds=5, monotonic=lambda: clock[0])
    checks = [Check("rpm", "p:dead", 100, 1)]
    before = errors_count()

    async def wave() -> None:
        await asyncio.gather(*(limiter.ahit(checks, T0) for _ in range(50)))
        await limiter.aclose()

    asyncio.run(wave())  # the first failure opens the outage; the rest of the wave may race it
    first_wave = errors_count() - before
    asyncio.run(wave())
    during_backoff = errors_count() - before - first_wave
    clock[0] += 5
    asyncio.run(wave())
    after_backoff = errors_count() - before - first_wave - during_backoff
    limiter.close()

    assert during_backoff == 0
    assert after_backoff == 1


@pytest.mark.redis
def test_one_script_call_judges_concurrent_verifies_in_order(redis_url: str, prefix: str) -> None:
    """Verifies gathered into one call count as separate calls would: exactly, big numbers too."""
    limiter = RedisLimiter.from_url(redis_url, prefix=prefix)
    big = 10**12
    units = [Check("upd", "p:big", big, big // 4), Check("rpm", "k:big", 1_000, 1)]

    async def burst() -> list[bool]:
        answers = await asyncio.gather(*(limiter.ahit(units, T0 + 1) for _ in range(6)))
        await limiter.aclose()
        return [answer.allowed for answer in answers]

    try:
        allowed = asyncio.run(burst())
        seen = limiter.peek([Check("upd", "p:big", big, 0)], T0 + 2)
    finally:
        limiter.close()

    assert allowed == [True] * 4 + [False] * 2
    assert (seen.allowed, seen.limits["upd"]["remaining"]) == (False, 0)
