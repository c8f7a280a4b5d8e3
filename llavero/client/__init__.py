"""Python client for Llavero's REST API, sync (`Client`) and async (`AsyncClient`), on httpx.

    with Client("http://127.0.0.1:8080", token) as llavero:
        created = llavero.create_key("gemini-api", display_name="CI")
        print(created.key_string)  # shown once

Answers are the typed models the server sends (`Project`, `Key`, `CreatedKey`, ...); SPEC
errors are raised as `llavero.errors` classes (`NotFound`, `PermissionDenied`, ...), and any
other failing status as `ApiError`.
"""

from llavero.client._async import AsyncClient
from llavero.client._errors import ApiError
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
    "Client",
    "FailedPrecondition",
    "InvalidArgument",
    "LlaveroError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
]
