"""Management tokens in the service layer, on SQLite and PostgreSQL: shape, hashed storage,
scopes, expiry, revocation at once, audit events, and malformed tokens refused without a query."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from llavero.core import keyformat
from llavero.core.clock import FrozenClock
from llavero.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from llavero.service import Actor, Llavero
from llavero.service.tokens import TOKEN_PREFIX
from llavero.store import tables


def test_create_returns_the_token_once_and_stores_its_hash(
    any_llavero: Llavero, admin: Actor
) -> None:
    created = any_llavero.tokens.create(admin, ["keys:write", "keys:read", "keys:read"], "ci")
    assert keyformat.is_well_formed(created.token, TOKEN_PREFIX)
    assert created.token_info.scopes == ["keys:read", "keys:write"]
    assert created.token_info.last4 == created.token[-4:]
    with any_llavero.db.reading() as session:
        row = session.scalar(select(tables.Token))
    assert row is not None
    assert row.token_hash == any_llavero.ctx.hasher.hash(created.token)
    assert created.token not in repr(any_llavero.tokens.list(admin))
    event_ = any_llavero.audit.list(admin, target=f"token/{created.token_info.id}").items[0]
    assert (event_.action, event_.details) == (
        "token.create",
        {"scopes": ["keys:read", "keys:write"]},
    )


@pytest.mark.parametrize("scopes", [[], ["keys:everything"], ["admin", "root"]])
def test_scopes_must_be_known(any_llavero: Llavero, admin: Actor, scopes: list[str]) -> None:
    with pytest.raises(InvalidArgument) as error:
        any_llavero.tokens.create(admin, scopes)
    assert error.value.field == "scope"
    assert any_llavero.tokens.list(admin) == []


def test_only_admins_create_tokens(any_llavero: Llavero) -> None:
    writer = Actor("token:w", frozenset({"keys:write"}))
    with pytest.raises(PermissionDenied, match="admin"):
        any_llavero.tokens.create(writer, ["keys:read"])


def test_authenticate_gives_an_actor_with_the_scopes(any_llavero: Llavero, admin: Actor) -> None:
    created = any_llavero.tokens.create(admin, ["keys:verify"])
    actor = any_llavero.tokens.authenticate(created.token, "192.0.2.1")
    assert actor.name == f"token:{created.token_info.id}"
    assert actor.ip == "192.0.2.1"
    assert actor.allows("keys:verify")
    assert not actor.allows("keys:read")


def test_expired_token_is_refused(any_llavero: Llavero, admin: Actor, clock: FrozenClock) -> None:
    created = any_llavero.tokens.create(
        admin, ["admin"], expire_time=clock.now() + timedelta(minutes=5)
    )
    any_llavero.tokens.authenticate(created.token)
    clock.advance(300)
    with pytest.raises(Unauthenticated, match="expired"):
        any_llavero.tokens.authenticate(created.token)


def test_revocation_takes_effect_at_once(any_llavero: Llavero, admin: Actor) -> None:
    created = any_llavero.tokens.create(admin, ["admin"])
    any_llavero.tokens.authenticate(created.token)  # cached now
    revoked = any_llavero.tokens.revoke(admin, created.token_info.id)
    assert revoked.revoke_time is not None
    with pytest.raises(Unauthenticated):
        any_llavero.tokens.authenticate(created.token)
    with pytest.raises(FailedPrecondition):
        any_llavero.tokens.revoke(admin, created.token_info.id)
    with pytest.raises(NotFound):
        any_llavero.tokens.revoke(admin, "no-such-token")


def test_unknown_and_malformed_tokens(any_llavero: Llavero) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(any_llavero.db.engine, "before_cursor_execute", count)
    try:
        for malformed in (
            "",
            "llvtok_",
            keyformat.generate("llv"),
            keyformat.generate(TOKEN_PREFIX)[:-1],
        ):
            with pytest.raises(Unauthenticated):
                any_llavero.tokens.authenticate(malformed)
        assert statements == []
        with pytest.raises(Unauthenticated, match="unknown or revoked"):
            any_llavero.tokens.authenticate(keyformat.generate(TOKEN_PREFIX))
        assert len(statements) == 1
    finally:
        event.remove(any_llavero.db.engine, "before_cursor_execute", count)
