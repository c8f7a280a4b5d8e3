"""The gateway: Llavero in front of one upstream API (`llavero gateway --upstream URL`).

Each request is verified in process (same store as `llavero serve`, no HTTP hop), then passed on
with the client's key taken out and the upstream's own credential put in; request and response
bodies stream through unbuffered, server-sent events included. Refusals answer Google-style
errors (`llavero.http_verdicts`). Units are learned from the upstream's answer — Gemini's
`usageMetadata.totalTokenCount`, OpenAI's `usage.total_tokens` — and counted after the stream
ends against the unit limits and in usage, in memory (`UsageReports.count_units`): the gateway
is the only reporter of its own requests, so it needs no idempotency record, and the hot path
writes nothing to the database.

Neither the client's key nor the upstream's is ever logged: `?key=` is removed from the upstream
URL, and the server's access log is redacted (`llavero.logs.install_access_log_filter`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import anyio
import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from llavero import credentials, http_verdicts
from llavero.cache import KeyRecord
from llavero.credentials import ProxyTrust
from llavero.errors import FailedPrecondition, InvalidArgument
from llavero.http_verdicts import Refusal, Verifies
from llavero.service import Llavero
from llavero.verify import VerifyResult

log = logging.getLogger("llavero.gateway")

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
    *credentials.KEY_HEADERS,
}
# The server answering the client sets these itself; `alt-svc` would point at the upstream.
NOT_DOWNSTREAM: Final = HOP_BY_HOP | {"date", "server", "alt-svc"}
METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
METERED_TYPES: Final = ("json", "event-stream")
UNITS_RE: Final = re.compile(rb'"(?:totalTokenCount|total_tokens)"\s*:\s*([0-9]{1,15})')
SCAN_TAIL: Final = 64

# (the client's key, units the upstream stated) -> counted somewhere.
UnitsCounter = Callable[[str, int], None]


class UnitsScanner:
    """The last token total an answer states, found while its bytes stream past.

    A regex over a sliding window rather than a JSON parser, because an answer may be a stream
    of server-sent events or JSON too large to hold: Gemini repeats a running total in every
    event and OpenAI states it once at the end, so the last complete match is the total. A match
    cut by a chunk boundary is found again, whole, with the next chunk, and then wins."""

    def __init__(self) -> None:
        self.units: int | None = None
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        window = self._tail + chunk
        for match in UNITS_RE.finditer(window):
            self.units = int(match.group(1))
        self._tail = window[-SCAN_TAIL:]


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where requests go and the credential they carry there."""

    url: str
    key: str | None = None
    key_header: str = "x-goog-api-key"
    service: str | None = None
    timeout: httpx.Timeout = field(
        default_factory=lambda: httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=10.0)
    )

    def credential(self) -> dict[str, str]:
        if not self.key:
            return {}
        if self.key_header.lower() == "authorization":
            return {"authorization": f"Bearer {self.key}"}
        return {self.key_header.lower(): self.key}

    @property
    def service_name(self) -> str | None:
        """The service verify sees: configured, else the upstream's host name."""
        return self.service or httpx.URL(self.url).host or None


