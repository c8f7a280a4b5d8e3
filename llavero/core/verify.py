"""The verify hot path: every protected request of every API behind Llavero passes here.

In order, cheapest first: shape and checksum (no storage touched), the cached record by keyed
hash (a database read only on a cache miss), state and expiry, environment, restrictions, and
last the rate limits and quotas of the project's plan and of the key (one limiter call, no
database). Readable top to bottom on purpose: `Verifier.verify` is the whole decision.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import orjson
from sqlalchemy import select, union_all

from llavero.core import keyformat
from llavero.core.cache import MISSING, KeyRecord, Missing
from llavero.core.limits import Check, Decision, Limiter, checks_for, limit_dicts
from llavero.core.plans import Plan, plan_for_billing
from llavero.core.restrictions import CompiledRestrictions, RequestContext, compile_restrictions
from llavero.store import tables

if TYPE_CHECKING:
    from llavero.core.meter import UsageMeter
    from llavero.service.context import Context

CODES = (
    "VALID",
    "MALFORMED",
    "NOT_FOUND",
    "EXPIRED",
    "DISABLED",
    "DELETED",
    "IP_NOT_ALLOWED",
    "REFERRER_NOT_ALLOWED",
    "APP_NOT_ALLOWED",
    "API_NOT_ALLOWED",
    "ENVIRONMENT_MISMATCH",
    "RATE_LIMITED",
    "QUOTA_EXCEEDED",
)


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    key: str
    ip: str | None = None
    referrer: str | None = None
    android_package: str | None = None
    android_cert: str | None = None
    ios_bundle_id: str | None = None
    service: str | None = None
    method: str | None = None
    environment: str | None = None
    cost: int = 0

    @classmethod
    def for_context(
        cls, key: str, context: RequestContext, environment: str | None = None
    ) -> VerifyRequest:
        """The verify of `key` for a request whose context an integration has read."""
        return cls(
            key=key,
            ip=context.ip,
            referrer=context.referrer,
            android_package=context.android_package,
            android_cert=context.android_cert,
            ios_bundle_id=context.ios_bundle_id,
            service=context.service,
            method=context.method,
            environment=environment,
        )

    def context(self) -> RequestContext:
        return RequestContext(
            ip=self.ip,
            referrer=self.referrer,
            android_package=self.android_package,
            android_cert=self.android_cert,
            ios_bundle_id=self.ios_bundle_id,
            service=self.service,
            method=self.method,
        )


@dataclass(frozen=True, slots=True)
class VerifyResult:
    code: str
    key_id: str | None = None
    project: str | None = None
    plan: str | None = None
    environment: str | None = None
    limits: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.code == "VALID"

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.code == "VALID",
            "code": self.code,
            "key_id": self.key_id,
            "project": self.project,
            "plan": self.plan,
            "environment": self.environment,
            "limits": self.limits,
        }


MALFORMED = VerifyResult("MALFORMED")
NOT_FOUND = VerifyResult("NOT_FOUND")
NO_LIMITS: Final[Mapping[str, int]] = MappingProxyType({})
# Restriction verdicts remembered, by restrictions and request context: a check is a pure
# function of the two and the same clients call again and again, so most verifies of a
# restricted key cost one dict lookup instead of parsing an IP address or a referrer URL. The
# table starts over when full: at most this many contexts (a verify body's texts are at most
# 2 KB each) are held.
VERDICTS_KEPT: Final = 1024


def state_code(record: KeyRecord, now: float) -> str | None:
    if record.state != "ACTIVE":
        return record.state  # DELETED or DISABLED
    if record.valid_until is not None and now >= record.valid_until:
        return "EXPIRED"
    return None


class Judged(NamedTuple):
    """A matched key on its way to the limiter."""

    record: KeyRecord
    now: float
    code: str | None
    checks: Sequence[Check]


class Verifier:
    def __init__(
        self,
        ctx: Context,
        limiter: Limiter,
        plans: Mapping[str, Plan],
        meter: UsageMeter | None = None,
    ) -> None:
        self.ctx = ctx
        self._prefix = ctx.key_prefix
        self._key_length = len(ctx.key_prefix) + 1 + keyformat.BODY_LENGTH
        self._digest = ctx.hasher.digest
        self._cache = ctx.cache
        self._verdicts: dict[tuple[object, ...], tuple[str | None]] = {}
        self._time = ctx.clock.time
        self._limiter = limiter
        self._plans = plans
        self._meter = meter

    def verify(
        self, request: VerifyRequest, cached: KeyRecord | Missing | None = None
    ) -> VerifyResult:
        """The verdict; `cached` is what `cached(request.key)` answered, if the caller asked."""
        judged = self._judge(request, cached)
        if isinstance(judged, VerifyResult):
            return judged
        decision = self._limiter.hit(judged.checks, judged.now) if judged.checks else None
        return self._answer(request, judged, decision)

    async def averify(
        self, request: VerifyRequest, cached: KeyRecord | Missing | None = None
    ) -> VerifyResult:
        """`verify` for the event loop, for a key whose record is cached: the limiter's I/O
        (Redis) is awaited, not run in a worker thread. An uncached key reads the database."""
        judged = self._judge(request, cached)
        if isinstance(judged, VerifyResult):
            return judged
        decision = await self._limiter.ahit(judged.checks, judged.now) if judged.checks else None
        return self._answer(request, judged, decision)

    def cached(self, key: str) -> KeyRecord | Missing | None:
        """The cached record of a key string, with no I/O; None when not cached."""
        # Only hashes of well-formed keys are ever cached, so a cache hit skips the checksum
        # (a tenth of a cached verify); the length check keeps junk of any size from the hash.
        return self._cache.get(self._digest(key)) if len(key) == self._key_length else None

    def _judge(
        self, request: VerifyRequest, cached: KeyRecord | Missing | None
    ) -> VerifyResult | Judged:
        """Everything up to the limits: the final answer when no key matched, else the key's
        record, the time, the refusal code if any, and the checks to count (none if refused)."""
        key = request.key
        record = self.cached(key) if cached is None else cached
        if record is None:
            if not keyformat.is_well_formed(key, self._prefix):
                return self._unmatched(MALFORMED)
            record = self.record(key)
        if isinstance(record, Missing):
            return self._unmatched(NOT_FOUND)
        now = self._time()
        code = self.refusal(record, request, now)
        if code is not None:
            return Judged(record, now, code, ())
        cost = request.cost
        if cost == 0:
            return Judged(record, now, None, record.checks)
        checks = checks_for(
            self._plans[record.plan], record.limits, record.project_id, record.key_id, cost
        )
        return Judged(record, now, None, checks)

    def _answer(
        self, request: VerifyRequest, judged: Judged, decision: Decision | None
    ) -> VerifyResult:
        record, now, code, _ = judged
        limits: dict[str, dict[str, int]] = {}
        if decision is not None:
            code = decision.code
            limits = limit_dicts(decision.limits)
        result = VerifyResult(
            code or "VALID",
            record.key_id,
            record.project_id,
            record.plan,
            record.environment,
            limits,
        )
        if self._meter is not None:  # units are spent only when the request goes through
            units = request.cost if code is None else 0
            self._meter.record(
                record.key_id, record.project_id, result.code, units, request.ip, now
            )
        return result

    def _unmatched(self, result: VerifyResult) -> VerifyResult:
        """No key to count usage under: only the Prometheus counter sees it."""
        if self._meter is not None:
            self._meter.record_unmatched(result.code)
        return result

    def record(self, key: str) -> KeyRecord | Missing:
        """The cached record of a well-formed key string, loaded on a miss."""
        digest = self._digest(key)
        return self._cache.get(digest) or self._load(digest)

    def refusal(self, record: KeyRecord, request: VerifyRequest, now: float) -> str | None:
        """Why this key may not serve this request, or None: state, environment, restrictions."""
        code = state_code(record, now)
        if code is not None:
            return code
        if request.environment and record.environment and request.environment != record.environment:
            return "ENVIRONMENT_MISMATCH"
        if record.restrictions.unrestricted:
            return None
        return self._restriction_code(record.restrictions, request)

    def _restriction_code(
        self, restrictions: CompiledRestrictions, request: VerifyRequest
    ) -> str | None:
        """`restrictions.check`, remembered (`VERDICTS_KEPT`)."""
        seen = (
            restrictions,
            request.ip,
            request.referrer,
            request.android_package,
            request.android_cert,
            request.ios_bundle_id,
            request.service,
            request.method,
        )
        verdict = self._verdicts.get(seen)
        if verdict is None:
            verdict = (restrictions.check(request.context()),)
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[seen] = verdict
        return verdict[0]

    def _load(self, digest: bytes) -> KeyRecord | Missing:
        generation = self._cache.generation
        stored = digest.hex()
        # One statement, two lookups each on its own unique index, rather than an `OR`: with
        # statistics (after ANALYZE) SQLite may answer the `OR` by scanning a project's keyformat.
        matching = union_all(
            select(tables.Key.id).where(tables.Key.key_hash == stored),
            select(tables.Key.id).where(tables.Key.previous_hash == stored),
        )
        query = (
            select(tables.Key, tables.BillingAccount.open)
            .join(tables.Project, tables.Project.id == tables.Key.project_id)
            .outerjoin(
                tables.BillingAccount,
                tables.BillingAccount.id == tables.Project.billing_account_id,
            )
            .where(tables.Key.id.in_(matching))
        )
        with self.ctx.db.reading() as session:
            found = session.execute(query).first()
        record: KeyRecord | Missing = MISSING
        if found is not None:
            row, billing_open = found
            record = self._record(row, billing_open, is_previous=row.key_hash != stored)
        self._cache.put(digest, record, generation)
        return record

    def _record(self, row: tables.Key, billing_open: bool | None, is_previous: bool) -> KeyRecord:
        ends = [row.expire_time]
        if is_previous:
            ends.append(row.previous_expire_time)
        deadlines = [end.timestamp() for end in ends if end is not None]
        project_id = sys.intern(row.project_id)
        plan = sys.intern(plan_for_billing(self.ctx.settings, billing_open))
        limits = dict(row.limits) or NO_LIMITS
        checks = tuple(checks_for(self._plans[plan], limits, project_id, row.id, 0))
        shared = self._cache.shared
        return KeyRecord(
            key_id=row.id,
            project_id=project_id,
            state=sys.intern(row.state),
            valid_until=min(deadlines) if deadlines else None,
            environment=None if row.environment is None else sys.intern(row.environment),
            restrictions=shared(
                compile_restrictions(row.restrictions),
                ("restrictions", orjson.dumps(row.restrictions, option=orjson.OPT_SORT_KEYS)),
            ),
            limits=limits,
            plan=plan,
            checks=checks if limits else shared(checks),
        )
