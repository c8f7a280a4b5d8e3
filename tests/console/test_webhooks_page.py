"""The Webhooks page: add an endpoint (the secret shown once), send a test event, see it in the
delivery log, disable, rotate and delete; every text in both languages."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llavero.service import Actor, Llavero, events
from tests.console.console_client import csrf_of
from tests.console.marking import mark_translations, untranslated
from tests.webhook_receiver import Receiver, receiver


@pytest.fixture(autouse=True)
def english_browser(anonymous: TestClient) -> None:
    anonymous.headers["Accept-Language"] = "en"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def add(console: TestClient, url: str, *kinds: str, project: str = "") -> str:
    form: dict[str, object] = {"csrf_token": csrf_of(console.get("/app/webhooks")), "url": url}
    form |= {"project": project, "event": list(kinds)}
    answer = console.post("/app/webhooks", data=form)
    assert answer.status_code == 200, answer.text
    secret = re.search(r'value="(whsec_[^"]+)"', answer.text)
    assert secret is not None
    return secret.group(1)


def test_add_test_and_read_the_delivery_log(
    console: TestClient, llavero: Llavero, hook: Receiver
) -> None:
    hook.secrets.append(add(console, hook.url, "key.created", "key.deleted"))
    listing = console.get("/app/webhooks")
    assert hook.url in listing.text and "key.created, key.deleted" in listing.text
    (webhook,) = llavero.webhooks.list(Actor.system()).items
    assert webhook.events == ["key.created", "key.deleted"] and webhook.project is None
    page = console.get(f"/app/webhooks/{webhook.id}")
    assert "whsec_" not in page.text  # shown once, on the answer to the post only
    sent = console.post(f"/app/webhooks/{webhook.id}/test", data={"csrf_token": csrf_of(page)})
    assert sent.status_code == 303
    llavero.dispatcher.run_once()
    assert hook.types() == ["webhook.test"]
    log = console.get(sent.headers["location"])
    assert "A test event is on its way" in log.text
    assert hook.ids()[0] in log.text and "Delivered" in log.text


def test_a_bad_url_is_refused_beside_its_field(console: TestClient, llavero: Llavero) -> None:
    form = {"csrf_token": csrf_of(console.get("/app/webhooks")), "url": "file:///etc/passwd"}
    answer = console.post("/app/webhooks", data=form)
    assert answer.status_code == 400
    assert 'id="webhook-url"' in answer.text and 'aria-invalid="true"' in answer.text
    assert llavero.webhooks.list(Actor.system()).items == []


def test_disable_rotate_delete(console: TestClient, llavero: Llavero, hook: Receiver) -> None:
    first = add(console, hook.url)
    (webhook,) = llavero.webhooks.list(Actor.system()).items
    path = f"/app/webhooks/{webhook.id}"
    token = csrf_of(console.get(path))
    assert console.post(path + "/disable", data={"csrf_token": token}).status_code == 303
    assert llavero.webhooks.get(Actor.system(), webhook.id).disabled
    assert console.post(path + "/enable", data={"csrf_token": token}).status_code == 303
    assert not llavero.webhooks.get(Actor.system(), webhook.id).disabled
    assert console.post(path + "/explode", data={"csrf_token": token}).status_code == 404
    rotated = console.post(path + "/rotate", data={"csrf_token": token})
    secret = re.search(r'value="(whsec_[^"]+)"', rotated.text)
    assert secret is not None and secret.group(1) != first
    assert console.post(path + "/delete", data={"csrf_token": token}).status_code == 303
    assert llavero.webhooks.list(Actor.system()).items == []
    assert console.get(path).status_code == 404


def test_every_text_is_translated(
    console: TestClient, llavero: Llavero, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(console, hook.url)
    (webhook,) = llavero.webhooks.list(Actor.system()).items
    llavero.webhooks.send_test(Actor.system(), webhook.id)
    hook.status = 503
    llavero.dispatcher.run_once()
    spanish = console.get(f"/app/webhooks/{webhook.id}", params={"hl": "es_419"})
    assert "Registro de entregas" in spanish.text and "Enviar un evento de prueba" in spanish.text
    mark_translations(monkeypatch)
    pages = [console.get("/app/webhooks"), console.get(f"/app/webhooks/{webhook.id}")]
    example = "https://example.com/hooks/llavero"  # the URL field's placeholder
    data = [hook.url, example, "ana@example.com", "HTTP 503", "webhook.test", *events.EVENT_TYPES]
    data += [
        item.event_id for item in llavero.webhooks.deliveries(Actor.system(), webhook.id).items
    ]
    for page in pages:
        leftovers = untranslated(page.text, data)  # times, formatted by Babel, are data too
        assert [text for text in leftovers if not re.fullmatch(r"[\w ,:\u202f]+[AP]M", text)] == []
