"""Keyset pagination: a page token names the last row seen, so deep pages stay cheap."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from llavero import models
from llavero.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
T = TypeVar("T")
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class PageRequest:
    size: int
    after: tuple[Any, ...] | None


def page_request(page_size: int | None, page_token: str | None, kind: str) -> PageRequest:
    if page_size is None or page_size == 0:
        size = DEFAULT_PAGE_SIZE
    elif not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"must be between 1 and {MAX_PAGE_SIZE}", field="page_size")
    else:
        size = page_size
    return PageRequest(size, decode(page_token, kind) if page_token else None)


def encode(kind: str, values: tuple[Any, ...]) -> str:
    raw = json.dumps([kind, *values], default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, kind: str) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("is not a page token of this list", field="page_token") from None
    if not isinstance(values, list) or not values or values[0] != kind:
        raise InvalidArgument("is not a page token of this list", field="page_token")
    return tuple(values[1:])


def every_item(fetch: Callable[[str | None], models.Page[T]]) -> list[T]:
    """All items of a paged list, for callers that need the whole of it (menus, the CLI):
    `fetch(page_token)` returns one page."""
    items: list[T] = []
    token: str | None = None
    while True:
        page = fetch(token)
        items.extend(page.items)
        if not page.next_page_token:
            return items
        token = page.next_page_token
