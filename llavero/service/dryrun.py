"""Restriction dry-run: which rule would allow or refuse a request, and why.

It takes the same context as verify and asks verify's own decision for its verdict and its
trace (state, expiry, environment, then restrictions, application restriction first), but it
reads a key by id, counts no usage and touches no limit: a safe way to try a rule before a real
client meets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from llavero.core.cache import KeyRecord
from llavero.core.context import CONTEXT_FIELDS
from llavero.core.context import NAMES as CONTEXT_NAMES
from llavero.core.restrictions import compile_restrictions
from llavero.core.verify import VerifyRequest, traced_refusal
from llavero.errors import InvalidArgument
from llavero.service.models import Model
from llavero.store import tables


class Check(Model):
    """One step of the verdict: `restriction` names what was checked (`state`, `expire_time`,
    `environment`, `restrictions` or one restriction kind such as `allowed_ips`)."""

    restriction: str
    allowed: bool
    matched_rule: str | None
    reason: str


class RestrictionTest(Model):
    allowed: bool
    code: str | None
    checks: list[Check]


def request_context(values: Mapping[str, Any]) -> dict[str, str | None]:
    """The verify context without `key` and `cost`; each failure names its field."""
    unknown = sorted(set(values) - set(CONTEXT_NAMES))
    if unknown:
        raise InvalidArgument("is not a known field", field=unknown[0])
    context: dict[str, str | None] = {}
    for field in CONTEXT_FIELDS:
        name, value = field.name, values.get(field.name)
        if value is not None and not isinstance(value, str):
            raise InvalidArgument("must be a string", field=name)
        if value is not None and len(value) > field.max_length:
            raise InvalidArgument(f"is longer than {field.max_length} characters", field=name)
        context[name] = value or None
    return context


def explain(row: tables.Key, context: Mapping[str, Any], now: datetime) -> RestrictionTest:
    """Verify's own decision (`llavero.core.verify.traced_refusal`) for the key's current
    string, with every check it weighs."""
    record = KeyRecord(
        key_id=row.id,
        project_id=row.project_id,
        state=row.state,
        valid_until=row.expire_time.timestamp() if row.expire_time is not None else None,
        environment=row.environment,
        restrictions=compile_restrictions(row.restrictions),
        limits={},
        plan="",
        checks=(),  # the dry-run counts nothing
    )
    code, steps = traced_refusal(record, VerifyRequest(key="", **context), now.timestamp())
    checks = [
        Check(restriction=s.check, allowed=s.allowed, matched_rule=s.matched_rule, reason=s.reason)
        for s in steps
    ]
    return RestrictionTest(allowed=code is None, code=code, checks=checks)
