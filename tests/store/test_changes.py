"""The change feed: rows written with each change, read in order by every other instance, from
where it last stopped; a failing poll keeps the thread alive. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from llavero.store import tables
from llavero.store.changes import (
    GAP_SECONDS,
    KEY,
    PROJECT,
    TOKEN,
    ChangeFeed,
    parse_notification,
    record_change,
)
from llavero.store.listener import Listener


def test_a_new_feed_starts_after_the_existing_changes(any_llavero: Llavero, admin: Actor) -> None:
    project = any_llavero.projects.create(admin, "Feed tests").id
    any_llavero.keys.create(admin, project)
    seen: list[tuple[str, str]] = []
    feed = ChangeFeed(any_llavero.db, lambda kind, target: seen.append((kind, target)), 0)
    assert feed.poll() == 0
    assert seen == []


def test_changes_arrive_in_order_once(any_llavero: Llavero, admin: Actor) -> None:
    seen: list[tuple[str, str]] = []
    feed = ChangeFeed(any_llavero.db, lambda kind, target: seen.append((kind, target)), 0)
    project = any_llavero.projects.create(admin, "Feed tests").id
    key = any_llavero.keys.create(admin, project).key.id
    any_llavero.keys.update(admin, key, {"state": "DISABLED"})
    any_llavero.keys.delete(admin, key)
    token = any_llavero.tokens.create(admin, ["keys:read"]).token_info.id
    any_llavero.tokens.revoke(admin, token)
    any_llavero.projects.delete(admin, project)
    assert feed.poll() == 5  # creating a token changes nothing another instance caches
    assert seen == [(KEY, key)] * 3 + [(TOKEN, token), (PROJECT, project)]
    assert feed.poll() == 0


def test_record_change_is_part_of_the_callers_transaction(any_llavero: Llavero) -> None:
    seen: list[tuple[str, str]] = []
    feed = ChangeFeed(any_llavero.db, lambda kind, target: seen.append((kind, target)), 0)
    with pytest.raises(RuntimeError), any_llavero.db.transaction() as session:
        record_change(session, any_llavero.ctx.clock, KEY, "rolled-back")
        session.flush()
        raise RuntimeError("abort the transaction")
    with any_llavero.db.transaction() as session:
        record_change(session, any_llavero.ctx.clock, KEY, "committed")
    feed.poll()
    assert seen == [(KEY, "committed")]


def test_the_thread_polls_until_stopped_and_retries_after_an_error(
    any_llavero: Llavero,
) -> None:
    """At least once: a change whose poll failed is read again on the next poll (the poll
    alone: the PostgreSQL listener would apply both before either poll)."""
    applied = threading.Event()
    calls: list[str] = []

    def apply(kind: str, target: str) -> None:
        calls.append(target)
        if calls == ["boom"]:
            raise RuntimeError("the database went away mid-poll")
        if target == "fine":
            applied.set()

    feed = ChangeFeed(any_llavero.db, apply, interval=0.01, listen=False)
    feed.start()
    try:
        with any_llavero.db.transaction() as session:
            record_change(session, any_llavero.ctx.clock, KEY, "boom")
        with any_llavero.db.transaction() as session:
            record_change(session, any_llavero.ctx.clock, KEY, "fine")
        assert applied.wait(timeout=10)
    finally:
        feed.stop()
    assert calls[:3] == ["boom", "boom", "fine"]


def test_interval_zero_means_no_thread(any_llavero: Llavero) -> None:
    feed = ChangeFeed(any_llavero.db, lambda kind, target: None, interval=0)
    feed.start()
    assert not any(thread.name == "llavero-changes" for thread in threading.enumerate())
    feed.stop()


def insert_change(llavero: Llavero, change_id: int, target: str) -> None:
    """A row with an id chosen by the test: a commit that arrives after a higher id's."""
    with llavero.db.transaction() as session:
        session.add(tables.Change(id=change_id, time=llavero.ctx.clock.now(), kind=KEY,
                                  target_id=target))  # fmt: skip


def test_a_change_committed_after_a_higher_id_is_still_applied(any_llavero: Llavero) -> None:
    seen: list[str] = []
    feed = ChangeFeed(any_llavero.db, lambda kind, target: seen.append(target), 0)
    insert_change(any_llavero, 10, "committed first")
    assert feed.poll() == 1
    insert_change(any_llavero, 9, "committed late")
    insert_change(any_llavero, 11, "committed last")
    assert feed.poll() == 2
    assert seen == ["committed first", "committed late", "committed last"]
    assert feed.poll() == 0


