"""Who the client is: the one reader of proxy trust (`LLAVERO_TRUSTED_PROXIES`, docs/security.md).

A connection's own address is the client's, unless it comes from a listed proxy: then the
proxy's `X-Forwarded-For`, `Forwarded` (RFC 7239) or `X-Real-IP` is read right to left, past
every listed hop, and the first hop that is not listed is the client. `llavero serve` (through
`ClientAddress`), forward auth, the gateway and the middleware all ask this module.

A proxy may pass on a header it does not write itself, so a client behind it could fill that
header in: when the headers present name different clients, none of them is believed and the
client is the proxy's own address. A hop that is no IP address (garbage, `unknown`, an
obfuscated `_name`) ends the walk: the hop that reported it is the client.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR: Final = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)
SCHEMES: Final = frozenset({"http", "https"})
WS_SCHEMES: Final = {"http": "ws", "https": "wss"}


def parse_address(text: str) -> Address | None:
    """An address as proxies write one: `203.0.113.5`, `203.0.113.5:443`, `2001:db8::1`,
    `[2001:db8::1]:443`, quoted in `Forwarded`; IPv4-mapped IPv6 as its IPv4. None otherwise."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_hops(value: str) -> list[str]:
    """The `for=` of each element of a `Forwarded` header, in order; an element without one
    (a proxy that told only `proto=`) names no hop."""
    matches = (FORWARDED_FOR.search(element.strip()) for element in value.split(","))
    return [match.group(1) for match in matches if match]


def comma_hops(value: str) -> list[str]:
    return [hop for hop in (hop.strip() for hop in value.split(",")) if hop]


class ProxyTrust:
    """The listed proxies (addresses and CIDRs), and the client address they vouch for."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs
        )

    def trusts(self, address: str | Address | None) -> bool:
        if not self.networks or address is None:
            return False
        ip = address if not isinstance(address, str) else parse_address(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client_ip(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """The peer, unless it is a listed proxy: then the client its headers name."""
        if not self.trusts(peer):
            return peer
        assert peer is not None
        claims = {
            self._walk(peer, hops)
            for name, split in (
                ("x-forwarded-for", comma_hops),
                ("forwarded", forwarded_hops),
                ("x-real-ip", comma_hops),
            )
            if (hops := split(headers.get(name, "")))
        }
        if len(claims) == 1:
            return claims.pop()
        return str(parse_address(peer) or peer)

    def _walk(self, peer: str, hops: list[str]) -> str:
        """Right to left past the listed hops; the first unlisted hop is the client. All
        listed: the left-most. A hop that is no address: the listed hop that reported it."""
        reporter = str(parse_address(peer) or peer)
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                return reporter
            if not self.trusts(address):
                return str(address)
            reporter = str(address)
        return reporter

    def scheme(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """`X-Forwarded-Proto` (or `Forwarded`'s `proto=`) of a listed proxy, else None."""
        if not self.trusts(peer):
            return None
        proto = comma_hops(headers.get("x-forwarded-proto", ""))
        if not proto:
            found = re.findall(r'proto\s*=\s*"?([a-zA-Z]+)', headers.get("forwarded", ""))
            proto = found[-1:]
        scheme = proto[-1].lower() if proto else None
        return scheme if scheme in SCHEMES else None


def joined_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict of lowercase names; a repeated header's values joined with ", "
    (RFC 9110 §5.3), so no second `X-Forwarded-For` or key header hides behind the first."""
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name, value = name_bytes.decode("latin-1").lower(), value_bytes.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class ClientAddress:
    """ASGI middleware: the scope's client and scheme as the listed proxies vouch for them, so
    everything behind it (audit log, sign-in, Secure cookies, forward auth) sees one answer."""

    def __init__(self, app: ASGIApp, trust: ProxyTrust) -> None:
        self.app = app
        self.trust = trust

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self.trust.trusts(client[0]):
            headers = joined_headers(scope["headers"])
            scope = dict(scope)
            scope["client"] = (self.trust.client_ip(client[0], headers), client[1])
            if scheme := self.trust.scheme(client[0], headers):
                scope["scheme"] = WS_SCHEMES[scheme] if scope["type"] == "websocket" else scheme
        await self.app(scope, receive, send)
