from __future__ import annotations

from pathlib import Path

import pytest

from llavero.config import Settings
from llavero.core.plans import LIMIT_NAMES, Plan, default_plans, load_plans


def write_plans(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plans.toml"
    path.write_text(text, encoding="utf-8")
    return path


def settings_with(plans_file: Path | None = None, paid_plan: str = "tier-1") -> Settings:
    return Settings(plans_file=plans_file, paid_plan=paid_plan)


def test_default_plans_follow_the_gemini_tiers() -> None:
    plans = default_plans()

    assert list(plans) == ["free", "tier-1", "tier-2", "tier-3"]
    assert plans["free"] == Plan("free", "Free", rpm=10, rpd=250, upm=250_000, upd=1_000_000)
    assert plans["tier-1"].display_name == "Tier 1"
    rpms = [plan.rpm or 0 for plan in plans.values()]
    upms = [plan.upm or 0 for plan in plans.values()]
    assert rpms == sorted(rpms) and len(set(rpms)) == 4
    assert upms == sorted(upms) and len(set(upms)) == 4


def test_limits_lists_only_the_set_limits() -> None:
    assert default_plans()["free"].limits() == {
        "rpm": 10,
        "rpd": 250,
        "upm": 250_000,
        "upd": 1_000_000,
    }
    assert default_plans()["tier-3"].limits() == {"rpm": 10_000, "upm": 8_000_000}
    assert Plan("open", "Open").limits() == {}
    assert LIMIT_NAMES == ("rpm", "rpd", "upm", "upd")


def test_default_plans_returns_a_fresh_mapping() -> None:
    default_plans().pop("free")

    assert "free" in default_plans()


def test_without_a_plans_file_the_defaults_apply() -> None:
    assert load_plans(settings_with()) == default_plans()


def test_a_plans_file_overrides_fields_and_adds_plans(tmp_path: Path) -> None:
    path = write_plans(
        tmp_path,
        """
        [plans.free]
        rpm = 20
        upd = "unlimited"

        [plans.enterprise]
        display_name = "Enterprise"
        rpm = 50_000
        upm = 20_000_000

        [plans.tier-4]
        rpm = 20_000
        """,
    )

    plans = load_plans(settings_with(path, paid_plan="enterprise"))

    assert plans["free"] == Plan("free", "Free", rpm=20, rpd=250, upm=250_000, upd=None)
    assert plans["enterprise"].limits() == {"rpm": 50_000, "upm": 20_000_000}
    assert plans["tier-4"] == Plan("tier-4", "Tier 4", rpm=20_000)
    assert plans["tier-2"] == default_plans()["tier-2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[plans.free]\nrpm = "lots"', r"plan 'free', field 'rpm': must be an integer"),
        ("[plans.free]\nrpm = 0", r"plan 'free', field 'rpm': must be between 1 and"),
        ("[plans.free]\nupd = true", r"plan 'free', field 'upd': must be an integer"),
        ("[plans.gold]\nrpm = 10.5", r"plan 'gold', field 'rpm': must be an integer"),
        ("[plans.gold]\nrps = 10", r"plan 'gold', field 'rps': unknown field"),
        ('[plans.gold]\ndisplay_name = " "', r"plan 'gold', field 'display_name': must be"),
        ("[plans.Gold]\nrpm = 10", r"plan name 'Gold' must be lowercase"),
        ("[plans]\ngold = 10", r"plan 'gold' must be a table"),
        ("[free]\nrpm = 10", r"unknown top-level key 'free'"),
        ("[plans.free\nrpm = 10", r"not valid TOML"),
    ],
)
def test_a_bad_plans_file_names_file_plan_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write_plans(tmp_path, text)

    with pytest.raises(ValueError, match=expected) as caught:
        load_plans(settings_with(path))

    assert str(caught.value).startswith(f"{path}: ")


def test_a_missing_plans_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ValueError, match="absent.toml: cannot read plans file"):
        load_plans(settings_with(path))


def test_the_paid_plan_must_exist(tmp_path: Path) -> None:
    path = write_plans(tmp_path, "[plans.gold]\nrpm = 100")

    with pytest.raises(ValueError, match="plan 'platinum' is missing; LLAVERO_PAID_PLAN"):
        load_plans(settings_with(path, paid_plan="platinum"))
    with pytest.raises(ValueError, match=r"plans.toml \(packaged\): plan 'platinum' is missing"):
        load_plans(settings_with(paid_plan="platinum"))
    assert load_plans(settings_with(path, paid_plan="gold"))["gold"].rpm == 100
