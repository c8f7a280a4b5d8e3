"""The usage meter: buffered counts, batched flushes, rollup, retention, failures, shutdown."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from llavero.core.clock import FrozenClock
from llavero.core.codes import REPORTED
from llavero.core.meter import UsageMeter, rollup
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from llavero.service.context import Context
from llavero.store import tables
from llavero.store.metering import UsageWriter

T0 = 1_754_006_400.0  # 2025-08-01T00:00:00Z


def meter_on(ctx: Context) -> UsageMeter:
    """A meter of its own that writes to this service's database, as the service's does."""
    return UsageMeter(ctx.settings, ctx.clock, UsageWriter(ctx.db))


@pytest.fixture
def key_id(any_llavero: Llavero, admin: Actor) -> str:
    project = any_llavero.projects.create(admin, "Gemini API", "gemini-api")
    return any_llavero.keys.create(admin, project.id).key.id


def buckets(llavero: Llavero, granularity: str, key_id: str) -> list[tables.UsageBucket]:
    query = select(tables.UsageBucket).where(
        tables.UsageBucket.granularity == granularity, tables.UsageBucket.key_id == key_id
    )
    with llavero.db.reading() as session:
        return list(session.scalars(query.order_by(tables.UsageBucket.bucket_start)))


def totals(llavero: Llavero, granularity: str, key_id: str) -> Counter[str]:
    counted: Counter[str] = Counter()
    for row in buckets(llavero, granularity, key_id):
        counted[row.code] += row.requests
        counted[f"{row.code}.units"] += row.units
    return counted


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_record_buffers_until_flush_then_writes_one_row_per_bucket(
    any_llavero: Llavero, key_id: str
) -> None:
    meter = meter_on(any_llavero.ctx)
    for offset in (0, 10, 59):
        meter.record(key_id, "gemini-api", "VALID", 5, "203.0.113.7", T0 + offset)
    meter.record(key_id, "gemini-api", "RATE_LIMITED", 0, "203.0.113.8", T0 + 30)
    meter.record(key_id, "gemini-api", "VALID", 1, "203.0.113.9", T0 + 60)

    assert buckets(any_llavero, "minute", key_id) == []
    assert meter.buffered_buckets() == 3
    assert meter.flush() == 3
    assert meter.buffered_buckets() == 0

    rows = {
        (row.bucket_start, row.code): (row.requests, row.units)
        for row in buckets(any_llavero, "minute", key_id)
    }
    assert rows == {
        (at(T0), "VALID"): (3, 15),
        (at(T0), "RATE_LIMITED"): (1, 0),
        (at(T0 + 60), "VALID"): (1, 1),
    }
    key = any_llavero.keys.get(Actor.system(), key_id)
    assert key.last_used_time == at(T0 + 60)
    assert key.last_used_ip == "203.0.113.9"


def test_flushes_add_to_existing_buckets(any_llavero: Llavero, key_id: str) -> None:
    meter = meter_on(any_llavero.ctx)
    meter.record(key_id, "gemini-api", "VALID", 2, None, T0)
    meter.flush()
    meter.record(key_id, "gemini-api", "VALID", 3, None, T0 + 1)
    meter.flush()

    for granularity in ("minute", "hour", "day"):
        [row] = buckets(any_llavero, granularity, key_id)
        assert (row.requests, row.units) == (2, 5)


def test_minute_hour_and_day_buckets_add_up_to_the_same_totals(
    any_llavero: Llavero, key_id: str
) -> None:
    meter = meter_on(any_llavero.ctx)
    rng = random.Random(4)
    recorded: Counter[str] = Counter()
    for flush_round in range(3):
        for _ in range(300):
            code = rng.choice(("VALID", "VALID", "RATE_LIMITED", "IP_NOT_ALLOWED"))
            units = rng.randrange(0, 50) if code == "VALID" else 0
            now = T0 + rng.uniform(0, 3 * 86400)  # three UTC days, many hours and minutes
            meter.record(key_id, "gemini-api", code, units, None, now)
            recorded[code] += 1
            recorded[f"{code}.units"] += units
        meter.record_units(key_id, "gemini-api", 7 + flush_round, T0 + 90_000)
        recorded[f"{REPORTED}.units"] += 7 + flush_round
        meter.flush()

    assert totals(any_llavero, "minute", key_id) == recorded
    assert totals(any_llavero, "hour", key_id) == recorded
    assert totals(any_llavero, "day", key_id) == recorded
    assert len(buckets(any_llavero, "day", key_id)) > 3  # several codes on each of three days


def test_each_hour_bucket_is_the_sum_of_its_minutes() -> None:
    deltas = {
        ("k", "p", int(T0), "VALID"): [2, 10],
        ("k", "p", int(T0) + 60, "VALID"): [3, 1],
        ("k", "p", int(T0) + 3600, "VALID"): [4, 0],
    }
    rows = {(row["granularity"], row["bucket_start"]): row["requests"] for row in rollup(deltas)}
    assert rows == {
        ("minute", at(T0)): 2,
        ("minute", at(T0 + 60)): 3,
        ("minute", at(T0 + 3600)): 4,
        ("hour", at(T0)): 5,
        ("hour", at(T0 + 3600)): 4,
        ("day", at(T0)): 9,
    }


def test_reported_units_add_units_but_no_requests(any_llavero: Llavero, key_id: str) -> None:
    meter = meter_on(any_llavero.ctx)
    meter.record_units(key_id, "gemini-api", 1200, T0)
    meter.flush()

    [row] = buckets(any_llavero, "hour", key_id)
    assert (row.code, row.requests, row.units) == (REPORTED, 0, 1200)
    assert any_llavero.keys.get(Actor.system(), key_id).last_used_time is None


def test_prune_keeps_each_granularity_for_its_own_retention(
    any_llavero: Llavero, key_id: str
) -> None:
    settings = any_llavero.settings
    meter = meter_on(any_llavero.ctx)
    meter.record(key_id, "gemini-api", "VALID", 1, None, T0)
    meter.flush()

    day = 86400
    assert meter.prune(T0 + settings.usage_retention_minute_days * day) == 0
    assert meter.prune(T0 + settings.usage_retention_minute_days * day + 60) == 1
    assert [len(buckets(any_llavero, g, key_id)) for g in ("minute", "hour", "day")] == [0, 1, 1]
    assert meter.prune(T0 + settings.usage_retention_hour_days * day + 3600) == 1
    assert meter.prune(T0 + settings.usage_retention_day_days * day + day) == 1
    assert [len(buckets(any_llavero, g, key_id)) for g in ("minute", "hour", "day")] == [0, 0, 0]


def test_a_failed_flush_keeps_every_count_for_the_next_one(
    any_llavero: Llavero, key_id: str
) -> None:
    meter = meter_on(any_llavero.ctx)
    meter.record(key_id, "gemini-api", "VALID", 4, "203.0.113.7", T0)
    with any_llavero.db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE usage_buckets RENAME TO usage_buckets_away"))
    try:
        with pytest.raises(SQLAlchemyError):
            meter.flush()
        meter.record(key_id, "gemini-api", "VALID", 1, "203.0.113.8", T0 + 1)
    finally:
        with any_llavero.db.engine.begin() as connection:
            connection.execute(text("ALTER TABLE usage_buckets_away RENAME TO usage_buckets"))

    assert meter.flush() == 1
    [row] = buckets(any_llavero, "minute", key_id)
    assert (row.requests, row.units) == (2, 5)
    assert any_llavero.keys.get(Actor.system(), key_id).last_used_ip == "203.0.113.8"


def test_an_older_flush_does_not_overwrite_a_newer_last_use(
    any_llavero: Llavero, key_id: str
) -> None:
    newer, older = meter_on(any_llavero.ctx), meter_on(any_llavero.ctx)
    newer.record(key_id, "gemini-api", "VALID", 0, "198.51.100.2", T0 + 5)
    older.record(key_id, "gemini-api", "VALID", 0, "198.51.100.1", T0)
    newer.flush()
    older.flush()

    key = any_llavero.keys.get(Actor.system(), key_id)
    assert (key.last_used_time, key.last_used_ip) == (at(T0 + 5), "198.51.100.2")


def test_only_a_valid_verify_moves_last_used(any_llavero: Llavero, key_id: str) -> None:
    meter = meter_on(any_llavero.ctx)
    meter.record(key_id, "gemini-api", "IP_NOT_ALLOWED", 0, "192.0.2.1", T0)
    meter.flush()
    key = any_llavero.keys.get(Actor.system(), key_id)
    assert (key.last_used_time, key.last_used_ip) == (None, None)

    meter.record(key_id, "gemini-api", "VALID", 1, "203.0.113.7", T0 + 10)
    for later, code in enumerate(("RATE_LIMITED", "DISABLED", "EXPIRED"), start=11):
        meter.record(key_id, "gemini-api", code, 0, "192.0.2.1", T0 + later)
    meter.flush()

    key = any_llavero.keys.get(Actor.system(), key_id)
    assert (key.last_used_time, key.last_used_ip) == (at(T0 + 10), "203.0.113.7")
    assert totals(any_llavero, "minute", key_id) == {
        "IP_NOT_ALLOWED": 1,
        "VALID": 1,
        "RATE_LIMITED": 1,
        "DISABLED": 1,
        "EXPIRED": 1,
        "IP_NOT_ALLOWED.units": 0,
        "VALID.units": 1,
        "RATE_LIMITED.units": 0,
        "DISABLED.units": 0,
        "EXPIRED.units": 0,
    }


def test_close_flushes_everything_buffered(any_llavero: Llavero, key_id: str) -> None:
    meter = meter_on(any_llavero.ctx)
    meter.record(key_id, "gemini-api", "DISABLED", 0, None, T0)
    meter.close()

    [row] = buckets(any_llavero, "day", key_id)
    assert (row.code, row.requests) == ("DISABLED", 1)


def test_the_flusher_thread_writes_without_being_asked(any_llavero: Llavero, key_id: str) -> None:
    ctx = any_llavero.ctx
    ctx.settings = ctx.settings.model_copy(update={"usage_flush_seconds": 0.02})
    meter = meter_on(ctx)
    flushed = threading.Event()
    original = meter.flush

    def flush_and_tell() -> int:
        written = original()
        if written:
            flushed.set()
        return written

    meter.flush = flush_and_tell  # type: ignore[method-assign]
    meter.start()
    try:
        meter.record(key_id, "gemini-api", "VALID", 1, None, T0)
        assert flushed.wait(timeout=10)
        assert [row.requests for row in buckets(any_llavero, "minute", key_id)] == [1]
    finally:
        meter.close()


def test_concurrent_records_are_all_counted(any_llavero: Llavero, key_id: str) -> None:
    meter = meter_on(any_llavero.ctx)

    def hammer() -> None:
        for i in range(2000):
            meter.record(key_id, "gemini-api", "VALID", 1, None, T0 + i % 120)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(5):
        meter.flush()  # flushing while recording must not lose a count
    for thread in threads:
        thread.join()
    meter.flush()

    assert totals(any_llavero, "hour", key_id)["VALID"] == 8000
    assert totals(any_llavero, "minute", key_id)["VALID.units"] == 8000


def test_every_verify_of_a_known_key_is_metered(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    project = any_llavero.projects.create(admin, "Gemini API", "gemini-api")
    created = any_llavero.keys.create(
        admin, project.id, restrictions={"allowed_ips": ["203.0.113.0/24"]}
    )
    verifier, meter = any_llavero.verifier, any_llavero.usage_meter
    verdicts = [
        verifier.verify(VerifyRequest(created.key_string, ip="203.0.113.7", cost=3)).code
        for _ in range(3)
    ]
    verdicts.append(verifier.verify(VerifyRequest(created.key_string, ip="192.0.2.1")).code)
    verdicts.append(verifier.verify(VerifyRequest("llv_not-a-key")).code)
    meter.flush()

    assert verdicts == ["VALID"] * 3 + ["IP_NOT_ALLOWED", "MALFORMED"]
    assert totals(any_llavero, "minute", created.key.id) == {
        "VALID": 3,
        "VALID.units": 9,
        "IP_NOT_ALLOWED": 1,
        "IP_NOT_ALLOWED.units": 0,
    }
    assert meter.verify_counts() == {"VALID": 3, "IP_NOT_ALLOWED": 1, "MALFORMED": 1}
    key = any_llavero.keys.get(admin, created.key.id)
    assert (key.last_used_time, key.last_used_ip) == (clock.now(), "203.0.113.7")
