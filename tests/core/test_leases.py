from __future__ import annotations

from llavero.core.leases import FRESH_SECONDS, CounterId, Lease, spend
from llavero.core.limits import Check, window_end

T0 = 1_754_006_400.0  # 2025-08-01T00:00:00Z: a minute and a UTC day start here
NOW = T0 + 30
AT = 500.0  # the limiter's monotonic clock
RPM = Check("rpm", "p:a", 100, 1)
UPD = Check("upd", "p:a", 1_000, 0)


def lease(held: int, seen: int, seen_at: float = AT) -> Lease:
    made = Lease()
    made.held, made.seen, made.seen_at = held, seen, seen_at
    return made


def leases(rpm: Lease, upd: Lease) -> dict[CounterId, Lease]:
    return {
        ("rpm", "p:a", window_end("rpm", NOW)): rpm,
        ("upd", "p:a", window_end("upd", NOW)): upd,
    }


def test_a_covered_request_is_answered_and_spent_from_the_held_units() -> None:
    rpm, upd = lease(held=5, seen=40), lease(held=0, seen=300)

    decision = spend(leases(rpm, upd), [RPM, UPD], NOW, AT)

    assert decision is not None and decision.allowed
    # Used is the row's count less what this process holds unspent: 40 - 5, then this one.
    assert decision.limits["rpm"] == {"limit": 100, "remaining": 100 - 35 - 1, "reset_seconds": 30}
    assert decision.limits["upd"]["remaining"] == 1_000 - 300
    assert (rpm.held, rpm.spent_at) == (4, AT)
    assert (upd.held, upd.spent_at) == (0, Lease().spent_at)  # a zero-unit check spends nothing


def test_a_claim_is_needed_when_a_lease_is_missing_short_or_stale() -> None:
    fresh = lease(held=0, seen=0)
    stale = lease(held=0, seen=0, seen_at=AT - FRESH_SECONDS - 0.1)

    assert spend(leases(lease(held=0, seen=9), fresh), [RPM, UPD], NOW, AT) is None
    assert spend(leases(lease(held=1, seen=9), stale), [RPM, UPD], NOW, AT) is None
    assert spend({}, [RPM], NOW, AT) is None
    # A lease of the previous minute does not cover this one.
    old = {("rpm", "p:a", window_end("rpm", NOW - 60)): lease(held=9, seen=9)}
    assert spend(old, [RPM], NOW, AT) is None


def test_a_refusal_spends_nothing() -> None:
    rpm, upd = lease(held=3, seen=50), lease(held=0, seen=1_000)

    decision = spend(leases(rpm, upd), [RPM, UPD], NOW, AT)

    assert decision is not None and not decision.allowed
    assert decision.code == "QUOTA_EXCEEDED"
    assert rpm.held == 3
