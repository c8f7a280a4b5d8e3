"""Verify with `LLAVERO_RATE_LIMIT_BACKEND=redis`: limits shared by several processes (exact
across them), and verify still answering when Redis is unreachable."""

from __future__ import annotations

import logging
import multiprocessing
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.core.limits import window_end
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from llavero.store.redis_limiter import RedisLimiter

FREE_RPM = 10


def redis_settings(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"rate_limit_backend": "redis", "redis_url": url})


@pytest.fixture
def shared(settings: Settings, redis_url: str) -> Settings:
    return redis_settings(settings, redis_url)


@pytest.fixture
def redis_llavero(shared: Settings, clock: FrozenClock) -> Iterator[Llavero]:
    llavero = Llavero(shared, clock=clock)
    llavero.upgrade()
    yield llavero
    llavero.close()


@pytest.fixture
def project(redis_llavero: Llavero, admin: Actor, redis_url: str) -> Iterator[str]:
    """A project id of this test only, so that its Redis counters are its own; removed after."""
    project_id = f"redis-{uuid.uuid4().hex[:12]}"
    redis_llavero.projects.create(admin, "Redis limits", project_id)
    yield project_id
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"llavero:rl:*:p:{project_id}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def verify_many(settings: dict[str, Any], key: str, times: int, now: float) -> list[str]:
    """One instance of Llavero in its own process, sharing the database and Redis."""
    llavero = Llavero(Settings(**settings), clock=FrozenClock(now))
    try:
        return [llavero.verifier.verify(VerifyRequest(key=key)).code for _ in range(times)]
    finally:
        llavero.close()


@pytest.mark.redis
def test_verify_counts_in_redis(
    redis_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock, redis_url: str
) -> None:
    assert isinstance(redis_llavero.limiter, RedisLimiter)
    key = redis_llavero.keys.create(admin, project).key_string

    answers = [redis_llavero.verifier.verify(VerifyRequest(key=key)) for _ in range(FREE_RPM + 1)]

    assert [a.code for a in answers] == ["VALID"] * FREE_RPM + ["RATE_LIMITED"]
    assert answers[-1].limits["rpm"] == {"limit": FREE_RPM, "remaining": 0, "reset_seconds": 60}
    client = redis.Redis.from_url(redis_url)
    try:
        counted = client.get(f"llavero:rl:rpm:p:{project}:{window_end('rpm', clock.time())}")
    finally:
        client.close()
    assert counted == str(FREE_RPM).encode()


@pytest.mark.redis
def test_several_processes_get_exactly_the_limit_together(
    redis_llavero: Llavero, admin: Actor, project: str, shared: Settings, clock: FrozenClock
) -> None:
    limit, processes, per_process = 7, 3, 6
    key = redis_llavero.keys.create(admin, project, limits={"rpm": limit}).key_string
    settings = shared.model_dump(mode="json")
    context = multiprocessing.get_context("spawn")

    with context.Pool(processes) as pool:
        answers = pool.starmap(
            verify_many, [(settings, key, per_process, clock.time())] * processes
        )

    codes = [code for answer in answers for code in answer]
    assert codes.count("VALID") == limit
    assert codes.count("RATE_LIMITED") == processes * per_process - limit
    assert redis_llavero.verifier.verify(VerifyRequest(key=key)).code == "RATE_LIMITED"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_redis_keeps_verify_answering_with_local_counters(
    settings: Settings, clock: FrozenClock, admin: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    dead = redis_settings(settings, f"redis://127.0.0.1:{closed_port()}/0")
    llavero = Llavero(dead, clock=clock)
    llavero.upgrade()
    try:
        project = llavero.projects.create(admin, "No Redis").id
        key = llavero.keys.create(admin, project).key_string
        with caplog.at_level(logging.WARNING, logger="llavero.limits"):
            answers = [llavero.verifier.verify(VerifyRequest(key=key)) for _ in range(FREE_RPM + 1)]
    finally:
        llavero.close()

    assert [a.code for a in answers] == ["VALID"] * FREE_RPM + ["RATE_LIMITED"]
    assert answers[0].limits["rpm"] == {"limit": FREE_RPM, "remaining": 9, "reset_seconds": 60}
    warnings = [r for r in caplog.records if r.name == "llavero.limits"]
    assert len(warnings) == 1
    assert "using in-process counters" in warnings[0].getMessage()
