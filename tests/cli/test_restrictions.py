"""`llavero keys update|test|list|rotate|verify`: restrictions, environments, expiry, rotation
and the dry-run from the command line, on a SQLite file of the test's own."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from llavero.cli import app

Run = Callable[..., Result]
CERT = "DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09"


@pytest.fixture
def run(cli_env: dict[str, str]) -> Run:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return invoke


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def key(run: Run) -> dict[str, Any]:
    """A fresh key in project `demo-project`, as `keys create --json` prints it."""
    assert run("projects", "create", "Demo", "--id", "demo-project").exit_code == 0
    created: dict[str, Any] = ok_json(run("keys", "create", "--project", "demo-project", "--json"))
    return created


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_update_sets_and_clears_every_field(run: Run, key: dict[str, Any]) -> None:
    key_id = key["key"]["id"]
    restrictions = json.dumps({"ios_bundle_ids": ["com.example.app"]})
    updated = ok_json(
        run(
            "keys", "update", key_id, "--name", "iOS app", "--restrictions", restrictions,
            "--environment", "production", "--expire-time", in_days(7), "--disable",
            "--annotation", "team=mobile", "--limit", "rpm=5", "--json",
        )
    )  # fmt: skip
    assert updated["display_name"] == "iOS app"
    assert updated["restrictions"] == {"ios_bundle_ids": ["com.example.app"]}
    assert updated["environment"] == "production"
    assert updated["expire_time"] is not None
    assert updated["state"] == "DISABLED"
    assert updated["annotations"] == {"team": "mobile"}
    assert updated["limits"] == {"rpm": 5}
    cleared = ok_json(
        run(
            "keys", "update", key_id, "--restrictions", "{}", "--environment", "",
            "--no-expire", "--enable", "--json",
        )
    )  # fmt: skip
    assert (cleared["restrictions"], cleared["environment"]) == ({}, None)
    assert (cleared["expire_time"], cleared["state"]) == (None, "ACTIVE")
    assert cleared["display_name"] == "iOS app"


@pytest.mark.parametrize(
    ("restrictions", "field"),
    [
        ({"allowed_ips": ["10.0.0.1/24"]}, "restrictions.allowed_ips[0]"),
        ({"allowed_ips": ["10.0.0.0/8"], "ios_bundle_ids": ["a.b"]}, "restrictions"),
        (
            {"android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": "DA"}]},
            "restrictions.android_apps[0].sha1_fingerprint",
        ),
        ({"nope": []}, "restrictions.nope"),
    ],
)
def test_update_refuses_invalid_restrictions_in_one_line(
    run: Run, key: dict[str, Any], restrictions: dict[str, Any], field: str
) -> None:
    key_id = key["key"]["id"]
    before = ok_json(run("keys", "show", key_id, "--json"))
    result = run(
        "keys", "update", key_id, "--name", "x", "--restrictions", json.dumps(restrictions)
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: INVALID_ARGUMENT: {field}:")
    assert result.stderr.count("\n") == 1
    assert ok_json(run("keys", "show", key_id, "--json")) == before


@pytest.mark.parametrize(
    "args",
    [(), ("--expire-time", "2999-01-01T00:00:00Z", "--no-expire"), ("--restrictions", "{")],
)
def test_update_refuses_unusable_options(run: Run, key: dict[str, Any], args: tuple[str]) -> None:
    result = run("keys", "update", key["key"]["id"], *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:")


def test_dry_run_from_the_command_line(run: Run, key: dict[str, Any]) -> None:
    key_id = key["key"]["id"]
    restrictions = {
        "android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": CERT}],
        "api_targets": [{"service": "maps.googleapis.com"}],
    }
    ok_json(run("keys", "update", key_id, "--restrictions", json.dumps(restrictions), "--json"))
    app_context = ("--android-package", "com.example.app", "--android-cert", CERT)
    allowed = run("keys", "test", key_id, *app_context, "--service", "maps.googleapis.com")
    assert allowed.exit_code == 0, allowed.output
    assert "verdict: allowed" in allowed.stdout
    assert "com.example.app" in allowed.stdout
    refused = run("keys", "test", key_id, *app_context, "--service", "x.example.com", "--json")
    assert refused.exit_code == 3
    body = json.loads(refused.stdout)
    assert (body["allowed"], body["code"]) == (False, "API_NOT_ALLOWED")
    assert [check["restriction"] for check in body["checks"]][-2:] == [
        "android_apps",
        "api_targets",
    ]
    verified = run("keys", "verify", key["key_string"], *app_context, "--service", "x.example.com")
    assert verified.exit_code == 3
    assert "API_NOT_ALLOWED" in verified.stdout


def test_list_filters_by_environment_and_expiry(run: Run) -> None:
    assert run("projects", "create", "Demo", "--id", "demo-project").exit_code == 0
    for name, environment, days in [("a", "production", 3), ("b", "staging", 30), ("c", "", 0)]:
        args = ["keys", "create", "--project", "demo-project", "--name", name, "--json"]
        if environment:
            args += ["--environment", environment]
        if days:
            args += ["--expire-time", in_days(days)]
        ok_json(run(*args))

    def names(*args: str) -> list[str]:
        return sorted(key["display_name"] for key in ok_json(run("keys", "list", *args, "--json")))

    assert names() == ["a", "b", "c"]
    assert names("--environment", "production") == ["a"]
    assert names("--expiring-within-days", "7") == ["a"]
    assert names("--expiring-within-days", "31") == ["a", "b"]
    assert names("--environment", "staging", "--expiring-within-days", "7") == []
    table = run("keys", "list", "--environment", "staging")
    assert table.exit_code == 0
    assert "environment" in table.stdout and "staging" in table.stdout
    assert "expire_time" in table.stdout


def test_rotate_keeps_the_id_and_the_old_string_during_the_grace_period(
    run: Run, key: dict[str, Any]
) -> None:
    key_id, old = key["key"]["id"], key["key_string"]
    rotated = ok_json(run("keys", "rotate", key_id, "--grace-period", "3600", "--json"))
    assert rotated["key"]["id"] == key_id
    assert rotated["key_string"] != old
    assert run("keys", "verify", old).exit_code == 0
    assert run("keys", "verify", rotated["key_string"]).exit_code == 0
    again = ok_json(run("keys", "rotate", key_id, "--json"))  # grace 0: the last one ends now
    assert json.loads(run("keys", "verify", rotated["key_string"], "--json").stdout)["code"] == (
        "EXPIRED"
    )
    assert json.loads(run("keys", "verify", old, "--json").stdout)["code"] == "NOT_FOUND"
    assert run("keys", "verify", again["key_string"]).exit_code == 0
