"""The request context a key's restrictions are checked against, declared once.

`RequestContext` is what verify matches; each of its fields carries, as metadata, what the API,
the CLI, the client and the console say about it and the request header an edge reads it from.
`CONTEXT_FIELDS` adds `environment`, which verify and the dry-run take but restrictions do not.
Every place that takes a context (the verify and dry-run bodies, the CLI options, the client's
keyword arguments, the console's test form) is built from `CONTEXT_FIELDS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_LENGTH: Final = 2048


@dataclass(frozen=True, slots=True)
class ContextField:
    """One context field: `header` is the request header an edge reads it from, if any."""

    name: str
    description: str
    header: str | None = None
    max_length: int = MAX_LENGTH


def _about(description: str, header: str | None = None) -> Any:
    return dataclasses.field(default=None, metadata={"about": (description, header)})


@dataclass(frozen=True, slots=True)
class RequestContext:
    ip: str | None = _about("Client IP.")
    referrer: str | None = _about("Referer header.", "referer")
    android_package: str | None = _about("Android package name.", "x-android-package")
    android_cert: str | None = _about("SHA-1 of the app's signing certificate.", "x-android-cert")
    ios_bundle_id: str | None = _about("iOS bundle identifier.", "x-ios-bundle-identifier")
    service: str | None = _about("API service.")
    method: str | None = _about("API method.")


ENVIRONMENT: Final = ContextField("environment", "Verifier's environment.")

RESTRICTION_FIELDS: Final = tuple(
    ContextField(field.name, *field.metadata["about"])
    for field in dataclasses.fields(RequestContext)
)
"""The fields restrictions are checked against, in `RequestContext` order."""

CONTEXT_FIELDS: Final = (*RESTRICTION_FIELDS, ENVIRONMENT)
"""What a verify or a dry-run takes besides the key (and, for verify, the cost)."""

NAMES: Final = tuple(field.name for field in CONTEXT_FIELDS)


_HEADERS: Final = tuple(
    (field.name, field.header) for field in RESTRICTION_FIELDS if field.header is not None
)


def from_headers(headers: Mapping[str, str], **known: str | None) -> RequestContext:
    """The context of a request from the headers Google's SDKs send, plus what the edge knows
    otherwise (`ip`, `service`, `method`)."""
    read = {name: headers.get(header) or None for name, header in _HEADERS}
    return RequestContext(**read, **known)
