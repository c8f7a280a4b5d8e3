"""REST: `/v1/plans`, `/v1/billingAccounts`, `/v1/projects/{project}/billingInfo` and
`/v1/usage:report` (idempotent by request_id), with the SPEC error format."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from llavero.service import Actor, Llavero
from llavero.store import tables


def error(response: Any) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["status"], body["message"]


def bearer(llavero: Llavero, admin: Actor, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {llavero.tokens.create(admin, list(scopes)).token}"}


@pytest.fixture
def project(client: TestClient) -> str:
    response = client.post("/v1/projects", json={"display_name": "Gemini API"})
    assert response.status_code == 200
    project_id: str = response.json()["id"]
    return project_id


@pytest.fixture
def account(client: TestClient) -> str:
    response = client.post("/v1/billingAccounts", json={"display_name": "Acme"})
    assert response.status_code == 200
    account_id: str = response.json()["id"]
    return account_id


def new_key(client: TestClient, project: str, **body: Any) -> tuple[str, str]:
    created = client.post(f"/v1/projects/{project}/keys", json=body).json()
    return created["key"]["id"], created["key_string"]


def report(client: TestClient, key_id: str, units: int, request_id: str, **headers: str) -> Any:
    body = {"key_id": key_id, "units": units, "request_id": request_id}
    return client.post("/v1/usage:report", json=body, headers=headers)


def test_plans_are_readable_by_any_authenticated_caller(
    client: TestClient, llavero: Llavero, admin: Actor
) -> None:
    verifier = bearer(llavero, admin, "keys:verify")

    response = client.get("/v1/plans", headers=verifier)
    anonymous = client.get("/v1/plans", headers={"Authorization": ""})

    assert response.status_code == 200
    plans = response.json()["plans"]
    assert [plan["name"] for plan in plans] == ["free", "tier-1", "tier-2", "tier-3"]
    assert plans[0] == {
        "name": "free",
        "display_name": "Free",
        "rpm": 10,
        "rpd": 250,
        "upm": 250_000,
        "upd": 1_000_000,
    }
    assert (plans[3]["rpd"], plans[3]["upd"]) == (None, None)
    assert error(anonymous)[:2] == (401, "UNAUTHENTICATED")


def test_create_read_list_and_rename_an_account(client: TestClient) -> None:
    created = client.post(
        "/v1/billingAccounts", json={"display_name": "Acme", "currency": "EUR"}
    ).json()

    read = client.get(f"/v1/billingAccounts/{created['id']}").json()
    listed = client.get("/v1/billingAccounts").json()
    renamed = client.patch(
        f"/v1/billingAccounts/{created['id']}", json={"display_name": "Acme Corp"}
    ).json()

    assert (created["display_name"], created["currency"], created["open"]) == ("Acme", "EUR", True)
    assert read == created
    assert listed == {"billing_accounts": [created], "next_page_token": ""}
    assert (renamed["display_name"], renamed["open"]) == ("Acme Corp", True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": "Acme", "currency": "XQZ"}, "currency"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "Acme", "open": "yes"}, "open"),
        ({"display_name": "Acme", "owner": "me"}, "owner"),
        ({}, "display_name"),
    ],
)
def test_invalid_account_is_a_400_naming_the_field(
    client: TestClient, llavero: Llavero, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/billingAccounts", json=body)

    code, status, message = error(response)
    assert (code, status) == (400, "INVALID_ARGUMENT")
    assert message.startswith(f"{field}:")
    with llavero.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(tables.BillingAccount)) == 0


def test_accounts_need_the_admin_scope(
    client: TestClient, llavero: Llavero, admin: Actor, account: str
) -> None:
    writer = bearer(llavero, admin, "keys:read", "keys:write", "projects:write")

    assert (
        client.post("/v1/billingAccounts", json={"display_name": "X"}, headers=writer).status_code
        == 403
    )
    assert client.get("/v1/billingAccounts", headers=writer).status_code == 403
    assert (
        client.patch(
            f"/v1/billingAccounts/{account}", json={"open": False}, headers=writer
        ).status_code
        == 403
    )


def test_unknown_account_is_a_404(client: TestClient) -> None:
    response = client.get("/v1/billingAccounts/000000-000000-000000")

    assert error(response)[:2] == (404, "NOT_FOUND")


def test_billing_info_links_unlinks_and_refuses_a_closed_account(
    client: TestClient, project: str, account: str
) -> None:
    path = f"/v1/projects/{project}/billingInfo"
    before = client.get(path).json()

    linked = client.put(path, json={"billing_account": account})
    shown = client.get(f"/v1/projects/{project}").json()
    unlinked = client.put(path, json={"billing_account": None})
    client.patch(f"/v1/billingAccounts/{account}", json={"open": False})
    refused = client.put(path, json={"billing_account": account})

    assert before == {
        "project": project,
        "billing_account": None,
        "plan": "free",
        "limits": {"rpm": 10, "rpd": 250, "upm": 250_000, "upd": 1_000_000},
    }
    assert linked.status_code == 200
    assert linked.json() == {
        "project": project,
        "billing_account": account,
        "plan": "tier-1",
        "limits": {"rpm": 1_000, "rpd": 10_000, "upm": 1_000_000, "upd": 100_000_000},
    }
    assert (shown["billing_account"], shown["plan"]) == (account, "tier-1")
    assert unlinked.json() == before
    assert error(refused)[:2] == (412, "FAILED_PRECONDITION")
    assert client.get(path).json() == before


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 400), ({"billing_account": 12}, 400), ({"billing_account": "000000-000000-000000"}, 404)],
)
def test_bad_billing_info_is_refused(
    client: TestClient, project: str, body: dict[str, Any], status: int
) -> None:
    response = client.put(f"/v1/projects/{project}/billingInfo", json=body)

    assert response.status_code == status
    assert client.get(f"/v1/projects/{project}").json()["plan"] == "free"


def test_linking_through_the_api_raises_verify_limits_at_once(
    client: TestClient, project: str, account: str
) -> None:
    _, key = new_key(client, project)
    for _ in range(10):
        client.post("/v1/keys:verify", json={"key": key})
    refused = client.post("/v1/keys:verify", json={"key": key}).json()

    client.put(f"/v1/projects/{project}/billingInfo", json={"billing_account": account})
    allowed = client.post("/v1/keys:verify", json={"key": key}).json()

    assert (refused["code"], refused["limits"]["rpm"]["remaining"]) == ("RATE_LIMITED", 0)
    assert (allowed["code"], allowed["plan"], allowed["limits"]["rpm"]["limit"]) == (
        "VALID",
        "tier-1",
        1_000,
    )


def test_usage_report_counts_once_per_request_id(
    client: TestClient, llavero: Llavero, project: str
) -> None:
    key_id, key = new_key(client, project, limits={"upm": 100})

    first = report(client, key_id, 60, "req-1")
    retry = report(client, key_id, 60, "req-1")
    fits = client.post("/v1/keys:verify", json={"key": key, "cost": 40}).json()
    over = client.post("/v1/keys:verify", json={"key": key, "cost": 1}).json()

    assert first.status_code == retry.status_code == 200
    assert (first.json()["duplicate"], retry.json()["duplicate"]) == (False, True)
    assert first.json()["limits"]["upm"] == {"limit": 100, "remaining": 40, "reset_seconds": 60}
    assert retry.json()["limits"]["upm"]["remaining"] == 40
    assert (fits["code"], over["code"]) == ("VALID", "RATE_LIMITED")
    llavero.usage_meter.flush()
    with llavero.db.reading() as session:
        reported = session.scalars(
            select(tables.UsageBucket.units).where(
                tables.UsageBucket.key_id == key_id,
                tables.UsageBucket.granularity == "minute",
                tables.UsageBucket.code == "REPORTED",
            )
        ).all()
    assert reported == [60]


def test_reported_units_go_over_the_limit_and_refuse_later_verifies(
    client: TestClient, project: str
) -> None:
    key_id, key = new_key(client, project, limits={"upd": 50})

    response = report(client, key_id, 80, "tokens-after-answer")
    result = client.post("/v1/keys:verify", json={"key": key}).json()

    assert response.json()["limits"]["upd"]["remaining"] == 0
    assert result["code"] == "QUOTA_EXCEEDED"
    assert result["limits"]["rpm"]["remaining"] == 10  # the report counted no request


def test_usage_report_with_a_used_request_id_for_another_key_or_units_is_a_409(
    client: TestClient, project: str
) -> None:
    first_key, _ = new_key(client, project)
    second_key, _ = new_key(client, project)
    report(client, first_key, 10, "shared-id")

    other_key = report(client, second_key, 10, "shared-id")
    other_units = report(client, first_key, 11, "shared-id")

    assert error(other_key)[:2] == (409, "ALREADY_EXISTS")
    assert error(other_units)[:2] == (409, "ALREADY_EXISTS")
    assert "request_id" in error(other_key)[2]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key_id": "k", "units": -1, "request_id": "r"}, "units"),
        ({"key_id": "k", "units": "5", "request_id": "r"}, "units"),
        ({"key_id": "k", "units": 5, "request_id": "with space"}, "request_id"),
        ({"key_id": "k", "units": 5, "request_id": ""}, "request_id"),
        ({"key_id": "k", "units": 5}, "request_id"),
    ],
)
def test_invalid_usage_report_is_a_400_naming_the_field(
    client: TestClient, project: str, body: dict[str, Any], field: str
) -> None:
    key_id, _ = new_key(client, project)
    body = {**body, "key_id": key_id}

    code, status, message = error(client.post("/v1/usage:report", json=body))

    assert (code, status) == (400, "INVALID_ARGUMENT")
    assert message.startswith(f"{field}:")


def test_usage_report_needs_keys_verify_and_a_known_key(
    client: TestClient, llavero: Llavero, admin: Actor, project: str
) -> None:
    key_id, _ = new_key(client, project)
    reader = bearer(llavero, admin, "keys:read")
    verifier = bearer(llavero, admin, "keys:verify")

    assert report(client, key_id, 1, "a", **reader).status_code == 403
    assert report(client, key_id, 1, "b", **verifier).status_code == 200
    assert error(report(client, "no-such-key", 1, "c", **verifier))[:2] == (404, "NOT_FOUND")
