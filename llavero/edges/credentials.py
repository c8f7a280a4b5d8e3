"""What an incoming HTTP request says about itself: its key and verify's context.

Shared by the gateway, forward auth and the middleware. The key is looked for where Gemini's
clients send theirs (`x-goog-api-key`, `?key=`) and where most other clients do
(`Authorization: Bearer`, `X-API-Key`). The client IP is `llavero.edges.proxy_trust`'s answer.

`?key=` puts a key into URLs. One reader decides which query parameters are the key
(`query_fields`): the name `key` in any spelling (percent-encoded at any depth, any case,
Unicode compatibility forms), with `&` or `;` between parameters. The same reader takes them out
of upstream URLs (`without_key`) and access logs (`llavero.edges.redaction`), so no spelling can
authenticate and still travel on (docs/security.md, "Key strings in requests and logs").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, unquote_plus

from llavero.core.context import RequestContext, from_headers
from llavero.edges.proxy_trust import ProxyTrust as ProxyTrust

QUERY_KEY: Final = "key"
KEY_HEADERS: Final = ("x-goog-api-key", "authorization", "x-api-key")
QUERY_SEPARATORS: Final = re.compile(r"([&;])")
# Enough rounds for any encoding a client would stack; a deeper one is not the name `key`.
DECODING_ROUNDS: Final = 8


def fully_unquoted(text: str, plus: bool = False) -> str:
    """Percent-decoded until nothing changes (double encoding included), bounded."""
    decode = unquote_plus if plus else unquote
    for _ in range(DECODING_ROUNDS):
        decoded = decode(text)
        if decoded == text:
            break
        text = decoded
    return text


def is_key_name(raw_name: str) -> bool:
    """Whether a query parameter's raw name is `key` in any spelling."""
    name = unicodedata.normalize("NFKC", fully_unquoted(raw_name, plus=True))
    return name.strip(" \t\r\n\x00").casefold() == QUERY_KEY


@dataclass(frozen=True, slots=True)
class QueryField:
    """One parameter as sent: the separator before it, its raw name and raw value."""

    separator: str
    name: str
    value: str | None

    @property
    def is_key(self) -> bool:
        return is_key_name(self.name)

    def text(self) -> str:
        return self.name if self.value is None else f"{self.name}={self.value}"


def query_fields(query: str) -> list[QueryField]:
    """The query's parameters, split on `&` and `;` (some servers split on either)."""
    parts = QUERY_SEPARATORS.split(query)
    fields = []
    for index in range(0, len(parts), 2):
        separator = parts[index - 1] if index else ""
        name, equals, value = parts[index].partition("=")
        fields.append(QueryField(separator, name, value if equals else None))
    return fields


def _joined(fields: list[QueryField]) -> str:
    pieces = [
        (field.separator if index else "") + field.text() for index, field in enumerate(fields)
    ]
    return "".join(pieces)


def key_from_query(query: str) -> str | None:
    """The first non-empty value of a key-named parameter, decoded once."""
    for field in query_fields(query):
        if field.is_key and field.value and (value := unquote_plus(field.value).strip()):
            return value
    return None


def without_key(query: str) -> str:
    """The query minus every key-named parameter, the others byte for byte as sent."""
    fields = query_fields(query)
    kept = [field for field in fields if not field.is_key]
    return query if len(kept) == len(fields) else _joined(kept)


def redacted_query(query: str, redacted: str) -> str:
    """The query with the value of every key-named parameter replaced by `redacted`."""
    fields = query_fields(query)
    if not any(field.is_key for field in fields):
        return query
    return _joined([QueryField(f.separator, f.name, redacted) if f.is_key else f for f in fields])


def key_from(headers: Mapping[str, str], query: str) -> str | None:
    """The key of a request, first found of: x-goog-api-key, ?key=, Bearer, X-API-Key.

    `headers` must answer lowercase names (Starlette's Headers, or a dict built lowercase)."""
    key = headers.get("x-goog-api-key")
    if key:
        return key.strip()
    if query and (key := key_from_query(query)):
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


def api_method(path: str) -> str | None:
    """Google's custom-method verb: `models/gemini-2.5-flash:generateContent` → generateContent.

    Paths without a `:verb` name no method; a key whose api_targets list methods refuses them."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    _, colon, verb = last.rpartition(":")
    return verb if colon and verb else None


def origin_from(
    headers: Mapping[str, str], ip: str | None, path: str, service: str | None
) -> RequestContext:
    """The context verify checks restrictions against, from the headers Google's SDKs send."""
    return from_headers(headers, ip=ip, service=service, method=api_method(path))


def wsgi_headers(environ: Mapping[str, object]) -> dict[str, str]:
    """A WSGI environ's headers under lowercase names, as `key_from` and `origin_from` read."""
    headers = {
        name[5:].replace("_", "-").lower(): value
        for name, value in environ.items()
        if name.startswith("HTTP_") and isinstance(value, str)
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = environ.get(name)
        if isinstance(value, str) and value:
            headers[name.replace("_", "-").lower()] = value
    return headers
