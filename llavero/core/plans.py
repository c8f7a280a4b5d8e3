"""The plan catalogue: named limits per project, read from TOML.

The defaults ship as package data (`llavero/core/plans.toml`, modelled on the Gemini API tiers); a
deployment overrides or extends them with `LLAVERO_PLANS_FILE`. Plans are read once at start-up,
so every mistake in the file is reported then, naming the file, the plan and the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from llavero.config import Settings

LIMIT_NAMES = ("rpm", "rpd", "upm", "upd")
MAX_LIMIT = 10**12
UNLIMITED = "unlimited"
FREE_PLAN = "free"

_PLAN_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PLAN_FIELDS = ("display_name", *LIMIT_NAMES)
_PACKAGED = "plans.toml (packaged)"


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    display_name: str
    rpm: int | None = None
    rpd: int | None = None
    upm: int | None = None
    upd: int | None = None

    def limits(self) -> dict[str, int]:
        """The limits that are set; a missing name means unlimited."""
        values = {name: getattr(self, name) for name in LIMIT_NAMES}
        return {name: value for name, value in values.items() if value is not None}


def plan_for_billing(settings: Settings, billing_account_open: bool | None) -> str:
    """A project with an open billing account is on the paid plan; every other one is free."""
    return settings.paid_plan if billing_account_open else FREE_PLAN


def default_plans() -> dict[str, Plan]:
    return dict(_packaged_plans())


def load_plans(settings: Settings) -> dict[str, Plan]:
    """Packaged defaults, then `settings.plans_file` merged over them field by field."""
    plans = default_plans()
    source = _PACKAGED
    if settings.plans_file is not None:
        source = str(settings.plans_file)
        plans = _merge(plans, _read_toml(settings.plans_file), source)
    if FREE_PLAN not in plans:
        raise ValueError(f"{source}: plan {FREE_PLAN!r} is missing; unbilled projects use it")
    if settings.paid_plan not in plans:
        raise ValueError(
            f"{source}: plan {settings.paid_plan!r} is missing; LLAVERO_PAID_PLAN names it as the "
            "plan of projects with billing"
        )
    return plans


@cache
def _packaged_plans() -> Mapping[str, Plan]:
    text = resources.files("llavero.core").joinpath("plans.toml").read_text(encoding="utf-8")
    return _merge({}, tomllib.loads(text), _PACKAGED)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read plans file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc


def _merge(base: Mapping[str, Plan], document: Mapping[str, Any], source: str) -> dict[str, Plan]:
    unknown = sorted(set(document) - {"plans"})
    if unknown:
        raise ValueError(
            f"{source}: unknown top-level key {unknown[0]!r}; put plans under [plans.<name>]"
        )
    tables = document.get("plans", {})
    if not isinstance(tables, dict):
        raise ValueError(f"{source}: 'plans' must be a table of [plans.<name>] tables")
    merged = dict(base)
    for name, table in tables.items():
        merged[name] = _plan_from_table(merged.get(name), name, table, source)
    return merged


def _plan_from_table(base: Plan | None, name: str, table: Any, source: str) -> Plan:
    def fail(field: str, problem: str) -> ValueError:
        return ValueError(f"{source}: plan {name!r}, field {field!r}: {problem}")

    if not _PLAN_NAME.match(name):
        raise ValueError(
            f"{source}: plan name {name!r} must be lowercase letters, digits and '-' (max 63)"
        )
    if not isinstance(table, dict):
        raise ValueError(f"{source}: plan {name!r} must be a table ([plans.{name}])")
    for field in table:
        if field not in _PLAN_FIELDS:
            raise fail(field, f"unknown field; allowed: {', '.join(_PLAN_FIELDS)}")
    plan = base or Plan(name=name, display_name=_display_name(name))
    changes: dict[str, Any] = {}
    if "display_name" in table:
        display_name = table["display_name"]
        if not isinstance(display_name, str) or not display_name.strip():
            raise fail("display_name", "must be a non-empty string")
        changes["display_name"] = display_name.strip()
    for limit in LIMIT_NAMES:
        if limit in table:
            try:
                changes[limit] = _limit_value(table[limit])
            except ValueError as exc:
                raise fail(limit, str(exc)) from None
    return replace(plan, **changes)


def _limit_value(value: Any) -> int | None:
    if value == UNLIMITED:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f'must be an integer or "{UNLIMITED}", not {value!r}')
    if not 1 <= value <= MAX_LIMIT:
        raise ValueError(f'must be between 1 and {MAX_LIMIT} (or "{UNLIMITED}"), not {value}')
    return value


def _display_name(name: str) -> str:
    """`tier-4` reads as `Tier 4` when a new plan gives no display name."""
    return name.replace("-", " ").capitalize()


__all__ = ["LIMIT_NAMES", "Plan", "default_plans", "load_plans"]
