"""Verifies that find their slice spent at once share one claim (`llavero.store.flights`)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from llavero.core.limits import Check, Decision
from llavero.service import Llavero
from llavero.store.db_limiter import DatabaseLimiter
from llavero.store.flights import Flights

T0 = 1_754_006_400.0
CLIENTS = 32


def counting_claims(limiter: DatabaseLimiter, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many claims (database transactions in a thread) the limiter starts."""
    claims: list[int] = []
    attempt = limiter._attempt

    def counted(checks: list[Check], now: float) -> Decision:
        claims.append(1)
        return attempt(checks, now)

    monkeypatch.setattr(limiter, "_attempt", counted)
    return claims


async def concurrently(limiter: DatabaseLimiter, checks: tuple[Check, ...]) -> list[Decision]:
    return await asyncio.gather(*(limiter.ahit(checks, T0) for _ in range(CLIENTS)))


def test_concurrent_verifies_of_one_key_share_their_claims(
    any_llavero: Llavero, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = DatabaseLimiter(any_llavero.db)
    claims = counting_claims(limiter, monkeypatch)
    checks = (Check("rpm", "p:herd", 1_000, 1), Check("upm", "p:herd", 1_000, 0))

    answers = asyncio.run(concurrently(limiter, checks))

    assert all(answer.allowed for answer in answers)
    # Slices double while they go fast (1, 2, 4, ...): a handful of claims, not one each.
    assert 1 <= len(claims) <= 7, len(claims)
    assert limiter.peek(checks, T0).limits["rpm"]["remaining"] == 1_000 - CLIENTS


def test_a_refusal_is_shared_by_every_verify_that_waited_on_it(
    any_llavero: Llavero, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = DatabaseLimiter(any_llavero.db)
    checks = (Check("rpm", "p:spent", 3, 1),)
    for _ in range(3):
        assert limiter.hit(checks, T0).allowed
    claims = counting_claims(limiter, monkeypatch)

    answers = asyncio.run(concurrently(limiter, checks))

    assert [answer.code for answer in answers] == ["RATE_LIMITED"] * CLIENTS
    assert len(claims) == 1


def test_a_waiter_that_gives_up_does_not_cancel_the_claim() -> None:
    flights: Flights[str] = Flights()

    async def scene() -> tuple[str, bool]:
        release = asyncio.Event()

        async def claim() -> str:
            await release.wait()
            return "granted"

        leader = asyncio.create_task(flights.lead("k", claim))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(flights.outcome("k"))
        await asyncio.sleep(0)
        waiter.cancel()
        release.set()
        return await leader, await flights.outcome("k") == (False, None)

    assert asyncio.run(scene()) == ("granted", True)


def test_a_failed_claim_shares_nothing_and_the_next_verify_claims_anew() -> None:
    flights: Flights[str] = Flights()

    async def scene() -> tuple[bool, str | None]:
        async def failing() -> str:
            await asyncio.sleep(0)
            raise ConnectionError("database gone")

        leader = asyncio.create_task(flights.lead("k", failing))
        await asyncio.sleep(0)
        waited = await flights.outcome("k")
        with pytest.raises(ConnectionError):
            await leader
        return waited

    assert asyncio.run(scene()) == (True, None)


def test_a_claim_in_another_event_loop_is_not_waited_on() -> None:
    """A future is awaited in its own loop only: another loop's verify claims for itself."""
    flights: Flights[str] = Flights()
    started, release = threading.Event(), threading.Event()

    async def slow() -> str:
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return "first loop"

    other = threading.Thread(target=lambda: asyncio.run(flights.lead("k", slow)))
    other.start()
    try:
        assert started.wait(5)
        assert asyncio.run(flights.outcome("k")) == (False, None)
    finally:
        release.set()
        other.join()
