"""API key restrictions with Google Cloud API Keys semantics (see docs/restrictions.md).

`normalize` validates what a user sends and returns the canonical form that is stored.
`compile_restrictions` turns that form, once per cache load, into matchers whose `check` costs a
few microseconds on the verify hot path: integer masks per IP version, one compiled regex for all
referrer patterns, frozensets for apps and a dict of method regexes per service. No maintained
library implements Google's referrer patterns or method wildcards, so those are hand-written
here; addresses and networks are parsed by the standard `ipaddress` module.

A request that lacks what a restriction needs (no IP, no referrer, ...) is refused, never waved
through. Explanations never repeat a referrer's path or query, which may carry secrets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol
from urllib.parse import urlsplit

from llavero.core import text
from llavero.core.codes import Code
from llavero.errors import InvalidArgument

ALLOWED_IPS: Final = "allowed_ips"
ALLOWED_REFERRERS: Final = "allowed_referrers"
ANDROID_APPS: Final = "android_apps"
IOS_BUNDLE_IDS: Final = "ios_bundle_ids"
API_TARGETS: Final = "api_targets"
APPLICATION_RESTRICTIONS: Final = (ALLOWED_IPS, ALLOWED_REFERRERS, ANDROID_APPS, IOS_BUNDLE_IDS)

IP_NOT_ALLOWED: Final = Code.IP_NOT_ALLOWED
REFERRER_NOT_ALLOWED: Final = Code.REFERRER_NOT_ALLOWED
APP_NOT_ALLOWED: Final = Code.APP_NOT_ALLOWED
API_NOT_ALLOWED: Final = Code.API_NOT_ALLOWED

MAX_ENTRIES: Final = 100
MAX_LENGTH: Final = 255
MAX_REFERRER_LENGTH: Final = 2048

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_RE: Final = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_PATH_RE: Final = re.compile(r"/[^\s?#]*")
_ANDROID_PACKAGE_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")
_FINGERPRINT_RE: Final = re.compile(r"[0-9A-Fa-f]{40}")
_BUNDLE_ID_RE: Final = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SERVICE_RE: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_METHOD_RE: Final = re.compile(r"[A-Za-z0-9_.*]+")


# --- validation and canonical form -------------------------------------------------------------


def normalize(data: Mapping[str, Any] | None, field: str = "restrictions") -> dict[str, Any]:
    """Validate user input and return its canonical, JSON-able form ({} means unrestricted).

    Idempotent, so stored restrictions can be normalised again without change.
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidArgument("must be an object", field=field)
    for name in data:
        if name not in _NORMALIZERS:
            known = ", ".join(_NORMALIZERS)
            raise InvalidArgument(
                f"is not a known restriction (known: {known})", field=text.child(field, name)
            )
    result: dict[str, Any] = {}
    for name, normalize_entry in _NORMALIZERS.items():
        path = f"{field}.{name}"
        values = [
            normalize_entry(e, f"{path}[{i}]") for i, e in enumerate(_list(data.get(name), path))
        ]
        if values:
            result[name] = _dedupe(values)
    kinds = [kind for kind in APPLICATION_RESTRICTIONS if kind in result]
    if len(kinds) > 1:
        raise InvalidArgument(
            f"a key takes at most one application restriction, got {' and '.join(kinds)}",
            field=field,
        )
    return result


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InvalidArgument("must be a list", field=field)
    if len(value) > MAX_ENTRIES:
        raise InvalidArgument(
            f"has {len(value)} entries, at most {MAX_ENTRIES} allowed", field=field
        )
    return list(value)


