"""Events reach a real receiver on loopback, signed (checked with `standardwebhooks`), once each,
in order per key, through an endpoint outage; persistent failure disables the endpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero, events
from llavero.store import tables
from tests.conftest import make_service
from tests.webhook_receiver import Receiver, receiver

SPEC_TYPES = {
    "key.created",
    "key.updated",
    "key.rotated",
    "key.disabled",
    "key.deleted",
    "key.undeleted",
    "key.leaked",
    "key.expiring",
    "key.expired",
    "quota.threshold",
    "billing.linked",
    "billing.unlinked",
}


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def subscribe(llavero: Llavero, admin: Actor, hook: Receiver, **options: object) -> str:
    created = llavero.webhooks.create(admin, hook.url, ["*"], **options)  # type: ignore[arg-type]
    hook.secrets.append(created.secret)
    return created.webhook.id


def drain(llavero: Llavero) -> None:
    llavero.dispatcher.run_once()


def leak(llavero: Llavero, key_id: str) -> None:
    """What leak handling does when it records a leak: one call, in its own transaction."""
    with llavero.db.transaction() as session:
        row = session.get(tables.Key, key_id)
        assert row is not None
        events.key_leaked(
            session, llavero.ctx, row, url="https://example.com/x", source="test", action="notify"
        )


def every_event(llavero: Llavero, admin: Actor, clock: FrozenClock) -> list[str]:
    """Make every event type happen once; returns the key strings that were shown."""
    project = llavero.projects.create(admin, "Events").id
    account = llavero.billing.create(admin, "Acme")
    created = llavero.keys.create(
        admin, project, display_name="main", expire_time=clock.now() + timedelta(days=10)
    )
    key_id = created.key.id
    shown = [created.key_string]
    llavero.keys.update(admin, key_id, {"display_name": "main key"})
    llavero.keys.update(admin, key_id, {"state": "DISABLED"})
    llavero.keys.update(admin, key_id, {"state": "ACTIVE", "limits": {"rpd": 5}})
    shown.append(llavero.keys.rotate(admin, key_id, 0).key_string)
    llavero.keys.delete(admin, key_id)
    llavero.keys.undelete(admin, key_id)
    leak(llavero, key_id)
    for _ in range(5):
        assert llavero.verifier.verify(VerifyRequest(key=shown[-1])).valid
    llavero.usage_meter.flush()
    llavero.alerts.check()  # both quota thresholds of the key, today
    llavero.billing.link(admin, project, account.id)
    llavero.billing.unlink(admin, project)
    clock.advance(timedelta(days=4).total_seconds())  # 6 days left
    llavero.alerts.check()  # expiring: 7 days
    clock.advance(timedelta(days=5, hours=12).total_seconds())  # 12 hours left
    llavero.alerts.check()
    clock.advance(timedelta(days=1).total_seconds())
    llavero.alerts.check()
    llavero.alerts.check()  # nothing new: each moment is told once
    return shown


def test_every_event_type_arrives_once_signed_without_key_strings(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock, hook: Receiver
) -> None:
    subscribe(any_llavero, admin, hook)
    shown = every_event(any_llavero, admin, clock)
    drain(any_llavero)
    assert hook.refused == []
    types = hook.types()
    assert set(types) == SPEC_TYPES
    assert len(hook.ids()) == len(set(hook.ids()))
    assert types.count("key.expiring") == 2  # 7 days, then 1 day before
    assert [e.body["data"]["days"] for e in hook.accepted if e.body["type"] == "key.expiring"] == [
        7,
        1,
    ]
    quota = [e.body["data"] for e in hook.accepted if e.body["type"] == "quota.threshold"]
    assert sorted((q["scope"], q["limit"], q["threshold_percent"]) for q in quota) == [
        ("key", "rpd", 80),
        ("key", "rpd", 100),
    ]
    for item in hook.accepted:
        assert set(item.body) == {"type", "timestamp", "data"}
        for key_string in shown:
            assert key_string.encode() not in item.raw
        if item.body["type"].startswith("key."):
            assert {"key_id", "project", "last4"} <= set(item.body["data"])
    assert types.count("key.updated") == 2  # the rename, then enabling with new limits


def test_project_quota_threshold_from_the_plan(
    tmp_path: Path, settings: Settings, clock: FrozenClock, admin: Actor, hook: Receiver
) -> None:
    plans = tmp_path / "plans.toml"
    plans.write_text('[plans.free]\ndisplay_name = "Free"\nrpd = 10\nupd = 100\n')
    for llavero in make_service(settings.model_copy(update={"plans_file": plans}), clock):
        project = llavero.projects.create(admin, "Quota").id
        webhook = llavero.webhooks.create(admin, hook.url, ["quota.threshold"], project=project)
        hook.secrets.append(webhook.secret)
        key = llavero.keys.create(admin, project).key_string
        for _ in range(8):
            llavero.verifier.verify(VerifyRequest(key=key, cost=5))
        llavero.usage_meter.flush()
        llavero.alerts.check()
        llavero.alerts.check()
        drain(llavero)
        data = [item.body["data"] for item in hook.accepted]
        assert [(d["scope"], d["limit"], d["threshold_percent"], d["used"]) for d in data] == [
            ("project", "rpd", 80, 8)
        ]
        assert data[0]["project"] == project and data[0]["window_start"] == "2025-08-01T00:00:00Z"
        clock.advance(86400)  # a new day: a new window, the same moment may be told again
        for _ in range(8):
            llavero.verifier.verify(VerifyRequest(key=key, cost=5))
        llavero.usage_meter.flush()
        llavero.alerts.check()
        drain(llavero)
        assert len(hook.accepted) == 2
        assert hook.accepted[1].body["data"]["window_start"] == "2025-08-02T00:00:00Z"


def test_receiver_down_then_up_gets_every_event_in_order_per_key(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock, hook: Receiver
) -> None:
    llavero = any_llavero
    webhook = subscribe(llavero, admin, hook)
    hook.status = 503
    project = llavero.projects.create(admin, "Outage").id
    keys = [llavero.keys.create(admin, project, display_name=f"k{n}").key.id for n in range(2)]
    for key_id in keys * 2:
        llavero.keys.update(admin, key_id, {"display_name": f"renamed {clock.time()}"})
        clock.advance(1)
    for key_id in keys:
        llavero.keys.delete(admin, key_id)
    drain(llavero)
    assert hook.accepted == [] and hook.attempts >= 1
    for wait in llavero.settings.webhook_retry_seconds[:3]:  # down for about half an hour
        clock.advance(wait)
        drain(llavero)
    assert hook.accepted == []
    hook.status = 204
    clock.advance(llavero.settings.webhook_retry_seconds[3])
    drain(llavero)
    got = [(item.body["data"]["key_id"], item.body["type"]) for item in hook.accepted]
    for key_id in keys:
        assert [kind for k, kind in got if k == key_id] == [
            "key.created",
            "key.updated",
            "key.updated",
            "key.deleted",
        ]
    log = llavero.webhooks.deliveries(admin, webhook).items
    assert {item.status for item in log} == {"delivered"}
    assert max(item.attempts for item in log) == 5  # the first one, retried four times


def test_persistent_failure_disables_the_endpoint_and_an_event_says_so(
    settings: Settings, clock: FrozenClock, admin: Actor, hook: Receiver
) -> None:
    with receiver() as broken:
        broken.status = 500
        fast = settings.model_copy(update={"webhook_retry_seconds": [1.0, 2.0]})
        for llavero in make_service(fast, clock):
            project = llavero.projects.create(admin, "Broken").id
            failing = llavero.webhooks.create(admin, broken.url, ["key.created"], project=project)
            subscribe(llavero, admin, hook)  # the deployment's webhook hears about it
            llavero.keys.create(admin, project)
            for wait in (0, 1, 2):
                clock.advance(wait)
                drain(llavero)
            assert broken.attempts == 3
            state = llavero.webhooks.get(admin, failing.webhook.id)
            assert state.disabled and state.disabled_reason
            disabled = [i.body for i in hook.accepted if i.body["type"] == "webhook.disabled"]
            assert [d["data"]["webhook_id"] for d in disabled] == [failing.webhook.id]
            log = llavero.webhooks.deliveries(admin, failing.webhook.id).items
            assert [(d.status, d.attempts, d.last_status) for d in log] == [("failed", 3, 500)]
            llavero.keys.create(admin, project)  # nothing is queued for a disabled endpoint
            drain(llavero)
            assert broken.attempts == 3


def keep_sending(llavero: Llavero, stop: threading.Event) -> None:
    while not stop.wait(0.005):
        llavero.dispatcher.run_once()


def test_two_dispatchers_send_each_event_once(
    settings: Settings, database_url: str, clock: FrozenClock, admin: Actor, hook: Receiver
) -> None:
    """Two services on one database, as two instances are, both sending while keys change."""
    shared = settings.model_copy(update={"database_url": database_url})
    for first in make_service(shared, clock):
        second = Llavero(shared, clock=clock)
        try:
            subscribe(first, admin, hook)
            project = first.projects.create(admin, "Twice").id
            stop = threading.Event()

            senders = [
                threading.Thread(target=keep_sending, args=(s, stop)) for s in (first, second)
            ]
            for sender in senders:
                sender.start()
            made = [first.keys.create(admin, project).key.id for _ in range(15)]
            made += [second.keys.create(admin, project).key.id for _ in range(15)]
            stop.set()
            for sender in senders:
                sender.join(30)
            drain(first)
            drain(second)
        finally:
            second.close()
        assert sorted(i.body["data"]["key_id"] for i in hook.accepted) == sorted(made)
        assert len(hook.ids()) == len(set(hook.ids())) == 30


def test_a_test_event_and_a_rotated_secret(llavero: Llavero, admin: Actor, hook: Receiver) -> None:
    created = llavero.webhooks.create(admin, hook.url, ["key.created"])
    hook.secrets.append(created.secret)
    first = llavero.webhooks.send_test(admin, created.webhook.id).event_id
    drain(llavero)
    rotated = llavero.webhooks.rotate_secret(admin, created.webhook.id)
    assert rotated.secret != created.secret and rotated.secret.startswith("whsec_")
    hook.secrets[:] = [rotated.secret]
    second = llavero.webhooks.send_test(admin, created.webhook.id).event_id
    drain(llavero)
    assert hook.ids() == [first, second]
    assert hook.types() == ["webhook.test", "webhook.test"]
    assert hook.refused == []


def test_a_disabled_endpoint_gets_what_waited_once_enabled(
    llavero: Llavero, admin: Actor, hook: Receiver
) -> None:
    webhook = subscribe(llavero, admin, hook)
    project = llavero.projects.create(admin, "Pause").id
    llavero.keys.create(admin, project)
    llavero.webhooks.update(admin, webhook, {"disabled": True})
    drain(llavero)
    assert hook.accepted == []
    llavero.webhooks.update(admin, webhook, {"disabled": False})
    drain(llavero)
    assert hook.types() == ["key.created"]


def test_an_event_nobody_subscribed_to_writes_nothing(llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "Quiet").id
    llavero.keys.create(admin, project)
    with llavero.db.reading() as session:
        assert session.scalars(select(tables.Event)).all() == []


def test_an_endpoint_hears_only_its_project_and_types(
    llavero: Llavero, admin: Actor, hook: Receiver
) -> None:
    mine = llavero.projects.create(admin, "Mine").id
    other = llavero.projects.create(admin, "Other").id
    created = llavero.webhooks.create(admin, hook.url, ["key.deleted"], project=mine)
    hook.secrets.append(created.secret)
    keys = {p: llavero.keys.create(admin, p).key.id for p in (mine, other)}
    for key_id in keys.values():
        llavero.keys.delete(admin, key_id)
    drain(llavero)
    assert [(i.body["type"], i.body["data"]["key_id"]) for i in hook.accepted] == [
        ("key.deleted", keys[mine])
    ]


def test_the_log_forgets_finished_deliveries_after_thirty_days(
    llavero: Llavero, admin: Actor, clock: FrozenClock, hook: Receiver
) -> None:
    webhook = subscribe(llavero, admin, hook)
    project = llavero.projects.create(admin, "Old").id
    llavero.keys.create(admin, project)
    drain(llavero)
    hook.status = 503
    llavero.keys.create(admin, project)  # still pending after 31 days: kept
    drain(llavero)
    clock.advance(timedelta(days=31).total_seconds())
    assert llavero.dispatcher.prune(clock.now()) == 1
    log = llavero.webhooks.deliveries(admin, webhook).items
    assert [item.status for item in log] == ["pending"]
    with llavero.db.reading() as session:
        assert len(session.scalars(select(tables.Event)).all()) == 1
