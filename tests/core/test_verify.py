"""The verify hot path, core codes: VALID, MALFORMED, NOT_FOUND, EXPIRED, DISABLED, DELETED,
ENVIRONMENT_MISMATCH; every change takes effect on the very next call, in this process and, through
the change feed, in another instance on the same database. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, update

from llavero.core import keyformat
from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.errors import Unauthenticated
from llavero.service import Actor, Llavero
from llavero.store import tables
from llavero.store.changes import ChangeFeed


@contextmanager
def counting_queries(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent to the database while the block runs."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def code(llavero: Llavero, key: str, **context: Any) -> str:
    return llavero.verifier.verify(VerifyRequest(key=key, **context)).code


@pytest.fixture
def project(any_llavero: Llavero, admin: Actor) -> str:
    return any_llavero.projects.create(admin, "Verify tests").id


def new_key(llavero: Llavero, admin: Actor, project: str, **fields: Any) -> tuple[str, str]:
    created = llavero.keys.create(admin, project, **fields)
    return created.key.id, created.key_string


def test_valid_key_answers_with_its_key_project_and_plan(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    key_id, key = new_key(any_llavero, admin, project, environment="production")
    result = any_llavero.verifier.verify(VerifyRequest(key=key))
    assert (result.code, result.valid) == ("VALID", True)
    assert (result.key_id, result.project, result.plan) == (key_id, project, "free")
    assert result.environment == "production"


def test_a_cached_valid_key_costs_no_query(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    _, key = new_key(any_llavero, admin, project)
    with counting_queries(any_llavero.db.engine) as first:
        assert code(any_llavero, key) == "VALID"
    assert first, "the first verify of a key reads it"
    with counting_queries(any_llavero.db.engine) as later:
        for _ in range(5):
            assert code(any_llavero, key) == "VALID"
    assert later == []


def test_one_changed_character_is_malformed_without_a_query(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    _, key = new_key(any_llavero, admin, project)
    with counting_queries(any_llavero.db.engine) as statements:
        for position in range(len(key)):
            for char in ("A", "z", "0"):
                if key[position] != char:
                    changed = key[:position] + char + key[position + 1 :]
                    assert code(any_llavero, changed) == "MALFORMED", position
        for junk in ("", "llv_", key[:-1], key + "x", key.upper(), "Bearer " + key):
            assert code(any_llavero, junk) == "MALFORMED"
    assert statements == []


def test_unknown_key_is_not_found_and_asked_once(any_llavero: Llavero) -> None:
    unknown = keyformat.generate("llv")
    with counting_queries(any_llavero.db.engine) as first:
        assert code(any_llavero, unknown) == "NOT_FOUND"
    assert len(first) == 1
    with counting_queries(any_llavero.db.engine) as again:
        assert code(any_llavero, unknown) == "NOT_FOUND"
    assert again == []


def test_disabled_key_fails_on_the_next_call_and_enabling_restores_it(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    key_id, key = new_key(any_llavero, admin, project)
    assert code(any_llavero, key) == "VALID"
    any_llavero.keys.update(admin, key_id, {"state": "DISABLED"})
    assert code(any_llavero, key) == "DISABLED"
    any_llavero.keys.update(admin, key_id, {"state": "ACTIVE"})
    assert code(any_llavero, key) == "VALID"


def test_deleted_key_fails_on_the_next_call_and_undelete_restores_it(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    key_id, key = new_key(any_llavero, admin, project)
    assert code(any_llavero, key) == "VALID"
    any_llavero.keys.delete(admin, key_id)
    assert code(any_llavero, key) == "DELETED"
    any_llavero.keys.undelete(admin, key_id)
    assert code(any_llavero, key) == "VALID"


def test_undelete_restores_a_disabled_key_as_disabled(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    key_id, key = new_key(any_llavero, admin, project)
    any_llavero.keys.update(admin, key_id, {"state": "DISABLED"})
    any_llavero.keys.delete(admin, key_id)
    assert code(any_llavero, key) == "DELETED"
    any_llavero.keys.undelete(admin, key_id)
    assert code(any_llavero, key) == "DISABLED"


def test_expired_key_fails_on_the_next_call(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    expire = clock.now() + timedelta(minutes=1)
    _, key = new_key(any_llavero, admin, project, expire_time=expire)
    assert code(any_llavero, key) == "VALID"
    clock.advance(59)
    assert code(any_llavero, key) == "VALID"
    clock.advance(1)
    assert code(any_llavero, key) == "EXPIRED"


def test_setting_an_expiry_takes_effect_on_the_next_call(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    key_id, key = new_key(any_llavero, admin, project)
    assert code(any_llavero, key) == "VALID"
    any_llavero.keys.update(admin, key_id, {"expire_time": clock.now() + timedelta(seconds=10)})
    clock.advance(10)
    assert code(any_llavero, key) == "EXPIRED"
    any_llavero.keys.update(admin, key_id, {"expire_time": None})
    assert code(any_llavero, key) == "VALID"


def test_environment_mismatch(any_llavero: Llavero, admin: Actor, project: str) -> None:
    _, production = new_key(any_llavero, admin, project, environment="production")
    _, anywhere = new_key(any_llavero, admin, project)
    assert code(any_llavero, production, environment="staging") == "ENVIRONMENT_MISMATCH"
    assert code(any_llavero, production, environment="production") == "VALID"
    assert code(any_llavero, production) == "VALID"
    assert code(any_llavero, anywhere, environment="staging") == "VALID"


def test_changing_the_environment_takes_effect_on_the_next_call(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    key_id, key = new_key(any_llavero, admin, project, environment="production")
    assert code(any_llavero, key, environment="staging") == "ENVIRONMENT_MISMATCH"
    any_llavero.keys.update(admin, key_id, {"environment": "staging"})
    assert code(any_llavero, key, environment="staging") == "VALID"


def test_rotation_keeps_the_old_string_for_the_grace_period_only(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    key_id, old = new_key(any_llavero, admin, project)
    assert code(any_llavero, old) == "VALID"
    new = any_llavero.keys.rotate(admin, key_id, 60).key_string
    assert any_llavero.verifier.verify(VerifyRequest(key=new)).key_id == key_id
    assert code(any_llavero, old) == "VALID"
    clock.advance(60)
    assert code(any_llavero, old) == "EXPIRED"
    assert code(any_llavero, new) == "VALID"
    newest = any_llavero.keys.rotate(admin, key_id, 0).key_string
    assert code(any_llavero, old) == "NOT_FOUND"
    assert code(any_llavero, new) == "EXPIRED"
    assert code(any_llavero, newest) == "VALID"


def test_purged_key_is_not_found(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    key_id, key = new_key(any_llavero, admin, project)
    any_llavero.keys.delete(admin, key_id)
    assert code(any_llavero, key) == "DELETED"
    clock.advance(31 * 86_400)
    assert any_llavero.keys.purge() == 1
    assert code(any_llavero, key) == "NOT_FOUND"


def test_a_revocation_during_a_cache_miss_is_not_cached_stale(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    """A verify reads the row, a disable commits and invalidates before the verify caches it:
    the stale copy must not be cached, so the next call sees DISABLED."""
    key_id, key = new_key(any_llavero, admin, project)
    fired: list[bool] = []

    def disable_meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not fired and "FROM keys" in statement:
            fired.append(True)
            any_llavero.keys.update(admin, key_id, {"state": "DISABLED"})

    engine = any_llavero.db.engine
    event.listen(engine, "after_cursor_execute", disable_meanwhile)
    try:
        first = code(any_llavero, key)
    finally:
        event.remove(engine, "after_cursor_execute", disable_meanwhile)
    assert fired == [True]
    assert first == "VALID"  # read before the disable: that one answer may be stale
    assert code(any_llavero, key) == "DISABLED"


def test_another_instance_sees_a_change_after_one_poll(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    """Two instances on one database: B disables, deletes and undeletes; A's cache follows after
    each poll of the change feed, and not before (A's cached copy is what the feed fixes)."""
    other = Llavero(any_llavero.settings, clock=clock)
    try:
        feed = ChangeFeed(any_llavero.db, any_llavero._apply_change, interval=0)
        key_id, key = new_key(other, admin, project)
        assert feed.poll() == 1  # the creation
        assert code(any_llavero, key) == "VALID"

        other.keys.update(admin, key_id, {"state": "DISABLED"})
        assert code(any_llavero, key) == "VALID"  # cached in A; the feed has not run
        assert feed.poll() == 1
        assert code(any_llavero, key) == "DISABLED"

        other.keys.delete(admin, key_id)
        feed.poll()
        assert code(any_llavero, key) == "DELETED"

        other.keys.undelete(admin, key_id)
        other.keys.update(admin, key_id, {"state": "ACTIVE"})
        assert feed.poll() == 2
        assert code(any_llavero, key) == "VALID"
        assert feed.poll() == 0
    finally:
        other.close()


def test_a_token_revoked_on_another_instance_stops_after_one_poll(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    from llavero.errors import Unauthenticated

    other = Llavero(any_llavero.settings, clock=clock)
    try:
        feed = ChangeFeed(any_llavero.db, any_llavero._apply_change, interval=0)
        created = other.tokens.create(admin, ["keys:verify"])
        assert any_llavero.tokens.authenticate(created.token).allows("keys:verify")
        other.tokens.revoke(admin, created.token_info.id)
        feed.poll()
        with pytest.raises(Unauthenticated):
            any_llavero.tokens.authenticate(created.token)
    finally:
        other.close()


def test_a_change_no_message_announced_takes_effect_after_the_cache_ttl(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    """A write that reached no instance's feed (here: a row changed behind Llavero's back) is
    seen by the first verify after `LLAVERO_CACHE_TTL_SECONDS`, not never."""
    key_id, key = new_key(any_llavero, admin, project)
    assert code(any_llavero, key) == "VALID"
    with any_llavero.db.transaction() as session:
        session.execute(update(tables.Key).where(tables.Key.id == key_id).values(state="DISABLED"))
    clock.advance(any_llavero.settings.cache_ttl_seconds - 1)
    assert code(any_llavero, key) == "VALID"
    clock.advance(1)
    assert code(any_llavero, key) == "DISABLED"


def test_a_token_revoked_behind_llaveros_back_is_refused_after_the_cache_ttl(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    created = any_llavero.tokens.create(admin, ["keys:verify"])
    assert any_llavero.tokens.authenticate(created.token).name.startswith("token:")
    with any_llavero.db.transaction() as session:
        session.execute(
            update(tables.Token)
            .where(tables.Token.id == created.token_info.id)
            .values(revoke_time=clock.now())
        )
    assert any_llavero.tokens.cached(created.token) is not None
    clock.advance(any_llavero.settings.cache_ttl_seconds)
    assert any_llavero.tokens.cached(created.token) is None
    with pytest.raises(Unauthenticated):
        any_llavero.tokens.authenticate(created.token)


def test_verify_now_leaves_a_verify_needing_a_claim_to_averify_having_spent_nothing(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    """The event loop's answer without a coroutine is None while the database limiter holds no
    slice for the key: nothing counted, nothing metered, so `averify` counts the request once."""
    verifier = any_llavero.verifier
    _, key = new_key(any_llavero, admin, project)
    request = VerifyRequest(key=key)
    verifier.record(key)  # cached, as the fast path asks for
    cached = verifier.cached(key)
    assert cached is not None
    metered = any_llavero.usage_meter.verify_counts()

    now = verifier.verify_now(request, cached)
    metered_after = any_llavero.usage_meter.verify_counts()
    awaited = asyncio.run(verifier.averify(request, cached))

    assert now is None
    assert metered_after == metered
    assert awaited.code == "VALID"
    assert awaited.limits["rpm"]["remaining"] == awaited.limits["rpm"]["limit"] - 1
