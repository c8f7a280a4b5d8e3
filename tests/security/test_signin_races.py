"""Sign-in under real concurrency, on SQLite and PostgreSQL: a one-time link is redeemed once
out of N concurrent requests over real sockets, and N concurrent guesses at a password get at
most the allowed evaluations (docs/security.md, "Sign-in races")."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from llavero.application import create_app
from llavero.errors import LlaveroError
from llavero.service import Actor, Llavero
from llavero.service.throttle import FREE_ATTEMPTS
from tests.loopback import serve

PASSWORD = "correct horse battery"
CONCURRENT = 30


def at_once(count: int, call: Callable[[], Any]) -> list[Any]:
    """`count` calls released together by a barrier, each in its own thread; the results
    (an exception counts as a result)."""
    barrier = threading.Barrier(count)

    def one() -> Any:
        barrier.wait()
        try:
            return call()
        except LlaveroError as error:
            return error

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


@pytest.fixture
def argon2_verifies(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts the Argon2 verifies that run, from any thread."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        with lock:
            counts["verify"] += 1
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    yield counts


def test_a_signin_link_is_redeemed_once_by_concurrent_requests(
    any_llavero: Llavero, admin: Actor
) -> None:
    user = any_llavero.users.create(admin, "ana@example.com", None, role="admin")
    token = any_llavero.users.create_signin_link(admin, user.id)
    with serve(create_app(any_llavero)) as base:

        def redeem() -> int:
            with httpx.Client(base_url=base, follow_redirects=False, timeout=60) as client:
                answer = client.get("/signin/link", params={"token": token})
                return answer.status_code

        statuses = Counter(at_once(CONCURRENT, redeem))
    assert statuses == {303: 1, 401: CONCURRENT - 1}
    events = any_llavero.audit.list(admin, target="user/ana@example.com").items
    assert [event.action for event in events].count("user.signin_link_used") == 1


def test_concurrent_redemptions_in_the_service_sign_in_one_user_once(
    any_llavero: Llavero, admin: Actor
) -> None:
    user = any_llavero.users.create(admin, "ana@example.com", None)
    token = any_llavero.users.create_signin_link(admin, user.id)
    results = at_once(CONCURRENT, lambda: any_llavero.users.redeem_signin_link(token))
    winners = [result for result in results if not isinstance(result, LlaveroError)]
    assert [winner.id for winner in winners] == [user.id]
    assert {type(result).__name__ for result in results if result not in winners} == {
        "Unauthenticated"
    }


def test_concurrent_wrong_passwords_get_at_most_the_free_evaluations(
    any_llavero: Llavero, admin: Actor, argon2_verifies: Counter[str]
) -> None:
    any_llavero.users.create(admin, "admin@localhost", PASSWORD, role="admin")
    argon2_verifies.clear()
    results = at_once(
        40, lambda: any_llavero.users.authenticate("admin@localhost", "guess", "198.51.100.7")
    )
    outcomes = Counter(type(result).__name__ for result in results)
    assert outcomes == {"Unauthenticated": FREE_ATTEMPTS, "ResourceExhausted": 40 - FREE_ATTEMPTS}
    assert argon2_verifies["verify"] == FREE_ATTEMPTS
    # The guesses came from one address: the admin signs in from another one at once.
    assert any_llavero.users.authenticate("admin@localhost", PASSWORD, "203.0.113.9").role == (
        "admin"
    )


def test_concurrent_guesses_over_http_are_refused_past_the_free_attempts(
    any_llavero: Llavero, admin: Actor, argon2_verifies: Counter[str]
) -> None:
    any_llavero.users.create(admin, "admin@localhost", PASSWORD, role="admin")
    argon2_verifies.clear()
    with serve(create_app(any_llavero)) as base:

        def guess() -> int:
            with httpx.Client(base_url=base, follow_redirects=False, timeout=60) as client:
                form = client.get("/signin")
                csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
                answer = client.post(
                    "/signin",
                    data={"email": "admin@localhost", "password": "guess", "csrf_token": csrf},
                )
                return answer.status_code

        statuses = Counter(at_once(20, guess))
    assert statuses == {401: FREE_ATTEMPTS, 429: 20 - FREE_ATTEMPTS}
    assert argon2_verifies["verify"] == FREE_ATTEMPTS
