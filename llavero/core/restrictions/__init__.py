"""API key restrictions with Google Cloud API Keys semantics (see docs/restrictions.md).

Each kind is one module (`ip`, `referrer`, `android`, `ios`, `api_targets`) that declares a
`Kind`: how an entry is validated into its canonical stored form, how the entries compile into a
matcher, how a match is explained, and what the console shows. `KINDS` registers them, in the
order a key's restrictions are checked (the application restriction first): adding a kind is a
new module and one line here.

`normalize` validates what a user sends and returns the canonical form that is stored.
`compile_restrictions` turns that form, once per cache load, into matchers whose `check` costs a
few microseconds on the verify hot path. A request that lacks what a restriction needs (no IP,
no referrer, ...) is refused, never waved through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from llavero.core import text
from llavero.core.codes import Code
from llavero.core.context import RequestContext
from llavero.core.restrictions import android, api_targets, ios, ip, referrer
from llavero.core.restrictions._kind import (
    MAX_ENTRIES,
    MAX_LENGTH,
    Kind,
    Matcher,
    RuleCheck,
    dedupe,
    entries,
)
from llavero.errors import InvalidArgument

KINDS: tuple[Kind, ...] = (ip.KIND, referrer.KIND, android.KIND, ios.KIND, api_targets.KIND)
"""Every restriction kind, in checking order."""

ALLOWED_IPS: Final = ip.NAME
ALLOWED_REFERRERS: Final = referrer.NAME
ANDROID_APPS: Final = android.NAME
IOS_BUNDLE_IDS: Final = ios.NAME
API_TARGETS: Final = api_targets.NAME
APPLICATION_RESTRICTIONS: Final = tuple(kind.name for kind in KINDS if kind.application)
MAX_REFERRER_LENGTH: Final = referrer.MAX_REFERRER_LENGTH


def kinds() -> Mapping[str, Kind]:
    """The registered kinds by name (read at call time, so a test may register one more)."""
    return {kind.name: kind for kind in KINDS}


# --- validation and canonical form -------------------------------------------------------------


def normalize(data: Mapping[str, Any] | None, field: str = "restrictions") -> dict[str, Any]:
    """Validate user input and return its canonical, JSON-able form ({} means unrestricted).

    Idempotent, so stored restrictions can be normalised again without change.
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidArgument("must be an object", field=field)
    known = kinds()
    for name in data:
        if name not in known:
            raise InvalidArgument(
                f"is not a known restriction (known: {', '.join(known)})",
                field=text.child(field, name),
            )
    result: dict[str, Any] = {}
    for name, kind in known.items():
        path = f"{field}.{name}"
        values = [
            kind.normalize_entry(e, f"{path}[{i}]")
            for i, e in enumerate(entries(data.get(name), path))
        ]
        if values:
            result[name] = dedupe(values)
    applications = [name for name, kind in known.items() if kind.application and name in result]
    if len(applications) > 1:
        raise InvalidArgument(
            f"a key takes at most one application restriction, got {' and '.join(applications)}",
            field=field,
        )
    return result


# --- compiled restrictions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Explanation:
    code: Code | None
    checks: tuple[RuleCheck, ...]


class CompiledRestrictions:
    """Restrictions of one key, ready for the hot path; build with `compile_restrictions`."""

    __slots__ = ("_matchers", "unrestricted")

    def __init__(self, matchers: tuple[tuple[Code, Matcher], ...]) -> None:
        self._matchers = matchers
        # An attribute, not a property: every verify reads it, and a property is a Python call.
        self.unrestricted: Final = not matchers

    def check(self, ctx: RequestContext) -> Code | None:
        """None when allowed, else the verify code; the application restriction goes first."""
        for code, matcher in self._matchers:
            if not matcher.allows(ctx):
                return code
        return None

    def explain(self, ctx: RequestContext) -> Explanation:
        """The verdict of `check`, with one reasoned line per restriction the key carries."""
        checks = tuple(matcher.explain(ctx) for _, matcher in self._matchers)
        refusals = (
            code
            for (code, _), check in zip(self._matchers, checks, strict=True)
            if not check.allowed
        )
        return Explanation(next(refusals, None), checks)


UNRESTRICTED: Final = CompiledRestrictions(())


def compile_restrictions(normalized: Mapping[str, Any]) -> CompiledRestrictions:
    """Build the hot-path matchers once per key load.

    The input is normalised again (a no-op for stored data) so a hand-edited row fails loudly
    instead of compiling into a matcher that lets everything through.
    """
    canonical = normalize(normalized)
    if not canonical:
        return UNRESTRICTED
    known = kinds()
    return CompiledRestrictions(
        tuple((known[name].code, known[name].compile(canonical[name])) for name in canonical)
    )


__all__ = [
    "ALLOWED_IPS",
    "ALLOWED_REFERRERS",
    "ANDROID_APPS",
    "API_TARGETS",
    "APPLICATION_RESTRICTIONS",
    "IOS_BUNDLE_IDS",
    "KINDS",
    "MAX_ENTRIES",
    "MAX_LENGTH",
    "MAX_REFERRER_LENGTH",
    "UNRESTRICTED",
    "CompiledRestrictions",
    "Explanation",
    "Kind",
    "RequestContext",
    "RuleCheck",
    "compile_restrictions",
    "kinds",
    "normalize",
]
