"""Keyset pagination: a page token names the last row seen, so deep pages stay cheap."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from llavero.errors import InvalidArgument
from llavero.service import models

DEFAULT_PAGE_SIZE = 50
T = TypeVar("T")
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class PageRequest:
    size: int
    after: tuple[Any, ...] | None


class PageTokens:
    """The one codec of page tokens: a token is the last row's position, signed (keyed BLAKE2b
    under a key derived from the hash secret), so a list accepts only the tokens it produced.

    Any other string, however it was crafted, is a 400 naming `page_token`: nothing of an
    unsigned token reaches a query, where a value of the wrong type was a 500."""

    def __init__(self, secret: bytes) -> None:
        self._secret = hashlib.blake2b(b"llavero page tokens", key=secret[:64]).digest()

    def request(self, page_size: int | None, page_token: str | None, kind: str) -> PageRequest:
        if page_size is None or page_size == 0:
            size = DEFAULT_PAGE_SIZE
        elif not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"must be between 1 and {MAX_PAGE_SIZE}", field="page_size")
        else:
            size = page_size
        return PageRequest(size, self.decode(page_token, kind) if page_token else None)

    def encode(self, kind: str, values: tuple[Any, ...]) -> str:
        raw = json.dumps([kind, *values], default=str, separators=(",", ":")).encode()
        return f"{_b64(raw)}.{_b64(self._sign(raw))}"

    def decode(self, token: str, kind: str) -> tuple[Any, ...]:
        payload, _, signature = token.partition(".")
        try:
            raw = _unb64(payload)
            valid = hmac.compare_digest(self._sign(raw), _unb64(signature))
            values = json.loads(raw) if valid else None
        except (ValueError, UnicodeError):
            values = None
        if not isinstance(values, list) or not values or values[0] != kind:
            raise InvalidArgument("is not a page token of this list", field="page_token")
        return tuple(values[1:])

    def _sign(self, raw: bytes) -> bytes:
        return hashlib.blake2b(raw, key=self._secret, digest_size=16).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    """Strict: only the URL-safe alphabet (ASCII), so no other string decodes to anything."""
    if not text.isascii():
        raise ValueError("not base64")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


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
