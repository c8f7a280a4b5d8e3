"""`ios_bundle_ids`: the calling iOS app's bundle identifier must be one of these, exactly."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from llavero.core.codes import Code
from llavero.core.context import RequestContext
from llavero.core.restrictions._kind import Kind, RuleCheck, refused, string
from llavero.errors import InvalidArgument

NAME: Final = "ios_bundle_ids"

_BUNDLE_ID_RE: Final = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def normalize_entry(value: Any, field: str) -> str:
    bundle_id = string(value, field)
    if not _BUNDLE_ID_RE.fullmatch(bundle_id):
        raise InvalidArgument(
            "must be a reverse-DNS bundle identifier such as com.example.app "
            "(letters, digits, '-' and '.')",
            field=field,
        )
    return bundle_id


class IosMatcher:
    __slots__ = ("_bundle_ids",)

    def __init__(self, bundle_ids: Iterable[str]) -> None:
        self._bundle_ids = frozenset(bundle_ids)

    def allows(self, ctx: RequestContext) -> bool:
        return ctx.ios_bundle_id in self._bundle_ids

    def explain(self, ctx: RequestContext) -> RuleCheck:
        bundle_id = ctx.ios_bundle_id
        if not bundle_id:
            return refused(NAME, "the request carries no iOS bundle identifier")
        if bundle_id in self._bundle_ids:
            return RuleCheck(NAME, True, bundle_id, f"{bundle_id} is an allowed iOS app")
        return refused(NAME, f"{bundle_id} is not an allowed iOS app")


KIND: Final = Kind(
    name=NAME,
    code=Code.APP_NOT_ALLOWED,
    application=True,
    normalize_entry=normalize_entry,
    compile=IosMatcher,
    context=("ios_bundle_id",),
    form="lines",
    badge="ios_bundle_ids",
    description="iOS bundle identifiers the calling app must have",
)
