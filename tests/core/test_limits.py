from __future__ import annotations

import threading

import pytest

from llavero.core.limits import (
    Check,
    Decision,
    LimitStatus,
    MemoryLimiter,
    checks_for,
    normalize_key_limits,
    window_end,
)
from llavero.core.plans import Plan, default_plans
from llavero.errors import InvalidArgument

T0 = 1_754_006_400.0  # 2025-08-01T00:00:00Z: a minute and a UTC day start here
FREE = default_plans()["free"]


@pytest.fixture
def limiter() -> MemoryLimiter:
    return MemoryLimiter()


def verify(
    limiter: MemoryLimiter,
    now: float,
    *,
    plan: Plan = FREE,
    key_limits: dict[str, int] | None = None,
    key_id: str = "key-a",
    cost: int = 0,
) -> Decision:
    return limiter.hit(checks_for(plan, key_limits or {}, "proj", key_id, cost), now)


def test_windows_are_aligned_to_the_epoch() -> None:
    assert window_end("rpm", T0) == T0 + 60
    assert window_end("rpm", T0 + 59.9) == T0 + 60
    assert window_end("rpm", T0 + 60) == T0 + 120
    assert window_end("upd", T0 + 3_600) == T0 + 86_400


def test_free_project_is_refused_at_rpm_plus_one_until_the_minute_ends(
    limiter: MemoryLimiter,
) -> None:
    allowed = [verify(limiter, T0 + 15 + i).allowed for i in range(10)]
    refused = verify(limiter, T0 + 30)

    assert allowed == [True] * 10
    assert refused == Decision(
        allowed=False,
        code="RATE_LIMITED",
        limits={
            "rpm": LimitStatus(limit=10, remaining=0, reset_seconds=30),
            "rpd": LimitStatus(limit=250, remaining=240, reset_seconds=86_370),
            "upm": LimitStatus(limit=250_000, remaining=250_000, reset_seconds=30),
            "upd": LimitStatus(limit=1_000_000, remaining=1_000_000, reset_seconds=86_370),
        },
        retry_after=30,
    )
    assert verify(limiter, T0 + 59.5).allowed is False
    again = verify(limiter, T0 + 60)
    assert again.allowed is True
    assert again.limits["rpm"] == LimitStatus(limit=10, remaining=9, reset_seconds=60)
    assert again.limits["rpd"]["remaining"] == 239


def test_remaining_counts_down_and_reset_is_rounded_up(limiter: MemoryLimiter) -> None:
    first = verify(limiter, T0 + 0.5, cost=1_000)
    second = verify(limiter, T0 + 1.25, cost=500)

    assert first.limits["rpm"] == LimitStatus(limit=10, remaining=9, reset_seconds=60)
    assert first.limits["upm"] == LimitStatus(limit=250_000, remaining=249_000, reset_seconds=60)
    assert second.limits["rpm"] == LimitStatus(limit=10, remaining=8, reset_seconds=59)
    assert second.limits["upd"] == LimitStatus(
        limit=1_000_000, remaining=998_500, reset_seconds=86_399
    )
    assert first.code is None and first.retry_after is None


def test_a_tighter_key_limit_wins_and_applies_to_that_key_only(limiter: MemoryLimiter) -> None:
    tight = {"rpm": 3}

    results = [verify(limiter, T0 + i, key_limits=tight).allowed for i in range(4)]
    other_key = verify(limiter, T0 + 5, key_id="key-b")
    shown = limiter.peek(checks_for(FREE, tight, "proj", "key-a", 0), T0 + 6)

    assert results == [True, True, True, False]
    assert other_key.allowed is True
    assert other_key.limits["rpm"]["remaining"] == 10 - 4
    assert shown.limits["rpm"] == LimitStatus(limit=3, remaining=0, reset_seconds=54)


def test_a_looser_key_limit_does_not_lift_the_project_limit(limiter: MemoryLimiter) -> None:
    results = [verify(limiter, T0 + i, key_limits={"rpm": 1_000}).allowed for i in range(11)]

    assert results == [True] * 10 + [False]


def test_a_refused_hit_consumes_nothing(limiter: MemoryLimiter) -> None:
    plan = Plan("p", "P", rpm=5, upm=100)
    verify(limiter, T0, plan=plan, cost=60)

    refused = verify(limiter, T0 + 1, plan=plan, cost=50)
    after = limiter.peek(checks_for(plan, {}, "proj", "key-a", 0), T0 + 2)

    assert refused.allowed is False
    assert refused.limits["rpm"]["remaining"] == 4
    assert after.limits["rpm"]["remaining"] == 4
    assert after.limits["upm"]["remaining"] == 40
    assert verify(limiter, T0 + 3, plan=plan, cost=40).allowed is True


def test_units_refuse_when_the_cost_would_pass_the_limit(limiter: MemoryLimiter) -> None:
    plan = Plan("p", "P", upm=250)

    costs = [100, 100, 100, 50, 0]
    answers = [verify(limiter, T0 + i, plan=plan, cost=cost) for i, cost in enumerate(costs)]

    assert [a.allowed for a in answers] == [True, True, False, True, False]
    assert answers[2].code == "RATE_LIMITED"
    assert answers[3].limits["upm"]["remaining"] == 0
    assert answers[4].code == "RATE_LIMITED"


