"""Forward auth: a reverse proxy asks Llavero about each request before passing it on.

nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz` (HTTP service) all send a
subrequest carrying the client's headers; what differs is where the original URI travels
(its path names the API method, its query may hold `?key=`):

| proxy | original URI |
| --- | --- |
| nginx | `X-Original-URI` (set in the config) |
| Traefik | `X-Forwarded-Uri` |
| Envoy | the subrequest's path after `path_prefix` |

nginx passes on only 2xx, 401 and 403 from the subrequest; with `?rate_limited_status=403` a
rate-limit refusal answers 403 and carries `X-Llavero-Status: 429` and `Retry-After`, which the
shipped nginx configuration (deploy/nginx/llavero.conf) turns back into a 429.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from llavero.core.verify import VerifyRequest
from llavero.edges import answers, credentials
from llavero.edges.answers import Refusal, Verifies
from llavero.edges.proxy_trust import ProxyTrust

FORWARD_AUTH_PATH: Final = "/v1/forward-auth"
SERVICE_HEADER: Final = "x-llavero-service"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the proxy gets back: status, headers and (for refusals) a Google-style body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def original_uri(headers: Mapping[str, str], own_path: str, own_query: str) -> str:
    """The URI the client asked the proxy for (path and query)."""
    for name in ("x-original-uri", "x-forwarded-uri"):
        if headers.get(name):
            return headers[name]
    rest = own_path[len(FORWARD_AUTH_PATH) :] if own_path.startswith(FORWARD_AUTH_PATH) else ""
    return f"{rest or '/'}{'?' + own_query if own_query else ''}"


def original_service(headers: Mapping[str, str]) -> str | None:
    """The API service the proxy protects: `X-Llavero-Service` as the proxy sets it, else the
    host the client called."""
    host = headers.get(SERVICE_HEADER) or headers.get("x-forwarded-host") or None
    return host.split(":", 1)[0].strip() if host else None


class ForwardAuth:
    def __init__(self, verifier: Verifies, trust: ProxyTrust | None = None) -> None:
        """`trust`: the proxies whose headers name the client when `peer` is one of them;
        none when the peer handed to `check` is already the client (`llavero serve`)."""
        self.verifier = verifier
        self.trust = trust or ProxyTrust()

    def check(
        self,
        headers: Mapping[str, str],
        peer: str | None,
        own_path: str,
        own_query: str,
        rate_limited_status: int = 429,
    ) -> Answer:
        """Verify the key of the original request; allow with identity headers or refuse."""
        uri = urlsplit(original_uri(headers, own_path, own_query))
        key = credentials.key_from(headers, uri.query)
        if not key:
            return self.refuse(answers.refusal_for_missing_key(), rate_limited_status)
        origin = credentials.origin_from(
            headers, self.trust.client_ip(peer, headers), uri.path, original_service(headers)
        )
        result = self.verifier.verify(VerifyRequest.for_context(key, origin))
        refusal = answers.refusal(result)
        if refusal is None:
            return Answer(200, answers.identity_headers(result))
        return self.refuse(refusal, rate_limited_status)

    @staticmethod
    def refuse(refusal: Refusal, rate_limited_status: int) -> Answer:
        """The refusal, with its intended status and body also in headers for nginx, which
        drops the subrequest's body and any status but 401 and 403."""
        body = refusal.body_bytes()
        headers = {
            **refusal.headers,
            "X-Llavero-Status": str(refusal.status),
            "X-Llavero-Code": refusal.code,
            "X-Llavero-Error": body.decode(),
            "Content-Type": "application/json; charset=UTF-8",
        }
        status = rate_limited_status if refusal.status == 429 else refusal.status
        return Answer(status, headers, body)
