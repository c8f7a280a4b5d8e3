"""`llavero keys list --order-by`: the service's orders from the command line, and one line
naming `order_by` (exit 1) for an unknown order."""

from __future__ import annotations

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


def listed_names(runner: CliRunner, *options: str) -> list[str]:
    keys = json.loads(ok(invoke(runner, "keys", "list", "--json", *options)))
    return [key["display_name"] for key in keys]


def test_order_by_names_and_projects(run: CliRunner) -> None:
    for project_name, key_names in (("Zulu keys", ("beta", "Alpha")), ("Alpha keys", ("gamma",))):
        project = json.loads(ok(invoke(run, "projects", "create", project_name, "--json")))["id"]
        for name in key_names:
            ok(invoke(run, "keys", "create", "--project", project, "--name", name))

    assert listed_names(run, "--order-by", "display_name") == ["Alpha", "beta", "gamma"]
    assert listed_names(run, "--order-by", "project")[0] == "gamma"


def test_an_unknown_order_is_one_line_naming_order_by(run: CliRunner) -> None:
    refused = invoke(run, "keys", "list", "--order-by", "color")
    assert refused.exit_code == 1
    assert "order_by" in refused.stderr
