"""Usage series: the VALID count of a series equals the verifies that were allowed, at every
granularity, on every database; every bucket in range is present; bad ranges name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.errors import InvalidArgument, NotFound
from llavero.service import Actor, Llavero

GRANULARITIES = ("minute", "hour", "day")


def verify_many(llavero: Llavero, key: str, count: int, clock: FrozenClock, step: float) -> int:
    """`count` verifies `step` seconds apart, cost 2 each; returns how many were allowed."""
    allowed = 0
    for _ in range(count):
        result = llavero.verifier.verify(VerifyRequest(key, ip="203.0.113.7", cost=2))
        allowed += result.valid
        clock.advance(step)
    return allowed


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_valid_requests_in_the_series_equal_the_allowed_verifies(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock, granularity: str
) -> None:
    project = any_llavero.projects.create(admin, "Gemini API", "gemini-api")
    created = any_llavero.keys.create(admin, project.id)
    start = clock.now()
    # 14 verifies within a minute: the free plan allows 10 per minute and refuses the rest.
    allowed = verify_many(any_llavero, created.key_string, 14, clock, 1)
    # Then, from the next minute on, some across two hours: one per ten minutes.
    clock.advance(60)
    allowed += verify_many(any_llavero, created.key_string, 12, clock, 600)
    any_llavero.usage_meter.flush()

    end = clock.now()
    for series in (
        any_llavero.usage.key_series(admin, created.key.id, start, end, granularity),
        any_llavero.usage.project_series(admin, project.id, start, end, granularity),
    ):
        assert allowed == 22
        assert series.totals.requests["VALID"] == allowed
        assert sum(bucket.requests["VALID"] for bucket in series.buckets) == allowed
        assert series.totals.requests["RATE_LIMITED"] == 4
        assert series.totals.units == 2 * allowed


def test_every_bucket_in_range_is_present_and_zero_when_empty(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    project = llavero.projects.create(admin, "Gemini API", "gemini-api")
    created = llavero.keys.create(admin, project.id)
    start = clock.now()
    clock.advance(2 * 3600 + 5)
    llavero.verifier.verify(VerifyRequest(created.key_string, cost=7))
    llavero.usage_meter.flush()

    series = llavero.usage.key_series(admin, created.key.id, start, clock.now(), "hour")

    assert [bucket.start_time for bucket in series.buckets] == [
        start + timedelta(hours=hour) for hour in range(3)
    ]
    assert [bucket.requests for bucket in series.buckets] == [
        {"VALID": 0},
        {"VALID": 0},
        {"VALID": 1},
    ]
    assert [bucket.units for bucket in series.buckets] == [0, 0, 7]


def test_default_ranges_end_now(llavero: Llavero, admin: Actor, clock: FrozenClock) -> None:
    project = llavero.projects.create(admin, "Gemini API", "gemini-api")
    now = clock.now()
    expected = {"minute": 61, "hour": 25, "day": 31}
    for granularity, count in expected.items():
        series = llavero.usage.project_series(admin, project.id, granularity=granularity)
        assert len(series.buckets) == count
        assert series.end_time == now
        assert series.buckets[-1].start_time == now  # FrozenClock starts on a UTC midnight


def test_a_key_series_counts_only_that_key(llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "Gemini API", "gemini-api")
    first = llavero.keys.create(admin, project.id)
    second = llavero.keys.create(admin, project.id)
    for created in (first, first, second):
        llavero.verifier.verify(VerifyRequest(created.key_string))
    llavero.usage_meter.flush()

    assert llavero.usage.key_series(admin, first.key.id).totals.requests == {"VALID": 2}
    assert llavero.usage.key_series(admin, second.key.id).totals.requests == {"VALID": 1}
    assert llavero.usage.project_series(admin, project.id).totals.requests == {"VALID": 3}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"granularity": "week"}, "granularity"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2025-08-01T00:00:00"}, "end"),
        ({"start": "2025-08-02T00:00:00Z", "end": "2025-08-01T00:00:00Z"}, "start"),
        ({"start": "2024-01-01T00:00:00Z", "granularity": "minute"}, "start"),
    ],
)
def test_bad_ranges_name_the_field(
    llavero: Llavero, admin: Actor, arguments: dict[str, str], field: str
) -> None:
    project = llavero.projects.create(admin, "Gemini API", "gemini-api")
    with pytest.raises(InvalidArgument) as raised:
        llavero.usage.project_series(admin, project.id, **arguments)
    assert raised.value.field == field


def test_series_need_keys_read_and_a_visible_target(llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "Gemini API", "gemini-api")
    verifier_only = Actor("verifier", frozenset({"keys:verify"}))
    with pytest.raises(Exception, match="keys:read"):
        llavero.usage.project_series(verifier_only, project.id)
    with pytest.raises(NotFound):
        llavero.usage.key_series(admin, "no-such-key")
    with pytest.raises(NotFound):
        llavero.usage.project_series(admin, "no-such-project")


def test_times_in_other_zones_are_read_as_utc(llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "Gemini API", "gemini-api")
    series = llavero.usage.project_series(
        admin, project.id, "2025-07-31T21:00:00-03:00", "2025-08-01T02:00:00+00:00", "hour"
    )
    assert series.start_time == datetime(2025, 8, 1, tzinfo=UTC)
    assert len(series.buckets) == 3


def test_reported_units_join_the_series_once_without_requests(
    any_llavero: Llavero, admin: Actor
) -> None:
    project = any_llavero.projects.create(admin, "Gemini API", "gemini-api")
    created = any_llavero.keys.create(admin, project.id)
    any_llavero.verifier.verify(VerifyRequest(created.key_string, cost=5))
    for _ in range(2):  # a retried report counts once
        any_llavero.usage_reports.report(admin, created.key.id, 1200, "request-1")
    any_llavero.usage_meter.flush()

    series = any_llavero.usage.key_series(admin, created.key.id, granularity="minute")
    assert series.totals.requests == {"VALID": 1}
    assert series.totals.units == 1205
