"""`allowed_referrers`: the request's referrer must match one of these website patterns, with
Google's semantics (a `*.` subdomain wildcard, `*` in paths, default ports). No maintained
library implements them, so they are hand-written; all patterns become one compiled regex.
Explanations never repeat a referrer's path or query, which may carry secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

from llavero.core.codes import Code
from llavero.core.context import RequestContext
from llavero.core.restrictions._kind import DNS_LABEL, Kind, RuleCheck, refused, string
from llavero.errors import InvalidArgument

NAME: Final = "allowed_referrers"
MAX_REFERRER_LENGTH: Final = 2048

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HOST_RE: Final = re.compile(rf"(?:\*\.)?{DNS_LABEL}(?:\.{DNS_LABEL})*")
_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_PATH_RE: Final = re.compile(r"/[^\s?#]*")


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


def normalize_entry(value: Any, field: str) -> str:
    return _parse_pattern(string(value, field, MAX_REFERRER_LENGTH), field).canonical


def _parse_pattern(text: str, field: str) -> _ReferrerPattern:
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


class ReferrerMatcher:
    __slots__ = ("_any", "_each")

    def __init__(self, patterns: Iterable[str]) -> None:
        each = [(re.compile(_parse_pattern(p, NAME).regex()), p) for p in patterns]
        self._each = tuple(each)
        self._any = re.compile("|".join(regex.pattern for regex, _ in each))

    def allows(self, ctx: RequestContext) -> bool:
        referrer = _parse_referrer(ctx.referrer)
        return referrer is not None and self._any.fullmatch(referrer.canonical) is not None

    def explain(self, ctx: RequestContext) -> RuleCheck:
        if not ctx.referrer:
            return refused(NAME, "the request carries no referrer")
        referrer = _parse_referrer(ctx.referrer)
        if referrer is None:
            return refused(NAME, "the referrer is not an absolute http(s) URL")
        for regex, pattern in self._each:
            if regex.fullmatch(referrer.canonical):
                reason = f"the referrer from {referrer.origin} matches {pattern}"
                return RuleCheck(NAME, True, pattern, reason)
        return refused(NAME, f"the referrer from {referrer.origin} matches no allowed pattern")


KIND: Final = Kind(
    name=NAME,
    code=Code.REFERRER_NOT_ALLOWED,
    application=True,
    normalize_entry=normalize_entry,
    compile=ReferrerMatcher,
    context=("referrer",),
    form="lines",
    badge="referrers",
    description="website patterns the request's referrer must match",
)
