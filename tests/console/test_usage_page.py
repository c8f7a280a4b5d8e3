"""The usage page: charts, totals per code, limits with what is left, and the CSV, for a key or
a project, over 24 hours, 7 days or 30 days."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero, models
from llavero.store.instances import Registry
from tests.console.console_client import PASSWORD, Rows, sign_in
from tests.console.marking import mark_translations, untranslated


@pytest.fixture(autouse=True)
def english_browser(anonymous: TestClient) -> None:
    """English unless a test asks for es-419 with `?hl=`."""
    anonymous.headers["Accept-Language"] = "en"


@pytest.fixture
def project(llavero: Llavero, admin: Actor) -> models.Project:
    return llavero.projects.create(admin, "Gemini API")


@pytest.fixture
def used(llavero: Llavero, admin: Actor, project: models.Project) -> models.CreatedKey:
    """A key restricted to 203.0.113.0/24: three requests from inside (100 units each), two
    from outside, all at the frozen clock's 2025-08-01T00:00Z."""
    created = llavero.keys.create(
        admin,
        project.id,
        display_name="Servidor",
        restrictions={"allowed_ips": ["203.0.113.0/24"]},
    )
    for _ in range(3):
        verdict = llavero.verifier.verify(
            VerifyRequest(key=created.key_string, ip="203.0.113.5", cost=100)
        )
        assert verdict.code == "VALID"
    for _ in range(2):
        verdict = llavero.verifier.verify(VerifyRequest(key=created.key_string, ip="198.51.100.1"))
        assert verdict.code == "IP_NOT_ALLOWED"
    llavero.usage_meter.flush()
    return created


def rows_of(page: Any) -> list[list[str]]:
    return [row for row in Rows(page.text).rows if row]


def csv_rows(console: TestClient, **params: str) -> list[list[str]]:
    answer = console.get("/app/usage.csv", params=params)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.reader(io.StringIO(answer.text)))


@pytest.mark.parametrize(
    ("hl", "expected"),
    [
        (
            "en",
            [
                ["Allowed", "VALID", "3"],
                ["IP address not allowed", "IP_NOT_ALLOWED", "2"],
                ["All requests", "5"],
                ["Units", "300"],
            ],
        ),
        (
            "es_419",
            [
                ["Permitida", "VALID", "3"],
                ["Dirección IP no permitida", "IP_NOT_ALLOWED", "2"],
                ["Todas las solicitudes", "5"],
                ["Unidades", "300"],
            ],
        ),
    ],
)
def test_a_keys_counts_in_both_languages(
    console: TestClient, used: models.CreatedKey, hl: str, expected: list[list[str]]
) -> None:
    page = console.get("/app/usage", params={"key": used.key.id, "hl": hl})
    assert page.status_code == 200
    rows = rows_of(page)
    for row in expected:
        assert row in rows
    assert page.text.count('role="img"') == 2  # requests by outcome, units
    # The chart's tooltips and legend name outcomes as the table does: no raw code for people.
    allowed, refused = expected[0][0], expected[1][0]
    assert f"<title>00:00 · {allowed}: 3</title>" in page.text
    assert f"<title>00:00 · {html.escape(refused)}: 2</title>" in page.text
    chart = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    assert f">{allowed}</text>" in chart and ">VALID<" not in chart
    assert ">IP_NOT_ALLOWED<" not in chart
    assert "<title>00:00: 300</title>" in page.text  # the units line's last point
    assert used.key_string not in page.text


def test_the_period_switch_and_the_csv_link(console: TestClient, used: models.CreatedKey) -> None:
    page = console.get("/app/usage", params={"key": used.key.id, "range": "7d"})
    current = re.findall(
        r'<a class="button button--primary" href="([^"]+)" aria-current', page.text
    )
    assert current == [f"/app/usage?key={used.key.id}&amp;range=7d"]
    assert f'href="/app/usage.csv?key={used.key.id}&amp;range=7d"' in page.text
    assert "One bar per day (UTC)." in page.text
    assert "<title>Aug 1 · Allowed: 3</title>" in page.text


@pytest.mark.parametrize(
    ("span", "buckets", "first"),
    [
        ("24h", 24, "2025-07-31T01:00:00+00:00"),
        ("7d", 7, "2025-07-26T00:00:00+00:00"),
        ("30d", 30, "2025-07-03T00:00:00+00:00"),
        ("1y", 24, "2025-07-31T01:00:00+00:00"),
    ],
)
def test_csv_has_one_row_per_bucket(
    console: TestClient, used: models.CreatedKey, span: str, buckets: int, first: str
) -> None:
    rows = csv_rows(console, key=used.key.id, range=span)
    assert rows[0] == ["start_time", "VALID", "IP_NOT_ALLOWED", "units"]
    assert len(rows) == buckets + 1
    assert rows[1][0] == first
    assert rows[-1] == ["2025-08-01T00:00:00+00:00", "3", "2", "300"]
    assert all(row[1:] == ["0", "0", "0"] for row in rows[1:-1])


