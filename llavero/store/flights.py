"""One claim at a time for the same counters, shared by the verifies that wait on it.

When a process's slice of a counter runs out (`llavero.store.db_limiter`), every verify in
flight for that key finds it spent at once. Each used to start its own claim: under 32
concurrent clients that was a herd of thread hops and write transactions, all for the same
rows (the database serializes them anyway), and the herd's threads fought the event loop for
the GIL. Now the first verify claims and the others await its outcome: a refusal is theirs
too (same counters, same moment, nothing consumed), and after a grant each spends from the
slice it brought, or claims next if it was too small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Flights(Generic[T]):
    """Claims under way, by event loop and what they claim for: a future can only be awaited
    in its own loop, and a limiter may serve several (an app's test clients, say)."""

    def __init__(self) -> None:
        self._under_way: dict[tuple[object, Hashable], asyncio.Future[T | None]] = {}

    async def outcome(self, key: Hashable) -> tuple[bool, T | None]:
        """Whether a claim for `key` was under way, and once it has ended, its outcome (None
        when it failed or was cancelled: then there is nothing to share)."""
        under_way = self._under_way.get((asyncio.get_running_loop(), key))
        if under_way is None:
            return False, None
        # Shielded: a waiter that gives up (its client went away) must not cancel the claim.
        return True, await asyncio.shield(under_way)

    async def lead(self, key: Hashable, claim: Callable[[], Awaitable[T]]) -> T:
        """Run `claim` as the one claim for `key`; whoever waits on it gets its outcome."""
        loop = asyncio.get_running_loop()
        under_way: asyncio.Future[T | None] = loop.create_future()
        self._under_way[loop, key] = under_way
        outcome: T | None = None
        try:
            outcome = await claim()
            return outcome
        finally:
            del self._under_way[loop, key]
            under_way.set_result(outcome)
