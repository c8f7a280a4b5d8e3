"""Limits shared across processes: the database backend, the single-flight outage state, the
instance registry, and the log lines an operator reads."""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.core.limits import Check, MemoryLimiter, checks_for
from llavero.core.plans import Plan
from llavero.edges.logs import configure_logging
from llavero.service import Llavero
from llavero.store import Database
from llavero.store.db_limiter import DatabaseLimiter
from llavero.store.instances import OWN_COUNTERS, Peer, Registry, counting_apart
from llavero.store.limiters import create_limiter
from llavero.store.outage import Outage
from llavero.store.redis_limiter import RedisLimiter

T0 = 1_754_006_400.0  # 2025-08-01T00:00:00Z: a minute and a UTC day start here
PLAN = Plan("p", "P", rpm=3, upm=100)


def test_the_database_limiter_is_all_or_nothing(any_llavero: Llavero) -> None:
    limiter = DatabaseLimiter(any_llavero.db)
    checks = checks_for(PLAN, {"rpm": 5}, "proj", "key-a", 40)

    answers = [limiter.hit(checks, T0 + i) for i in range(4)]

    assert [a.allowed for a in answers] == [True, True, False, False]  # 3 × 40 > upm 100
    assert answers[2].code == "RATE_LIMITED"
    assert answers[1].limits["upm"]["remaining"] == 20
    seen = limiter.peek(checks_for(PLAN, {"rpm": 5}, "proj", "key-a", 0), T0 + 5)
    assert (seen.limits["rpm"]["remaining"], seen.limits["upm"]["remaining"]) == (1, 20)


def test_the_database_limiter_adds_reports_and_refuses_a_spent_quota(any_llavero: Llavero) -> None:
    limiter = DatabaseLimiter(any_llavero.db)
    limiter.add([Check("upm", "p:proj", 100, 150)], T0)

    refused = limiter.hit(checks_for(PLAN, {}, "proj", "key-a", 0), T0 + 1)
    next_minute = limiter.hit(checks_for(PLAN, {}, "proj", "key-a", 0), T0 + 60)

    assert (refused.allowed, refused.code) == (False, "RATE_LIMITED")
    assert next_minute.allowed
    assert limiter.drop_ended(T0 + 61) == 0  # a window that just ended is kept a minute
    assert limiter.drop_ended(T0 + 120 + 61) == 2  # the reported units and the next request


def test_a_cost_above_the_limit_counts_nothing(any_llavero: Llavero) -> None:
    limiter = DatabaseLimiter(any_llavero.db)

    assert not limiter.hit(checks_for(PLAN, {}, "proj", "key-a", 101), T0).allowed
    assert (
        limiter.peek(checks_for(PLAN, {}, "proj", "key-a", 0), T0).limits["rpm"]["remaining"] == 3
    )


def hit_many(url: str, hits: int, limit: int = 100, scope: str = "p:race") -> int:
    """One process of the race, with its own engine, like one server instance; it gives its
    unspent slices back when it closes, as a server does when it stops."""
    db = Database(url)
    limiter = DatabaseLimiter(db)
    try:
        return sum(
            limiter.hit([Check("rpm", scope, limit, 1)], T0 + 1).allowed for _ in range(hits)
        )
    finally:
        limiter.close()
        db.dispose()


def test_several_processes_on_one_database_never_pass_the_limit_and_lose_nothing(
    any_llavero: Llavero,
) -> None:
    """Slices held by one process may refuse another early, never let them pass the limit;
    what is left once they close is still there to spend."""
    url = any_llavero.settings.sqlalchemy_url
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        allowed = pool.starmap(hit_many, [(url, 400, 1_000)] * 4)
    left = hit_many(url, 1_000, 1_000)

    assert sum(allowed) <= 1_000
    assert sum(allowed) + left == 1_000


