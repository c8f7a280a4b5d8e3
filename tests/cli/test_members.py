"""`llavero projects members`: as the local admin, or `--as` a console user whose role decides."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner, Result

from llavero.cli import app

PASSWORD = "correct horse battery staple"


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Any:
    result = run(*args, "--json", input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_members_list_add_set_remove(cli_env: dict[str, str]) -> None:
    ok("projects", "create", "Shared API", "--id", "shared-api")
    assert ok(
        "projects", "members", "add", "shared-api", "bob@example.com", "--role", "editor"
    ) == {
        "email": "bob@example.com",
        "role": "editor",
        "invited": True,
    }
    ok("projects", "members", "set", "shared-api", "bob@example.com", "--role", "viewer")
    assert ok("projects", "members", "list", "shared-api") == [
        {"email": "bob@example.com", "role": "viewer", "invited": True}
    ]
    ok("projects", "members", "remove", "shared-api", "bob@example.com")
    assert ok("projects", "members", "list", "shared-api") == []
    table = run("projects", "members", "list", "shared-api")
    assert table.exit_code == 0


def test_acting_as_a_user_applies_their_role(cli_env: dict[str, str]) -> None:
    for email in ("ana@example.com", "bob@example.com"):
        ok("users", "create", "--email", email, "--password-stdin", input=PASSWORD + "\n")
    ok("projects", "create", "Shared API", "--id", "shared-api")
    ok("projects", "members", "add", "shared-api", "ana@example.com", "--role", "owner")
    ok(
        "projects",
        "members",
        "add",
        "shared-api",
        "bob@example.com",
        "--role",
        "viewer",
        "--as",
        "ana@example.com",
    )
    refused = run(
        "projects", "members", "add", "shared-api", "eve@example.com", "--as", "bob@example.com"
    )
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: PERMISSION_DENIED")
    last_owner = run(
        "projects", "members", "remove", "shared-api", "ana@example.com", "--as", "ana@example.com"
    )
    assert last_owner.exit_code == 1
    assert "FAILED_PRECONDITION" in last_owner.stderr
    unknown = run("projects", "members", "list", "shared-api", "--as", "nobody@example.com")
    assert (unknown.exit_code, unknown.stderr.strip()) == (
        1,
        "error: --as: no active console user with this email",
    )
