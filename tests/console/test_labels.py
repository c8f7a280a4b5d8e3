"""Codes stay codes in the API; people read names, in both languages (llavero/console/labels.py).
A verify code, an audit action or a packaged plan without a name here would reach the console raw,
so each list is checked against the code that produces its values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llavero.console import labels
from llavero.core.codes import Code
from llavero.core.plans import default_plans
from llavero.service.events import EVENT_TYPES, WEBHOOK_TEST

SERVICE = Path(__file__).resolve().parents[2] / "llavero" / "service"
ACTION = re.compile(r'"((?:key|project|billing|token|user|member|webhook)\.[a-z_]+)"')
NOT_ACTIONS = {*EVENT_TYPES, WEBHOOK_TEST}  # event types, spelled alike but never audited


def recorded_actions() -> set[str]:
    """Every action string the service layer can write to the audit log."""
    found = {action for path in SERVICE.glob("*.py") for action in ACTION.findall(path.read_text())}
    return found - NOT_ACTIONS


def test_every_verify_code_has_a_name() -> None:
    assert sorted(labels.OUTCOMES) == sorted(Code)


def test_every_audit_action_has_a_name() -> None:
    actions = recorded_actions()
    assert "key.create" in actions  # the scan really read the service layer
    missing = sorted(actions - set(labels.AUDIT_ACTIONS))
    assert not missing, f"add names for {missing} to llavero/console/labels.py (and the catalogs)"


def test_every_packaged_plan_has_a_name() -> None:
    assert sorted(labels.PLANS) == sorted(plan.display_name for plan in default_plans().values())


@pytest.mark.parametrize(
    "names",
    [labels.OUTCOMES, labels.AUDIT_ACTIONS, labels.PLANS],
    ids=["outcomes", "audit", "plans"],
)
def test_names_are_translated_to_spanish(names: dict[str, str]) -> None:
    for code, english in names.items():
        assert labels.name(code, names, "en") == english
        spanish = labels.name(code, names, "es_419")
        assert spanish not in (english, code), code


def test_a_code_without_a_name_is_shown_as_it_is() -> None:
    assert labels.name("Enterprise", labels.PLANS, "es_419") == "Enterprise"
    assert labels.name("Free", labels.PLANS, "es_419") == "Gratuito"
