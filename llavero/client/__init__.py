"""Python client for Llavero's REST API, sync (`Client`) and async (`AsyncClient`), on httpx.

    with Client("http://127.0.0.1:8080", token) as llavero:
        created = llavero.create_key("gemini-api", display_name="CI")
        print(created.key_string)  # shown once

Answers are frozen dataclasses with the fields of the server's answers (`Project`, `Key`,
`CreatedKey`, ...); errors are raised as `llavero.errors` classes (`NotFound`,
`PermissionDenied`, ...), and any other failing status as `ApiError`. Nothing here imports the
server: `import llavero.client` loads httpx and `llavero.errors` only.
"""

from llavero.client._async import AsyncClient
from llavero.client._errors import ApiError
from llavero.client._models import (
    AuditEvent,
    AuditList,
    BillingAccount,
    BillingAccountList,
    BillingInfo,
    Check,
    CreatedKey,
    Key,
    KeyList,
    KeyLookup,
    Leak,
    LimitStatus,
    PlanInfo,
    Project,
    ProjectList,
    RestrictionTest,
    UsagePoint,
    UsageReport,
    UsageSeries,
    UsageTotals,
    Verdict,
)
from llavero.client._sync import Client
from llavero.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LlaveroError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)

__all__ = [
    "AlreadyExists",
    "ApiError",
    "AsyncClient",
    "AuditEvent",
    "AuditList",
    "BillingAccount",
    "BillingAccountList",
    "BillingInfo",
    "Check",
    "Client",
    "CreatedKey",
    "FailedPrecondition",
    "InvalidArgument",
    "Key",
    "KeyList",
    "KeyLookup",
    "Leak",
    "LimitStatus",
    "LlaveroError",
    "NotFound",
    "PermissionDenied",
    "PlanInfo",
    "Project",
    "ProjectList",
    "ResourceExhausted",
    "RestrictionTest",
    "Unauthenticated",
    "UsagePoint",
    "UsageReport",
    "UsageSeries",
    "UsageTotals",
    "Verdict",
]
