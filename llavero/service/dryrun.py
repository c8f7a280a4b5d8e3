"""Restriction dry-run: which rule would allow or refuse a request, and why.

It takes the same context as verify, reaches the same verdict in the same order (state, expiry,
environment, then restrictions, application restriction first) and explains every step, but it
reads a key by id, counts no usage and touches no limit: a safe way to try a rule before a real
client meets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from llavero.core.codes import State
from llavero.core.context import CONTEXT_FIELDS
from llavero.core.context import NAMES as CONTEXT_NAMES
from llavero.core.restrictions import RequestContext, compile_restrictions
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


Step = tuple[Check, str | None]  # a check and the verify code it gives when it refuses


def explain(row: tables.Key, context: Mapping[str, str | None], now: datetime) -> RestrictionTest:
    """The verdict `Verifier.refusal` would give for the key's current string, step by step."""
    steps = [
        _state(row.state),
        _expiry(row.expire_time, now),
        _environment(row.environment, context.get("environment")),
    ]
    checks = [check for check, _ in steps]
    codes = [code for _, code in steps]
    restrictions = compile_restrictions(row.restrictions)
    if restrictions.unrestricted:
        reason = "the key has no restrictions: any caller may use it for any API"
        checks.append(_check("restrictions", True, reason))
    else:
        explanation = restrictions.explain(RequestContext(**_without_environment(context)))
        checks.extend(
            _check(line.restriction, line.allowed, line.reason, line.matched_rule)
            for line in explanation.checks
        )
        codes.append(explanation.code)
    code = next((code for code in codes if code is not None), None)
    return RestrictionTest(allowed=code is None, code=code, checks=checks)


def _without_environment(context: Mapping[str, str | None]) -> dict[str, str | None]:
    return {name: value for name, value in context.items() if name != "environment"}


def _check(restriction: str, allowed: bool, reason: str, rule: str | None = None) -> Check:
    return Check(restriction=restriction, allowed=allowed, matched_rule=rule, reason=reason)


def _state(state: str) -> Step:
    if state == State.ACTIVE:
        return _check("state", True, "the key is active", State.ACTIVE), None
    return _check("state", False, f"the key is {state.lower()}"), state


def _expiry(expire_time: datetime | None, now: datetime) -> Step:
    if expire_time is None:
        return _check("expire_time", True, "the key has no expiry time"), None
    stamp = expire_time.isoformat().replace("+00:00", "Z")
    if now >= expire_time:
        return _check("expire_time", False, f"the key expired at {stamp}"), "EXPIRED"
    return _check("expire_time", True, f"the key expires at {stamp}", stamp), None


def _environment(bound: str | None, declared: str | None) -> Step:
    if bound is None:
        return _check("environment", True, "the key is not bound to an environment"), None
    if not declared:
        reason = f"the key is bound to {bound}; the request declares no environment"
        return _check("environment", True, reason, bound), None
    if declared != bound:
        reason = f"the key is bound to {bound}, not {declared}"
        return _check("environment", False, reason), "ENVIRONMENT_MISMATCH"
    return _check("environment", True, f"the key is bound to {bound}", bound), None