def test_two_databases_in_threads_allow_exactly_the_limit_in_total(any_llavero: Llavero) -> None:
    """Two engines on one database (two processes' worth), four threads each, big slices;
    then the rest, up to the limit and not one more."""
    url = any_llavero.settings.sqlalchemy_url
    results: list[int] = []

    def hit(limiter: DatabaseLimiter) -> None:
        check = [Check("rpm", "p:two", 3_000, 1)]
        results.append(sum(limiter.hit(check, T0 + 1).allowed for _ in range(300)))

    databases = [Database(url) for _ in range(2)]
    limiters = [DatabaseLimiter(db) for db in databases]
    threads = [threading.Thread(target=hit, args=(limiters[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    during = sum(results)
    for limiter, db in zip(limiters, databases, strict=True):
        limiter.close()
        db.dispose()
    left = hit_many(url, 3_000, 3_000, "p:two")

    assert during == 8 * 300  # nobody refused while the limit was far
    assert left == 3_000 - during


def test_hit_held_answers_from_the_held_slice_only_and_claims_nothing(
    llavero: Llavero,
) -> None:
    """What the event loop asks first (`hit_held`): None with no slice held, and no claim made;
    once `hit` has claimed slices (1 unit, 1, then 2), the answer from memory, spent there."""
    limiter, other = DatabaseLimiter(llavero.db), DatabaseLimiter(llavero.db)
    check = [Check("rpm", "p:held", 1_000, 1)]

    before = limiter.hit_held(check, T0 + 1)
    claimed_before = 1_000 - other.peek(check, T0 + 1).limits["rpm"]["remaining"]
    assert all(limiter.hit(check, T0 + 1).allowed for _ in range(3))
    claimed = 1_000 - other.peek(check, T0 + 1).limits["rpm"]["remaining"]
    held = limiter.hit_held(check, T0 + 1)
    claimed_after = 1_000 - other.peek(check, T0 + 1).limits["rpm"]["remaining"]

    assert before is None
    assert claimed_before == 0
    assert claimed == 1 + 1 + 2
    assert held is not None and held.allowed
    assert held.limits["rpm"]["remaining"] == 1_000 - 4  # four spent, none held any more
    assert claimed_after == claimed
    assert limiter.hit_held(check, T0 + 1) is None  # the slice is spent: the next one claims


def test_a_process_spends_its_slice_in_memory_and_gives_back_what_it_left_idle(
    llavero: Llavero,
) -> None:
    clock = [100.0]
    limiter = DatabaseLimiter(llavero.db, monotonic=lambda: clock[0])
    other = DatabaseLimiter(llavero.db)
    check = [Check("rpm", "p:slices", 1_000, 1)]

    for _ in range(20):  # fast: each claim doubles the next slice (1, 1, 2, 4, 8, ...)
        assert limiter.hit(check, T0 + 1).allowed
    claimed = 1_000 - other.peek(check, T0 + 1).limits["rpm"]["remaining"]
    shown_here = limiter.peek(check, T0 + 1).limits["rpm"]["remaining"]
    kept = limiter.give_back()  # not idle yet
    clock[0] += 10
    returned = limiter.give_back()
    after = other.peek(check, T0 + 1).limits["rpm"]["remaining"]

    assert claimed == 1 + 1 + 2 + 4 + 8 + 16  # the rows count the slices handed out
    assert shown_here == 1_000 - 20  # its own unspent slice is not use
    assert (kept, returned) == (0, claimed - 20)
    assert after == 1_000 - 20


def test_threads_race_for_the_last_units_and_never_pass_the_limit(llavero: Llavero) -> None:
    limiter = DatabaseLimiter(llavero.db)
    results: list[bool] = []

    def hit() -> None:
        for _ in range(10):
            results.append(limiter.hit([Check("rpm", "p:t", 25, 1)], T0).allowed)

    threads = [threading.Thread(target=hit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(True) == 25


def test_a_failing_database_falls_back_to_memory(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}")  # no rate_counters table
    limiter = DatabaseLimiter(db)
    checks = [Check("rpm", "p:x", 2, 1)]

    answers = [limiter.hit(checks, T0).allowed for _ in range(3)]

    assert answers == [True, True, False]
    assert limiter.outage.down
    db.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def errors() -> float:
    return REGISTRY.get_sample_value("llavero_rate_limit_backend_errors_total") or 0.0


def test_while_down_one_caller_per_interval_tries_and_the_rest_fall_back() -> None:
    clock = Clock()
    outage = Outage("backend", logging.getLogger("llavero.test"), monotonic=clock)
    assert outage.may_try()
    outage.failed(ConnectionError())

    during = [outage.may_try() for _ in range(50)]
    clock.now += 5
    probe = outage.may_try()
    others_while_probing = [outage.may_try() for _ in range(50)]
    outage.failed(ConnectionError())
    clock.now += 5
    second_probe = outage.may_try()
    outage.succeeded()

    assert not any(during)
    assert probe and second_probe
    assert not any(others_while_probing)
    assert not outage.down and outage.may_try()


def test_an_outage_logs_a_start_a_summary_a_minute_and_an_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = Outage("rate limit backend X", logging.getLogger("llavero.test"), monotonic=clock)
    before = errors()

    with caplog.at_level(logging.INFO, logger="llavero.test"):
        for _ in range(30):  # a failed probe every 5 s for 150 s
            if outage.may_try():
                outage.failed(TimeoutError())
            clock.now += 5
        outage.may_try()
        outage.succeeded()

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 4, messages  # start, summaries at 60 s and 120 s, end
    assert messages[0].startswith("rate limit backend X failed (TimeoutError)")
    assert "still down after 60 s" in messages[1]
    assert messages[3].startswith("rate limit backend X is back after 150 s")
    assert errors() - before == 30


def test_counting_apart_needs_several_processes_and_one_counting_alone() -> None:
    shared = Peer("serve", "h", 1, "database")
    alone = Peer("gateway", "h", 2, "memory")
    fallen = Peer("middleware", "h", 3, OWN_COUNTERS)

    assert counting_apart([alone]) == []
    assert counting_apart([shared, Peer("serve", "h", 4, "redis")]) == []
    assert counting_apart([shared, alone, fallen]) == [alone, fallen]


def test_the_registry_sees_processes_that_count_apart_and_forgets_silent_ones(
    llavero: Llavero, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    first = Registry(llavero.db, clock, lambda: "memory", interval=0)
    second = Registry(llavero.db, clock, lambda: "memory", interval=0)

    with caplog.at_level(logging.INFO, logger="llavero.instances"):
        first.start("serve")
        second.start("gateway")
        first.heartbeat()
        assert [peer.kind for peer in counting_apart(first.peers)] == ["serve", "gateway"]
        second.stop()
        first.heartbeat()

    assert counting_apart(first.peers) == []
    # Each process says so once (here both live in this test), and the one left says it ended.
    assert [record.levelname for record in caplog.records] == ["WARNING", "WARNING", "INFO"]
    assert "2 Llavero processes" in caplog.records[0].getMessage()
    assert "one place again" in caplog.records[2].getMessage()
    first.stop()


def test_a_process_gone_silent_leaves_the_registry(llavero: Llavero, clock: FrozenClock) -> None:
    gone = Registry(llavero.db, clock, lambda: "memory", interval=1)
    gone.start("serve")  # and never beats again
    gone._thread.stop()
    live = Registry(llavero.db, clock, lambda: "database", interval=1)
    live.start("serve")
    assert len(live.peers) == 2

    clock.advance(seconds=4)
    live.heartbeat()

    assert live.peers == [Peer("serve", live.peers[0].host, live.peers[0].pid, "database")]
    live.stop()


def test_text_lines_carry_time_level_and_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    logging.getLogger("llavero.test").info("hello %s", "there")
    logging.getLogger("llavero.test").debug("not at info")

    line = capsys.readouterr().err.strip()
    assert line.endswith(" INFO llavero.test: hello there")
    assert len(line.splitlines()) == 1


def test_json_lines_are_one_object_each(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "json")
    logging.getLogger("llavero.test").warning("careful")
    logging.getLogger("llavero.test").info("not at warning")

    entry = json.loads(capsys.readouterr().err)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "llavero.test"
    assert entry["message"] == "careful"
    assert entry["time"].endswith("+00:00")


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="LLAVERO_LOG_FORMAT: unknown format 'xml'"):
        configure_logging("info", "xml")


def test_a_service_reports_its_limiter_and_falls_to_own_counters(settings: Settings) -> None:
    llavero = Llavero(settings)
    try:
        assert llavero.limiter_mode() == "database"
        assert isinstance(llavero.limiter, DatabaseLimiter)
        llavero.limiter.outage.failed(ConnectionError())
        assert llavero.limiter_mode() == OWN_COUNTERS
    finally:
        llavero.close()


def test_a_stalled_process_dropped_by_others_joins_again(
    llavero: Llavero, clock: FrozenClock
) -> None:
    stalled = Registry(llavero.db, clock, lambda: "database", interval=1)
    other = Registry(llavero.db, clock, lambda: "database", interval=1)
    stalled.start("gateway")
    other.start("serve")
    clock.advance(seconds=4)
    other.heartbeat()  # drops the stalled one
    assert [peer.kind for peer in other.peers] == ["serve"]

    stalled.heartbeat()

    assert sorted(peer.kind for peer in stalled.peers) == ["gateway", "serve"]
    stalled.stop()
    other.stop()


def test_a_database_without_the_registry_table_costs_a_warning(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'not-migrated.sqlite3'}")
    registry = Registry(db, clock, lambda: "database", interval=0)

    with caplog.at_level(logging.WARNING, logger="llavero.instances"):
        registry.start("middleware")

    assert "run `llavero db upgrade`" in caplog.text
    db.dispose()


def test_create_limiter_picks_the_backend(tmp_path: Path) -> None:
    memory = create_limiter(Settings(data_dir=tmp_path, rate_limit_backend="memory"))
    shared = create_limiter(
        Settings(data_dir=tmp_path, rate_limit_backend="redis", redis_url="redis://127.0.0.1:1/0")
    )

    assert isinstance(memory, MemoryLimiter)
    assert isinstance(shared, RedisLimiter)
    shared.close()
    with pytest.raises(ValueError, match="LLAVERO_RATE_LIMIT_BACKEND: unknown backend 'disk'"):
        create_limiter(Settings(data_dir=tmp_path, rate_limit_backend="disk"))
