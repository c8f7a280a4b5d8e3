"""What the gateway passes between client and upstream, and what it answers itself: the
headers dropped each way (hop-by-hop, credentials), the request body as sent, and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Final

import aiohttp
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope

from llavero.edges import credentials
from llavero.edges.answers import Refusal

# RFC 9110 §7.6.1 hop-by-hop headers, plus what the gateway sets itself.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# The client's credentials and what belongs to the gateway's own host never go upstream.
NOT_UPSTREAM: Final = HOP_BY_HOP | {
    "host",
    "cookie",
    "accept-encoding",
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    *credentials.KEY_HEADERS,
}
# The server answering the client sets these itself; `alt-svc` would point at the upstream.
NOT_DOWNSTREAM: Final = HOP_BY_HOP | {"date", "server", "alt-svc"}
NOT_UPSTREAM_RAW: Final = frozenset(name.encode() for name in NOT_UPSTREAM)
NOT_DOWNSTREAM_RAW: Final = frozenset(name.encode() for name in NOT_DOWNSTREAM)
SMALL_BODY: Final = 64 * 1024
# Answers that carry no Content-Length (RFC 9110 §8.6).
BODILESS: Final = frozenset({*range(100, 200), 204, 304})


def raw_path(scope: Scope) -> str:
    """The request target's path as sent, undecoded."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    return raw.decode("latin-1")


def downstream_headers(answer: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    """Raw pairs, not a dict: repeated headers (Set-Cookie, Vary) must all reach the client."""
    dropped = NOT_DOWNSTREAM_RAW
    if connection := answer.headers.get("connection"):
        dropped = dropped | encoded(connection_options(connection))
    return [(name, value) for name, value in answer.raw_headers if name.lower() not in dropped]


async def request_body(
    request: Request, headers: dict[str, str]
) -> bytes | AsyncIterator[bytes] | None:
    """None without a body, so that no empty chunked body is sent; a small body of known length
    whole, as aiohttp sends it with the headers in one write; any other body as a stream."""
    length = headers.get("content-length")
    if length is None:
        return request.stream() if "transfer-encoding" in headers else None
    if length.isdigit() and int(length) <= SMALL_BODY:
        return await request.body()
    return request.stream()


def encoded(names: Iterable[str]) -> frozenset[bytes]:
    return frozenset(name.encode("latin-1") for name in names)


def connection_options(connection: str) -> frozenset[str]:
    """Headers that the `Connection` header names are hop-by-hop too (RFC 9110 §7.6.1)."""
    return frozenset(option.strip().lower() for option in connection.split(",") if option.strip())


def client_left(exc: BaseException) -> bool:
    """Whether the upstream call failed because the client's own body stopped mid-way."""
    while exc is not None:
        if isinstance(exc, ClientDisconnect):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def refused(refusal: Refusal) -> Response:
    headers = {**refusal.headers, "content-type": "application/json; charset=UTF-8"}
    return Response(refusal.body_bytes(), refusal.status, headers)


def error_answer(status: int, canonical: str, message: str) -> Response:
    body = {"error": {"code": status, "status": canonical, "message": message}}
    return Response(orjson.dumps(body), status, media_type="application/json; charset=UTF-8")
