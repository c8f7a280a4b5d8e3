"""What an incoming HTTP request says about itself: its key and verify's context.

Shared by the gateway, forward auth and the middleware. The key is looked for where Gemini's
clients send theirs (`x-goog-api-key`, `?key=`) and where most other clients do
(`Authorization: Bearer`, `X-API-Key`). The client IP honours `X-Forwarded-For` only from peers
in `settings.trusted_proxies`, read right to left as proxies append to it.

`?key=` puts a key into URLs, and so into access logs: servers install
`llavero.logs.install_access_log_filter`, and `without_key` keeps it out of upstream URLs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import parse_qsl, urlencode

from llavero.restrictions import RequestContext

QUERY_KEY: Final = "key"
KEY_HEADERS: Final = ("x-goog-api-key", "authorization", "x-api-key")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def key_from(headers: Mapping[str, str], query: str) -> str | None:
    """The key of a request, first found of: x-goog-api-key, ?key=, Bearer, X-API-Key.

    `headers` must answer lowercase names (Starlette's Headers, or a dict built lowercase)."""
    key = headers.get("x-goog-api-key")
    if key:
        return key.strip()
    if query:
        for name, value in parse_qsl(query, keep_blank_values=False):
            if name == QUERY_KEY:
                return value.strip()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


def without_key(query: str) -> str:
    """The query string minus `key=`, so it reaches neither the upstream nor a log."""
    if QUERY_KEY not in query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(name, value) for name, value in pairs if name != QUERY_KEY])


def api_method(path: str) -> str | None:
    """Google's custom-method verb: `models/gemini-2.5-flash:generateContent` → generateContent.

    Paths without a `:verb` name no method; a key whose api_targets list methods refuses them."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    _, colon, verb = last.rpartition(":")
    return verb if colon and verb else None


class ProxyTrust:
    """Which peers may tell us the client's address (`X-Forwarded-For`, `X-Real-IP`)."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in cidrs
        )

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_ip(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """The peer, unless it is a trusted proxy: then the last untrusted hop it reports."""
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",")]
        hops = [hop for hop in hops if hop]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        if hops:
            return hops[0]
        return headers.get("x-real-ip", "").strip() or peer


def origin_from(
    headers: Mapping[str, str], ip: str | None, path: str, service: str | None
) -> RequestContext:
    """The context verify checks restrictions against, from the headers Google's SDKs send."""
    return RequestContext(
        ip=ip,
        referrer=headers.get("referer") or None,
        android_package=headers.get("x-android-package") or None,
        android_cert=headers.get("x-android-cert") or None,
        ios_bundle_id=headers.get("x-ios-bundle-identifier") or None,
        service=service,
        method=api_method(path),
    )


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
