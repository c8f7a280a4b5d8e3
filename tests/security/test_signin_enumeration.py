"""Sign-in tells nobody which accounts exist and locks nobody out (docs/security.md, "Account
enumeration and throttling"): the same answer after the same work (one Argon2 verify, counted
by a spy, never timed) whatever the email; a throttle per (email, client address) with backoff;
an admin clears it from the service, the API, the CLI and the console; an unauthenticated
request stores nothing it can make large, and what it stores is purged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from llavero.application import create_app
from llavero.cli import app as cli_app
from llavero.core.clock import FrozenClock
from llavero.errors import LlaveroError, ResourceExhausted, Unauthenticated
from llavero.service import Actor, Llavero
from llavero.service.throttle import FREE_ATTEMPTS
from llavero.store import tables

PASSWORD = "correct horse battery"
ATTACKER = "198.51.100.7"
OWNER = "203.0.113.9"


@pytest.fixture
def verifies(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The hashes the Argon2 verifies ran against, in order."""
    seen: list[str] = []
    real = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        seen.append(str(hash))
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    yield seen


def failure(llavero: Llavero, email: object, password: object, ip: str | None = None) -> str:
    with pytest.raises(LlaveroError) as error:
        llavero.users.authenticate(email, password, ip)  # type: ignore[arg-type]
    assert isinstance(error.value, Unauthenticated)
    return error.value.message


def throttle_rows(llavero: Llavero) -> int:
    with llavero.db.reading() as session:
        return session.scalar(select(func.count()).select_from(tables.SigninThrottle)) or 0


