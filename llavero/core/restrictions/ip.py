"""`allowed_ips`: the client's address must be one of these addresses or inside one of these
CIDR ranges. Parsed by the standard `ipaddress` module, matched as integer masks per version."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Final

from llavero.core.codes import Code
from llavero.core.context import RequestContext
from llavero.core.restrictions._kind import Kind, RuleCheck, refused, string
from llavero.errors import InvalidArgument

NAME: Final = "allowed_ips"

_IpRule = tuple[int, int, str]  # network as int, netmask as int, rule as written
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalize_entry(value: Any, field: str) -> str:
    """A bare address or a full-length prefix is stored as the bare address."""
    network = parse_network(string(value, field), field)
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def parse_network(text: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Refuse host bits (10.0.0.1/24) rather than guess which of two meanings was intended.

    IPv4-mapped IPv6 rules (::ffff:203.0.113.0/120) become their IPv4 form, so they match the
    client IP however the gateway spells it.
    """
    if "%" in text:
        raise InvalidArgument("must not carry an IPv6 zone (%...)", field=field)
    try:
        network = ipaddress.ip_network(text)
    except ValueError:
        try:
            interface = ipaddress.ip_interface(text)
        except ValueError:
            raise InvalidArgument(
                "is not an IPv4/IPv6 address or CIDR range", field=field
            ) from None
        raise InvalidArgument(
            f"has host bits set; write {interface.network} for the range "
            f"or {interface.ip} for the single address",
            field=field,
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _parse_client_ip(value: object) -> _Address | None:
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _first_network(rules: tuple[_IpRule, ...], address: int) -> str | None:
    for network, mask, rule in rules:
        if address & mask == network:
            return rule
    return None


class IpMatcher:
    __slots__ = ("_v4", "_v6")

    def __init__(self, rules: Iterable[str]) -> None:
        v4: list[_IpRule] = []
        v6: list[_IpRule] = []
        for rule in rules:
            network = parse_network(rule, NAME)
            compiled = (int(network.network_address), int(network.netmask), rule)
            (v4 if network.version == 4 else v6).append(compiled)
        self._v4 = tuple(v4)
        self._v6 = tuple(v6)

    def _match(self, address: _Address) -> str | None:
        """An IPv4-mapped IPv6 client matches IPv6 rules as written and IPv4 rules as mapped."""
        if isinstance(address, ipaddress.IPv6Address):
            rule = _first_network(self._v6, int(address))
            mapped = address.ipv4_mapped
            if rule is not None or mapped is None:
                return rule
            return _first_network(self._v4, int(mapped))
        return _first_network(self._v4, int(address))

    def allows(self, ctx: RequestContext) -> bool:
        address = _parse_client_ip(ctx.ip)
        return address is not None and self._match(address) is not None

    def explain(self, ctx: RequestContext) -> RuleCheck:
        if not ctx.ip:
            return refused(NAME, "the request carries no client IP address")
        address = _parse_client_ip(ctx.ip)
        if address is None:
            return refused(NAME, "the client IP is not a valid IPv4 or IPv6 address")
        rule = self._match(address)
        if rule is None:
            return refused(NAME, f"{address} is outside every allowed address and range")
        relation = "is inside" if "/" in rule else "matches"
        return RuleCheck(NAME, True, rule, f"{address} {relation} {rule}")


KIND: Final = Kind(
    name=NAME,
    code=Code.IP_NOT_ALLOWED,
    application=True,
    normalize_entry=normalize_entry,
    compile=IpMatcher,
    context=("ip",),
    form="lines",
    badge="ips",
    description="IPv4/IPv6 addresses and CIDR ranges the client IP must match",
)
