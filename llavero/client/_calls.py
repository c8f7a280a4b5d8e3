"""Every REST call of the SPEC as data: method, path, query, body and the model of the answer.

The sync and the async client both run these, so a path or a field is written once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from llavero.client._models import (
    AuditList,
    BillingAccount,
    BillingAccountList,
    BillingInfo,
    CreatedKey,
    Key,
    KeyList,
    KeyLookup,
    PlanInfo,
    Project,
    ProjectList,
    RestrictionTest,
    UsageReport,
    UsageSeries,
    Verdict,
    load,
)

T = TypeVar("T")
Time = datetime | str | None


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None


def _model(model: type[T]) -> Callable[[Any], T]:
    return partial(load, model)


def _none(_: Any) -> None:
    return None


def _plans(data: Any) -> list[PlanInfo]:
    return [load(PlanInfo, plan) for plan in data["plans"]]


def _segment(value: str) -> str:
    """One path segment: ids are slugs, but a stray `/` or `?` must not change the call."""
    return quote(value, safe="-_.~")


def _time(value: Time) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _page(page_size: int | None, page_token: str | None) -> dict[str, Any]:
    return _present({"page_size": page_size, "page_token": page_token})


# --- projects ------------------------------------------------------------------------------


def create_project(display_name: str, project_id: str | None) -> Call[Project]:
    body = _present({"display_name": display_name, "id": project_id})
    return Call("POST", "/v1/projects", _model(Project), body=body)


def list_projects(page_size: int | None, page_token: str | None) -> Call[ProjectList]:
    return Call("GET", "/v1/projects", _model(ProjectList), _page(page_size, page_token))


def get_project(project: str) -> Call[Project]:
    return Call("GET", f"/v1/projects/{_segment(project)}", _model(Project))


def rename_project(project: str, display_name: str) -> Call[Project]:
    body = {"display_name": display_name}
    return Call("PATCH", f"/v1/projects/{_segment(project)}", _model(Project), body=body)


def delete_project(project: str) -> Call[None]:
    return Call("DELETE", f"/v1/projects/{_segment(project)}", _none)


# --- keys ----------------------------------------------------------------------------------


def create_key(project: str, fields: Mapping[str, Any]) -> Call[CreatedKey]:
    body = _present({**fields, "expire_time": _time(fields.get("expire_time"))})
    path = f"/v1/projects/{_segment(project)}/keys"
    return Call("POST", path, _model(CreatedKey), body=body)


def list_keys(
    project: str,
    show_deleted: bool,
    filter: str | None,
    page_size: int | None,
    page_token: str | None,
) -> Call[KeyList]:
    params = {**_page(page_size, page_token), **_present({"filter": filter})}
    if show_deleted:
        params["show_deleted"] = "true"
    return Call("GET", f"/v1/projects/{_segment(project)}/keys", _model(KeyList), params)


def get_key(key: str) -> Call[Key]:
    return Call("GET", f"/v1/keys/{_segment(key)}", _model(Key))


def update_key(key: str, changes: Mapping[str, Any]) -> Call[Key]:
    """Only the fields given change; `expire_time=None` removes the expiry."""
    body = dict(changes)
    if "expire_time" in body:
        body["expire_time"] = _time(body["expire_time"])
    return Call("PATCH", f"/v1/keys/{_segment(key)}", _model(Key), body=body)


def delete_key(key: str) -> Call[Key]:
    return Call("DELETE", f"/v1/keys/{_segment(key)}", _model(Key))


def undelete_key(key: str) -> Call[Key]:
    return Call("POST", f"/v1/keys/{_segment(key)}:undelete", _model(Key), body={})


def rotate_key(key: str, grace_period_seconds: int) -> Call[CreatedKey]:
    body = {"grace_period_seconds": grace_period_seconds}
    return Call("POST", f"/v1/keys/{_segment(key)}:rotate", _model(CreatedKey), body=body)


def lookup_key(key_string: str) -> Call[KeyLookup]:
    """The key string travels in the body, never in the URL."""
    body = {"key_string": key_string}
    return Call("POST", "/v1/keys:lookup", _model(KeyLookup), body=body)


def verify(key: str, context: Mapping[str, Any], cost: int) -> Call[Verdict]:
    body = {"key": key, **_present(context), "cost": cost}
    return Call("POST", "/v1/keys:verify", _model(Verdict), body=body)


def test_restrictions(key: str, context: Mapping[str, Any]) -> Call[RestrictionTest]:
    path = f"/v1/keys/{_segment(key)}:testRestrictions"
    return Call("POST", path, _model(RestrictionTest), body=_present(context))


# --- usage ---------------------------------------------------------------------------------


def report_usage(key_id: str, units: int, request_id: str) -> Call[UsageReport]:
    body = {"key_id": key_id, "units": units, "request_id": request_id}
    return Call("POST", "/v1/usage:report", _model(UsageReport), body=body)


def usage(target: str, start: Time, end: Time, granularity: str) -> Call[UsageSeries]:
    params = _present({"start": _time(start), "end": _time(end), "granularity": granularity})
    return Call("GET", f"{target}/usage", _model(UsageSeries), params)


def key_usage(key: str, start: Time, end: Time, granularity: str) -> Call[UsageSeries]:
    return usage(f"/v1/keys/{_segment(key)}", start, end, granularity)


def project_usage(project: str, start: Time, end: Time, granularity: str) -> Call[UsageSeries]:
    return usage(f"/v1/projects/{_segment(project)}", start, end, granularity)


# --- billing, plans, audit ----------------------------------------------------------------


def create_billing_account(
    display_name: str, currency: str | None, is_open: bool
) -> Call[BillingAccount]:
    body = _present({"display_name": display_name, "currency": currency, "open": is_open})
    return Call("POST", "/v1/billingAccounts", _model(BillingAccount), body=body)


def list_billing_accounts(
    page_size: int | None, page_token: str | None
) -> Call[BillingAccountList]:
    params = _page(page_size, page_token)
    return Call("GET", "/v1/billingAccounts", _model(BillingAccountList), params)


def get_billing_account(account: str) -> Call[BillingAccount]:
    return Call("GET", f"/v1/billingAccounts/{_segment(account)}", _model(BillingAccount))


def update_billing_account(
    account: str, display_name: str | None, is_open: bool | None
) -> Call[BillingAccount]:
    body = _present({"display_name": display_name, "open": is_open})
    path = f"/v1/billingAccounts/{_segment(account)}"
    return Call("PATCH", path, _model(BillingAccount), body=body)


def get_billing_info(project: str) -> Call[BillingInfo]:
    return Call("GET", f"/v1/projects/{_segment(project)}/billingInfo", _model(BillingInfo))


def set_billing_info(project: str, billing_account: str | None) -> Call[BillingInfo]:
    """`billing_account=None` unlinks the project: back to the free plan."""
    path = f"/v1/projects/{_segment(project)}/billingInfo"
    return Call("PUT", path, _model(BillingInfo), body={"billing_account": billing_account})


def list_plans() -> Call[list[PlanInfo]]:
    return Call("GET", "/v1/plans", _plans)


def list_audit(
    target: str | None, page_size: int | None, page_token: str | None
) -> Call[AuditList]:
    params = {**_page(page_size, page_token), **_present({"target": target})}
    return Call("GET", "/v1/audit", _model(AuditList), params)
