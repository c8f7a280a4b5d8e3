"""Delivery across real `llavero serve` processes: an event committed before a `kill -9` is
delivered after the restart, and two instances on one database send each event once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from llavero.config import Settings
from llavero.service import Actor, Llavero
from llavero.store.tables import Base
from tests.cli.test_cli import free_port, subprocess_env, wait_until_serving
from tests.webhook_receiver import Receiver, receiver

FAST = {
    "LLAVERO_WEBHOOK_POLL_SECONDS": "0.1",
    "LLAVERO_WEBHOOK_RETRY_SECONDS": "[0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]",
    "LLAVERO_USAGE_FLUSH_SECONDS": "0.2",
    "LLAVERO_ALERT_CHECK_SECONDS": "0",
}


@contextmanager
def serving(env: dict[str, str], output: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`llavero serve` in a process group of its own (granian forks a worker), stopped by
    SIGKILL to the whole group unless the test killed it already."""
    port = free_port()
    with output.open("a") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "llavero", "serve", "--port", str(port)],
            env=subprocess_env({**env, **FAST}),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, base, output)
        yield base, server
    finally:
        kill_group(server)


def kill_group(server: subprocess.Popen[bytes]) -> None:
    """`kill -9` of the server and its worker: nothing runs on, nothing is cleaned up."""
    if server.poll() is None or _group_alive(server.pid):
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=15)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"waited {seconds} s for {what}")


def prepare(env: dict[str, str], hook: Receiver) -> str:
    """An admin token and a webhook for every event, written to the database before serving."""
    settings = Settings(
        database_url=env["LLAVERO_DATABASE_URL"],
        secret_key=env["LLAVERO_SECRET_KEY"],
        data_dir=Path(env["LLAVERO_DATA_DIR"]),
    )
    llavero = Llavero(settings)
    try:
        llavero.upgrade()
        admin = Actor.system("test")
        llavero.bootstrap()  # as serve would: the server then prints no first-run credentials
        created = llavero.webhooks.create(admin, hook.url, ["*"])
        hook.secrets.append(created.secret)
        return llavero.tokens.create(admin, ["admin"]).token
    finally:
        llavero.close()


def new_keys(
    base: str, token: str, count: int, project: str | None = None
) -> tuple[str, list[str]]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
        if project is None:
            made = api.post("/v1/projects", json={"display_name": f"P {time.monotonic_ns()}"})
            assert made.status_code == 200, made.text
            project = str(made.json()["id"])
        ids = []
        for _ in range(count):
            answer = api.post(f"/v1/projects/{project}/keys", json={})
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["key"]["id"])
        return project, ids


def empty_tables(url: str) -> None:
    """The PostgreSQL schema is shared by the session's tests: leave it empty."""
    engine = create_engine(url)
    with engine.begin() as connection:
        names = ", ".join(table.name for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


def created_keys(hook: Receiver) -> list[str]:
    with hook.lock:
        return [i.body["data"]["key_id"] for i in hook.accepted if i.body["type"] == "key.created"]


def test_an_event_committed_before_kill_9_is_delivered_after_the_restart(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    with receiver() as hook:
        token = prepare(cli_env, hook)
        hook.status = 503  # the endpoint is down: the events stay in the outbox
        output = tmp_path / "serve.out"
        with serving(cli_env, output) as (base, server):
            _, ids = new_keys(base, token, 3)
            wait_for(lambda: hook.attempts >= 2, "a first, failed delivery attempt")
            kill_group(server)
        assert hook.accepted == []
        hook.status = 204
        with serving(cli_env, output):
            wait_for(lambda: len(created_keys(hook)) == 3, "the three events")
        assert created_keys(hook) == ids  # in commit order
        assert hook.refused == []


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_serving_instances_send_each_event_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env = dict(cli_env)
    if backend == "postgres":
        env["LLAVERO_DATABASE_URL"] = request.getfixturevalue("postgres_schema")
        request.addfinalizer(lambda: empty_tables(env["LLAVERO_DATABASE_URL"]))
    with receiver() as hook:
        token = prepare(env, hook)
        with (
            serving(env, tmp_path / "one.out") as (first, _),
            serving(env, tmp_path / "two.out") as (second, _),
        ):
            project, made = new_keys(first, token, 10)
            made += new_keys(second, token, 10, project)[1]
            made += new_keys(first, token, 10, project)[1]
            wait_for(lambda: len(created_keys(hook)) >= 30, "thirty events")
            time.sleep(1.0)  # any second delivery would be on its way by now
        assert sorted(created_keys(hook)) == sorted(made)
        assert len(hook.ids()) == len(set(hook.ids()))
        assert hook.refused == []
