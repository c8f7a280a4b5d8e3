"""What happens to a leaked key: the project's leak policy, the leak recorded on the key and
in the audit trail, `POST /v1/keys:reportLeaked`, `leak_policy` on PATCH /v1/projects, the
one-click rotation, and a revocation seen by another serving process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from llavero.config import Settings
from llavero.core import keyformat
from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from llavero.service.leaks import Match
from tests.loopback import free_port


def leak(llavero: Llavero, key_string: str, url: str = "https://paste.example/x") -> str:
    (verdict,) = llavero.leaks.report(
        Actor.system("scanner"), [Match(key_string, url=url, source="test")]
    )
    return verdict.label


@pytest.mark.parametrize(
    ("policy", "state", "code"),
    [
        ("revoke", "DELETED", "DELETED"),
        ("disable", "DISABLED", "DISABLED"),
        ("notify", "ACTIVE", "VALID"),
    ],
)
def test_the_projects_policy_decides_and_the_leak_is_always_recorded(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock, policy: str, state: str, code: str
) -> None:
    project = any_llavero.projects.create(admin, "Policies")
    if policy != "revoke":
        any_llavero.projects.update(admin, project.id, leak_policy=policy)
    created = any_llavero.keys.create(admin, project.id)
    assert any_llavero.verifier.verify(VerifyRequest(created.key_string)).code == "VALID"
    assert leak(any_llavero, created.key_string) == "true_positive"
    key = any_llavero.keys.get(admin, created.key.id)
    assert key.state == state
    assert key.leak is not None
    assert (key.leak.time, key.leak.url, key.leak.source) == (
        clock.now(),
        "https://paste.example/x",
        "test",
    )
    assert any_llavero.verifier.verify(VerifyRequest(created.key_string)).code == code
    (event, *_) = any_llavero.audit.list(admin, target=created.key.id).items
    assert event.action == "key.leak"
    assert event.details["policy"] == policy
    assert created.key_string not in json.dumps(event.details)


def test_a_leaked_string_in_its_grace_period_stops_now_and_spares_the_new_one(
    llavero: Llavero, admin: Actor
) -> None:
    project = llavero.projects.create(admin, "Grace")  # policy revoke: for the current string
    created = llavero.keys.create(admin, project.id)
    rotated = llavero.keys.rotate(admin, created.key.id, 3600)
    assert llavero.verifier.verify(VerifyRequest(created.key_string)).code == "VALID"
    assert leak(llavero, created.key_string) == "true_positive"
    assert llavero.verifier.verify(VerifyRequest(created.key_string)).code == "EXPIRED"
    assert llavero.verifier.verify(VerifyRequest(rotated.key_string)).code == "VALID"
    assert llavero.keys.get(admin, created.key.id).state == "ACTIVE"


def test_a_report_that_comes_again_after_the_rotation_spares_the_new_string(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    project = llavero.projects.create(admin, "Replay")
    created = llavero.keys.create(admin, project.id)
    leak(llavero, created.key_string)
    clock.advance(60)
    rotated = llavero.leaks.rotate(admin, created.key.id)
    clock.advance(60)
    assert leak(llavero, created.key_string) == "true_positive"  # GitHub saw it once more
    assert llavero.verifier.verify(VerifyRequest(rotated.key_string)).code == "VALID"
    assert llavero.keys.get(admin, created.key.id).leak is None


def test_a_leaked_management_token_is_revoked(llavero: Llavero, admin: Actor) -> None:
    token = llavero.tokens.create(admin, ["keys:verify"]).token
    assert leak(llavero, token) == "true_positive"
    with pytest.raises(Exception, match="revoked"):
        llavero.tokens.authenticate(token)


def test_a_member_reports_only_keys_of_projects_they_may_change(
    llavero: Llavero, admin: Actor
) -> None:
    project = llavero.projects.create(admin, "Not yours")
    created = llavero.keys.create(admin, project.id)
    user = llavero.users.create(admin, "member@example.com", "correct horse battery", role="member")
    member = Actor(
        f"user:{user.id}", frozenset({"keys:read", "keys:write", "projects:write"}), user.id
    )
    (verdict,) = llavero.leaks.report(member, [Match(created.key_string)])
    assert verdict.label == "false_positive"
    assert llavero.keys.get(admin, created.key.id).leak is None


def test_one_click_rotation_brings_a_revoked_key_back_with_a_new_string(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    project = llavero.projects.create(admin, "Rotate")
    created = llavero.keys.create(admin, project.id)
    leak(llavero, created.key_string)
    clock.advance(5)
    rotated = llavero.leaks.rotate(admin, created.key.id)
    assert rotated.key.id == created.key.id and rotated.key.leak is None
    assert llavero.verifier.verify(VerifyRequest(rotated.key_string)).code == "VALID"
    assert llavero.verifier.verify(VerifyRequest(created.key_string)).code == "EXPIRED"
    assert llavero.keys.get(admin, created.key.id).leak is None
    with pytest.raises(Exception, match="no reported leak"):
        llavero.leaks.rotate(admin, created.key.id)


def test_report_leaked_over_http(llavero: Llavero, admin: Actor, client: TestClient) -> None:
    project = llavero.projects.create(admin, "Http")
    created = llavero.keys.create(admin, project.id)
    body = {"key_string": created.key_string, "url": "https://gist.example/1", "source": "gitleaks"}
    reader = llavero.tokens.create(admin, ["keys:read"]).token
    refused = client.post(
        "/v1/keys:reportLeaked", json=body, headers={"Authorization": f"Bearer {reader}"}
    )
    assert refused.status_code == 403
    assert llavero.keys.get(admin, created.key.id).leak is None

    writer = llavero.tokens.create(admin, ["keys:write"]).token
    response = client.post(
        "/v1/keys:reportLeaked", json=body, headers={"Authorization": f"Bearer {writer}"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["label"] == "true_positive" and answer["action"] == "revoke"
    assert answer["token_hash"] == hashlib.sha256(created.key_string.encode()).hexdigest()
    assert created.key_string not in response.text
    shown = client.get(f"/v1/keys/{created.key.id}").json()
    assert shown["state"] == "DELETED"
    assert (
        shown["leak"]["url"] == "https://gist.example/1" and shown["leak"]["source"] == "gitleaks"
    )
    listed = client.get(f"/v1/projects/{project.id}/keys", params={"show_deleted": True}).json()
    assert listed["keys"][0]["leak"]["source"] == "gitleaks"

    unknown = client.post("/v1/keys:reportLeaked", json={"key_string": keyformat.generate("llv")})
    assert unknown.status_code == 200 and unknown.json()["label"] == "false_positive"
    missing = client.post("/v1/keys:reportLeaked", json={"url": "x"})
    assert missing.status_code == 400 and "key_string" in missing.json()["error"]["message"]


def test_leak_policy_over_http(llavero: Llavero, admin: Actor, client: TestClient) -> None:
    project = llavero.projects.create(admin, "Patch me")
    assert client.get(f"/v1/projects/{project.id}").json()["leak_policy"] == "revoke"
    changed = client.patch(f"/v1/projects/{project.id}", json={"leak_policy": "notify"})
    assert changed.status_code == 200 and changed.json()["leak_policy"] == "notify"
    assert changed.json()["display_name"] == "Patch me"
    bad = client.patch(
        f"/v1/projects/{project.id}", json={"leak_policy": "explode", "display_name": "X"}
    )
    assert bad.status_code == 400 and "leak_policy" in bad.json()["error"]["message"]
    empty = client.patch(f"/v1/projects/{project.id}", json={})
    assert empty.status_code == 400
    after = client.get(f"/v1/projects/{project.id}").json()
    assert (after["leak_policy"], after["display_name"]) == ("notify", "Patch me")


def test_a_key_revoked_here_is_deleted_on_another_serving_process(tmp_path: Path) -> None:
    """Another `llavero serve` on the same database caches the key, then learns of the leak
    from the change feed: its next verifies answer DELETED."""
    env = {
        **os.environ,
        "LLAVERO_DATA_DIR": str(tmp_path),
        "LLAVERO_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "LLAVERO_SECRET_KEY": "shared-secret-0123456789abcdef",
        "LLAVERO_CHANGE_POLL_SECONDS": "0.2",
        "LLAVERO_LOG_LEVEL": "warning",
    }
    settings = Settings(
        data_dir=tmp_path,
        database_url=env["LLAVERO_DATABASE_URL"],
        secret_key=env["LLAVERO_SECRET_KEY"],
        change_poll_seconds=0,
    )
    here = Llavero(settings)
    here.upgrade()
    admin = Actor.system("test")
    created = here.keys.create(admin, here.projects.create(admin, "Shared").id)
    token = here.tokens.create(admin, ["keys:verify"]).token
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llavero", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as other:
            assert verify_when_up(other, created.key_string) == "VALID"  # cached over there now
            leak(here, created.key_string)
            assert first_code_other_than_valid(other, created.key_string) == "DELETED"
    finally:
        server.terminate()
        server.wait(10)
        here.close()


def verify(client: httpx.Client, key_string: str) -> str:
    return str(client.post("/v1/keys:verify", json={"key": key_string}).json()["code"])


def verify_when_up(client: httpx.Client, key_string: str) -> str:
    """The first verify once the server answers: 60 s, as for every server the tests start (a
    loaded machine running the suite on several workers needs more than 15)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return verify(client, key_string)
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the other process did not start within 60 s")


def first_code_other_than_valid(client: httpx.Client, key_string: str) -> str:
    """Verifies (every 50 ms) until the answer changes. Not a timing test: the bound only
    stops a broken feed from hanging the suite."""
    for _ in range(200):
        code = verify(client, key_string)
        if code != "VALID":
            return code
        time.sleep(0.05)
    raise AssertionError("the other process never saw the leak")


def test_a_reported_leak_queues_a_key_leaked_event(llavero: Llavero, admin: Actor) -> None:
    """The leak handler's one hook: a `key.leaked` event, in the leak's own transaction."""
    project = llavero.projects.create(admin, "Leaky API")
    created = llavero.keys.create(admin, project.id)
    hook = llavero.webhooks.create(
        admin, "https://hooks.example.com/in", ["key.leaked"], project=project.id
    )
    llavero.leaks.report(admin, [Match(created.key_string, url="https://x.test/a", source="t")])
    (delivery,) = llavero.webhooks.deliveries(admin, hook.webhook.id).items
    assert delivery.type == "key.leaked"
