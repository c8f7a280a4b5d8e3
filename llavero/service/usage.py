"""Usage series of a key or a project: requests by outcome and units, per minute, hour or day.

Every bucket between `start` and `end` is present, empty ones with zeros, so that a chart gets
evenly spaced points; and every bucket carries the same codes (those seen anywhere in the
range), so that stacked series line up. Counts reach the database at the meter's next flush.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, func, select

from llavero.core.codes import REPORTED, Code
from llavero.core.meter import GRANULARITIES
from llavero.errors import InvalidArgument
from llavero.service import apikeys, projects
from llavero.service.context import Actor, Context
from llavero.service.models import Model
from llavero.store import tables

MAX_BUCKETS: Final = 2000
DEFAULT_SPAN: Final[Mapping[str, timedelta]] = {
    "minute": timedelta(hours=1),
    "hour": timedelta(days=1),
    "day": timedelta(days=30),
}


class UsagePoint(Model):
    start_time: datetime
    requests: dict[str, int]
    units: int


class UsageTotals(Model):
    requests: dict[str, int]
    units: int


class UsageSeries(Model):
    """`buckets` are oldest first; `REPORTED` units (usage:report) are in `units` only."""

    target: str
    granularity: str
    start_time: datetime
    end_time: datetime
    buckets: list[UsagePoint]
    totals: UsageTotals

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows for tables and CSV: `start_time`, one column per code, `units`."""
        return [
            {"start_time": point.start_time.isoformat(), **point.requests, "units": point.units}
            for point in self.buckets
        ]


EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


def parse_time(value: datetime | str | None, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(
                "must be an RFC 3339 timestamp, e.g. 2026-01-01T00:00:00Z", field=field
            ) from None
    if not isinstance(value, datetime):
        raise InvalidArgument("must be an RFC 3339 timestamp", field=field)
    if value.tzinfo is None:
        raise InvalidArgument("must include a time zone, e.g. 2026-01-01T00:00:00Z", field=field)
    # Bucket arithmetic steps past the window; near year 9999 that overflowed (a 500).
    if not EARLIEST <= value <= LATEST:
        raise InvalidArgument("must be between the years 1970 and 9000", field=field)
    return value.astimezone(UTC)


def floor_time(when: datetime, seconds: int) -> datetime:
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


class Usage:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def key_series(
        self,
        actor: Actor,
        key_id: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        granularity: str = "hour",
    ) -> UsageSeries:
        actor.require("keys:read")
        window = self._window(start, end, granularity)
        key = apikeys.ApiKeys(self.ctx).get(actor, key_id)
        return self._series(f"keys/{key.id}", tables.UsageBucket.key_id == key.id, *window)

    def project_series(
        self,
        actor: Actor,
        project_id: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        granularity: str = "hour",
    ) -> UsageSeries:
        actor.require("keys:read")
        window = self._window(start, end, granularity)
        with self.ctx.db.reading() as session:
            project = projects.load(session, actor, project_id)
        return self._series(
            f"projects/{project.id}", tables.UsageBucket.project_id == project.id, *window
        )

    def _window(
        self, start: datetime | str | None, end: datetime | str | None, granularity: str
    ) -> tuple[str, datetime, datetime]:
        """Validated (granularity, first bucket start, end); every error names its field."""
        if granularity not in GRANULARITIES:
            raise InvalidArgument("must be minute, hour or day", field="granularity")
        last = parse_time(end, "end") or self.ctx.clock.now()
        first = parse_time(start, "start") or last - DEFAULT_SPAN[granularity]
        if first > last:
            raise InvalidArgument("must not be after end", field="start")
        seconds = GRANULARITIES[granularity]
        first = floor_time(first, seconds)
        count = (last - first) // timedelta(seconds=seconds) + 1
        if count > MAX_BUCKETS:
            raise InvalidArgument(
                f"spans {count} {granularity} buckets; at most {MAX_BUCKETS}: move start "
                "closer to end or choose a coarser granularity",
                field="start",
            )
        return granularity, first, last

    def _series(
        self,
        target: str,
        where: ColumnElement[bool],
        granularity: str,
        first: datetime,
        last: datetime,
    ) -> UsageSeries:
        bucket = tables.UsageBucket
        query = (
            select(
                bucket.bucket_start,
                bucket.code,
                func.sum(bucket.requests),
                func.sum(bucket.units),
            )
            .where(
                where,
                bucket.granularity == granularity,
                bucket.bucket_start >= first,
                bucket.bucket_start <= last,
            )
            .group_by(bucket.bucket_start, bucket.code)
        )
        with self.ctx.db.reading() as session:
            rows = session.execute(query).all()
        return _assemble(target, granularity, first, last, rows)


def _assemble(
    target: str, granularity: str, first: datetime, last: datetime, rows: Any
) -> UsageSeries:
    step = timedelta(seconds=GRANULARITIES[granularity])
    requests: dict[datetime, dict[str, int]] = {}
    units: dict[datetime, int] = {}
    codes: set[str] = set()
    for bucket_start, code, request_count, unit_count in rows:
        when = bucket_start.astimezone(UTC)
        if code != REPORTED and request_count:
            requests.setdefault(when, {})[code] = int(request_count)
            codes.add(code)
        units[when] = units.get(when, 0) + int(unit_count or 0)
    order: dict[str, int] = {code: index for index, code in enumerate(Code)}
    ordered = sorted(codes, key=lambda code: (order.get(code, len(order)), code))
    points: list[UsagePoint] = []
    when = first
    while when <= last:
        counts = requests.get(when, {})
        points.append(
            UsagePoint(
                start_time=when,
                requests={code: counts.get(code, 0) for code in ordered},
                units=units.get(when, 0),
            )
        )
        when += step
    totals = UsageTotals(
        requests={code: sum(point.requests[code] for point in points) for code in ordered},
        units=sum(point.units for point in points),
    )
    return UsageSeries(
        target=target,
        granularity=granularity,
        start_time=first,
        end_time=last,
        buckets=points,
        totals=totals,
    )
