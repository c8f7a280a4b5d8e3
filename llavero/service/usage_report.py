"""`POST /v1/usage:report`: units learned after the answer (LLM tokens), counted once.

A verify with `cost` spends units it knows in advance; a gateway that learns the real count only
after the upstream answered reports it here. The units are added to the unit limits (`upm`,
`upd`) of the key's project and of the key unconditionally — the work already happened — so a
later verify is refused once they are spent. Requests (`rpm`, `rpd`) are not touched.

Idempotent by `request_id`, as Stripe's idempotency keys are: the report is stored first, in its
own transaction, and counted only when that commit created it. A retry with the same key and
units answers 200 and counts nothing; the same id with another key or other units is a 409.

`count_units` is the same counting without the report row, for the gateway: it reports only
requests it verified itself, once each, so it has no retry to recognise, and its hot path must
not write to the database per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from llavero.core.cache import KeyRecord
from llavero.core.limits import REQUEST_LIMITS, Limiter, checks_for
from llavero.core.plans import MAX_LIMIT, Plan
from llavero.errors import AlreadyExists, InvalidArgument
from llavero.service import projects, validation
from llavero.service.context import Actor, Context
from llavero.service.models import Model
from llavero.service.plans import PlanCatalog
from llavero.store import tables

REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")

# Called with (key_id, project_id, units, now) for each report counted: the usage meter.
UnitsSink = Callable[[str, str, int, float], None]


class UsageReport(Model):
    """`duplicate` is true when this `request_id` was already counted (a retry)."""

    request_id: str
    key_id: str
    project: str
    units: int
    duplicate: bool
    limits: dict[str, dict[str, int]]


def request_id(value: Any, field: str = "request_id") -> str:
    if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
        raise InvalidArgument(
            "must be 1-128 printable ASCII characters without spaces, e.g. a UUID", field=field
        )
    return value


def units(value: Any, field: str = "units") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
        raise InvalidArgument(f"must be an integer from 0 to {MAX_LIMIT}", field=field)
    return value


class UsageReports:
    def __init__(
        self,
        ctx: Context,
        limiter: Limiter,
        plans: PlanCatalog,
        on_units: UnitsSink | None = None,
    ) -> None:
        self.ctx = ctx
        self.limiter = limiter
        self.plans = plans
        self.on_units = on_units

    def report(self, actor: Actor, key_id: str, units_used: int, report_id: str) -> UsageReport:
        actor.require("keys:verify")
        amount = units(units_used)
        rid = request_id(report_id)
        if not isinstance(key_id, str):
            raise InvalidArgument("must be a string", field="key_id")
        try:
            report, plan, key_limits = self._store(actor, key_id, amount, rid)
        except IntegrityError:  # a concurrent call stored the same request_id first: a retry
            report, plan, key_limits = self._store(actor, key_id, amount, rid)
        now = self.ctx.clock.time()
        if not report.duplicate and amount > 0:
            spent = checks_for(plan, key_limits, report.project, report.key_id, amount)
            self.limiter.add([check for check in spent if check.name not in REQUEST_LIMITS], now)
            if self.on_units is not None:
                self.on_units(report.key_id, report.project, amount, now)
        shown = checks_for(plan, key_limits, report.project, report.key_id, 0)
        limits = self.limiter.peek(shown, now).limits
        return report.model_copy(update={"limits": limits})

    def count_units(self, key: KeyRecord, units_used: int, now: float | None = None) -> None:
        """Count units of a request this process verified itself (the gateway): against the
        same `upm`/`upd` checks verify used, and in usage, with no database write. Nobody
        else reports these requests, so there is no retry to recognise and no report row."""
        amount = units(units_used)
        if amount == 0:
            return
        at = self.ctx.clock.time() if now is None else now
        spent = checks_for(
            self.plans.plans[key.plan], key.limits, key.project_id, key.key_id, amount
        )
        self.limiter.add([check for check in spent if check.name not in REQUEST_LIMITS], at)
        if self.on_units is not None:
            self.on_units(key.key_id, key.project_id, amount, at)

    def _store(
        self, actor: Actor, key_id: str, amount: int, rid: str
    ) -> tuple[UsageReport, Plan, dict[str, int]]:
        """Store the report, or find its earlier copy; with the limits its units count against."""
        with self.ctx.db.transaction() as session:
            key = session.get(tables.Key, key_id)
            if key is None:
                raise validation.not_found("key", key_id, "key_id")
            project = projects.load(session, actor, key.project_id)
            seen = session.get(tables.UsageReport, rid)
            if seen is None:
                now = self.ctx.clock.now()
                session.add(
                    tables.UsageReport(request_id=rid, key_id=key.id, units=amount, create_time=now)
                )
            elif seen.key_id != key.id or seen.units != amount:
                raise AlreadyExists(
                    "was already used for a report of another key or other units",
                    field="request_id",
                )
            report = UsageReport(
                request_id=rid,
                key_id=key.id,
                project=project.id,
                units=amount,
                duplicate=seen is not None,
                limits={},
            )
            plan = self.plans.get(projects.plan_of(session, self.ctx, project))
            return report, plan, dict(key.limits)