def test_cost_zero_passes_while_units_remain(limiter: MemoryLimiter) -> None:
    plan = Plan("p", "P", upd=10)
    verify(limiter, T0, plan=plan, cost=9)

    assert verify(limiter, T0 + 1, plan=plan, cost=0).allowed is True
    assert verify(limiter, T0 + 2, plan=plan, cost=2).allowed is False
    assert verify(limiter, T0 + 3, plan=plan, cost=1).allowed is True
    assert verify(limiter, T0 + 4, plan=plan, cost=0).code == "QUOTA_EXCEEDED"


def test_daily_quota_wins_over_the_minute_rate(limiter: MemoryLimiter) -> None:
    plan = Plan("p", "P", rpm=2, rpd=2)
    verify(limiter, T0 + 10, plan=plan)
    verify(limiter, T0 + 11, plan=plan)

    refused = verify(limiter, T0 + 12, plan=plan)
    next_minute = verify(limiter, T0 + 70, plan=plan)
    next_day = verify(limiter, T0 + 86_400, plan=plan)

    assert (refused.code, refused.retry_after) == ("QUOTA_EXCEEDED", 86_388)
    assert (next_minute.code, next_minute.retry_after) == ("QUOTA_EXCEEDED", 86_330)
    assert next_day.allowed is True


def test_rate_limited_when_only_the_minute_is_spent(limiter: MemoryLimiter) -> None:
    plan = Plan("p", "P", rpm=2, rpd=100)
    verify(limiter, T0 + 10, plan=plan)
    verify(limiter, T0 + 11, plan=plan)

    refused = verify(limiter, T0 + 12, plan=plan)

    assert (refused.code, refused.retry_after) == ("RATE_LIMITED", 48)
    assert refused.limits["rpd"]["remaining"] == 98


def test_add_consumes_past_the_limit_and_remaining_stays_at_zero(limiter: MemoryLimiter) -> None:
    plan = Plan("p", "P", upm=100)
    unit_checks = [c for c in checks_for(plan, {}, "proj", "key-a", 150) if c.name == "upm"]

    limiter.add(unit_checks, T0)
    shown = limiter.peek(unit_checks, T0 + 1)

    assert shown.allowed is False
    assert shown.limits["upm"] == LimitStatus(limit=100, remaining=0, reset_seconds=59)
    assert verify(limiter, T0 + 2, plan=plan, cost=0).allowed is False
    assert verify(limiter, T0 + 60, plan=plan, cost=0).allowed is True


def test_peek_consumes_nothing(limiter: MemoryLimiter) -> None:
    checks = checks_for(FREE, {}, "proj", "key-a", 5)

    peeks = [limiter.peek(checks, T0 + i) for i in range(20)]

    assert all(p.allowed and p.limits["rpm"]["remaining"] == 10 for p in peeks)
    assert limiter.hit(checks, T0 + 30).limits["upm"]["remaining"] == 250_000 - 5


def test_no_checks_means_allowed(limiter: MemoryLimiter) -> None:
    decision = limiter.hit([], T0)

    assert decision == Decision(allowed=True, code=None, limits={}, retry_after=None)


def test_ended_windows_are_dropped(limiter: MemoryLimiter) -> None:
    for minute in range(100):
        verify(limiter, T0 + 60 * minute, key_id=f"key-{minute}", plan=Plan("p", "P", rpm=5))

    assert len(limiter._windows) == 1  # only the current minute is kept


def test_concurrent_hits_allow_exactly_the_limit(limiter: MemoryLimiter) -> None:
    checks = [Check("rpm", "p:race", 100, 1)]
    barrier = threading.Barrier(16)
    allowed = [0] * 16

    def worker(index: int) -> None:
        barrier.wait()
        allowed[index] = sum(limiter.hit(checks, T0 + 1).allowed for _ in range(20))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(allowed) == 100


def test_checks_come_from_the_plan_and_the_key() -> None:
    checks = checks_for(FREE, {"rpm": 3, "upd": 500}, "proj", "key-a", 7)

    assert checks == [
        Check("rpm", "p:proj", 10, 1),
        Check("rpm", "k:key-a", 3, 1),
        Check("rpd", "p:proj", 250, 1),
        Check("upm", "p:proj", 250_000, 7),
        Check("upd", "p:proj", 1_000_000, 7),
        Check("upd", "k:key-a", 500, 7),
    ]


def test_a_negative_cost_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="^cost: "):
        checks_for(FREE, {}, "proj", "key-a", -1)


def test_normalize_key_limits_accepts_positive_integers() -> None:
    assert normalize_key_limits(None) == {}
    assert normalize_key_limits({"rpm": 5, "upd": 10**12, "rpd": None}) == {"rpm": 5, "upd": 10**12}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"rps": 5}, "limits.rps"),
        ({"rpm": 0}, "limits.rpm"),
        ({"rpm": -1}, "limits.rpm"),
        ({"upm": 10**12 + 1}, "limits.upm"),
        ({"rpd": "5"}, "limits.rpd"),
        ({"rpd": 2.5}, "limits.rpd"),
        ({"upd": True}, "limits.upd"),
        (["rpm"], "limits"),
    ],
)
def test_normalize_key_limits_names_the_field(data: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_key_limits(data)  # type: ignore[arg-type]

    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")


def test_normalize_key_limits_uses_the_given_field_name() -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_key_limits({"rpm": 0}, field="key.limits")

    assert caught.value.field == "key.limits.rpm"