def test_an_id_never_committed_is_awaited_for_gap_seconds_only(any_llavero: Llavero) -> None:
    now = [0.0]

    def monotonic() -> float:
        return now[0]

    feed = ChangeFeed(any_llavero.db, lambda kind, target: None, 0, monotonic=monotonic)
    insert_change(any_llavero, 5, "after four rolled-back ids")
    feed.poll()
    assert feed.gaps == 4
    now[0] += GAP_SECONDS - 1
    feed.poll()
    assert feed.gaps == 4
    now[0] += 2
    feed.poll()
    assert feed.gaps == 0


def test_a_feed_started_while_a_write_is_open_sees_it_commit(any_llavero: Llavero) -> None:
    """Ids below the highest one at start that are not there yet may be transactions still
    running: they are awaited like any other gap."""
    insert_change(any_llavero, 3, "before the start")
    seen: list[str] = []
    feed = ChangeFeed(any_llavero.db, lambda kind, target: seen.append(target), 0)
    assert feed.poll() == 0
    insert_change(any_llavero, 2, "running at the start")
    assert feed.poll() == 1
    assert seen == ["running at the start"]


@pytest.mark.postgres
def test_concurrent_transactions_committing_out_of_order_are_all_seen(
    postgres_schema: str, settings: Settings, clock: FrozenClock
) -> None:
    """Real sequence ids on PostgreSQL: the first transaction to insert commits last."""
    llavero = Llavero(settings.model_copy(update={"database_url": postgres_schema}), clock=clock)
    llavero.upgrade()
    try:
        seen: list[str] = []
        feed = ChangeFeed(llavero.db, lambda kind, target: seen.append(target), 0)
        with llavero.db.transaction() as slow:
            record_change(slow, clock, KEY, "slow")
            slow.flush()  # takes the lower id now, commits at the end of the block
            with llavero.db.transaction() as fast:
                record_change(fast, clock, KEY, "fast")
            assert feed.poll() == 1
        assert feed.poll() == 1
        assert seen == ["fast", "slow"]
    finally:
        llavero.close()


def test_a_notification_payload_names_a_known_kind_and_a_target() -> None:
    assert parse_notification("key:abc") == (KEY, "abc")
    assert parse_notification("project:p:1") == (PROJECT, "p:1")
    for junk in ("", "key", "key:", "plan:x", ":x", "token"):
        assert parse_notification(junk) is None


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """A generous deadline, not a timing claim (the figures are in bench/revocation.py)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def postgres_pair(
    postgres_schema: str, settings: Settings, clock: FrozenClock
) -> Iterator[tuple[Llavero, Llavero]]:
    """Two instances on one PostgreSQL schema; polls an hour apart, so only LISTEN is fast."""
    shared = settings.model_copy(
        update={"database_url": postgres_schema, "change_poll_seconds": 3600}
    )
    first, second = Llavero(shared, clock=clock), Llavero(shared, clock=clock)
    first.upgrade()
    try:
        yield first, second
    finally:
        with first.db.engine.begin() as connection:
            connection.execute(text("TRUNCATE changes, keys, projects, audit_events CASCADE"))
        first.close()
        second.close()


def listening(llavero: Llavero) -> Listener:
    llavero.start()
    listener = llavero._feed.listener if llavero._feed else None
    assert listener is not None and listener.listening.wait(20)
    return listener


@pytest.mark.postgres
def test_postgres_delivers_a_revocation_without_waiting_for_a_poll(
    postgres_pair: tuple[Llavero, Llavero], admin: Actor
) -> None:
    writer, reader = postgres_pair
    listening(reader)
    project = writer.projects.create(admin, "Listen").id
    created = writer.keys.create(admin, project)
    request = VerifyRequest(key=created.key_string)
    assert wait_until(lambda: reader.verifier.verify(request).code == "VALID")
    writer.keys.update(admin, created.key.id, {"state": "DISABLED"})
    assert wait_until(lambda: reader.verifier.verify(request).code == "DISABLED")


@pytest.mark.postgres
def test_the_listener_reconnects_logs_once_and_catches_up_from_the_table(
    postgres_pair: tuple[Llavero, Llavero], admin: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    writer, reader = postgres_pair
    listener = listening(reader)
    project = writer.projects.create(admin, "Reconnect").id
    created = writer.keys.create(admin, project)
    request = VerifyRequest(key=created.key_string)
    assert reader.verifier.verify(request).code == "VALID"
    with writer.db.engine.begin() as connection:  # the database drops the listener's line
        connection.execute(text("SELECT pg_terminate_backend(:pid)"),
                           {"pid": listener.backend_pid})  # fmt: skip
    assert wait_until(lambda: not listener.listening.is_set())
    # committed while nobody listens: only the catch-up read after reconnecting can bring it
    writer.keys.update(admin, created.key.id, {"state": "DISABLED"})
    assert wait_until(listener.listening.is_set)
    assert wait_until(lambda: reader.verifier.verify(request).code == "DISABLED")
    lost = [r for r in caplog.records if "lost the PostgreSQL LISTEN connection" in r.message]
    assert len(lost) == 1
