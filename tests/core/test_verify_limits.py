"""Rate limits and quotas in verify: the project's plan and the key's own limits, counted by the
in-process limiter, with every plan change (billing link, unlink, close) seen by the next verify.
The clock is frozen at 2025-08-01T00:00:00Z, where a minute and a UTC day begin."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import event

from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest, VerifyResult
from llavero.service import Actor, Llavero

FREE_RPM = 10


@pytest.fixture
def project(llavero: Llavero, admin: Actor) -> str:
    return llavero.projects.create(admin, "Limits tests").id


def new_key(llavero: Llavero, admin: Actor, project: str, **fields: Any) -> str:
    return llavero.keys.create(admin, project, **fields).key_string


def verify(llavero: Llavero, key: str, cost: int = 0) -> VerifyResult:
    return llavero.verifier.verify(VerifyRequest(key=key, cost=cost))


def codes(llavero: Llavero, key: str, times: int, cost: int = 0) -> list[str]:
    return [verify(llavero, key, cost).code for _ in range(times)]


def test_free_project_is_refused_past_rpm_and_allowed_after_the_minute(
    llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    key = new_key(llavero, admin, project)

    assert codes(llavero, key, FREE_RPM) == ["VALID"] * FREE_RPM
    clock.advance(59)
    refused = verify(llavero, key)
    clock.advance(1)
    again = verify(llavero, key)

    assert (refused.code, refused.valid) == ("RATE_LIMITED", False)
    assert refused.limits["rpm"] == {"limit": FREE_RPM, "remaining": 0, "reset_seconds": 1}
    assert again.code == "VALID"
    assert again.limits["rpm"] == {
        "limit": FREE_RPM,
        "remaining": FREE_RPM - 1,
        "reset_seconds": 60,
    }


def test_verify_answers_every_limit_with_remaining_and_reset(
    llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    key = new_key(llavero, admin, project)
    clock.advance(15)

    result = verify(llavero, key, cost=1_000)

    assert result.limits == {
        "rpm": {"limit": 10, "remaining": 9, "reset_seconds": 45},
        "rpd": {"limit": 250, "remaining": 249, "reset_seconds": 86_385},
        "upm": {"limit": 250_000, "remaining": 249_000, "reset_seconds": 45},
        "upd": {"limit": 1_000_000, "remaining": 999_000, "reset_seconds": 86_385},
    }
    assert result.to_dict()["limits"] == result.limits


def test_keys_of_a_project_share_its_limits(llavero: Llavero, admin: Actor, project: str) -> None:
    first, second = new_key(llavero, admin, project), new_key(llavero, admin, project)

    answers = codes(llavero, first, 6) + codes(llavero, second, 5)

    assert answers == ["VALID"] * FREE_RPM + ["RATE_LIMITED"]


def test_other_projects_have_their_own_limits(llavero: Llavero, admin: Actor, project: str) -> None:
    busy = new_key(llavero, admin, project)
    other = new_key(llavero, admin, llavero.projects.create(admin, "Other project").id)

    codes(llavero, busy, FREE_RPM + 1)

    assert verify(llavero, other).code == "VALID"


def test_linking_billing_raises_the_limit_on_the_next_verify(
    llavero: Llavero, admin: Actor, project: str
) -> None:
    key = new_key(llavero, admin, project)
    assert codes(llavero, key, FREE_RPM + 1)[-1] == "RATE_LIMITED"  # the record is now cached
    account = llavero.billing.create(admin, "Acme")

    llavero.billing.link(admin, project, account.id)
    result = verify(llavero, key)

    assert (result.code, result.plan) == ("VALID", "tier-1")
    assert result.limits["rpm"] == {"limit": 1_000, "remaining": 1_000 - 11, "reset_seconds": 60}


def test_closing_the_account_lowers_the_limit_on_the_next_verify(
    llavero: Llavero, admin: Actor, project: str
) -> None:
    key = new_key(llavero, admin, project)
    account = llavero.billing.create(admin, "Acme")
    llavero.billing.link(admin, project, account.id)
    assert codes(llavero, key, FREE_RPM + 5) == ["VALID"] * (FREE_RPM + 5)

    llavero.billing.close(admin, account.id)
    closed = verify(llavero, key)
    llavero.billing.reopen(admin, account.id)
    reopened = verify(llavero, key)

    assert (closed.code, closed.plan, closed.limits["rpm"]["limit"]) == (
        "RATE_LIMITED",
        "free",
        FREE_RPM,
    )
    assert (reopened.code, reopened.plan) == ("VALID", "tier-1")


def test_unlinking_lowers_the_limit_on_the_next_verify(
    llavero: Llavero, admin: Actor, project: str
) -> None:
    key = new_key(llavero, admin, project)
    account = llavero.billing.create(admin, "Acme")
    llavero.billing.link(admin, project, account.id)
    codes(llavero, key, FREE_RPM)

    llavero.billing.unlink(admin, project)
    result = verify(llavero, key)

    assert (result.code, result.plan) == ("RATE_LIMITED", "free")


def test_key_limits_tighter_than_the_plan_win(llavero: Llavero, admin: Actor, project: str) -> None:
    limited = new_key(llavero, admin, project, limits={"rpm": 3})
    sibling = new_key(llavero, admin, project)

    answers = codes(llavero, limited, 4)
    shown = verify(llavero, limited)

    assert answers == ["VALID"] * 3 + ["RATE_LIMITED"]
    assert shown.limits["rpm"] == {"limit": 3, "remaining": 0, "reset_seconds": 60}
    assert codes(llavero, sibling, FREE_RPM - 3) == ["VALID"] * (FREE_RPM - 3)
    assert verify(llavero, sibling).code == "RATE_LIMITED"


def test_key_limit_looser_than_the_plan_does_not_lift_it(
    llavero: Llavero, admin: Actor, project: str
) -> None:
    key = new_key(llavero, admin, project, limits={"rpm": 1_000})

    assert codes(llavero, key, FREE_RPM + 1)[-1] == "RATE_LIMITED"
    assert verify(llavero, key).limits["rpm"]["limit"] == FREE_RPM


def test_cost_past_units_per_minute_is_rate_limited(
    llavero: Llavero, admin: Actor, project: str
) -> None:
    key = new_key(llavero, admin, project, limits={"upm": 100})

    spent = verify(llavero, key, cost=60)
    refused = verify(llavero, key, cost=41)
    fits = verify(llavero, key, cost=40)
    empty = verify(llavero, key, cost=0)

    assert (spent.code, refused.code, fits.code, empty.code) == (
        "VALID",
        "RATE_LIMITED",
        "VALID",
        "RATE_LIMITED",
    )
    assert refused.limits["upm"] == {"limit": 100, "remaining": 40, "reset_seconds": 60}
    assert refused.limits["rpm"]["remaining"] == FREE_RPM - 1  # a refusal counts nothing


def test_cost_past_units_per_day_is_quota_exceeded_until_the_next_day(
    llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    key = new_key(llavero, admin, project, limits={"upd": 100})
    assert verify(llavero, key, cost=100).code == "VALID"

    clock.advance(3_600)
    refused = verify(llavero, key, cost=1)
    clock.advance(86_400 - 3_600)
    next_day = verify(llavero, key, cost=1)

    assert refused.code == "QUOTA_EXCEEDED"
    assert refused.limits["upd"] == {"limit": 100, "remaining": 0, "reset_seconds": 82_800}
    assert next_day.code == "VALID"


def test_requests_per_day_is_a_quota(llavero: Llavero, admin: Actor, project: str) -> None:
    key = new_key(llavero, admin, project, limits={"rpd": 2, "rpm": 2})

    assert codes(llavero, key, 3) == ["VALID", "VALID", "QUOTA_EXCEEDED"]


def test_refusals_before_the_limiter_count_nothing_and_carry_no_limits(
    llavero: Llavero, admin: Actor, project: str
) -> None:
    created = llavero.keys.create(admin, project, environment="production")
    key = created.key_string

    mismatched = [
        llavero.verifier.verify(VerifyRequest(key=key, environment="staging"))
        for _ in range(FREE_RPM + 1)
    ]

    assert {(r.code, tuple(r.limits)) for r in mismatched} == {("ENVIRONMENT_MISMATCH", ())}
    assert verify(llavero, key).limits["rpm"]["remaining"] == FREE_RPM - 1


def test_a_cached_verify_with_limits_reads_no_database(
    llavero: Llavero, admin: Actor, project: str
) -> None:
    key = new_key(llavero, admin, project)
    verify(llavero, key)
    statements: list[str] = []

    def count(*_args: Any) -> None:
        statements.append("query")

    event.listen(llavero.db.engine, "before_cursor_execute", count)
    try:
        results = codes(llavero, key, FREE_RPM)
    finally:
        event.remove(llavero.db.engine, "before_cursor_execute", count)

    assert results == ["VALID"] * (FREE_RPM - 1) + ["RATE_LIMITED"]
    assert statements == []


def test_threads_get_exactly_the_limit(llavero: Llavero, admin: Actor, project: str) -> None:
    limit, threads, per_thread = 25, 8, 10
    key = new_key(llavero, admin, project, limits={"rpm": limit})
    account = llavero.billing.create(admin, "Acme")
    llavero.billing.link(admin, project, account.id)
    start = threading.Barrier(threads)
    answers: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        start.wait()
        mine = codes(llavero, key, per_thread)
        with lock:
            answers.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert Counter(answers) == {"VALID": limit, "RATE_LIMITED": threads * per_thread - limit}
