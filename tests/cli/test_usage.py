"""`llavero usage`: verifies made by one command are in the usage series read by the next, as a
table, JSON or CSV, with no server running."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner, Result

from llavero.cli import app


@pytest.fixture
def run(cli_env: dict[str, str]) -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture
def used(run: CliRunner) -> tuple[str, str]:
    """A project and a production key verified three times, once from the wrong environment."""
    project = json.loads(ok(invoke(run, "projects", "create", "Gemini API", "--json")))["id"]
    created = json.loads(
        ok(
            invoke(
                run, "keys", "create", "--project", project, "--environment", "production", "--json"
            )
        )  # fmt: skip
    )
    for _ in range(2):
        ok(invoke(run, "keys", "verify", created["key_string"], "--ip", "203.0.113.7"))
    refused = invoke(run, "keys", "verify", created["key_string"], "--environment", "staging")
    assert refused.exit_code == 3
    return project, created["key"]["id"]


def test_json_totals_count_each_verify_under_its_outcome(
    run: CliRunner, used: tuple[str, str]
) -> None:
    project, key_id = used
    for target in (("--project", project), ("--key", key_id)):
        series = json.loads(ok(invoke(run, "usage", *target, "--json")))
        assert series["granularity"] == "hour"
        assert series["totals"]["requests"] == {"VALID": 2, "ENVIRONMENT_MISMATCH": 1}
    key = json.loads(ok(invoke(run, "keys", "show", key_id, "--json")))
    assert key["last_used_time"] is not None


def test_csv_has_a_column_per_code_and_a_line_per_bucket(
    run: CliRunner, used: tuple[str, str]
) -> None:
    project, _ = used
    text = ok(invoke(run, "usage", "--project", project, "--granularity", "minute", "--csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["start_time", "VALID", "ENVIRONMENT_MISMATCH", "units"]
    assert len(rows) == 61  # the default hour of minutes, both ends included
    assert sum(int(row["VALID"]) for row in rows) == 2


def test_table_ends_with_totals(run: CliRunner, used: tuple[str, str]) -> None:
    project, _ = used
    text = ok(invoke(run, "usage", "--project", project, "--granularity", "day"))
    last_row = [line for line in text.splitlines() if "total" in line][-1]
    assert [cell.strip() for cell in last_row.strip("│┃ ").split("│")] == ["total", "2", "1", "0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of --key and --project"),
        (("--project", "gemini-api", "--granularity", "week"), "granularity:"),
        (("--project", "gemini-api", "--json", "--csv"), "at most one of --json and --csv"),
    ],
)
def test_mistakes_are_one_line_errors(
    run: CliRunner, used: tuple[str, str], args: tuple[str, ...], message: str
) -> None:
    result = invoke(run, "usage", *args)
    assert result.exit_code != 0
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert message in line
