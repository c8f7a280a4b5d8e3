"""This process's slices of shared counters, and spending them: the database limiter's hot path.

`llavero.store.db_limiter` claims slices of a window's allowance from the rows and keeps them
here as leases; a verify that its leases cover is answered from them, with no I/O. Spending is
here rather than in the store so that it is compiled with the rest of a cached verify
(setup.py): in pure Python it was a third of Llavero's own cost of an HTTP verify
(bench/notes.md, item 13). The store keeps the lock, the claims and the SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from llavero.core.limits import QUOTA_LIMITS, Check, Decision, _decide, window_end

CounterId = tuple[str, str, int]  # (limit name, scope, window end)
FRESH_SECONDS: Final = 1.0  # how old a zero-unit check's view of a counter may be


class Lease:
    """This process's share of one counter: units claimed and not yet spent, the row's count
    when last seen (every process's claims), and the size of the next claim (times from the
    limiter's monotonic clock). A plain class: mypyc builds it in C."""

    def __init__(self) -> None:
        self.held = 0
        self.seen = 0
        self.seen_at = -1e9
        self.claimed_at = -1e9
        self.spent_at = -1e9
        self.size = 1


def spend(
    leases: dict[CounterId, Lease], checks: Sequence[Check], now: float, at: float
) -> Decision | None:
    """The answer from the held slices, spending them if it allows (at `at`, the monotonic
    time), or None when a claim, or a fresher look at a zero-unit counter, is needed first.
    The caller holds the lock that guards `leases`."""
    fresh_after = at - FRESH_SECONDS
    minute_end, day_end = window_end("rpm", now), window_end("rpd", now)  # once, not per check
    held: list[Lease] = []
    used: list[int] = []
    for name, scope, _, amount in checks:
        lease = leases.get((name, scope, day_end if name in QUOTA_LIMITS else minute_end))
        if lease is None or lease.held < amount or (amount == 0 and lease.seen_at < fresh_after):
            return None
        held.append(lease)
        unspent = lease.seen - lease.held
        used.append(unspent if unspent > 0 else 0)
    decision = _decide(checks, used, now, consume=True)
    if decision.allowed:
        for index, lease in enumerate(held):
            amount = checks[index].amount
            if amount:
                lease.held -= amount
                lease.spent_at = at
    return decision
