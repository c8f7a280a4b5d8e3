"""`/v1/webhooks`: the contract's fields, the secret shown once, errors that name the field,
who may manage which webhook, the delivery log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.errors import NotFound
from llavero.service import Actor, Llavero
from llavero.service.context import MEMBER_SCOPES
from tests.webhook_receiver import Receiver, receiver


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def create(client: TestClient, url: str, **fields: object) -> dict[str, object]:
    answer = client.post("/v1/webhooks", json={"url": url, "events": ["*"], **fields})
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_create_read_update_delete(client: TestClient, hook: Receiver) -> None:
    created = create(client, hook.url, description="alerts")
    webhook = created["webhook"]
    assert isinstance(webhook, dict) and str(created["secret"]).startswith("whsec_")
    assert webhook["events"] == ["*"] and webhook["project"] is None
    assert "secret" not in webhook
    path = f"/v1/webhooks/{webhook['id']}"
    assert client.get(path).json() == webhook
    assert "whsec_" not in client.get("/v1/webhooks").text
    changed = client.patch(path, json={"events": ["key.leaked", "key.leaked"], "disabled": True})
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["key.leaked"] and changed.json()["disabled"]
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
        ({"url": "https://example.com/x", "events": []}, "events"),
        ({"url": "https://example.com/x", "events": ["key.exploded"]}, "events"),
        ({"url": "https://example.com/x", "events": ["*"], "project": "nope"}, "project"),
        ({"url": "https://example.com/x", "events": ["*"], "secret": "mine"}, "secret"),
    ],
)
def test_bad_input_names_the_field(client: TestClient, body: dict[str, object], field: str) -> None:
    answer = client.post("/v1/webhooks", json=body)
    assert 400 <= answer.status_code < 500
    assert field in answer.json()["error"]["message"]
    assert client.get("/v1/webhooks").json()["webhooks"] == []


def test_test_rotate_and_the_delivery_log(
    client: TestClient, llavero: Llavero, hook: Receiver
) -> None:
    created = create(client, hook.url)
    webhook_id = created["webhook"]["id"]  # type: ignore[index]
    rotated = client.post(f"/v1/webhooks/{webhook_id}:rotateSecret").json()
    assert rotated["secret"] != created["secret"]
    hook.secrets.append(rotated["secret"])
    sent = client.post(f"/v1/webhooks/{webhook_id}:test")
    assert sent.status_code == 200
    llavero.dispatcher.run_once()
    assert hook.ids() == [sent.json()["event_id"]]
    log = client.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["deliveries"]
    assert [
        (d["event_id"], d["type"], d["status"], d["attempts"], d["last_status"]) for d in log
    ] == [(sent.json()["event_id"], "webhook.test", "delivered", 1, 204)]
    paged = client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"page_size": 1})
    assert paged.json()["next_page_token"] == ""


def test_who_manages_which_webhook(llavero: Llavero, admin: Actor, hook: Receiver) -> None:
    user = llavero.users.create(admin, "editor@example.com", "a long enough password 123")
    member = Actor(user.email, MEMBER_SCOPES, user_id=user.id)
    mine = llavero.projects.create(member, "Mine").id
    other = llavero.projects.create(admin, "Other").id
    theirs = llavero.webhooks.create(admin, hook.url, ["*"], project=other).webhook.id
    everywhere = llavero.webhooks.create(admin, hook.url, ["*"]).webhook.id
    token = llavero.tokens.create(admin, ["keys:read", "keys:write", "projects:write"]).token
    with TestClient(create_app(llavero)) as api:
        api.headers["Authorization"] = f"Bearer {token}"
        assert api.post("/v1/webhooks", json={"url": hook.url, "events": ["*"]}).status_code == 403
        assert api.get(f"/v1/webhooks/{everywhere}").status_code == 404
        ok = api.post("/v1/webhooks", json={"url": hook.url, "events": ["*"], "project": mine})
        assert ok.status_code == 200, ok.text
    assert [w.id for w in llavero.webhooks.list(member).items] == [ok.json()["webhook"]["id"]]
    with pytest.raises(NotFound):
        llavero.webhooks.get(member, theirs)
