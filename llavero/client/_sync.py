"""The blocking client. `_async.py` is the same surface with `async def`."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from llavero.client import _calls
from llavero.client._calls import Call, Time
from llavero.client._errors import raise_for_error
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
)

T = TypeVar("T")
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class Client:
    """Llavero's REST API with a management token: `Client("http://127.0.0.1:8080", token)`."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        response = self._http.request(
            call.method, call.path, params=dict(call.params), json=call.body
        )
        raise_for_error(response)
        return call.parse(response.json() if response.content else None)

    # --- projects --------------------------------------------------------------------------

    def create_project(self, display_name: str, id: str | None = None) -> Project:
        return self._run(_calls.create_project(display_name, id))

    def list_projects(
        self, *, page_size: int | None = None, page_token: str | None = None
    ) -> ProjectList:
        return self._run(_calls.list_projects(page_size, page_token))

    def get_project(self, project: str) -> Project:
        return self._run(_calls.get_project(project))

    def rename_project(self, project: str, display_name: str) -> Project:
        return self._run(_calls.rename_project(project, display_name))

    def delete_project(self, project: str) -> None:
        return self._run(_calls.delete_project(project))

    # --- keys ------------------------------------------------------------------------------

    def create_key(
        self,
        project: str,
        *,
        display_name: str | None = None,
        expire_time: Time = None,
        environment: str | None = None,
        restrictions: Mapping[str, Any] | None = None,
        annotations: Mapping[str, str] | None = None,
        limits: Mapping[str, int | None] | None = None,
    ) -> CreatedKey:
        fields = {
            "display_name": display_name,
            "expire_time": expire_time,
            "environment": environment,
            "restrictions": restrictions,
            "annotations": annotations,
            "limits": limits,
        }
        return self._run(_calls.create_key(project, fields))

    def list_keys(
        self,
        project: str = "-",
        *,
        show_deleted: bool = False,
        filter: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> KeyList:
        return self._run(_calls.list_keys(project, show_deleted, filter, page_size, page_token))

    def get_key(self, key: str) -> Key:
        return self._run(_calls.get_key(key))

    def update_key(self, key: str, **changes: Any) -> Key:
        """`display_name`, `restrictions`, `annotations`, `expire_time`, `limits`, `state`."""
        return self._run(_calls.update_key(key, changes))

    def delete_key(self, key: str) -> Key:
        return self._run(_calls.delete_key(key))

    def undelete_key(self, key: str) -> Key:
        return self._run(_calls.undelete_key(key))

    def rotate_key(self, key: str, grace_period_seconds: int = 0) -> CreatedKey:
        return self._run(_calls.rotate_key(key, grace_period_seconds))

    def lookup_key(self, key_string: str) -> KeyLookup:
        return self._run(_calls.lookup_key(key_string))

    def verify(self, key: str, *, cost: int = 0, **context: str | None) -> Verdict:
        """`context`: ip, referrer, android_package, android_cert, ios_bundle_id, service,
        method, environment."""
        return self._run(_calls.verify(key, context, cost))

    def test_restrictions(self, key: str, **context: str | None) -> RestrictionTest:
        return self._run(_calls.test_restrictions(key, context))

    # --- usage -----------------------------------------------------------------------------

    def report_usage(self, key_id: str, units: int, request_id: str) -> UsageReport:
        return self._run(_calls.report_usage(key_id, units, request_id))

    def key_usage(
        self, key: str, *, start: Time = None, end: Time = None, granularity: str = "hour"
    ) -> UsageSeries:
        return self._run(_calls.key_usage(key, start, end, granularity))

    def project_usage(
        self, project: str, *, start: Time = None, end: Time = None, granularity: str = "hour"
    ) -> UsageSeries:
        return self._run(_calls.project_usage(project, start, end, granularity))

    # --- billing, plans, audit -------------------------------------------------------------

    def create_billing_account(
        self, display_name: str, *, currency: str | None = None, open: bool = True
    ) -> BillingAccount:
        return self._run(_calls.create_billing_account(display_name, currency, open))

    def list_billing_accounts(
        self, *, page_size: int | None = None, page_token: str | None = None
    ) -> BillingAccountList:
        return self._run(_calls.list_billing_accounts(page_size, page_token))

    def get_billing_account(self, account: str) -> BillingAccount:
        return self._run(_calls.get_billing_account(account))

    def update_billing_account(
        self, account: str, *, display_name: str | None = None, open: bool | None = None
    ) -> BillingAccount:
        return self._run(_calls.update_billing_account(account, display_name, open))

    def get_billing_info(self, project: str) -> BillingInfo:
        return self._run(_calls.get_billing_info(project))

    def set_billing_info(self, project: str, billing_account: str | None) -> BillingInfo:
        return self._run(_calls.set_billing_info(project, billing_account))

    def list_plans(self) -> list[PlanInfo]:
        return self._run(_calls.list_plans())

    def list_audit(
        self,
        *,
        target: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> AuditList:
        return self._run(_calls.list_audit(target, page_size, page_token))
