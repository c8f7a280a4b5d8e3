"""The answers of the REST API as plain frozen dataclasses, so that the client needs httpx and
nothing of the server (no pydantic, no FastAPI). Their fields are those of the server's models;
tests/client/test_models.py fails when the two drift apart.

`load(Kind, data)` reads JSON into a dataclass: nested dataclasses, `list[...]`, `dict[str, ...]`,
`... | None` and RFC 3339 `datetime`s; fields the server adds later are ignored.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeVar, Union, cast, get_args, get_origin, get_type_hints

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    number: int
    display_name: str
    create_time: datetime
    update_time: datetime
    billing_account: str | None
    plan: str
    leak_policy: str = "revoke"


@dataclass(frozen=True, slots=True)
class ProjectList:
    projects: list[Project]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Leak:
    """Where and when a key's string was reported leaked, and by which scanner."""

    time: datetime
    url: str | None
    source: str | None


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    project: str
    display_name: str
    last4: str
    state: str
    create_time: datetime
    update_time: datetime
    expire_time: datetime | None
    delete_time: datetime | None
    purge_time: datetime | None
    environment: str | None
    restrictions: dict[str, Any]
    annotations: dict[str, str]
    limits: dict[str, int]
    last_used_time: datetime | None
    last_used_ip: str | None
    previous_last4: str | None
    previous_expire_time: datetime | None
    leak: Leak | None = None


@dataclass(frozen=True, slots=True)
class KeyList:
    keys: list[Key]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """The only answer that carries a key string: store `key_string` now, it is shown once."""

    key: Key
    key_string: str


@dataclass(frozen=True, slots=True)
class KeyLookup:
    project: str
    key: str
    state: str


@dataclass(frozen=True, slots=True)
class LimitStatus:
    limit: int
    remaining: int
    reset_seconds: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer of `verify`; a refused verify carries no limits."""

    valid: bool
    code: str
    key_id: str | None
    project: str | None
    plan: str | None
    environment: str | None
    limits: dict[str, LimitStatus]


@dataclass(frozen=True, slots=True)
class Check:
    """One step of a dry-run: `restriction` names what was checked."""

    restriction: str
    allowed: bool
    matched_rule: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class RestrictionTest:
    allowed: bool
    code: str | None
    checks: list[Check]


@dataclass(frozen=True, slots=True)
class UsageReport:
    """`duplicate` is true when this `request_id` was already counted (a retry)."""

    request_id: str
    key_id: str
    project: str
    units: int
    duplicate: bool
    limits: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class UsagePoint:
    start_time: datetime
    requests: dict[str, int]
    units: int


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: dict[str, int]
    units: int


@dataclass(frozen=True, slots=True)
class UsageSeries:
    """`buckets` are oldest first."""

    target: str
    granularity: str
    start_time: datetime
    end_time: datetime
    buckets: list[UsagePoint]
    totals: UsageTotals


@dataclass(frozen=True, slots=True)
class BillingAccount:
    id: str
    display_name: str
    currency: str
    open: bool
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True, slots=True)
class BillingAccountList:
    billing_accounts: list[BillingAccount]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class BillingInfo:
    """A project's link and the plan and limits that follow from it (`None`: unlimited)."""

    project: str
    billing_account: str | None
    plan: str
    limits: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class PlanInfo:
    """A plan; a limit of `None` means unlimited."""

    name: str
    display_name: str
    rpm: int | None
    rpd: int | None
    upm: int | None
    upd: int | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    time: datetime
    actor: str
    action: str
    target: str
    source_ip: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditList:
    audit_events: list[AuditEvent]
    next_page_token: str


def load(kind: type[T], data: Any) -> T:
    """`data` (parsed JSON) as a `kind`, itself a dataclass of this module."""
    return cast(T, _value(kind, data))


@cache
def _fields(kind: type) -> dict[str, Any]:
    hints = get_type_hints(kind)
    return {field.name: hints[field.name] for field in dataclasses.fields(kind)}


def _value(hint: Any, data: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        present = [arg for arg in get_args(hint) if arg is not type(None)]
        return None if data is None else _value(present[0], data)
    if origin is list:
        (item,) = get_args(hint)
        return [_value(item, value) for value in data]
    if origin is dict:
        _, item = get_args(hint)
        return {name: _value(item, value) for name, value in data.items()}
    if hint is datetime:
        return datetime.fromisoformat(data)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        fields = _fields(hint)
        return hint(**{name: _value(fields[name], data[name]) for name in fields if name in data})
    return data
