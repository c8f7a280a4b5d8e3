"""A restriction kind is one module and one line in `KINDS`: a throwaway kind, declared here and
registered for one test, is enforced by verify, explained by the dry-run, named by the OpenAPI
document and listed in the docs' table of kinds, with no other change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import pytest

from llavero.application import create_app
from llavero.core import restrictions
from llavero.core.codes import Code
from llavero.core.context import RequestContext
from llavero.core.restrictions._kind import Kind, RuleCheck, refused, string
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from tests.test_docs import kinds_table

# --- the throwaway kind: `ip_prefixes`, the client IP as text must start with one of these ---

NAME: Final = "ip_prefixes"


class PrefixMatcher:
    def __init__(self, prefixes: Iterable[str]) -> None:
        self._prefixes = tuple(prefixes)

    def allows(self, ctx: RequestContext) -> bool:
        return ctx.ip is not None and ctx.ip.startswith(self._prefixes)

    def explain(self, ctx: RequestContext) -> RuleCheck:
        rule = next((p for p in self._prefixes if ctx.ip and ctx.ip.startswith(p)), None)
        if rule is None:
            return refused(NAME, "the client IP starts with no allowed prefix")
        return RuleCheck(NAME, True, rule, f"{ctx.ip} starts with {rule}")


KIND: Final = Kind(
    name=NAME,
    code=Code.IP_NOT_ALLOWED,
    application=False,
    normalize_entry=string,
    compile=PrefixMatcher,
    context=("ip",),
    form="lines",
    badge="ip_prefixes",
    description="text prefixes the client IP must start with",
)

# ----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restrictions, "KINDS", (*restrictions.KINDS, KIND))


def new_key(llavero: Llavero, admin: Actor) -> Any:
    project = llavero.projects.create(admin, "Kinds")
    return llavero.keys.create(admin, project.id, restrictions={NAME: [" 203.0.113."]})


def test_the_service_stores_it_normalised(llavero: Llavero, admin: Actor) -> None:
    assert new_key(llavero, admin).key.restrictions == {NAME: ["203.0.113."]}


def test_verify_enforces_it(llavero: Llavero, admin: Actor) -> None:
    key = new_key(llavero, admin).key_string
    allowed = llavero.verifier.verify(VerifyRequest(key, ip="203.0.113.7"))
    refused_ = llavero.verifier.verify(VerifyRequest(key, ip="198.51.100.7"))
    assert (allowed.code, refused_.code) == (Code.VALID, Code.IP_NOT_ALLOWED)


def test_the_dry_run_explains_it(llavero: Llavero, admin: Actor) -> None:
    key_id = new_key(llavero, admin).key.id
    result = llavero.keys.test_restrictions(admin, key_id, {"ip": "198.51.100.7"})
    assert (result.allowed, result.code) == (False, Code.IP_NOT_ALLOWED)
    line = result.checks[-1]
    assert (line.restriction, line.allowed) == (NAME, False)
    result = llavero.keys.test_restrictions(admin, key_id, {"ip": "203.0.113.7"})
    assert (result.checks[-1].matched_rule, result.allowed) == ("203.0.113.", True)


def test_the_api_schema_names_it(llavero: Llavero) -> None:
    schemas = create_app(llavero).openapi()["components"]["schemas"]
    for body in ("KeyCreate", "KeyUpdate"):
        assert (
            f"`{NAME}`: {KIND.description}"
            in schemas[body]["properties"]["restrictions"]["description"]
        )


def test_the_docs_table_lists_it() -> None:
    table = kinds_table(restrictions.KINDS)
    assert table.splitlines()[-1] == f"| `{NAME}` | API | `IP_NOT_ALLOWED` | `ip` |"
