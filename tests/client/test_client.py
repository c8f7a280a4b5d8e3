from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from llavero.application import create_app
from llavero.client import (
    AlreadyExists,
    ApiError,
    AsyncClient,
    Client,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero
from tests.loopback import serve


@pytest.fixture
def server(llavero: Llavero) -> Iterator[str]:
    with serve(create_app(llavero)) as url:
        yield url


@pytest.fixture
def api(server: str, admin_token: str) -> Iterator[Client]:
    with Client(server, admin_token) as client:
        yield client


def test_projects_round_trip(api: Client) -> None:
    created = api.create_project("Gemini API", id="gemini-api")
    assert (created.id, created.display_name, created.plan) == ("gemini-api", "Gemini API", "free")
    assert api.get_project("gemini-api").number == created.number
    assert [p.id for p in api.list_projects().projects] == ["gemini-api"]
    assert api.rename_project("gemini-api", "Gemini").display_name == "Gemini"
    api.delete_project("gemini-api")
    with pytest.raises(NotFound):
        api.get_project("gemini-api")


def test_key_lifecycle_and_verify(api: Client, clock: FrozenClock) -> None:
    api.create_project("Gemini API", id="gemini-api")
    created = api.create_key(
        "gemini-api",
        display_name="CI",
        expire_time=clock.now() + timedelta(days=30),
        restrictions={"allowed_ips": ["127.0.0.0/8"]},
        limits={"rpm": 5},
    )
    key_id, secret = created.key.id, created.key_string
    assert created.key.expire_time == clock.now() + timedelta(days=30)
    assert api.get_key(key_id).display_name == "CI"
    assert [k.id for k in api.list_keys("gemini-api", filter="name:ci").keys] == [key_id]
    assert api.update_key(key_id, display_name="CI runner").display_name == "CI runner"
    verdict = api.verify(secret, ip="127.0.0.1")
    assert (verdict.valid, verdict.code, verdict.key_id) == (True, "VALID", key_id)
    assert verdict.limits["rpm"].limit == 5
    assert api.verify(secret, ip="203.0.113.1").code == "IP_NOT_ALLOWED"
    assert api.test_restrictions(key_id, ip="203.0.113.1").allowed is False
    assert api.lookup_key(secret).key == key_id
    rotated = api.rotate_key(key_id, grace_period_seconds=60)
    assert rotated.key.id == key_id and rotated.key_string != secret
    assert api.verify(rotated.key_string, ip="127.0.0.1").valid
    assert api.delete_key(key_id).state == "DELETED"
    assert api.verify(rotated.key_string, ip="127.0.0.1").code == "DELETED"
    assert api.list_keys("gemini-api").keys == []
    assert [k.id for k in api.list_keys("gemini-api", show_deleted=True).keys] == [key_id]
    assert api.undelete_key(key_id).state == "ACTIVE"


def test_usage_reports_and_series(api: Client, clock: FrozenClock, llavero: Llavero) -> None:
    api.create_project("Gemini API", id="gemini-api")
    created = api.create_key("gemini-api")
    first = api.report_usage(created.key.id, 42, "request-1")
    assert (first.units, first.duplicate) == (42, False)
    assert api.report_usage(created.key.id, 42, "request-1").duplicate is True
    llavero.usage_meter.flush()  # the server writes usage every usage_flush_seconds
    window = {"start": clock.now() - timedelta(hours=1), "end": clock.now()}
    series = api.key_usage(created.key.id, granularity="minute", **window)
    assert (series.granularity, series.totals.units) == ("minute", 42)
    assert series.buckets[-1].units == 42
    by_hour = api.project_usage("gemini-api", granularity="hour", **window)
    assert (by_hour.granularity, by_hour.totals.units) == ("hour", 42)


def test_billing_moves_the_plan(api: Client) -> None:
    api.create_project("Gemini API", id="gemini-api")
    account = api.create_billing_account("Team", currency="USD")
    assert [a.id for a in api.list_billing_accounts().billing_accounts] == [account.id]
    assert api.get_billing_account(account.id).open is True
    assert api.set_billing_info("gemini-api", account.id).plan == "tier-1"
    assert api.get_billing_info("gemini-api").billing_account == account.id
    assert api.update_billing_account(account.id, display_name="Team 2").display_name == "Team 2"
    assert api.set_billing_info("gemini-api", None).plan == "free"
    assert {"free", "tier-1"} <= {plan.name for plan in api.list_plans()}


def test_audit_lists_what_the_client_did(api: Client) -> None:
    api.create_project("Gemini API", id="gemini-api")
    events = api.list_audit(target="project/gemini-api").audit_events
    assert events and events[0].target == "project/gemini-api"


def test_spec_errors_are_raised_as_exceptions(
    api: Client, server: str, llavero: Llavero, admin: Actor
) -> None:
    api.create_project("Gemini API", id="gemini-api")
    with pytest.raises(AlreadyExists):
        api.create_project("Again", id="gemini-api")
    with pytest.raises(InvalidArgument, match="grace_period_seconds"):
        api.rotate_key("nope", grace_period_seconds=-1)
    reader = llavero.tokens.create(admin, ["keys:read"]).token
    with Client(server, reader) as limited, pytest.raises(PermissionDenied):
        limited.create_project("Other")
    with Client(server, "wrong") as stranger, pytest.raises(Unauthenticated):
        stranger.list_projects()


def test_other_failures_are_api_errors() -> None:
    page = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>bad gateway"))
    client = Client("http://llavero.test", "t", transport=page)
    with client, pytest.raises(ApiError) as raised:
        client.list_plans()
    assert raised.value.status_code == 502


@pytest.mark.anyio
async def test_the_async_client_has_the_same_calls(server: str, admin_token: str) -> None:
    async with AsyncClient(server, admin_token) as api:
        project = await api.create_project("Gemini API", id="gemini-api")
        created = await api.create_key(project.id, display_name="async")
        assert (await api.verify(created.key_string)).key_id == created.key.id
        assert [k.id for k in (await api.list_keys(project.id)).keys] == [created.key.id]
        with pytest.raises(NotFound):
            await api.get_key("missing")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
