"""`llavero plans list` and `llavero billing create|list|link|unlink|close|reopen`, in process on
a SQLite file of their own: tables for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from llavero.cli import app


@pytest.fixture
def cli(cli_env: dict[str, str]) -> CliRunner:
    return CliRunner()


def run(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(app, list(args))


def ok_json(cli: CliRunner, *args: str) -> Any:
    result = run(cli, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_plans_list_shows_unlimited_plainly(cli: CliRunner) -> None:
    table = run(cli, "plans", "list")
    plans = ok_json(cli, "plans", "list")

    assert table.exit_code == 0
    tier_3 = next(line for line in table.stdout.splitlines() if "tier-3" in line)
    assert tier_3.count("unlimited") == 2
    assert [plan["name"] for plan in plans] == ["free", "tier-1", "tier-2", "tier-3"]
    assert plans[3]["rpd"] is None


def test_billing_lifecycle_moves_the_project_between_plans(cli: CliRunner) -> None:
    ok_json(cli, "projects", "create", "Gemini API", "--id", "gemini-api")
    account = ok_json(cli, "billing", "create", "Acme Corp", "--currency", "eur")

    linked = ok_json(cli, "billing", "link", "gemini-api", account["id"])
    closed = ok_json(cli, "billing", "close", account["id"])
    after_close = ok_json(cli, "projects", "list")
    ok_json(cli, "billing", "reopen", account["id"])
    unlinked = ok_json(cli, "billing", "unlink", "gemini-api")
    listed = ok_json(cli, "billing", "list")

    assert (account["currency"], account["open"]) == ("EUR", True)
    assert [(a["id"], a["display_name"], a["open"]) for a in listed] == [
        (account["id"], "Acme Corp", True)
    ]
    assert (linked["plan"], linked["limits"]["rpm"]) == ("tier-1", 1_000)
    assert closed["open"] is False
    assert [(p["plan"], p["billing_account"]) for p in after_close] == [("free", account["id"])]
    assert (unlinked["billing_account"], unlinked["plan"]) == (None, "free")


def test_linking_a_closed_account_is_one_line_and_exit_code_1(cli: CliRunner) -> None:
    ok_json(cli, "projects", "create", "Gemini API", "--id", "gemini-api")
    account = ok_json(cli, "billing", "create", "Old", "--closed")

    result = run(cli, "billing", "link", "gemini-api", account["id"])

    assert result.exit_code == 1
    assert result.stderr.startswith("error: FAILED_PRECONDITION: billing_account:")
    assert result.stderr.count("\n") == 1
