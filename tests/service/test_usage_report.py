"""`UsageReports.count_units`: the gateway's metering, in memory only."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from llavero.core.cache import KeyRecord
from llavero.core.verify import VerifyRequest
from llavero.errors import InvalidArgument
from llavero.service import Actor, Llavero
from llavero.store import tables


def cached_record(llavero: Llavero, key: str) -> KeyRecord:
    record = llavero.verifier.record(key)
    assert isinstance(record, KeyRecord)
    return record


def report_rows(llavero: Llavero) -> int:
    with llavero.db.reading() as session:
        return session.scalar(select(func.count()).select_from(tables.UsageReport)) or 0


def test_counted_units_spend_the_keys_and_projects_unit_limits_without_a_report_row(
    llavero: Llavero, admin: Actor
) -> None:
    project = llavero.projects.create(admin, "Gemini API")
    created = llavero.keys.create(admin, project.id, limits={"upm": 100, "upd": 1000})
    record = cached_record(llavero, created.key_string)

    llavero.usage_reports.count_units(record, 60)
    limits = llavero.verifier.verify(VerifyRequest(created.key_string)).limits
    assert limits["upm"]["remaining"] == 40
    assert limits["upd"]["remaining"] == 940
    llavero.usage_reports.count_units(record, 60)  # counted unconditionally: the work happened
    refused = llavero.verifier.verify(VerifyRequest(created.key_string))
    assert refused.code == "RATE_LIMITED"
    assert report_rows(llavero) == 0

    llavero.usage_meter.flush()
    series = llavero.usage.key_series(admin, created.key.id, granularity="minute")
    assert series.totals.units == 120


def test_zero_units_count_nothing_and_negative_units_are_refused(
    llavero: Llavero, admin: Actor
) -> None:
    project = llavero.projects.create(admin, "Gemini API")
    created = llavero.keys.create(admin, project.id, limits={"upm": 100})
    record = cached_record(llavero, created.key_string)
    llavero.usage_reports.count_units(record, 0)
    with pytest.raises(InvalidArgument) as error:
        llavero.usage_reports.count_units(record, -1)
    assert error.value.field == "units"
    remaining = llavero.verifier.verify(VerifyRequest(created.key_string)).limits["upm"]
    assert remaining["remaining"] == 100
