"""`GET /v1/projects/{project}/keys?order_by=...`: the service's orders over HTTP, and the
SPEC's 400 naming the field for an unknown order or a page token of another order."""

from __future__ import annotations

from fastapi.testclient import TestClient

from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero

NAMES = ("delta", "Alpha", "charlie", "bravo")


def make_keys(llavero: Llavero, admin: Actor, clock: FrozenClock) -> None:
    llavero.projects.create(admin, "Order test", "order-test")
    for name in NAMES:
        clock.advance(1)
        llavero.keys.create(admin, "order-test", display_name=name)


def names(client: TestClient, **params: str) -> list[str]:
    listed: list[str] = []
    query = {"page_size": "1", **params}
    while True:
        answer = client.get("/v1/projects/-/keys", params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        listed.extend(key["display_name"] for key in body["keys"])
        if not body["next_page_token"]:
            return listed
        query["page_token"] = body["next_page_token"]


def test_order_by_orders_every_page(
    client: TestClient, llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    make_keys(llavero, admin, clock)
    assert names(client) == list(reversed(NAMES))
    assert names(client, order_by="create_time") == list(NAMES)
    assert names(client, order_by="display_name") == ["Alpha", "bravo", "charlie", "delta"]


def test_an_unknown_order_or_a_token_of_another_order_is_a_400_naming_the_field(
    client: TestClient, llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    make_keys(llavero, admin, clock)
    unknown = client.get("/v1/projects/-/keys", params={"order_by": "last_used_time"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"].startswith("order_by: ")

    first = client.get("/v1/projects/-/keys", params={"page_size": 1, "order_by": "project"})
    token = first.json()["next_page_token"]
    assert token
    other = client.get(
        "/v1/projects/-/keys",
        params={"page_size": 1, "order_by": "display_name", "page_token": token},
    )
    assert other.status_code == 400
    assert other.json()["error"]["message"].startswith("page_token: ")