def test_every_failure_costs_one_argon2_verify_and_reads_the_same(
    any_llavero: Llavero, admin: Actor, verifies: list[str]
) -> None:
    any_llavero.users.create(admin, "ana@example.com", PASSWORD)
    disabled = any_llavero.users.create(admin, "off@example.com", PASSWORD)
    any_llavero.users.update(admin, disabled.id, disabled=True)
    any_llavero.users.create(admin, "invited@example.com", None)
    verifies.clear()
    attempts = [
        ("ana@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("off@example.com", PASSWORD),
        ("invited@example.com", PASSWORD),
        ("not an email", PASSWORD),
        ("ana@example.com", "x" * 100_000),
        ("ana@example.com", None),
    ]
    messages = {failure(any_llavero, email, password) for email, password in attempts}
    assert messages == {"wrong email or password"}
    assert len(verifies) == len(attempts)
    assert all(hash.startswith("$argon2id$") for hash in verifies)
    verifies.clear()
    assert any_llavero.users.authenticate("ana@example.com", PASSWORD).email == "ana@example.com"
    assert len(verifies) == 1


def test_an_unknown_email_is_throttled_like_a_real_one(any_llavero: Llavero, admin: Actor) -> None:
    any_llavero.users.create(admin, "ana@example.com", PASSWORD)
    for email in ("ana@example.com", "nobody@example.com"):
        for _ in range(FREE_ATTEMPTS):
            failure(any_llavero, email, "guess", ATTACKER)
        with pytest.raises(ResourceExhausted) as refused:
            any_llavero.users.authenticate(email, PASSWORD, ATTACKER)
        assert refused.value.message == "too many failed sign-ins; try again in 1 minute"


def test_guesses_from_one_address_do_not_lock_the_user_out(
    any_llavero: Llavero, admin: Actor
) -> None:
    any_llavero.users.create(admin, "admin@localhost", PASSWORD, role="admin")
    for _ in range(FREE_ATTEMPTS):
        failure(any_llavero, "admin@localhost", "guess", ATTACKER)
    with pytest.raises(ResourceExhausted):
        any_llavero.users.authenticate("admin@localhost", PASSWORD, ATTACKER)
    assert any_llavero.users.authenticate("admin@localhost", PASSWORD, OWNER).role == "admin"
    with pytest.raises(ResourceExhausted):  # the owner's success clears only the owner's address
        any_llavero.users.authenticate("admin@localhost", PASSWORD, ATTACKER)


def test_the_backoff_doubles_and_is_capped(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    for _ in range(FREE_ATTEMPTS):
        failure(any_llavero, "ana@example.com", "guess", ATTACKER)
    for minutes in (1, 2, 4, 8, 15, 15):
        clock.advance(minutes * 60 - 1)
        with pytest.raises(ResourceExhausted):
            any_llavero.users.authenticate("ana@example.com", "guess", ATTACKER)
        clock.advance(1)
        failure(any_llavero, "ana@example.com", "guess", ATTACKER)


def test_an_admin_clears_a_throttle_in_the_service(any_llavero: Llavero, admin: Actor) -> None:
    any_llavero.users.create(admin, "ana@example.com", PASSWORD)
    for _ in range(FREE_ATTEMPTS):
        failure(any_llavero, "ana@example.com", "guess", ATTACKER)
    [row] = any_llavero.users.throttles(admin, "ANA@example.com")
    assert (row.email, row.ip, row.failures) == ("ana@example.com", ATTACKER, FREE_ATTEMPTS)
    assert any_llavero.users.clear_throttle(admin, "ana@example.com") == 1
    assert any_llavero.users.authenticate("ana@example.com", PASSWORD, ATTACKER).id > 0
    events = any_llavero.audit.list(admin, target="user/ana@example.com").items
    assert "user.throttle_clear" in [event.action for event in events]


def test_an_admin_clears_a_throttle_through_the_api_and_nobody_else_does(
    llavero: Llavero, admin: Actor, client: TestClient
) -> None:
    member = llavero.tokens.create(admin, ["keys:read", "keys:write", "projects:write"]).token
    for _ in range(FREE_ATTEMPTS):
        failure(llavero, "ana@example.com", "guess", ATTACKER)
    listed = client.get("/v1/signinThrottles", params={"email": "ana@example.com"}).json()
    assert [row["ip"] for row in listed["signin_throttles"]] == [ATTACKER]
    as_member = {"Authorization": f"Bearer {member}"}
    body = {"email": "ana@example.com"}
    refused = client.post("/v1/signinThrottles:clear", json=body, headers=as_member)
    assert refused.status_code == 403
    assert client.post("/v1/signinThrottles:clear", json=body).json() == {"cleared": 1}
    assert client.get("/v1/signinThrottles").json() == {"signin_throttles": []}
    too_long = client.post("/v1/signinThrottles:clear", json={"email": "a" * 300 + "@x.org"})
    assert too_long.status_code == 400 and "email" in too_long.json()["error"]["message"]


def test_an_admin_clears_a_throttle_from_the_cli(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    llavero = Llavero()  # the database of `cli_env`, on the clock the CLI runs on
    llavero.upgrade()
    for _ in range(FREE_ATTEMPTS):
        failure(llavero, "ana@example.com", "guess", ATTACKER)
    llavero.close()
    listed = runner.invoke(cli_app, ["users", "throttles", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [row["ip"] for row in json.loads(listed.stdout)] == [ATTACKER]
    cleared = runner.invoke(
        cli_app, ["users", "unthrottle", "ana@example.com", "--ip", ATTACKER, "--json"]
    )
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.stdout) == {"email": "ana@example.com", "cleared": 1}
    assert json.loads(runner.invoke(cli_app, ["users", "throttles", "--json"]).stdout) == []


def test_nothing_large_is_stored_or_echoed_and_old_counts_are_purged(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    huge = "a" * 1_000_000 + "@example.com"
    failure(llavero, huge, PASSWORD, ATTACKER)
    assert throttle_rows(llavero) == 0
    with TestClient(create_app(llavero)) as browser:
        form = browser.get("/signin")
        csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = browser.post(
            "/signin", data={"email": huge, "password": PASSWORD, "csrf_token": csrf}
        )
    assert answer.status_code == 401
    assert "a" * 1000 not in answer.text
    assert throttle_rows(llavero) == 0
    failure(llavero, "ana@example.com", "guess", ATTACKER)
    assert throttle_rows(llavero) == 1
    clock.advance(timedelta(hours=24, seconds=1).total_seconds())
    llavero.purge()
    assert throttle_rows(llavero) == 0


def csrf_of(html: str) -> str:
    return html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def test_an_admin_clears_a_throttle_on_the_users_page(llavero: Llavero, admin: Actor) -> None:
    llavero.users.create(admin, "boss@example.com", PASSWORD, role="admin")
    ana = llavero.users.create(admin, "ana@example.com", PASSWORD)
    for _ in range(FREE_ATTEMPTS):
        failure(llavero, "ana@example.com", "guess", ATTACKER)
    with TestClient(create_app(llavero), follow_redirects=False) as browser:
        form = browser.get("/signin")
        signed_in = browser.post(
            "/signin",
            data={
                "email": "boss@example.com",
                "password": PASSWORD,
                "csrf_token": csrf_of(form.text),
            },
        )
        assert signed_in.status_code == 303
        page = browser.get("/app/users", params={"hl": "en"})
        action = f'action="/app/users/{ana.id}/unthrottle"'
        assert action in page.text and "Sign-in throttled: next attempt in 1 minute" in page.text
        assert "Acceso limitado" in browser.get("/app/users", params={"hl": "es_419"}).text
        cleared = browser.post(
            f"/app/users/{ana.id}/unthrottle", data={"csrf_token": csrf_of(page.text)}
        )
        assert cleared.status_code == 303
        assert action not in browser.get("/app/users").text
    assert llavero.users.throttles(admin) == []


def test_an_ipv6_host_is_counted_by_its_64(llavero: Llavero) -> None:
    """One host holds a whole /64: new addresses in it do not buy new free attempts."""
    for host in range(1, FREE_ATTEMPTS + 1):
        failure(llavero, "ana@example.com", "guess", f"2001:db8:1:2::{host:x}")
    with pytest.raises(ResourceExhausted):
        llavero.users.authenticate("ana@example.com", "guess", "2001:db8:1:2:ffff::1")
    failure(llavero, "ana@example.com", "guess", "2001:db8:1:3::1")  # another /64
    failure(llavero, "ana@example.com", "guess", "::ffff:192.0.2.1")
    failure(llavero, "ana@example.com", "guess", "192.0.2.1")
    ips = {row.ip: row.failures for row in llavero.users.throttles(Actor.system())}
    assert ips == {"2001:db8:1:2::/64": FREE_ATTEMPTS, "2001:db8:1:3::/64": 1, "192.0.2.1": 2}
