"""The `llavero` command, driven in process as a user would type it, on a SQLite file of its own:
tables for people, JSON for scripts, one-line errors with non-zero exit codes. Two tests run the
real console script and `llavero serve` as subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from typer.testing import CliRunner, Result

from llavero.cli import app
from tests.loopback import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = ROOT / ".venv" / "bin" / "llavero"
PASSWORD = "correct horse battery staple"
INVALID = 3


class Run(Protocol):
    def __call__(self, *args: str, input: str | None = None) -> Result: ...


@pytest.fixture
def run(cli_env: dict[str, str]) -> Run:
    """`llavero ARGS` in process; Typer's runner keeps stdout and stderr apart."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def one_line_error(result: Result, exit_code: int = 1) -> str:
    """The SPEC's error shape: exit code non-zero, nothing on stdout, one line on stderr."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def project(run: Run) -> str:
    created = as_json(run("projects", "create", "Gemini API", "--json"))
    return str(created["id"])


@pytest.fixture
def created_key(run: Run, project: str) -> dict[str, Any]:
    created: dict[str, Any] = as_json(
        run("keys", "create", "--project", project, "--name", "laptop", "--json")
    )
    return created


# --- users and tokens ---------------------------------------------------------------------


def test_users_create_reads_the_password_from_stdin(run: Run) -> None:
    created = run(
        "users",
        "create",
        "--email",
        "Ana@Example.com",
        "--admin",
        "--password-stdin",
        "--json",
        input=PASSWORD + "\n",
    )
    user = as_json(created)
    assert (user["email"], user["role"]) == ("ana@example.com", "admin")

    table = ok(
        run("users", "create", "--email", "bo@example.com", "--password-stdin", input=PASSWORD)
    )
    assert "bo@example.com" in table.stdout and "member" in table.stdout
    listed = as_json(run("users", "list", "--json"))
    assert [(u["email"], u["role"]) for u in listed] == [
        ("ana@example.com", "admin"),
        ("bo@example.com", "member"),
    ]


def test_users_create_prompts_for_the_password_twice(run: Run) -> None:
    user = as_json(
        run("users", "create", "--email", "cy@example.com", "--json", input=f"{PASSWORD}\n" * 2)
    )
    assert user["email"] == "cy@example.com"


def test_users_create_refuses_a_short_password_and_writes_nothing(run: Run) -> None:
    line = one_line_error(
        run("users", "create", "--email", "dee@example.com", "--password-stdin", input="short\n")
    )
    assert "INVALID_ARGUMENT" in line and "password" in line and "short" not in line
    assert as_json(run("users", "list", "--json")) == []


def test_users_create_refuses_a_bad_email(run: Run) -> None:
    line = one_line_error(
        run("users", "create", "--email", "not-an-email", "--password-stdin", input=PASSWORD)
    )
    assert "email" in line


def test_tokens_create_takes_several_scopes_and_shows_the_token_once(run: Run) -> None:
    created = as_json(
        run("tokens", "create", "--scope", "keys:read", "--scope", "keys:verify", "--json")
    )
    assert created["token_info"]["scopes"] == ["keys:read", "keys:verify"]
    assert created["token"].endswith(created["token_info"]["last4"])

    table = ok(run("tokens", "create", "--scope", "admin", "--name", "ci"))
    assert re.search(r"token \(shown once\): \S+", table.stdout)
    listed = as_json(run("tokens", "list", "--json"))
    assert sorted(token["display_name"] for token in listed) == ["ci", "management token"]
    assert created["token"] not in json.dumps(listed)


def test_tokens_create_refuses_an_unknown_scope(run: Run) -> None:
    line = one_line_error(run("tokens", "create", "--scope", "keys:read", "--scope", "root"))
    assert "INVALID_ARGUMENT" in line and "scope" in line
    assert as_json(run("tokens", "list", "--json")) == []


def test_tokens_create_needs_a_scope(run: Run) -> None:
    line = one_line_error(run("tokens", "create"), exit_code=2)
    assert "--scope" in line


# --- projects -----------------------------------------------------------------------------


def test_projects_create_and_list(run: Run) -> None:
    table = ok(run("projects", "create", "Gemini API"))
    assert "gemini-api" in table.stdout and "free" in table.stdout
    other = as_json(run("projects", "create", "Mapas", "--id", "maps-prod", "--json"))
    assert (other["id"], other["display_name"], other["plan"]) == ("maps-prod", "Mapas", "free")
    assert len(str(other["number"])) == 12

    listed = as_json(run("projects", "list", "--json"))
    assert sorted(project["id"] for project in listed) == ["gemini-api", "maps-prod"]
    table = ok(run("projects", "list"))
    assert "Gemini API" in table.stdout and "Mapas" in table.stdout


def test_projects_create_refuses_a_taken_id(run: Run, project: str) -> None:
    line = one_line_error(run("projects", "create", "Again", "--id", project))
    assert "ALREADY_EXISTS" in line


# --- keys ---------------------------------------------------------------------------------


def test_keys_create_shows_the_key_string_once(run: Run, project: str) -> None:
    table = ok(run("keys", "create", "--project", project, "--name", "laptop"))
    key_string = re.search(r"key \(shown once\): (llv_\w+)", table.stdout)
    assert key_string is not None
    assert key_string.group(1)[-4:] in table.stdout.split("key (shown once)")[0]

    listed = as_json(run("keys", "list", "--project", project, "--json"))
    assert [key["display_name"] for key in listed] == ["laptop"]
    assert key_string.group(1) not in json.dumps(listed)
    assert "laptop" in ok(run("keys", "list")).stdout


def test_keys_create_with_every_option(run: Run, project: str) -> None:
    restrictions = {"allowed_ips": ["203.0.113.0/24"]}
    created = as_json(
        run(
            "keys",
            "create",
            "--project",
            project,
            "--name",
            "server",
            "--environment",
            "production",
            "--expire-time",
            "2999-01-01T00:00:00Z",
            "--restrictions",
            json.dumps(restrictions),
            "--annotation",
            "team=search",
            "--limit",
            "rpm=10",
            "--json",
        )
    )
    key = created["key"]
    assert key["environment"] == "production"
    assert key["expire_time"].startswith("2999-01-01")
    assert key["restrictions"]["allowed_ips"] == ["203.0.113.0/24"]
    assert key["annotations"] == {"team": "search"}
    assert key["limits"] == {"rpm": 10}


def test_keys_create_in_an_unknown_project_fails(run: Run) -> None:
    line = one_line_error(run("keys", "create", "--project", "nope"))
    assert "NOT_FOUND" in line and "nope" in line


def test_keys_create_refuses_restrictions_that_are_not_json(run: Run, project: str) -> None:
    result = run("keys", "create", "--project", project, "--restrictions", "{allowed_ips")
    line = one_line_error(result, exit_code=2)
    assert "--restrictions" in line and "JSON" in line
    assert as_json(run("keys", "list", "--json")) == []


def test_keys_create_refuses_invalid_restrictions_naming_the_field(run: Run, project: str) -> None:
    bad = json.dumps({"allowed_ips": ["203.0.113.0/24", "not-an-ip"]})
    line = one_line_error(run("keys", "create", "--project", project, "--restrictions", bad))
    assert "INVALID_ARGUMENT" in line and "allowed_ips[1]" in line
    assert as_json(run("keys", "list", "--json")) == []


def test_keys_create_refuses_an_annotation_without_a_value(run: Run, project: str) -> None:
    result = run("keys", "create", "--project", project, "--annotation", "team")
    assert "NAME=VALUE" in one_line_error(result, exit_code=2)


def test_keys_show(run: Run, created_key: dict[str, Any]) -> None:
    key_id = created_key["key"]["id"]
    shown = as_json(run("keys", "show", key_id, "--json"))
    assert shown == created_key["key"]
    table = ok(run("keys", "show", key_id)).stdout
    assert key_id in table and "laptop" in table and created_key["key_string"] not in table


def test_keys_show_unknown_key_fails(run: Run) -> None:
    assert "NOT_FOUND" in one_line_error(run("keys", "show", "no-such-key"))


def test_keys_verify_reads_the_key_from_stdin(run: Run, created_key: dict[str, Any]) -> None:
    key_string = created_key["key_string"]
    verdict = as_json(run("keys", "verify", "--json", input=key_string + "\n"))
    assert verdict["valid"] is True and verdict["code"] == "VALID"
    assert verdict["key_id"] == created_key["key"]["id"]

    table = ok(run("keys", "verify", input=key_string)).stdout
    assert "VALID" in table and key_string not in table


def test_keys_verify_exits_3_unless_valid(run: Run, created_key: dict[str, Any]) -> None:
    malformed = run("keys", "verify", "--json", input="llv_notakey\n")
    assert malformed.exit_code == INVALID
    assert json.loads(malformed.stdout)["code"] == "MALFORMED"

    unknown = run("keys", "verify", "--json", input="llv_" + "A" * 38 + "\n")
    assert unknown.exit_code == INVALID
    assert json.loads(unknown.stdout)["valid"] is False


def test_keys_delete_and_undelete(run: Run, created_key: dict[str, Any]) -> None:
    key_id, key_string = created_key["key"]["id"], created_key["key_string"]
    deleted = as_json(run("keys", "delete", key_id, "--json"))
    assert deleted["state"] == "DELETED" and deleted["purge_time"]

    after = run("keys", "verify", "--json", input=key_string)
    assert after.exit_code == INVALID and json.loads(after.stdout)["code"] == "DELETED"
    assert as_json(run("keys", "list", "--json")) == []
    shown = as_json(run("keys", "list", "--show-deleted", "--json"))
    assert [key["id"] for key in shown] == [key_id]

    restored = as_json(run("keys", "undelete", key_id, "--json"))
    assert restored["state"] == "ACTIVE"
    ok(run("keys", "verify", input=key_string))


def test_keys_delete_table_output(run: Run, created_key: dict[str, Any]) -> None:
    table = ok(run("keys", "delete", created_key["key"]["id"])).stdout
    assert "DELETED" in table and "purge_time" in table


def test_keys_undelete_an_active_key_fails(run: Run, created_key: dict[str, Any]) -> None:
    line = one_line_error(run("keys", "undelete", created_key["key"]["id"]))
    assert "FAILED_PRECONDITION" in line


def test_keys_rotate_keeps_the_id_and_the_old_string_for_the_grace_period(
    run: Run, created_key: dict[str, Any]
) -> None:
    key_id, old = created_key["key"]["id"], created_key["key_string"]
    rotated = as_json(run("keys", "rotate", key_id, "--grace-period", "3600", "--json"))
    new = rotated["key_string"]
    assert rotated["key"]["id"] == key_id and new != old
    assert rotated["key"]["previous_last4"] == old[-4:]
    for string in (old, new):
        assert as_json(run("keys", "verify", "--json", input=string))["key_id"] == key_id

    table = ok(run("keys", "rotate", key_id)).stdout
    newest = re.search(r"new key \(shown once\): (llv_\w+)", table)
    assert newest is not None
    ok(run("keys", "verify", input=newest.group(1)))
    stale = run("keys", "verify", "--json", input=new)
    assert stale.exit_code == INVALID and json.loads(stale.stdout)["code"] == "EXPIRED"
    assert run("keys", "verify", input=old).exit_code == INVALID


def test_keys_rotate_refuses_a_grace_period_out_of_range(
    run: Run, created_key: dict[str, Any]
) -> None:
    result = run("keys", "rotate", created_key["key"]["id"], "--grace-period", "604801")
    assert "grace_period_seconds" in one_line_error(result)


def test_a_missing_option_is_one_line(run: Run) -> None:
    assert "--project" in one_line_error(run("keys", "create"), exit_code=2)


# --- db -----------------------------------------------------------------------------------


def test_db_upgrade(run: Run, tmp_path: Path) -> None:
    first = ok(run("db", "upgrade")).stdout
    assert first.startswith("database upgraded from an empty database to revision "), first
    assert "up to date" not in first
    assert (tmp_path / "cli.sqlite3").exists()
    assert ok(run("db", "upgrade")).stdout.startswith("database is up to date (revision ")


def test_db_option_overrides_the_environment(run: Run, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    ok(run("projects", "create", "Elsewhere", "--db", other))
    assert as_json(run("projects", "list", "--json")) == []
    assert [p["id"] for p in as_json(run("projects", "list", "--db", other, "--json"))] == [
        "elsewhere"
    ]


def test_an_unreachable_database_is_one_line_without_the_password(run: Run) -> None:
    url = "postgresql+psycopg://llavero:s3cret-pw@127.0.0.1:1/llavero"
    line = one_line_error(run("projects", "list", "--db", url))
    assert line.startswith("error: database:") and "s3cret-pw" not in line


def test_a_database_url_sqlalchemy_cannot_use_is_one_line(run: Run) -> None:
    line = one_line_error(run("projects", "list", "--db", "nosuchdb://u:s3cret-pw@host/db"))
    assert "LLAVERO_DATABASE_URL" in line and "s3cret-pw" not in line


def test_a_bad_setting_is_one_line_naming_the_variable(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAVERO_CACHE_SIZE", "lots")
    assert "LLAVERO_CACHE_SIZE" in one_line_error(run("projects", "list"))


# --- the installed program ----------------------------------------------------------------


def subprocess_env(cli_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **cli_env, "PYTHONUNBUFFERED": "1"}


def test_console_script_entry_point(cli_env: dict[str, str]) -> None:
    if not CONSOLE_SCRIPT.exists():
        pytest.skip(f"{CONSOLE_SCRIPT} is not installed (make install)")
    env = subprocess_env(cli_env)
    created = subprocess.run(
        [str(CONSOLE_SCRIPT), "projects", "create", "Gemini API", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(created.stdout)["id"] == "gemini-api"
    failed = subprocess.run(
        [str(CONSOLE_SCRIPT), "keys", "create", "--project", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [failed.stderr.strip()]


@pytest.fixture
def served(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`llavero serve` on a fresh SQLite file; yields its base URL and the file it prints to."""
    port = free_port()
    output = tmp_path / "serve.out"
    with output.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "llavero", "serve", "--port", str(port)],
            env=subprocess_env(cli_env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, base, output)
        yield base, output
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def test_serve_prints_the_first_run_credentials_that_work(served: tuple[str, Path]) -> None:
    base, output = served
    printed = output.read_text()
    link = re.search(rf"{re.escape(base)}/signin/link\?token=[\w-]+", printed)
    assert link is not None, printed
    token = re.search(r"^\s+(llvtok_\w+)\s*$", printed, re.MULTILINE)
    assert token is not None, printed
    assert f"{base}/app/apikey" in printed

    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token.group(1)}"}, timeout=10
    ) as api:
        project = api.post("/v1/projects", json={"display_name": "Gemini API"})
        assert project.status_code == 200, project.text
        created = api.post(f"/v1/projects/{project.json()['id']}/keys", json={})
        assert created.status_code == 200, created.text
        verdict = api.post("/v1/keys:verify", json={"key": created.json()["key_string"]})
        assert verdict.json()["code"] == "VALID"
    refused = httpx.get(f"{base}/v1/projects", timeout=10)
    assert refused.status_code == 401


def test_users_create_without_a_terminal_says_to_pipe_the_password(run: Run) -> None:
    result = run("users", "create", "--email", "ed@example.com", "--admin", input="")
    assert result.exit_code == 1
    assert result.stdout.strip() == ""  # the prompt's last character goes to stdout, nothing else
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: password: no terminal") and "--password-stdin" in line
    assert as_json(run("users", "list", "--json")) == []
