"""Domain errors, one per canonical status of the SPEC error format.

    LlaveroError
     ├── InvalidArgument      400 INVALID_ARGUMENT
     ├── Unauthenticated      401 UNAUTHENTICATED
     ├── PermissionDenied     403 PERMISSION_DENIED
     ├── NotFound             404 NOT_FOUND
     ├── AlreadyExists        409 ALREADY_EXISTS
     ├── FailedPrecondition   412 FAILED_PRECONDITION
     ├── ResourceExhausted    429 RESOURCE_EXHAUSTED
     └── Unavailable          503 UNAVAILABLE (the database is down or too slow)

The service layer raises these; the API, console and CLI only translate them. A message never
carries a key string: callers pass field names and safe values only.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LlaveroError(Exception):
    http_status: ClassVar[int] = 500
    status: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.message = f"{field}: {message}" if field else message
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.http_status, "status": self.status, "message": self.message}}


class InvalidArgument(LlaveroError):
    http_status = 400
    status = "INVALID_ARGUMENT"


class Unauthenticated(LlaveroError):
    http_status = 401
    status = "UNAUTHENTICATED"


class PermissionDenied(LlaveroError):
    http_status = 403
    status = "PERMISSION_DENIED"


class NotFound(LlaveroError):
    http_status = 404
    status = "NOT_FOUND"


class AlreadyExists(LlaveroError):
    http_status = 409
    status = "ALREADY_EXISTS"


class FailedPrecondition(LlaveroError):
    http_status = 412
    status = "FAILED_PRECONDITION"


class ResourceExhausted(LlaveroError):
    http_status = 429
    status = "RESOURCE_EXHAUSTED"


class Unavailable(LlaveroError):
    """The database did not answer within its timeouts (docs/configuration.md): try again."""

    http_status = 503
    status = "UNAVAILABLE"
