"""No key string or management token reaches the database file (nor its WAL) or a log line.

Keys are created, rotated, looked up and verified through the REST API and the CLI; then the
SQLite file, its -wal file and every captured log record (SQL statements with their parameters
included) are searched byte by byte for every secret handed out."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from llavero.cli import app as cli
from llavero.config import Settings
from llavero.service import Llavero


def run_cli(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def database_bytes(path: Path) -> dict[str, bytes]:
    files = {name: Path(f"{path}{name}") for name in ("", "-wal")}
    return {name: file.read_bytes() for name, file in files.items() if file.exists()}


def test_no_secret_in_the_database_or_the_logs(
    llavero: Llavero,
    settings: Settings,
    client: TestClient,
    admin_token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = Path(settings.sqlalchemy_url.removeprefix("sqlite:///"))
    monkeypatch.setenv("LLAVERO_DATABASE_URL", settings.sqlalchemy_url)
    monkeypatch.setenv("LLAVERO_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LLAVERO_SECRET_KEY", str(settings.secret_key))
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # SQL with its parameters

    secrets = [admin_token]
    project = client.post("/v1/projects", json={"display_name": "Plaintext"}).json()["id"]
    for name in ("api one", "api two"):
        created = client.post(f"/v1/projects/{project}/keys", json={"display_name": name})
        assert created.status_code == 200
        secrets.append(created.json()["key_string"])
    key_id = client.get(f"/v1/projects/{project}/keys").json()["keys"][0]["id"]
    rotated = client.post(f"/v1/keys/{key_id}:rotate", json={"grace_period_seconds": 60})
    secrets.append(rotated.json()["key_string"])

    from_cli = run_cli("keys", "create", "--project", project, "--name", "cli key")
    secrets.append(str(from_cli["key_string"]))
    cli_key_id = str(from_cli["key"]["id"])  # type: ignore[index]
    rotated_cli = run_cli("keys", "rotate", cli_key_id, "--grace-period", "5")
    secrets.append(str(rotated_cli["key_string"]))

    for secret in secrets[1:]:
        verdict = client.post("/v1/keys:verify", json={"key": secret})
        assert verdict.json()["code"] in ("VALID", "NOT_FOUND")
        assert client.post("/v1/keys:lookup", json={"key_string": secret}).status_code in (200, 404)
        mistyped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        assert client.post("/v1/keys:verify", json={"key": mistyped}).json()["code"] == "MALFORMED"
    assert client.get("/v1/audit").status_code == 200
    token = str(run_cli("tokens", "create", "--scope", "keys:verify")["token"])
    secrets.append(token)
    client.headers["Authorization"] = f"Bearer {token}"
    assert client.post("/v1/keys:verify", json={"key": secrets[1]}).status_code == 200

    stored = database_bytes(database)
    assert set(stored) == {"", "-wal"}, "the WAL must be read while the database is open"
    assert stored["-wal"], "WAL file is empty: nothing was searched"
    assert llavero.ctx.hasher.hash(secrets[1]).encode() in stored[""] + stored["-wal"]
    logged = caplog.text + "\n".join(str(record.args) for record in caplog.records)
    assert "INSERT INTO keys" in logged, "the SQL log was not captured"
    for secret in secrets:
        body = secret.partition("_")[2]
        for name, data in stored.items():
            assert body.encode() not in data, f"a secret is in the database file{name}"
        assert body not in logged, "a secret is in the logs"