def _dedupe(values: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for value in values:
        if value not in unique:
            unique.append(value)
    return unique


def _text(value: Any, field: str, max_length: int = MAX_LENGTH) -> str:
    if not isinstance(value, str):
        raise InvalidArgument("must be a string", field=field)
    text = value.strip()
    if not text:
        raise InvalidArgument("must not be empty", field=field)
    if len(text) > max_length:
        raise InvalidArgument(f"is longer than {max_length} characters", field=field)
    return text


def _object(value: Any, field: str, required: str, optional: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgument("must be an object", field=field)
    for name in value:
        if name != required and name not in optional:
            raise InvalidArgument("is not a known field", field=text.child(field, name))
    if value.get(required) is None:
        raise InvalidArgument("is required", field=f"{field}.{required}")
    return value


def _normalize_ip(value: Any, field: str) -> str:
    """A bare address or a full-length prefix is stored as the bare address."""
    text = _text(value, field)
    network = _parse_network(text, field)
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _parse_network(text: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
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


class _ReferrerPattern(NamedTuple):
    scheme: str | None
    host: str
    port: int | None
    path: str | None

    @property
    def canonical(self) -> str:
        scheme = f"{self.scheme}://" if self.scheme else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{scheme}{self.host}{port}{self.path or ''}"

    def regex(self) -> str:
        """Match against the canonical request form `scheme://host:port/path`."""
        if self.host.startswith("*."):
            host = r"(?:[a-z0-9_-]+\.)+" + re.escape(self.host[2:])
        else:
            host = re.escape(self.host)
        schemes = (self.scheme,) if self.scheme else tuple(_DEFAULT_PORTS)
        origins = "|".join(f"{s}://{host}:{self.port or _DEFAULT_PORTS[s]}" for s in schemes)
        path = "/.*" if self.path is None else ".*".join(map(re.escape, self.path.split("*")))
        return f"(?:{origins}){path}"


def _normalize_referrer(value: Any, field: str) -> str:
    return _parse_referrer_pattern(_text(value, field, MAX_REFERRER_LENGTH), field).canonical


def _parse_referrer_pattern(text: str, field: str) -> _ReferrerPattern:
    scheme: str | None = None
    rest = text
    scheme_match = _SCHEME_RE.match(text)
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        if scheme not in _DEFAULT_PORTS:
            raise InvalidArgument("scheme must be http:// or https:// (or left out)", field=field)
        rest = text[scheme_match.end() :]
    hostport, slash, path = rest.partition("/")
    host, colon, port_text = hostport.lower().partition(":")
    if not _HOST_RE.fullmatch(host):
        raise InvalidArgument(
            "host must be a domain name, optionally starting with a '*.' wildcard", field=field
        )
    port: int | None = None
    if colon:
        if not _PORT_RE.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            raise InvalidArgument("port must be a number from 1 to 65535", field=field)
        port = int(port_text)
        if scheme is not None and port == _DEFAULT_PORTS[scheme]:
            port = None
    full_path = slash + path if slash else None
    if full_path is not None and not _PATH_RE.fullmatch(full_path):
        raise InvalidArgument("path must not contain spaces, '?' or '#'", field=field)
    return _ReferrerPattern(scheme, host, port, full_path)


def _normalize_android_app(value: Any, field: str) -> dict[str, str]:
    app = _object(value, field, "package_name", frozenset({"sha1_fingerprint"}))
    package_field = f"{field}.package_name"
    package = _text(app["package_name"], package_field)
    if not _ANDROID_PACKAGE_RE.fullmatch(package):
        raise InvalidArgument(
            "must be a Java package name such as com.example.app", field=package_field
        )
    fingerprint_field = f"{field}.sha1_fingerprint"
    if app.get("sha1_fingerprint") is None:
        raise InvalidArgument("is required", field=fingerprint_field)
    compact = _compact_fingerprint(_text(app["sha1_fingerprint"], fingerprint_field))
    if compact is None:
        raise InvalidArgument(
            "must be a SHA-1 fingerprint: 40 hex digits, colons optional", field=fingerprint_field
        )
    return {"package_name": package, "sha1_fingerprint": _colon_hex(compact)}


def _compact_fingerprint(value: object) -> str | None:
    """Upper-case hex without separators, or None when it is not a SHA-1 fingerprint."""
    if not isinstance(value, str):
        return None
    compact = value.replace(":", "")
    return compact.upper() if _FINGERPRINT_RE.fullmatch(compact) else None


def _colon_hex(compact: str) -> str:
    return ":".join(compact[i : i + 2] for i in range(0, len(compact), 2))


def _normalize_bundle_id(value: Any, field: str) -> str:
    bundle_id = _text(value, field)
    if not _BUNDLE_ID_RE.fullmatch(bundle_id):
        raise InvalidArgument(
            "must be a reverse-DNS bundle identifier such as com.example.app "
            "(letters, digits, '-' and '.')",
            field=field,
        )
    return bundle_id


def _normalize_api_target(value: Any, field: str) -> dict[str, Any]:
    target = _object(value, field, "service", frozenset({"methods"}))
    service_field = f"{field}.service"
    service = _text(target["service"], service_field).lower()
    if not _SERVICE_RE.fullmatch(service):
        raise InvalidArgument(
            "must be a service name such as generativelanguage.googleapis.com", field=service_field
        )
    methods_field = f"{field}.methods"
    methods = [
        _normalize_method(m, f"{methods_field}[{i}]")
        for i, m in enumerate(_list(target.get("methods"), methods_field))
    ]
    normalized: dict[str, Any] = {"service": service}
    if methods:
        normalized["methods"] = _dedupe(methods)
    return normalized


def _normalize_method(value: Any, field: str) -> str:
    method = _text(value, field)
    if not _METHOD_RE.fullmatch(method):
        raise InvalidArgument(
            "may contain only letters, digits, '_', '.' and the '*' wildcard", field=field
        )
    return method


_NORMALIZERS: Final[dict[str, Callable[[Any, str], Any]]] = {
    ALLOWED_IPS: _normalize_ip,
    ALLOWED_REFERRERS: _normalize_referrer,
    ANDROID_APPS: _normalize_android_app,
    IOS_BUNDLE_IDS: _normalize_bundle_id,
    API_TARGETS: _normalize_api_target,
}


# --- request context and results ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestContext:
    ip: str | None = None
    referrer: str | None = None
    android_package: str | None = None
    android_cert: str | None = None
    ios_bundle_id: str | None = None
    service: str | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One line of a dry-run explanation."""

    restriction: str
    allowed: bool
    matched_rule: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    code: Code | None
    checks: tuple[RuleCheck, ...]


# --- matchers ----------------------------------------------------------------------------------


class _Matcher(Protocol):
    @property
    def code(self) -> Code: ...

    def allows(self, ctx: RequestContext) -> bool: ...

    def explain(self, ctx: RequestContext) -> RuleCheck: ...


_IpRule = tuple[int, int, str]  # network as int, netmask as int, rule as written
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


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


class _IpMatcher:
    __slots__ = ("_v4", "_v6")
    code = IP_NOT_ALLOWED

    def __init__(self, rules: Iterable[str]) -> None:
        v4: list[_IpRule] = []
        v6: list[_IpRule] = []
        for rule in rules:
            network = _parse_network(rule, ALLOWED_IPS)
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
            return _refused(ALLOWED_IPS, "the request carries no client IP address")
        address = _parse_client_ip(ctx.ip)
        if address is None:
            return _refused(ALLOWED_IPS, "the client IP is not a valid IPv4 or IPv6 address")
        rule = self._match(address)
        if rule is None:
            return _refused(ALLOWED_IPS, f"{address} is outside every allowed address and range")
        relation = "is inside" if "/" in rule else "matches"
        return RuleCheck(ALLOWED_IPS, True, rule, f"{address} {relation} {rule}")


class _Referrer(NamedTuple):
    origin: str
    canonical: str


def _parse_referrer(value: object) -> _Referrer | None:
    """`scheme://host:port/path` of an absolute http(s) URL; query and fragment are dropped."""
    if not isinstance(value, str) or not value.isascii():
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    origin = f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}"
    return _Referrer(origin, origin + (parts.path or "/"))


class _ReferrerMatcher:
    __slots__ = ("_any", "_each")
    code = REFERRER_NOT_ALLOWED

    def __init__(self, patterns: Iterable[str]) -> None:
        each = [
            (re.compile(_parse_referrer_pattern(p, ALLOWED_REFERRERS).regex()), p) for p in patterns
        ]
        self._each = tuple(each)
        self._any = re.compile("|".join(regex.pattern for regex, _ in each))

    def allows(self, ctx: RequestContext) -> bool:
        referrer = _parse_referrer(ctx.referrer)
        return referrer is not None and self._any.fullmatch(referrer.canonical) is not None

    def explain(self, ctx: RequestContext) -> RuleCheck:
        if not ctx.referrer:
            return _refused(ALLOWED_REFERRERS, "the request carries no referrer")
        referrer = _parse_referrer(ctx.referrer)
        if referrer is None:
            return _refused(ALLOWED_REFERRERS, "the referrer is not an absolute http(s) URL")
        for regex, pattern in self._each:
            if regex.fullmatch(referrer.canonical):
                reason = f"the referrer from {referrer.origin} matches {pattern}"
                return RuleCheck(ALLOWED_REFERRERS, True, pattern, reason)
        reason = f"the referrer from {referrer.origin} matches no allowed pattern"
        return _refused(ALLOWED_REFERRERS, reason)


class _AndroidMatcher:
    __slots__ = ("_apps", "_packages")
    code = APP_NOT_ALLOWED

    def __init__(self, apps: Iterable[Mapping[str, str]]) -> None:
        self._apps = frozenset(
            (app["package_name"], app["sha1_fingerprint"].replace(":", "")) for app in apps
        )
        self._packages = frozenset(package for package, _ in self._apps)

    def allows(self, ctx: RequestContext) -> bool:
        return (ctx.android_package, _compact_fingerprint(ctx.android_cert)) in self._apps

    def explain(self, ctx: RequestContext) -> RuleCheck:
        package = ctx.android_package
        if not package:
            return _refused(ANDROID_APPS, "the request carries no Android package name")
        if not ctx.android_cert:
            return _refused(ANDROID_APPS, "the request carries no signing certificate fingerprint")
        cert = _compact_fingerprint(ctx.android_cert)
        if cert is None:
            return _refused(ANDROID_APPS, "the signing certificate is not a SHA-1 fingerprint")
        rule = f"{package} {_colon_hex(cert)}"
        if (package, cert) in self._apps:
            reason = f"{package} signed with {_colon_hex(cert)} is an allowed app"
            return RuleCheck(ANDROID_APPS, True, rule, reason)
        if package in self._packages:
            return _refused(ANDROID_APPS, f"{package} is allowed only with another certificate")
        return _refused(ANDROID_APPS, f"{package} is not an allowed Android app")


class _IosMatcher:
    __slots__ = ("_bundle_ids",)
    code = APP_NOT_ALLOWED

    def __init__(self, bundle_ids: Iterable[str]) -> None:
        self._bundle_ids = frozenset(bundle_ids)

    def allows(self, ctx: RequestContext) -> bool:
        return ctx.ios_bundle_id in self._bundle_ids

    def explain(self, ctx: RequestContext) -> RuleCheck:
        bundle_id = ctx.ios_bundle_id
        if not bundle_id:
            return _refused(IOS_BUNDLE_IDS, "the request carries no iOS bundle identifier")
        if bundle_id in self._bundle_ids:
            reason = f"{bundle_id} is an allowed iOS app"
            return RuleCheck(IOS_BUNDLE_IDS, True, bundle_id, reason)
        return _refused(IOS_BUNDLE_IDS, f"{bundle_id} is not an allowed iOS app")


def _method_regex(pattern: str) -> str:
    """`*` matches anything; a leading `*.` also matches the bare method name."""
    lowered = pattern.lower()
    prefix = ""
    if lowered.startswith("*."):
        prefix, lowered = r"(?:.*\.)?", lowered[2:]
    return prefix + ".*".join(map(re.escape, lowered.split("*")))


class _ApiMatcher:
    __slots__ = ("_each", "_services")
    code = API_NOT_ALLOWED

    def __init__(self, targets: Iterable[Mapping[str, Any]]) -> None:
        methods: dict[str, list[str]] = {}
        all_methods: set[str] = set()
        for target in targets:
            service = target["service"]
            if not target.get("methods"):
                all_methods.add(service)
            methods.setdefault(service, []).extend(target.get("methods", ()))
        self._each = {
            service: tuple((re.compile(_method_regex(p)), p) for p in patterns)
            for service, patterns in methods.items()
            if service not in all_methods
        }
        self._services: dict[str, re.Pattern[str] | None] = {
            service: None
            if service in all_methods
            else re.compile("|".join(_method_regex(p) for p in patterns))
            for service, patterns in methods.items()
        }

    def allows(self, ctx: RequestContext) -> bool:
        service, method = ctx.service, ctx.method
        if not isinstance(service, str) or not service.isascii():
            return False
        key = service.lower()
        if key not in self._services:
            return False
        regex = self._services[key]
        if regex is None:
            return True
        return (
            isinstance(method, str)
            and method.isascii()
            and regex.fullmatch(method.lower()) is not None
        )

    def explain(self, ctx: RequestContext) -> RuleCheck:
        if not ctx.service:
            return _refused(API_TARGETS, "the request names no service")
        service = ctx.service.lower() if ctx.service.isascii() else ctx.service
        if service not in self._services:
            return _refused(API_TARGETS, f"{service} is not an allowed service")
        if service not in self._each:
            return RuleCheck(API_TARGETS, True, service, f"every method of {service} is allowed")
        method = ctx.method
        if not method:
            return _refused(
                API_TARGETS,
                f"only some methods of {service} are allowed and the request names no method",
            )
        if method.isascii():
            for regex, pattern in self._each[service]:
                if regex.fullmatch(method.lower()):
                    rule = f"{service} {pattern}"
                    return RuleCheck(API_TARGETS, True, rule, f"{method} matches {rule}")
        return _refused(API_TARGETS, f"{method} is not an allowed method of {service}")


def _refused(restriction: str, reason: str) -> RuleCheck:
    return RuleCheck(restriction, False, None, reason)


# --- compiled restrictions ---------------------------------------------------------------------


class CompiledRestrictions:
    """Restrictions of one key, ready for the hot path; build with `compile_restrictions`."""

    __slots__ = ("_matchers",)

    def __init__(self, matchers: tuple[_Matcher, ...]) -> None:
        self._matchers = matchers

    @property
    def unrestricted(self) -> bool:
        return not self._matchers

    def check(self, ctx: RequestContext) -> Code | None:
        """None when allowed, else the verify code; the application restriction goes first."""
        for matcher in self._matchers:
            if not matcher.allows(ctx):
                return matcher.code
        return None

    def explain(self, ctx: RequestContext) -> Explanation:
        """The verdict of `check`, with one reasoned line per restriction the key carries."""
        checks = tuple(matcher.explain(ctx) for matcher in self._matchers)
        refusals = (m.code for m, c in zip(self._matchers, checks, strict=True) if not c.allowed)
        return Explanation(next(refusals, None), checks)


UNRESTRICTED: Final = CompiledRestrictions(())

_COMPILERS: Final[dict[str, Callable[[Any], _Matcher]]] = {
    ALLOWED_IPS: _IpMatcher,
    ALLOWED_REFERRERS: _ReferrerMatcher,
    ANDROID_APPS: _AndroidMatcher,
    IOS_BUNDLE_IDS: _IosMatcher,
    API_TARGETS: _ApiMatcher,
}


def compile_restrictions(normalized: Mapping[str, Any]) -> CompiledRestrictions:
    """Build the hot-path matchers once per key load.

    The input is normalised again (a no-op for stored data) so a hand-edited row fails loudly
    instead of compiling into a matcher that lets everything through.
    """
    canonical = normalize(normalized)
    if not canonical:
        return UNRESTRICTED
    return CompiledRestrictions(tuple(_COMPILERS[kind](canonical[kind]) for kind in canonical))
