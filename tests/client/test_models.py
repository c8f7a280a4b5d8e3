"""The client's answer types have the fields of the server's: a field added on one side only
fails here, not in a user's script."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel

from llavero import client
from llavero.api.billing import BillingAccountList
from llavero.api.schemas import AuditList, KeyList, ProjectList
from llavero.api.verification import LimitOut, VerifyOut
from llavero.client._models import load
from llavero.service import models
from llavero.service.billing import BillingAccount, BillingInfo
from llavero.service.dryrun import Check, RestrictionTest
from llavero.service.plans import PlanInfo
from llavero.service.usage import UsagePoint, UsageSeries, UsageTotals
from llavero.service.usage_report import UsageReport

PAIRS: list[tuple[type, type[BaseModel]]] = [
    (client.Project, models.Project),
    (client.ProjectList, ProjectList),
    (client.Leak, models.Leak),
    (client.Key, models.Key),
    (client.KeyList, KeyList),
    (client.CreatedKey, models.CreatedKey),
    (client.KeyLookup, models.KeyLookup),
    (client.LimitStatus, LimitOut),
    (client.Verdict, VerifyOut),
    (client.Check, Check),
    (client.RestrictionTest, RestrictionTest),
    (client.UsageReport, UsageReport),
    (client.UsagePoint, UsagePoint),
    (client.UsageTotals, UsageTotals),
    (client.UsageSeries, UsageSeries),
    (client.BillingAccount, BillingAccount),
    (client.BillingAccountList, BillingAccountList),
    (client.BillingInfo, BillingInfo),
    (client.PlanInfo, PlanInfo),
    (client.AuditEvent, models.AuditEvent),
    (client.AuditList, AuditList),
]


@pytest.mark.parametrize(("ours", "server"), PAIRS, ids=[pair[0].__name__ for pair in PAIRS])
def test_fields_match_the_server_model(ours: type, server: type[BaseModel]) -> None:
    assert [f.name for f in dataclasses.fields(ours)] == list(server.model_fields)


def test_every_answer_type_is_checked() -> None:
    exported = {getattr(client, name) for name in client.__all__}
    answers = {kind for kind in exported if dataclasses.is_dataclass(kind)}
    assert answers == {pair[0] for pair in PAIRS}


def test_load_reads_nested_optional_and_times() -> None:
    data = {
        "allowed": False,
        "code": "IP_NOT_ALLOWED",
        "checks": [
            {
                "restriction": "allowed_ips",
                "allowed": False,
                "matched_rule": None,
                "reason": "203.0.113.1 is not in 127.0.0.0/8",
                "added_later": 1,
            }
        ],
    }
    test = load(client.RestrictionTest, data)
    assert test.checks[0] == client.Check("allowed_ips", False, None, data["checks"][0]["reason"])
    point = load(
        client.UsagePoint, {"start_time": "2026-01-02T03:04:05Z", "requests": {}, "units": 1}
    )
    assert point.start_time.utcoffset() is not None and point.start_time.hour == 3
