"""The verify hot path: every protected request of every API behind Llavero passes here.

In order, cheapest first: shape and checksum (no storage touched), the cached record by keyed
hash (a database read only on a cache miss), state and expiry, environment, restrictions, and
last the rate limits and quotas of the project's plan and of the key (one limiter call, no
database). Readable top to bottom on purpose: `Verifier.verify` is the whole decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, cast

from llavero.core import keyformat
from llavero.core.cache import MISSING, KeyCache, KeyRecord, Missing
from llavero.core.clock import Clock
from llavero.core.codes import Code, State
from llavero.core.context import RESTRICTION_FIELDS
from llavero.core.keyformat import KeyHasher
from llavero.core.limits import Check, Decision, Limiter, LimitStatus, checks_for
from llavero.core.meter import Tally
from llavero.core.plans import Plan
from llavero.core.restrictions import CompiledRestrictions, RequestContext

if TYPE_CHECKING:
    from llavero.core.meter import UsageMeter


# Final, so that compiled code (setup.py) reads them as constants: an enum member read off its
# class goes through `EnumType.__getattr__`'s slow attribute hook, ~0.1 µs each, several a verify.
VALID: Final = Code.VALID
ACTIVE: Final = State.ACTIVE


class VerifyRequest:
    """What a verify is asked: the key string, the request context, the cost in units. A plain
    class, like `VerifyResult`: a frozen dataclass's `__init__` set each field through
    `object.__setattr__`, more than half of reading a verify body (bench/notes.md, item 11).
    Read-only to mypy (`Final`); its default repr shows no key."""

    def __init__(
        self,
        key: str,
        ip: str | None = None,
        referrer: str | None = None,
        android_package: str | None = None,
        android_cert: str | None = None,
        ios_bundle_id: str | None = None,
        service: str | None = None,
        method: str | None = None,
        environment: str | None = None,
        cost: int = 0,
    ) -> None:
        self.key: Final = key
        self.ip: Final = ip
        self.referrer: Final = referrer
        self.android_package: Final = android_package
        self.android_cert: Final = android_cert
        self.ios_bundle_id: Final = ios_bundle_id
        self.service: Final = service
        self.method: Final = method
        self.environment: Final = environment
        self.cost: Final = cost

    @classmethod
    def for_context(
        cls, key: str, context: RequestContext, environment: str | None = None
    ) -> VerifyRequest:
        """The verify of `key` for a request whose context an integration has read."""
        return cls(key, *_restriction_context(context), environment=environment)

    def context(self) -> RequestContext:
        return RequestContext(*_restriction_context(self))


# The restriction context's fields, in declaration order, which VerifyRequest's follow
# (tests/core/test_context.py): one C call instead of seven attribute lines, twice.
_Seven = tuple[str | None, str | None, str | None, str | None, str | None, str | None, str | None]
_restriction_context = cast(
    Callable[[object], _Seven], attrgetter(*(field.name for field in RESTRICTION_FIELDS))
)


class VerifyResult:
    """A verify's answer. Not a dataclass, whose generated `__init__` sets each field in Python
    (a tenth of a compiled verify): mypyc builds this one in C. Read-only to mypy (`Final`)."""

    def __init__(
        self,
        code: Code,
        key_id: str | None = None,
        project: str | None = None,
        plan: str | None = None,
        environment: str | None = None,
        limits: dict[str, LimitStatus] | None = None,
    ) -> None:
        self.code: Final = code
        self.key_id: Final = key_id
        self.project: Final = project
        self.plan: Final = plan
        self.environment: Final = environment
        self.limits: Final = {} if limits is None else limits

    @property
    def valid(self) -> bool:
        return self.code is VALID

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.code is VALID,
            "code": self.code,
            "key_id": self.key_id,
            "project": self.project,
            "plan": self.plan,
            "environment": self.environment,
            "limits": self.limits,
        }


MALFORMED = VerifyResult(Code.MALFORMED)
NOT_FOUND = VerifyResult(Code.NOT_FOUND)
# Restriction verdicts remembered, by restrictions and request context: a check is a pure
# function of the two and the same clients call again and again, so most verifies of a
# restricted key cost one dict lookup instead of parsing an IP address or a referrer URL. The
# table starts over when full: at most this many contexts (a verify body's texts are at most
# 2 KB each) are held.
VERDICTS_KEPT: Final = 1024


def state_code(record: KeyRecord, now: float) -> Code | None:
    if record.state != ACTIVE:
        return Code(record.state)  # DELETED or DISABLED
    if record.valid_until is not None and now >= record.valid_until:
        return Code.EXPIRED
    return None


def checked(restrictions: CompiledRestrictions, request: VerifyRequest) -> Code | None:
    """The restrictions' verdict on the request, worked out afresh."""
    return restrictions.check(request.context())


