"""Plan names for the console: from the facade's plan catalogue when the deployment has one,
else from the packaged plans."""

from __future__ import annotations

from collections.abc import Mapping

from llavero.core import plans
from llavero.service import Llavero


def catalogue(llavero: Llavero) -> Mapping[str, plans.Plan]:
    """`llavero.core.plans.plans` (a `PlanCatalog`) when present: it holds the deployment's TOML."""
    known = getattr(getattr(llavero, "plans", None), "plans", None)
    return known if isinstance(known, Mapping) else plans.default_plans()


def plan_display_name(llavero: Llavero, name: str) -> str:
    """`Tier 1` for `tier-1`; the plan id itself when no catalogue knows it. Templates show it
    through the `plan_name` filter (`Nivel 1` in es_419; a deployment's own names as written)."""
    plan = catalogue(llavero).get(name)
    return plan.display_name if plan is not None else name
