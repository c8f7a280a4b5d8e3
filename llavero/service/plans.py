"""The plans in force: read once by the `Llavero` facade, shown by `GET /v1/plans`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from llavero.core.plans import LIMIT_NAMES, Plan
from llavero.service.models import Model


class PlanInfo(Model):
    """A plan as the API shows it; a limit of `None` means unlimited."""

    name: str
    display_name: str
    rpm: int | None
    rpd: int | None
    upm: int | None
    upd: int | None


def limits_of(plan: Plan) -> dict[str, int | None]:
    """Every limit name, `None` for unlimited: an answer that always has the same fields."""
    return {name: getattr(plan, name) for name in LIMIT_NAMES}


def to_model(plan: Plan) -> PlanInfo:
    return PlanInfo(name=plan.name, display_name=plan.display_name, **limits_of(plan))


class PlanCatalog:
    def __init__(self, plans: Mapping[str, Plan]) -> None:
        self.plans: Mapping[str, Plan] = MappingProxyType(dict(plans))

    def list(self) -> list[PlanInfo]:
        """No scope needed: the plans are the deployment's public price list."""
        return [to_model(plan) for plan in self.plans.values()]

    def get(self, name: str) -> Plan:
        return self.plans[name]
