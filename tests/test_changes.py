"""The change feed: rows written with each change, read in order by every other instance, from
where it last stopped; a failing poll keeps the thread alive. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from llavero.changes import KEY, PROJECT, TOKEN, ChangeFeed, record_change
from llavero.service import Actor, Llavero


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
