"""`GET /v1/forward-auth`: the verdict of a proxied request, for nginx `auth_request`, Traefik
`forwardAuth` and Envoy `ext_authz` (see llavero/edges/forward_auth.py and docs/forward-auth.md).

Envoy sends the original method and path under its `path_prefix`, so every method and every
path below `/v1/forward-auth` answers too. No management token: the proxy calls this with the
client's own key, so it must be reachable only by the proxy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from llavero.api.auth import LlaveroDep, client_ip
from llavero.edges.forward_auth import FORWARD_AUTH_PATH, ForwardAuth
from llavero.errors import InvalidArgument
from llavero.service import Llavero

router = APIRouter(tags=["forward auth"])
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
RATE_LIMITED_STATUSES = (429, 403)
RateLimitedStatus = Annotated[
    int, Query(description="Status of a rate-limit refusal: 429, or 403 for nginx.")
]


def _forward_auth(request: Request, llavero: Llavero) -> ForwardAuth:
    """One per app. It trusts no proxy itself: the app's `ClientAddress` has already put the
    client that `LLAVERO_TRUSTED_PROXIES` vouch for into the request
    (`llavero.edges.proxy_trust`)."""
    state = request.app.state
    if not hasattr(state, "forward_auth"):
        state.forward_auth = ForwardAuth(llavero.verifier)
    checker: ForwardAuth = state.forward_auth
    return checker


@router.get(FORWARD_AUTH_PATH)
@router.api_route(FORWARD_AUTH_PATH, methods=METHODS[1:], include_in_schema=False)
@router.api_route(FORWARD_AUTH_PATH + "/{rest:path}", methods=METHODS, include_in_schema=False)
def forward_auth(
    request: Request, llavero: LlaveroDep, rate_limited_status: RateLimitedStatus = 429
) -> Response:
    """2xx with X-Llavero-Key-Id, X-Llavero-Project and RateLimit-* to allow; 401 (with
    WWW-Authenticate), 403 or 429 (with Retry-After) and a Google-style body to refuse."""
    if rate_limited_status not in RATE_LIMITED_STATUSES:
        raise InvalidArgument("must be 429 or 403", field="rate_limited_status")
    answer = _forward_auth(request, llavero).check(
        request.headers,
        client_ip(request),
        request.url.path,
        request.url.query,
        rate_limited_status,
    )
    return Response(answer.body, answer.status, answer.headers)
