"""`android_apps`: the calling app must be one of these packages, signed with its certificate
(a SHA-1 fingerprint, stored as colon-separated upper-case hex)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from llavero.core.codes import Code
from llavero.core.context import RequestContext
from llavero.core.restrictions._kind import Kind, RuleCheck, record, refused, string
from llavero.errors import InvalidArgument

NAME: Final = "android_apps"

_PACKAGE_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")
_FINGERPRINT_RE: Final = re.compile(r"[0-9A-Fa-f]{40}")


def normalize_entry(value: Any, field: str) -> dict[str, str]:
    app = record(value, field, "package_name", frozenset({"sha1_fingerprint"}))
    package_field = f"{field}.package_name"
    package = string(app["package_name"], package_field)
    if not _PACKAGE_RE.fullmatch(package):
        raise InvalidArgument(
            "must be a Java package name such as com.example.app", field=package_field
        )
    fingerprint_field = f"{field}.sha1_fingerprint"
    if app.get("sha1_fingerprint") is None:
        raise InvalidArgument("is required", field=fingerprint_field)
    compact = _compact_fingerprint(string(app["sha1_fingerprint"], fingerprint_field))
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


class AndroidMatcher:
    __slots__ = ("_apps", "_packages")

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
            return refused(NAME, "the request carries no Android package name")
        if not ctx.android_cert:
            return refused(NAME, "the request carries no signing certificate fingerprint")
        cert = _compact_fingerprint(ctx.android_cert)
        if cert is None:
            return refused(NAME, "the signing certificate is not a SHA-1 fingerprint")
        rule = f"{package} {_colon_hex(cert)}"
        if (package, cert) in self._apps:
            reason = f"{package} signed with {_colon_hex(cert)} is an allowed app"
            return RuleCheck(NAME, True, rule, reason)
        if package in self._packages:
            return refused(NAME, f"{package} is allowed only with another certificate")
        return refused(NAME, f"{package} is not an allowed Android app")


KIND: Final = Kind(
    name=NAME,
    code=Code.APP_NOT_ALLOWED,
    application=True,
    normalize_entry=normalize_entry,
    compile=AndroidMatcher,
    context=("android_package", "android_cert"),
    form="rows",
    badge="android_apps",
    description="Android apps: package name and SHA-1 signing certificate",
)