class Gateway:
    def __init__(
        self,
        verifier: Verifies,
        upstream: Upstream,
        *,
        trust: ProxyTrust | None = None,
        count_units: UnitsCounter | None = None,
        environment: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.verifier = verifier
        self.upstream = upstream
        self.trust = trust or ProxyTrust()
        self.count_units = count_units
        self.environment = environment
        self._transport = transport
        self._base = upstream.url.rstrip("/")
        self._credential = upstream.credential()
        self._service = upstream.service_name
        self._client: httpx.AsyncClient | None = None

    def app(self, lifespans: Iterable[Callable[[], object]] = ()) -> Starlette:
        """The ASGI app; `lifespans` are called at start-up (e.g. the service's `start`)."""

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            for start in lifespans:
                start()
            async with self._new_client() as client:
                self._client = client
                yield
            self._client = None

        route = Route("/{path:path}", self.handle, methods=METHODS)
        return Starlette(routes=[route], lifespan=lifespan)

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.upstream.timeout,
            transport=self._transport,
            follow_redirects=False,
            trust_env=False,
        )

    async def handle(self, request: Request) -> Response:
        if _is_preflight(request):
            # Browsers send CORS preflights without credentials: the upstream answers them,
            # unverified and without the upstream key, so keys restricted to referrers work.
            return await self.forward(request, None, None)
        key = credentials.key_from(request.headers, request.url.query)
        if not key:
            return refused(http_verdicts.refusal_for_missing_key())
        peer = request.client.host if request.client else None
        origin = credentials.origin_from(
            request.headers,
            self.trust.client_ip(peer, request.headers),
            request.url.path,
            self._service,
        )
        request_to_verify = origin.verify_request(key, self.environment)
        try:
            result = await anyio.to_thread.run_sync(self.verifier.verify, request_to_verify)
        except Exception as exc:  # the store is down: say so, and never pass unverified
            log.error("verify failed on %s: %s", request.url.path, type(exc).__name__)
            return error_answer(503, "UNAVAILABLE", "Key verification is unavailable.")
        refusal = http_verdicts.refusal(result)
        if refusal is not None:
            return refused(refusal)
        return await self.forward(request, result, key)

    async def forward(
        self, request: Request, result: VerifyResult | None, key: str | None
    ) -> Response:
        """`result` and `key` are None for a CORS preflight: no upstream key, limits or units."""
        assert self._client is not None, "the gateway app was not started (lifespan)"
        upstream_request = self._client.build_request(
            request.method,
            self._upstream_url(request),
            headers=self._upstream_headers(request, with_credential=result is not None),
            content=_body(request),
        )
        try:
            answer = await self._client.send(upstream_request, stream=True)
        except httpx.TimeoutException:
            log.warning("upstream timed out on %s %s", request.method, request.url.path)
            return error_answer(504, "DEADLINE_EXCEEDED", "The upstream API did not answer.")
        except httpx.TransportError as exc:
            log.warning("upstream unreachable on %s: %s", request.url.path, type(exc).__name__)
            return error_answer(502, "UNAVAILABLE", "The upstream API is unreachable.")
        except ClientDisconnect:
            # The client left while its body was streaming upstream: nobody is there to answer.
            # 499 is nginx's "client closed request", so the access log says what happened.
            return Response(status_code=499)
        metered = key if result is not None else None
        response = StreamingResponse(self._relay(answer, metered), answer.status_code)
        dropped = NOT_DOWNSTREAM | connection_options(answer.headers.get("connection", ""))
        # Raw pairs, not a dict: repeated headers (Set-Cookie, Vary) must all reach the client.
        response.raw_headers = [
            (name, value)
            for name, value in answer.headers.raw
            if name.lower().decode() not in dropped
        ]
        limits = http_verdicts.rate_limit_headers(result.limits) if result else {}
        response.raw_headers += [
            (name.lower().encode(), value.encode()) for name, value in limits.items()
        ]
        return response

    async def _relay(self, answer: httpx.Response, key: str | None) -> AsyncIterator[bytes]:
        """The upstream's bytes as they come; units counted under `key` however it ends."""
        scanner = UnitsScanner() if key is not None and _is_metered(answer) else None
        try:
            async for chunk in answer.aiter_raw():
                if scanner is not None:
                    scanner.feed(chunk)
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                await answer.aclose()
                if key is not None and scanner is not None and scanner.units:
                    await self._count(key, scanner.units)

    async def _count(self, key: str, units: int) -> None:
        if self.count_units is None:
            return
        try:
            await anyio.to_thread.run_sync(self.count_units, key, units)
        except Exception as exc:  # metering must never break an answer already sent
            log.error("could not count %d units: %s", units, type(exc).__name__)

    def _upstream_url(self, request: Request) -> str:
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        query = credentials.without_key(request.url.query)
        return f"{self._base}{raw_path.decode('latin-1')}{'?' + query if query else ''}"

    def _upstream_headers(
        self, request: Request, *, with_credential: bool
    ) -> list[tuple[str, str]]:
        dropped = NOT_UPSTREAM | connection_options(request.headers.get("connection", ""))
        headers = [(name, value) for name, value in request.headers.items() if name not in dropped]
        # Units are read from the answer's bytes, so ask for them uncompressed.
        headers.append(("accept-encoding", "identity"))
        if with_credential:
            headers.extend(self._credential.items())
        return headers


def connection_options(connection: str) -> frozenset[str]:
    """Headers that the `Connection` header names are hop-by-hop too (RFC 9110 §7.6.1)."""
    return frozenset(option.strip().lower() for option in connection.split(",") if option.strip())


def _body(request: Request) -> AsyncIterator[bytes] | None:
    """The request body as a stream, or None when there is none (so no chunked empty body)."""
    headers = request.headers
    if "content-length" not in headers and "transfer-encoding" not in headers:
        return None
    return request.stream()


def _is_preflight(request: Request) -> bool:
    return request.method == "OPTIONS" and "access-control-request-method" in request.headers


def _is_metered(answer: httpx.Response) -> bool:
    content_type = answer.headers.get("content-type", "")
    return answer.headers.get("content-encoding", "identity") == "identity" and any(
        kind in content_type for kind in METERED_TYPES
    )


def refused(refusal: Refusal) -> Response:
    headers = {**refusal.headers, "content-type": "application/json; charset=UTF-8"}
    return Response(refusal.body_bytes(), refusal.status, headers)


def error_answer(status: int, canonical: str, message: str) -> Response:
    body = {"error": {"code": status, "status": canonical, "message": message}}
    return Response(orjson.dumps(body), status, media_type="application/json; charset=UTF-8")


def unit_counter(llavero: Llavero) -> UnitsCounter:
    """Units counted through the service in memory (`UsageReports.count_units`), against the
    limits of the key record verify used (cached, so no database read either)."""

    def count_units(key: str, units: int) -> None:
        record = llavero.verifier.record(key)
        if isinstance(record, KeyRecord):
            llavero.usage_reports.count_units(record, units)

    return count_units


def from_settings(
    llavero: Llavero,
    upstream_url: str,
    *,
    key_env: str | None = None,
    key_header: str | None = None,
) -> Gateway:
    """The gateway `llavero gateway` runs: settings for the upstream (`key_env` and `key_header`
    override them), the service's verifier, and units counted through the service as
    `POST /v1/usage:report` counts them, without its database write."""
    settings = llavero.settings
    url = httpx.URL(upstream_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgument("must be an http:// or https:// URL", field="upstream")
    key_env = settings.gateway_upstream_key_env if key_env is None else key_env
    key = os.environ.get(key_env) if key_env else None
    if key_env and not key:
        raise FailedPrecondition(
            f"set the environment variable {key_env} to the upstream's key, or name another "
            "with --upstream-key-env ('' for an upstream that needs none)",
            field="gateway_upstream_key_env",
        )
    upstream = Upstream(
        upstream_url,
        key=key,
        key_header=key_header or settings.gateway_upstream_key_header,
        service=settings.gateway_service,
        timeout=httpx.Timeout(
            connect=10.0, read=settings.gateway_read_timeout_seconds, write=60.0, pool=10.0
        ),
    )
    return Gateway(
        llavero.verifier,
        upstream,
        trust=ProxyTrust(settings.trusted_proxies),
        count_units=unit_counter(llavero),
        environment=settings.gateway_environment,
    )