def refusal(
    record: KeyRecord,
    request: VerifyRequest,
    now: float,
    restricted: Callable[[CompiledRestrictions, VerifyRequest], Code | None] = checked,
) -> Code | None:
    """Why this key may not serve this request, or None: state, environment, restrictions.
    The one decision: the verifier passes a `restricted` that remembers verdicts."""
    code = state_code(record, now)
    if code is not None:
        return code
    if request.environment and record.environment and request.environment != record.environment:
        return Code.ENVIRONMENT_MISMATCH
    if record.restrictions.unrestricted:
        return None
    return restricted(record.restrictions, request)


class Step(NamedTuple):
    """One check of a traced decision: `check` names it (`state`, `expire_time`,
    `environment`, `restrictions` or a restriction kind such as `allowed_ips`)."""

    check: str
    allowed: bool
    matched_rule: str | None
    reason: str


def traced_refusal(
    record: KeyRecord, request: VerifyRequest, now: float
) -> tuple[Code | None, list[Step]]:
    """`refusal`'s verdict with every check it weighs, each with its reason (the dry-run's
    answer). Kept off the hot path: only the reasons are worked out here, not the verdict."""
    steps = [_state_step(record.state), _expiry_step(record.valid_until, now)]
    steps.append(_environment_step(record.environment, request.environment))
    if record.restrictions.unrestricted:
        reason = "the key has no restrictions: any caller may use it for any API"
        steps.append(Step("restrictions", True, None, reason))
    else:
        lines = record.restrictions.explain(request.context()).checks
        steps.extend(Step(c.restriction, c.allowed, c.matched_rule, c.reason) for c in lines)
    return refusal(record, request, now), steps


def _state_step(state: str) -> Step:
    if state == State.ACTIVE:
        return Step("state", True, State.ACTIVE, "the key is active")
    return Step("state", False, None, f"the key is {state.lower()}")


def _expiry_step(valid_until: float | None, now: float) -> Step:
    if valid_until is None:
        return Step("expire_time", True, None, "the key has no expiry time")
    stamp = datetime.fromtimestamp(valid_until, UTC).isoformat().replace("+00:00", "Z")
    if now >= valid_until:
        return Step("expire_time", False, None, f"the key expired at {stamp}")
    return Step("expire_time", True, stamp, f"the key expires at {stamp}")


def _environment_step(bound: str | None, declared: str | None) -> Step:
    if bound is None:
        return Step("environment", True, None, "the key is not bound to an environment")
    if not declared:
        reason = f"the key is bound to {bound}; the request declares no environment"
        return Step("environment", True, bound, reason)
    if declared != bound:
        return Step("environment", False, None, f"the key is bound to {bound}, not {declared}")
    return Step("environment", True, bound, f"the key is bound to {bound}")


# A matched key on its way to the limiter: its record, the time, the refusal code if any, and
# the checks to count. A plain tuple: a named one is built by a Python `__new__`, ten times the
# cost, and mypyc compiles a plain one into a C struct.
Judged = tuple[KeyRecord, float, Code | None, Sequence[Check]]


