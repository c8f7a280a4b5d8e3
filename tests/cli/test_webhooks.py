"""`llavero webhooks …` in process on a SQLite file of its own: create (secret once), list,
update, test and deliver to a receiver on loopback, the delivery log, rotate, delete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from llavero.cli import app
from tests.webhook_receiver import Receiver, receiver


@pytest.fixture
def cli(cli_env: dict[str, str]) -> CliRunner:
    return CliRunner()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def run(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(app, list(args))


def ok_json(cli: CliRunner, *args: str) -> Any:
    result = run(cli, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_a_webhook_from_create_to_delete(cli: CliRunner, hook: Receiver) -> None:
    project = ok_json(cli, "projects", "create", "Hooks")["id"]
    created = ok_json(
        cli, "webhooks", "create", hook.url, "--project", project, "--event", "key.created"
    )
    webhook_id = created["webhook"]["id"]
    hook.secrets.append(created["secret"])
    assert created["webhook"]["events"] == ["key.created"]
    listed = run(cli, "webhooks", "list")
    assert webhook_id in listed.stdout and "whsec_" not in listed.stdout
    ok_json(cli, "keys", "create", "--project", project)
    event_id = ok_json(cli, "webhooks", "test", webhook_id)["event_id"]
    delivered = run(cli, "webhooks", "deliver")
    assert delivered.exit_code == 0 and "2 delivery attempts" in delivered.stdout
    assert hook.types() == ["key.created", "webhook.test"] and hook.refused == []
    log = ok_json(cli, "webhooks", "deliveries", webhook_id)
    assert [(item["event_id"], item["status"]) for item in log][0] == (event_id, "delivered")
    disabled = ok_json(cli, "webhooks", "update", webhook_id, "--disable")
    assert disabled["disabled"] is True
    rotated = run(cli, "webhooks", "rotate-secret", webhook_id)
    assert rotated.exit_code == 0 and "whsec_" in rotated.stdout
    assert run(cli, "webhooks", "delete", webhook_id).exit_code == 0
    gone = run(cli, "webhooks", "show", webhook_id)
    assert gone.exit_code == 1 and "NOT_FOUND" in gone.stderr


def test_a_bad_url_is_one_line_naming_the_field(cli: CliRunner) -> None:
    result = run(cli, "webhooks", "create", "file:///etc/passwd")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: INVALID_ARGUMENT: url:")
    assert len(result.stderr.strip().splitlines()) == 1
