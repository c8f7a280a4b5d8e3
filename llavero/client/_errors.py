"""The SPEC's error answers raised as the same exception classes the service layer raises.

LlaveroError
 ├── InvalidArgument      400     ├── AlreadyExists        409
 ├── Unauthenticated      401     ├── FailedPrecondition   412
 ├── PermissionDenied     403     ├── ResourceExhausted    429
 ├── NotFound             404     └── ApiError             any other status (5xx, proxies)
"""

from __future__ import annotations

from typing import Any, Final

import httpx

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

BY_STATUS: Final[dict[int, type[LlaveroError]]] = {
    cls.http_status: cls
    for cls in (
        InvalidArgument,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
    )
}


class ApiError(LlaveroError):
    """An answer outside the SPEC's statuses: a 5xx, or a proxy's page in front of Llavero."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    message = _message(response)
    error_class = BY_STATUS.get(response.status_code)
    if error_class is None:
        raise ApiError(message, response.status_code)
    raise error_class(message)


def _message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} {response.reason_phrase}"
    return str(message)
