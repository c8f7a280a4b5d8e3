"""Field rules shared by every service: each failure names its field and writes nothing."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from llavero.errors import InvalidArgument, NotFound

ENVIRONMENT = re.compile(r"[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?")
ANNOTATION_KEY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.\-/]{0,61}[A-Za-z0-9])?")
MAX_ANNOTATIONS = 64
MAX_ANNOTATION_VALUE = 1024
RANDOM_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def not_found(
    kind: str, given: object, field: str, *, shape: re.Pattern[str] = RANDOM_ID
) -> NotFound:
    """The id is echoed only when it has the shape of such an id (by default a key or token
    id): a key string pasted where an id belongs must not come back in the error."""
    shown = f"{kind} {given!r}" if isinstance(given, str) and shape.fullmatch(given) else kind
    return NotFound(f"{shown} does not exist", field=field)


def display_name(value: Any, field: str = "display_name", *, max_length: int = 100) -> str:
    if not isinstance(value, str):
        raise InvalidArgument("must be a string", field=field)
    name = value.strip()
    if not name:
        raise InvalidArgument("must not be empty", field=field)
    if len(name) > max_length:
        raise InvalidArgument(f"must be at most {max_length} characters", field=field)
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise InvalidArgument("must not contain control characters", field=field)
    return name


def environment(value: Any, field: str = "environment") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not ENVIRONMENT.fullmatch(value):
        raise InvalidArgument(
            "must be 1-63 lowercase letters, digits, '-', '_' or '.', e.g. production",
            field=field,
        )
    return value


def annotation_map(value: Any, field: str = "annotations") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument("must be an object of string values", field=field)
    if len(value) > MAX_ANNOTATIONS:
        raise InvalidArgument(f"must have at most {MAX_ANNOTATIONS} entries", field=field)
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not ANNOTATION_KEY.fullmatch(key):
            raise InvalidArgument(
                "keys must be 1-63 letters, digits, '-', '_', '.' or '/'", field=f"{field}.{key}"
            )
        if not isinstance(item, str):
            raise InvalidArgument("must be a string", field=f"{field}.{key}")
        if len(item) > MAX_ANNOTATION_VALUE:
            raise InvalidArgument(
                f"must be at most {MAX_ANNOTATION_VALUE} characters", field=f"{field}.{key}"
            )
        result[key] = item
    return result


def future_time(value: Any, now: datetime, field: str = "expire_time") -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument("must be an RFC 3339 timestamp", field=field) from None
    if not isinstance(value, datetime):
        raise InvalidArgument("must be an RFC 3339 timestamp", field=field)
    if value.tzinfo is None:
        raise InvalidArgument("must include a time zone, e.g. 2026-01-01T00:00:00Z", field=field)
    if value <= now:
        raise InvalidArgument("must be in the future", field=field)
    if value.year > 9000:
        raise InvalidArgument("is too far in the future", field=field)
    return value