def test_a_projects_usage_adds_up_its_keys(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    project: models.Project,
    used: models.CreatedKey,
) -> None:
    other = llavero.keys.create(admin, project.id, display_name="Otra")
    llavero.verifier.verify(VerifyRequest(key=other.key_string, cost=7))
    llavero.usage_meter.flush()
    page = console.get("/app/usage", params={"project": project.id})
    rows = rows_of(page)
    assert ["Allowed", "VALID", "4"] in rows and ["Units", "307"] in rows
    assert "Usage of Gemini API" in page.text
    assert csv_rows(console, project=project.id)[-1] == [
        "2025-08-01T00:00:00+00:00",
        "4",
        "2",
        "307",
    ]


def test_limits_and_what_is_left_of_them(
    console: TestClient, llavero: Llavero, admin: Actor, used: models.CreatedKey
) -> None:
    """Free plan: 10 rpm, 250 rpd, 250,000 upm, 1,000,000 upd; three requests and 300 units
    went through (the refused two spent nothing)."""
    rows = rows_of(console.get("/app/usage", params={"key": used.key.id}))
    assert ["Requests per minute rpm", "10", "—", "7", "1 minute"] in rows
    assert ["Requests per day rpd", "250", "—", "247", "1 day"] in rows
    assert ["Units per minute upm", "250,000", "—", "249,700", "1 minute"] in rows
    assert ["Units per day upd", "1,000,000", "—", "999,700", "1 day"] in rows

    llavero.keys.update(admin, used.key.id, {"limits": {"rpm": 5}})
    rows = rows_of(console.get("/app/usage", params={"key": used.key.id, "hl": "es_419"}))
    assert ["Solicitudes por minuto rpm", "10", "5", "5", "1 minuto"] in rows


def test_a_free_project_offers_billing(console: TestClient, used: models.CreatedKey) -> None:
    page = console.get("/app/usage", params={"key": used.key.id})
    assert f'href="/app/billing?project={used.key.project}">Set up billing</a>' in page.text


def test_no_requests_yet(console: TestClient, llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "Nuevo")
    page = console.get("/app/usage", params={"project": project.id, "range": "30d"})
    assert page.status_code == 200
    assert "No requests in this period." in page.text


def test_without_a_target_the_page_lists_projects(
    console: TestClient, project: models.Project
) -> None:
    page = console.get("/app/usage")
    assert f'href="/app/usage?project={project.id}"' in page.text


@pytest.mark.parametrize("path", ["/app/usage", "/app/usage.csv"])
def test_unknown_or_hidden_targets_are_not_found(
    console: TestClient, llavero: Llavero, admin: Actor, path: str
) -> None:
    assert console.get(path, params={"key": "no-such-key"}).status_code == 404
    assert console.get(path, params={"project": "no-such-project"}).status_code == 404


def test_a_member_sees_only_their_projects(
    llavero: Llavero, admin: Actor, used: models.CreatedKey
) -> None:
    llavero.users.create(admin, "beto@example.com", PASSWORD)
    with TestClient(create_app(llavero), follow_redirects=False) as beto:
        assert sign_in(beto, "beto@example.com").status_code == 303
        assert beto.get("/app/usage", params={"key": used.key.id}).status_code == 404
        assert beto.get("/app/usage.csv", params={"key": used.key.id}).status_code == 404


@pytest.mark.parametrize("path", ["/app/usage?key=x", "/app/usage.csv?key=x"])
def test_signed_out_visitors_are_sent_to_sign_in(anonymous: TestClient, path: str) -> None:
    answer = anonymous.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?next=")


def test_names_are_shown_as_text(console: TestClient, llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "<b>Proyecto</b>")
    key = llavero.keys.create(admin, project.id, display_name="<img src=x>").key
    for params in ({"key": key.id}, {"project": project.id}, {}):
        page = console.get("/app/usage", params=params)
        assert "<b>Proyecto</b>" not in page.text and "<img src=x>" not in page.text
    assert "&lt;img src=x&gt;" in console.get("/app/usage", params={"key": key.id}).text


def test_every_visible_string_goes_through_gettext(
    console: TestClient, used: models.CreatedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark_translations(monkeypatch)
    data = [
        "Servidor",
        "Gemini API",
        "Free",
        "ana@example.com",
        "VALID",
        "IP_NOT_ALLOWED",
        "rpm",
        "rpd",
        "upm",
        "upd",
        "1 minute",
        "1 day",
        f"…{used.key.last4}",
    ]
    for params in ({"key": used.key.id}, {"project": used.key.project}, {}):
        page = console.get("/app/usage", params=params)
        assert untranslated(page.text, data) == []


def test_processes_counting_apart_are_named_on_the_limits(
    console: TestClient, llavero: Llavero, used: models.CreatedKey
) -> None:
    """Another process on the database counting in its own memory: the limits say so."""
    page = console.get("/app/usage", params={"key": used.key.id})
    assert "count these limits on their own" not in page.text

    other = Registry(llavero.db, llavero.ctx.clock, lambda: "memory", interval=0)
    other.start("gateway")
    llavero.register("serve")
    try:
        page = console.get("/app/usage", params={"key": used.key.id, "hl": "es_419"})
    finally:
        other.stop()

    assert "1 de los 2 procesos de Llavero en esta base de datos cuentan" in page.text
