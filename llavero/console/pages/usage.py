"""The usage page, `/app/usage?key=<id>` or `?project=<id>`: requests by outcome and units over
the last 24 hours (hourly), 7 days or 30 days (daily), drawn as SVG on the server; totals per
verify code; the plan's limits with what is left of them now; and the same series as CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from babel.dates import format_skeleton, format_time, format_timedelta
from babel.numbers import format_decimal
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from llavero.console import charts, i18n, labels, web
from llavero.console.plans import plan_display_name
from llavero.core import limits
from llavero.core.meter import GRANULARITIES
from llavero.core.plans import LIMIT_NAMES
from llavero.errors import LlaveroError
from llavero.service import models
from llavero.service.usage import UsageSeries, floor_time
from llavero.store.instances import counting_apart

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/usage"
CSV_PATH: Final = "/app/usage.csv"


@dataclass(frozen=True, slots=True)
class Range:
    """A span the page offers: `buckets` of one `granularity`, the last one holding now."""

    name: str
    granularity: str
    buckets: int

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        step = GRANULARITIES[self.granularity]
        first = floor_time(now, step) - timedelta(seconds=step * (self.buckets - 1))
        return first, now


RANGES: Final = {
    "24h": Range("24h", "hour", 24),
    "7d": Range("7d", "day", 7),
    "30d": Range("30d", "day", 30),
}
DEFAULT_RANGE: Final = "24h"


@dataclass(frozen=True, slots=True)
class Usage:
    """One target's series and what the page says about it."""

    project: models.Project
    key: models.Key | None
    span: Range
    series: UsageSeries

    def query(self, **changes: str) -> str:
        target = {"key": self.key.id} if self.key else {"project": self.project.id}
        return urlencode(target | {"range": self.span.name} | changes)


@router.get(PAGE_PATH)
def usage_page(current: web.SignedInPage) -> HTMLResponse:
    params = current.request.query_params
    if not params.get("key") and not params.get("project"):
        return _chooser(current)
    try:
        usage = _load(current, params)
    except LlaveroError as error:
        return _error_page(current, error)
    return current.render(
        "usage.html",
        target=_target(usage),
        range_name=usage.span.name,
        range_urls={name: f"{PAGE_PATH}?{usage.query(range=name)}" for name in RANGES},
        csv_url=f"{CSV_PATH}?{usage.query()}",
        project_url=f"{PAGE_PATH}?{urlencode({'project': usage.project.id})}",
        requests_chart=_requests_chart(current.lang, usage),
        units_chart=_units_chart(current.lang, usage),
        totals=_totals(current.lang, usage.series),
        limits=_limits(current, usage),
        plan=plan_display_name(current.llavero, usage.project.plan),
        billing_url="/app/billing?" + urlencode({"project": usage.project.id}),
        free_plan=usage.project.plan == "free",
        counted_apart=len(counting_apart(current.llavero.instances.peers)),
        processes=len(current.llavero.instances.peers),
    )


@router.get(CSV_PATH)
def usage_csv(current: web.SignedInPage) -> Response:
    """The page's series, one row per bucket: start_time (UTC), one column per code, units."""
    try:
        usage = _load(current, current.request.query_params)
    except LlaveroError as error:
        return _error_page(current, error)
    rows = usage.series.rows()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    name = f"{usage.key.id if usage.key else usage.project.id}-{usage.span.name}"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="usage-{name}.csv"'} | web.NO_STORE,
    )


def _load(current: web.Page, params: Mapping[str, str]) -> Usage:
    llavero, actor = current.llavero, current.actor
    span = RANGES.get(params.get("range", ""), RANGES[DEFAULT_RANGE])
    start, end = span.window(llavero.ctx.clock.now())
    key_id = params.get("key", "")
    if key_id:
        key = llavero.keys.get(actor, key_id)
        series = llavero.usage.key_series(actor, key.id, start, end, span.granularity)
        return Usage(llavero.projects.get(actor, key.project), key, span, series)
    project = llavero.projects.get(actor, params.get("project", ""))
    series = llavero.usage.project_series(actor, project.id, start, end, span.granularity)
    return Usage(project, None, span, series)


