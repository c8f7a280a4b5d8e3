"""Authorization of every REST operation, for every kind of caller, from one declared policy
(docs/security.md, "Audit log visibility" and docs/api.md, "Roles").

The operations are read from `app.openapi()`: a route added without a line in `POLICY` fails
`test_every_operation_has_a_policy`, so a new route is covered without editing the walk.
Each (operation, caller) pair runs against a fresh project with an owner, an editor and a
viewer, a key in it, and a stranger who owns another project. An allowed call answers 2xx (or
the 4xx its `ok` declares, e.g. 412 for deleting a project that has keys); a refused one
answers 401 (no or bad credentials), 403 (scope or role too small) or 404 (a project the
member does not belong to looks like no project).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.core import keyformat
from llavero.service import Actor, Llavero
from llavero.service.tokens import TOKEN_PREFIX
from llavero.store import tables

VIEWER_UP = frozenset({"owner", "editor", "viewer"})
EDITOR_UP = frozenset({"owner", "editor"})
OWNER_ONLY = frozenset({"owner"})
TOKEN_SCOPES = ("keys:read", "keys:write", "keys:verify", "projects:write", "admin")
MEMBER_CAN = frozenset({"keys:read", "keys:write", "projects:write"})  # a member user's scopes
API_KEY = "api key"  # the operation takes an API key or a signature, not management credentials


@dataclass(frozen=True)
class World:
    project: str
    key: str
    key_string: str
    billing_account: str
    webhook: str
    member: str = "viewer%40example.com"  # a member of `project`, as a path segment


Body = Callable[[World], Any]


@dataclass(frozen=True)
class Rule:
    """`scope`: what a token needs (None: any valid credentials). `roles`: the project roles
    a member user needs on the operation's project (None: not about one project). `ok`:
    statuses that mean "allowed" besides 2xx."""

    scope: str | None
    roles: frozenset[str] | None = None
    body: Body | None = None
    ok: frozenset[int] = field(default_factory=frozenset)


def key_body(world: World) -> dict[str, Any]:
    return {"key": world.key_string}


POLICY: dict[tuple[str, str], Rule] = {
    ("POST", "/v1/projects"): Rule("projects:write", body=lambda w: {"display_name": "New"}),
    ("GET", "/v1/projects"): Rule("keys:read"),
    ("GET", "/v1/projects/{project}"): Rule("keys:read", VIEWER_UP),
    ("PATCH", "/v1/projects/{project}"): Rule(
        "projects:write", OWNER_ONLY, body=lambda w: {"display_name": "Renamed"}
    ),
    ("DELETE", "/v1/projects/{project}"): Rule(
        "projects:write",
        OWNER_ONLY,
        ok=frozenset({412}),  # it still has a key
    ),
    ("POST", "/v1/projects/{project}/keys"): Rule("keys:write", EDITOR_UP, body=lambda w: {}),
    ("GET", "/v1/projects/{project}/keys"): Rule("keys:read", VIEWER_UP),
    ("POST", "/v1/keys:lookup"): Rule("admin", body=lambda w: {"key_string": w.key_string}),
    ("POST", "/v1/keys/{key}:undelete"): Rule(
        "keys:write",
        EDITOR_UP,
        ok=frozenset({412}),  # it is not deleted
    ),
    ("POST", "/v1/keys/{key}:rotate"): Rule(
        "keys:write", EDITOR_UP, body=lambda w: {"grace_period_seconds": 0}
    ),
    ("POST", "/v1/keys/{key}:testRestrictions"): Rule("keys:read", VIEWER_UP, body=lambda w: {}),
    ("GET", "/v1/keys/{key}"): Rule("keys:read", VIEWER_UP),
    ("PATCH", "/v1/keys/{key}"): Rule(
        "keys:write", EDITOR_UP, body=lambda w: {"display_name": "Renamed"}
    ),
    ("DELETE", "/v1/keys/{key}"): Rule("keys:write", EDITOR_UP),
    ("POST", "/v1/keys:verify"): Rule("keys:verify", body=key_body),
    ("POST", "/v1/usage:report"): Rule(
        "keys:verify",
        body=lambda w: {"key_id": w.key, "units": 1, "request_id": str(uuid.uuid4())},
    ),
    ("GET", "/v1/forward-auth"): Rule(API_KEY),
    ("GET", "/v1/keys/{key}/usage"): Rule("keys:read", VIEWER_UP),
    ("GET", "/v1/projects/{project}/usage"): Rule("keys:read", VIEWER_UP),
    ("GET", "/v1/plans"): Rule(None),
    ("POST", "/v1/billingAccounts"): Rule("admin", body=lambda w: {"display_name": "Team"}),
    ("GET", "/v1/billingAccounts"): Rule("admin"),
    ("GET", "/v1/billingAccounts/{billing_account}"): Rule("admin"),
    ("PATCH", "/v1/billingAccounts/{billing_account}"): Rule(
        "admin", body=lambda w: {"display_name": "Renamed"}
    ),
    ("GET", "/v1/projects/{project}/billingInfo"): Rule("keys:read", VIEWER_UP),
    ("PUT", "/v1/projects/{project}/billingInfo"): Rule(  # unlinking; linking needs admin
        "projects:write", EDITOR_UP, body=lambda w: {"billing_account": None}
    ),
    ("GET", "/v1/projects/{project}/members"): Rule("keys:read", VIEWER_UP),
    ("POST", "/v1/projects/{project}/members"): Rule(
        "projects:write", OWNER_ONLY, body=lambda w: {"email": "new@example.com", "role": "viewer"}
    ),
    ("PATCH", "/v1/projects/{project}/members/{email}"): Rule(
        "projects:write", OWNER_ONLY, body=lambda w: {"role": "editor"}
    ),
    ("DELETE", "/v1/projects/{project}/members/{email}"): Rule("projects:write", OWNER_ONLY),
    ("POST", "/v1/webhooks"): Rule(
        "projects:write",
        OWNER_ONLY,
        body=lambda w: {
            "url": "https://hooks.example.com/in",
            "events": ["*"],
            "project": w.project,
        },
    ),
    ("GET", "/v1/webhooks"): Rule("keys:read"),
    ("GET", "/v1/webhooks/{webhook}"): Rule("keys:read", VIEWER_UP),
    ("PATCH", "/v1/webhooks/{webhook}"): Rule(
        "projects:write", OWNER_ONLY, body=lambda w: {"description": "renamed"}
    ),
    ("DELETE", "/v1/webhooks/{webhook}"): Rule("projects:write", OWNER_ONLY),
    ("POST", "/v1/webhooks/{webhook}:test"): Rule("projects:write", OWNER_ONLY),
    ("POST", "/v1/webhooks/{webhook}:rotateSecret"): Rule("projects:write", OWNER_ONLY),
    ("GET", "/v1/webhooks/{webhook}/deliveries"): Rule("keys:read", VIEWER_UP),
    ("POST", "/v1/keys:reportLeaked"): Rule(  # a member's report of another project's key
        "keys:write",
        body=lambda w: {"key_string": w.key_string},  # changes nothing: still 200
    ),
    ("POST", "/v1/secret-scanning/github"): Rule(API_KEY),  # only GitHub's signature admits
    ("GET", "/v1/audit"): Rule("admin"),
    ("GET", "/v1/signinThrottles"): Rule("admin"),
    ("POST", "/v1/signinThrottles:clear"): Rule("admin", body=lambda w: {"email": "a@b.org"}),
}


@dataclass(frozen=True)
class Caller:
    """A token with one scope, a console user with a role on the project (or on another
    project: "stranger"), or no valid credentials at all."""

    name: str
    scope: str | None = None
    role: str | None = None  # "admin" for an admin user
    anonymous: bool = False


CALLERS = (
    Caller("no credentials", anonymous=True),
    Caller("unknown token", anonymous=True, scope="unknown"),
    *(Caller(f"token {scope}", scope=scope) for scope in TOKEN_SCOPES),
    *(Caller(f"user {role}", role=role) for role in ("admin", "owner", "editor", "viewer")),
    Caller("user stranger", role="stranger"),
)


def expected(rule: Rule, caller: Caller) -> str:
    """ "allow", or the status of the refusal."""
    if rule.scope == API_KEY or caller.anonymous:
        return "401"
    if caller.scope == "admin" or caller.role == "admin":
        return "allow"
    if caller.scope is not None:
        return "allow" if rule.scope in (None, caller.scope) else "403"
    if rule.scope is not None and rule.scope not in MEMBER_CAN:
        return "403"
    if rule.roles is None:
        return "allow"
    if caller.role == "stranger":
        return "404"
    return "allow" if caller.role in rule.roles else "403"


def operations(app: FastAPI) -> list[tuple[str, str]]:
    schema = app.openapi()
    return sorted(
        (method.upper(), path) for path, item in schema["paths"].items() for method in item
    )


@pytest.fixture
def app(llavero: Llavero) -> Iterator[FastAPI]:
    application = create_app(llavero)
    with TestClient(application):
        yield application


def test_every_operation_has_a_policy(app: FastAPI) -> None:
    missing = [op for op in operations(app) if op not in POLICY]
    assert not missing, f"add these operations to POLICY: {missing}"
    stale = [op for op in POLICY if op not in operations(app)]
    assert not stale, f"POLICY names operations the API does not have: {stale}"


class Fixture:
    """Users (one per role, made once) and a fresh world per call."""

    def __init__(self, llavero: Llavero) -> None:
        self.llavero = llavero
        self.system = Actor.system("test")
        self.users = {
            role: llavero.users.create(
                self.system, f"{role}@example.com", None, "admin" if role == "admin" else "member"
            )
            for role in ("admin", "owner", "editor", "viewer", "stranger")
        }
        self.sessions = {role: llavero.sessions.create(user) for role, user in self.users.items()}
        self.tokens = {
            scope: llavero.tokens.create(self.system, [scope]).token for scope in TOKEN_SCOPES
        }
        self.count = 0

    def world(self) -> World:
        self.count += 1
        project = f"matrix-{self.count:05d}"
        other = f"other-{self.count:05d}"
        self.llavero.projects.create(self.system, "Main", project)
        self.llavero.projects.create(self.system, "Other", other)
        with self.llavero.db.transaction() as session:
            for role in ("owner", "editor", "viewer"):
                session.add(self._member(project, role, role))
            session.add(self._member(other, "stranger", "owner"))
        created = self.llavero.keys.create(self.system, project)
        account = self.llavero.billing.create(self.system, "Team")
        hook = self.llavero.webhooks.create(
            self.system, "https://hooks.example.com/in", ["*"], project=project
        )
        return World(project, created.key.id, created.key_string, account.id, hook.webhook.id)

    def _member(self, project: str, user: str, role: str) -> tables.ProjectMember:
        return tables.ProjectMember(project_id=project, user_id=self.users[user].id, role=role)

    def headers(self, caller: Caller) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, cookies) of a caller."""
        if caller.scope == "unknown":
            return {"Authorization": f"Bearer {keyformat.generate(TOKEN_PREFIX)}"}, {}
        if caller.anonymous:
            return {}, {}
        if caller.scope is not None:
            return {"Authorization": f"Bearer {self.tokens[caller.scope]}"}, {}
        assert caller.role is not None
        cookie, signed_in = self.sessions[caller.role]
        return {"X-CSRF-Token": signed_in.csrf_token}, {"llavero_session": cookie}


def fill(path: str, world: World) -> str:
    values = {
        "project": world.project,
        "key": world.key,
        "billing_account": world.billing_account,
        "webhook": world.webhook,
        "email": world.member,
    }
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no value for a path parameter of {path}: add it to fill()"
    return path


def test_every_operation_allows_and_refuses_as_the_policy_says(
    llavero: Llavero, app: FastAPI
) -> None:
    fixture = Fixture(llavero)
    wrong: list[str] = []
    with TestClient(app) as client:
        for method, path in operations(app):
            rule = POLICY.get((method, path))
            if rule is None:
                continue  # test_every_operation_has_a_policy names it
            for caller in CALLERS:
                world = fixture.world()
                headers, cookies = fixture.headers(caller)
                client.cookies.clear()
                client.cookies.update(cookies)
                body = rule.body(world) if rule.body else None
                answer = client.request(method, fill(path, world), json=body, headers=headers)
                status = answer.status_code
                got = "allow" if status < 300 or status in rule.ok else str(status)
                want = expected(rule, caller)
                if got != want:
                    wrong.append(f"{method} {path} as {caller.name}: {status}, expected {want}")
    assert not wrong, "\n".join(wrong)
