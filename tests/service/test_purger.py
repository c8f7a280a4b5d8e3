"""Keys deleted more than 30 days ago are purged when a server starts and every hour after."""

from __future__ import annotations

import threading

from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero
from llavero.service.purger import Purger

DAY = 86_400.0


def deleted_key(llavero: Llavero, admin: Actor, name: str) -> str:
    project = llavero.projects.list(admin).items
    project_id = project[0].id if project else llavero.projects.create(admin, "Purge test").id
    key = llavero.keys.create(admin, project_id, display_name=name).key
    llavero.keys.delete(admin, key.id)
    return key.id


def key_ids(llavero: Llavero, admin: Actor) -> set[str]:
    return {key.id for key in llavero.keys.list(admin, show_deleted=True).items}


def test_start_purges_keys_deleted_more_than_30_days_ago(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    old = deleted_key(llavero, admin, "old")
    clock.advance(20 * DAY)
    recent = deleted_key(llavero, admin, "recent")
    clock.advance(10 * DAY + 1)

    purger = Purger(llavero.keys.purge, interval=3600)
    purger.start()
    purger.stop()

    assert key_ids(llavero, admin) == {recent}
    assert old not in key_ids(llavero, admin)
    actions = [event.action for event in llavero.audit.list(admin, target=old).items]
    assert actions[0] == "key.purge"


def test_the_thread_purges_again_after_each_interval(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    purged_again = threading.Event()
    runs: list[int] = []

    def purge() -> int:
        runs.append(llavero.keys.purge())
        if len(runs) == 2:
            purged_again.set()
        return runs[-1]

    deleted_key(llavero, admin, "first")
    purger = Purger(purge, interval=0.01)
    purger.start()  # the first run, synchronous: nothing is 30 days old yet
    assert runs == [0]
    clock.advance(31 * DAY)
    try:
        assert purged_again.wait(timeout=10)
    finally:
        purger.stop()
    assert runs[:2] == [0, 1]
    assert key_ids(llavero, admin) == set()


def test_a_failing_purge_is_logged_and_the_server_keeps_going() -> None:
    def broken() -> int:
        raise RuntimeError("database restarting")

    assert Purger(broken).run_once() == 0


def test_llavero_start_purges_and_close_stops_the_thread(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    old = deleted_key(llavero, admin, "old")
    clock.advance(31 * DAY)
    llavero.start()
    try:
        assert old not in key_ids(llavero, admin)
        assert any(thread.name == "llavero-purge" for thread in threading.enumerate())
    finally:
        llavero.close()
    assert not any(thread.name == "llavero-purge" for thread in threading.enumerate())
