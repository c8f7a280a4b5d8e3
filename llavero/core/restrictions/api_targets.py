"""`api_targets`: the request's service, and method if the target lists methods, must be one of
these. `*` in a method matches anything; all of a service's method patterns are one regex."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from llavero.core.codes import Code
from llavero.core.context import RequestContext
from llavero.core.restrictions._kind import (
    DNS_LABEL,
    Kind,
    RuleCheck,
    dedupe,
    entries,
    record,
    refused,
    string,
)
from llavero.errors import InvalidArgument

NAME: Final = "api_targets"

_SERVICE_RE: Final = re.compile(rf"{DNS_LABEL}(?:\.{DNS_LABEL})*")
_METHOD_RE: Final = re.compile(r"[A-Za-z0-9_.*]+")


def normalize_entry(value: Any, field: str) -> dict[str, Any]:
    target = record(value, field, "service", frozenset({"methods"}))
    service_field = f"{field}.service"
    service = string(target["service"], service_field).lower()
    if not _SERVICE_RE.fullmatch(service):
        raise InvalidArgument(
            "must be a service name such as generativelanguage.googleapis.com", field=service_field
        )
    methods_field = f"{field}.methods"
    methods = [
        _normalize_method(m, f"{methods_field}[{i}]")
        for i, m in enumerate(entries(target.get("methods"), methods_field))
    ]
    normalized: dict[str, Any] = {"service": service}
    if methods:
        normalized["methods"] = dedupe(methods)
    return normalized


def _normalize_method(value: Any, field: str) -> str:
    method = string(value, field)
    if not _METHOD_RE.fullmatch(method):
        raise InvalidArgument(
            "may contain only letters, digits, '_', '.' and the '*' wildcard", field=field
        )
    return method


def _method_regex(pattern: str) -> str:
    """`*` matches anything; a leading `*.` also matches the bare method name."""
    lowered = pattern.lower()
    prefix = ""
    if lowered.startswith("*."):
        prefix, lowered = r"(?:.*\.)?", lowered[2:]
    return prefix + ".*".join(map(re.escape, lowered.split("*")))


class ApiMatcher:
    __slots__ = ("_each", "_services")

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
            return refused(NAME, "the request names no service")
        service = ctx.service.lower() if ctx.service.isascii() else ctx.service
        if service not in self._services:
            return refused(NAME, f"{service} is not an allowed service")
        if service not in self._each:
            return RuleCheck(NAME, True, service, f"every method of {service} is allowed")
        method = ctx.method
        if not method:
            return refused(
                NAME, f"only some methods of {service} are allowed and the request names no method"
            )
        if method.isascii():
            for regex, pattern in self._each[service]:
                if regex.fullmatch(method.lower()):
                    rule = f"{service} {pattern}"
                    return RuleCheck(NAME, True, rule, f"{method} matches {rule}")
        return refused(NAME, f"{method} is not an allowed method of {service}")


KIND: Final = Kind(
    name=NAME,
    code=Code.API_NOT_ALLOWED,
    application=False,
    normalize_entry=normalize_entry,
    compile=ApiMatcher,
    context=("service",),
    form="rows",
    badge="api_targets",
    description="API services, and optionally methods, the key may call",
)