def _error_page(current: web.Page, error: LlaveroError) -> HTMLResponse:
    """A key or project the user cannot see, or a malformed id, is simply not there."""
    status = 403 if error.status == "PERMISSION_DENIED" else 404
    return current.render("error.html", status_code=status, status=status)


def _chooser(current: web.Page) -> HTMLResponse:
    projects = web.all_projects(current)
    return current.render(
        "usage.html",
        target=None,
        projects=[
            {
                "display_name": project.display_name,
                "number": project.number,
                "url": f"{PAGE_PATH}?{urlencode({'project': project.id})}",
            }
            for project in projects
        ],
    )


def _target(usage: Usage) -> dict[str, Any]:
    project = usage.project
    return {
        "kind": "key" if usage.key else "project",
        "key_name": usage.key.display_name if usage.key else "",
        "key_last4": usage.key.last4 if usage.key else "",
        "key_url": f"/app/keys/{usage.key.id}" if usage.key else "",
        "project_name": project.display_name,
        "project_number": project.number,
    }


def _label(lang: str, when: datetime, granularity: str) -> str:
    """`13:00` for an hour (UTC), `1 ago` / `Aug 1` for a day."""
    if granularity == "hour":
        return format_time(when, "HH:mm", tzinfo=when.tzinfo, locale=lang)
    return format_skeleton("MMMd", when, locale=lang)


def _requests_chart(lang: str, usage: Usage) -> Markup:
    gettext = i18n.translations(lang).gettext
    granularity = usage.series.granularity
    series = [
        (_label(lang, point.start_time, granularity), point.requests)
        for point in usage.series.buckets
    ]
    names = {code: labels.name(code, labels.OUTCOMES, lang) for code in labels.OUTCOMES}
    return charts.bar_chart(series, title=gettext("Requests by outcome"), names=names)


def _units_chart(lang: str, usage: Usage) -> Markup:
    gettext = i18n.translations(lang).gettext
    granularity = usage.series.granularity
    points = [
        (_label(lang, point.start_time, granularity), float(point.units))
        for point in usage.series.buckets
    ]
    return charts.line_chart(points, title=gettext("Units"))


def _totals(lang: str, series: UsageSeries) -> dict[str, Any]:
    return {
        "requests": [
            {"code": code, "count": format_decimal(count, locale=lang)}
            for code, count in series.totals.requests.items()
            if count
        ],
        "all_requests": format_decimal(sum(series.totals.requests.values()), locale=lang),
        "units": format_decimal(series.totals.units, locale=lang),
    }


def _limits(current: web.Page, usage: Usage) -> list[dict[str, Any]]:
    """Per limit: the plan's, the key's own, and what is left now of the tighter of them."""
    llavero, lang = current.llavero, current.lang
    plan = llavero.plans.get(usage.project.plan)
    key_limits = usage.key.limits if usage.key else {}
    checks = limits.checks_for(
        plan, key_limits, usage.project.id, usage.key.id if usage.key else "", 0
    )
    statuses = llavero.limiter.peek(checks, llavero.ctx.clock.time()).limits
    rows = []
    for name in LIMIT_NAMES:
        plan_limit: int | None = getattr(plan, name)
        key_limit = key_limits.get(name)
        status = statuses.get(name)
        rows.append(
            {
                "name": name,
                "plan": None if plan_limit is None else format_decimal(plan_limit, locale=lang),
                "key": None if key_limit is None else format_decimal(key_limit, locale=lang),
                "remaining": None
                if status is None
                else format_decimal(status["remaining"], locale=lang),
                "resets": None
                if status is None
                else format_timedelta(status["reset_seconds"], locale=lang),
            }
        )
    return rows
