"""The CLI side of leaks: `projects update --leak-policy` and `keys show` naming the leak."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from llavero.cli import app
from llavero.config import Settings
from llavero.service import Actor, Llavero
from llavero.service.leaks import Match

runner = CliRunner()


@pytest.fixture
def service(cli_env: dict[str, str]) -> Iterator[Llavero]:
    llavero = Llavero(Settings())
    llavero.upgrade()
    yield llavero
    llavero.close()


def test_keys_show_lists_the_leak_and_the_policy_is_set_from_the_cli(service: Llavero) -> None:
    admin = Actor.system("t")
    project = service.projects.create(admin, "Cli leaks")
    updated = runner.invoke(
        app, ["projects", "update", project.id, "--leak-policy", "disable", "--json"]
    )
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.stdout)["leak_policy"] == "disable"
    created = service.keys.create(admin, project.id)
    before = runner.invoke(app, ["keys", "show", created.key.id])
    assert "LEAKED" not in before.stdout
    url = "https://github.com/octo/demo/blob/1/.env"
    service.leaks.report(admin, [Match(created.key_string, url=url, source="content")])
    shown = runner.invoke(app, ["keys", "show", created.key.id])
    assert shown.exit_code == 0
    assert "LEAKED" in shown.stdout and url in shown.stdout and "content" in shown.stdout
    assert "DISABLED" in shown.stdout and created.key_string not in shown.stdout
    as_json = json.loads(runner.invoke(app, ["keys", "show", created.key.id, "--json"]).stdout)
    assert as_json["leak"]["url"] == url and as_json["leak"]["source"] == "content"


def test_projects_update_refuses_an_unknown_policy(service: Llavero) -> None:
    project = service.projects.create(Actor.system("t"), "Cli leaks")
    result = runner.invoke(app, ["projects", "update", project.id, "--leak-policy", "shrug"])
    assert result.exit_code == 1 and "leak_policy" in result.output
    assert runner.invoke(app, ["projects", "update", project.id]).exit_code == 2