class VerifyContext(Protocol):
    """What verify reads of the shared context (`llavero.service.context.Context` has it)."""

    @property
    def key_prefix(self) -> str: ...
    @property
    def hasher(self) -> KeyHasher: ...
    @property
    def cache(self) -> KeyCache: ...
    @property
    def clock(self) -> Clock: ...


# The record of the key whose string hashes to the digest, or None: read on a cache miss from
# the database (`llavero.store.key_lookup.KeyRecords`).
KeySource = Callable[[bytes], KeyRecord | None]


class Verifier:
    def __init__(
        self,
        ctx: VerifyContext,
        source: KeySource,
        limiter: Limiter,
        plans: Mapping[str, Plan],
        meter: UsageMeter | None = None,
    ) -> None:
        self._source = source
        self._prefix = ctx.key_prefix
        self._key_length = len(ctx.key_prefix) + 1 + keyformat.BODY_LENGTH
        self._digest = ctx.hasher.digest
        self._cache = ctx.cache
        self._verdicts: dict[tuple[object, ...], tuple[Code | None]] = {}
        self._time = ctx.clock.time
        self._limiter = limiter
        self._plans = plans
        self._meter: Tally | None = None if meter is None else meter.tally  # a C call (native)

    def verify(
        self, request: VerifyRequest, cached: KeyRecord | Missing | None = None
    ) -> VerifyResult:
        """The verdict; `cached` is what `cached(request.key)` answered, if the caller asked."""
        judged = self._judge(request, cached)
        if isinstance(judged, VerifyResult):
            return judged
        _, now, _, checks = judged
        decision = self._limiter.hit(checks, now) if checks else None
        return self._answer(request, judged, decision)

    async def averify(
        self, request: VerifyRequest, cached: KeyRecord | Missing | None = None
    ) -> VerifyResult:
        """`verify` for the event loop, for a key whose record is cached: the limiter's I/O
        (Redis, a claim of the database's) is awaited, not run in a worker thread. An uncached
        key reads the database."""
        judged = self._judge(request, cached)
        if isinstance(judged, VerifyResult):
            return judged
        _, now, _, checks = judged
        decision = await self._limiter.ahit(checks, now) if checks else None
        return self._answer(request, judged, decision)

    def verify_now(
        self, request: VerifyRequest, cached: KeyRecord | Missing
    ) -> VerifyResult | None:
        """`verify` of a cached key when no I/O is needed (the limiter answers from what this
        process holds), else None: then `averify`, which judges again. In the event loop it
        spares a cached verify two coroutines, about a tenth of its cost (bench/notes.md)."""
        judged = self._judge(request, cached)
        if isinstance(judged, VerifyResult):
            return judged
        _, now, _, checks = judged
        decision = self._limiter.hit_held(checks, now) if checks else None
        if checks and decision is None:
            return None
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
            return record, now, code, ()
        cost = request.cost
        if cost == 0:
            return record, now, None, record.checks
        checks = checks_for(
            self._plans[record.plan], record.limits, record.project_id, record.key_id, cost
        )
        return record, now, None, checks

    def _answer(
        self, request: VerifyRequest, judged: Judged, decision: Decision | None
    ) -> VerifyResult:
        record, now, code, _ = judged
        limits: dict[str, LimitStatus] = {}
        if decision is not None:
            code, limits = decision.code, decision.limits
        result = VerifyResult(
            code or VALID,
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

    def refusal(self, record: KeyRecord, request: VerifyRequest, now: float) -> Code | None:
        """`refusal`, with restriction verdicts remembered (`VERDICTS_KEPT`)."""
        return refusal(record, request, now, self._restriction_code)

    def _restriction_code(
        self, restrictions: CompiledRestrictions, request: VerifyRequest
    ) -> Code | None:
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
            verdict = (checked(restrictions, request),)
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[seen] = verdict
        return verdict[0]

    def _load(self, digest: bytes) -> KeyRecord | Missing:
        generation = self._cache.generation
        found = self._source(digest)
        record: KeyRecord | Missing = MISSING if found is None else found
        self._cache.put(digest, record, generation)
        return record
