"""Two `llavero serve` processes on one PostgreSQL and one Redis, behind Debian's nginx with the
shipped deploy/nginx/instances.conf, all on loopback (docs/deployment.md): limits are exact
across both, revocations by 32 concurrent writers reach both, and an instance killed with
SIGKILL under load fails over, losing no more usage than the documented bound."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from llavero.config import Settings
from llavero.core.clock import SYSTEM_CLOCK
from llavero.service import Actor, Llavero
from llavero.store import tables
from tests.conftest import require
from tests.integration.test_nginx import NGINX, free_port, rewrite, wait_for_port, write_main

pytestmark = [pytest.mark.nginx, pytest.mark.postgres, pytest.mark.redis]

SHIPPED = Path(__file__).parents[2] / "deploy" / "nginx" / "instances.conf"
SECRET = "instances-test-secret-0123456789abcdef"
FLUSH_SECONDS = 1.0
WRITERS = 32
KEYS = 400
LOADERS = 8
UNLIMITED = "".join(f'{name} = "unlimited"\n' for name in ("rpm", "rpd", "upm", "upd"))
VERIFY = "/v1/keys:verify"


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """A generous deadline for a process to get somewhere: never a timing claim."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@dataclass
class Instance:
    """One `llavero serve` in its own process group (its granian worker goes with it)."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"llavero serve exited:\n{self.log.read_text(errors='replace')}")
        try:
            return httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, usage still in memory is lost."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM: the clean stop of docs/deployment.md, which writes all usage first."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    url: str
    instances: list[Instance]
    llavero: Llavero  # the same database, for setting up data and reading usage back
    admin_token: str
    verify_token: str
    access_log: Path
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, base_url: str) -> httpx.Client:
        """One client per base URL and thread: keep-alive, as a real integration would."""
        name = f"{base_url} {threading.get_ident()}"
        if name not in self.clients:
            self.clients[name] = httpx.Client(base_url=base_url, timeout=30)
        return self.clients[name]

    def verify(self, key: str, base_url: str | None = None) -> httpx.Response:
        return self.client(base_url or self.url).post(
            VERIFY, json={"key": key}, headers={"Authorization": f"Bearer {self.verify_token}"}
        )

    def code(self, key: str, base_url: str | None = None) -> str:
        response = self.verify(key, base_url)
        assert response.status_code == 200, response.text
        code: str = response.json()["code"]
        return code

    def answers(self) -> list[tuple[float, int, str]]:
        """nginx's own record of each verify: (time, status, the instance that answered)."""
        lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
        found = []
        for line in lines:
            when, status, rest = line.split(" ", 2)
            upstreams, _, request = rest.rpartition(' "')
            if request == f'POST {VERIFY}"':
                found.append((float(when), int(status), upstreams.split(", ")[-1]))
        return found


@pytest.fixture(scope="module")
def schema_url(postgres_url: str) -> Iterator[str]:
    """A schema of its own: the servers and this test share it, other tests never see it."""
    schema = f"llavero_instances_{os.getpid()}"
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def server_env(tmp: Path, database_url: str, redis_url: str) -> dict[str, str]:
    """docs/deployment.md's environment; a cache TTL of an hour, so that only the change feed
    can make a revocation arrive within this test."""
    plans = tmp / "plans.toml"
    plans.write_text(f"[plans.free]\n{UNLIMITED}")
    settings = {
        "LLAVERO_DATA_DIR": str(tmp),
        "LLAVERO_DATABASE_URL": database_url,
        "LLAVERO_SECRET_KEY": SECRET,
        "LLAVERO_RATE_LIMIT_BACKEND": "redis",
        "LLAVERO_REDIS_URL": redis_url,
        "LLAVERO_PLANS_FILE": str(plans),
        "LLAVERO_CHANGE_POLL_SECONDS": "1",
        "LLAVERO_CACHE_TTL_SECONDS": "3600",
        "LLAVERO_USAGE_FLUSH_SECONDS": str(FLUSH_SECONDS),
        "LLAVERO_LOG_LEVEL": "warning",
    }
    outside = {k: v for k, v in os.environ.items() if not k.startswith("LLAVERO_")}
    return outside | settings


def start_instance(tmp: Path, env: dict[str, str]) -> Instance:
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llavero", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Instance(port, process, log)


def start_nginx(tmp: Path, instances: list[Instance]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    replacements = {
        "server 127.0.0.1:8081 ": f"server {instances[0].address} ",
        "server 127.0.0.1:8082 ": f"server {instances[1].address} ",
        "listen 8000;": f"listen 127.0.0.1:{port};",
        "/var/log/nginx/llavero-instances.log": str(tmp / "instances.log"),
    }
    main = write_main(tmp, rewrite(SHIPPED, replacements, tmp / "instances.conf"))
    error_log = tmp / "error.log"
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(main), "-e", str(error_log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, error_log)
    return process, port


@pytest.fixture
def cluster(schema_url: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    require("nginx", shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx"))
    env = server_env(tmp_path, schema_url, redis_url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=schema_url,
        secret_key=SECRET,
        plans_file=Path(env["LLAVERO_PLANS_FILE"]),
        change_poll_seconds=0,
    )
    llavero = Llavero(settings, clock=SYSTEM_CLOCK)
    llavero.upgrade()  # `llavero db upgrade` once, before the servers start
    admin = Actor.system("test")
    admin_token = llavero.tokens.create(admin, ["admin"]).token
    verify_token = llavero.tokens.create(admin, ["keys:verify"]).token
    instances = [start_instance(tmp_path, env) for _ in range(2)]
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for instance in instances:
            assert wait_until(instance.ready), instance.log.read_text(errors="replace")
        nginx, port = start_nginx(tmp_path, instances)
        cluster = Cluster(
            f"http://127.0.0.1:{port}",
            instances,
            llavero,
            admin_token,
            verify_token,
            tmp_path / "instances.log",
        )
        yield cluster
        for client in cluster.clients.values():
            client.close()
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        for instance in instances:
            instance.stop()
        llavero.close()


def new_key(cluster: Cluster, project: str, **fields: Any) -> tuple[str, str]:
    created = cluster.llavero.keys.create(Actor.system("test"), project, **fields)
    return created.key.id, created.key_string


def new_project(cluster: Cluster, name: str) -> str:
    return cluster.llavero.projects.create(Actor.system("test"), name).id


def away_from_a_minute_boundary() -> None:
    """Limits count in windows aligned to the minute: start a burst well inside one."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def test_a_10_rpm_key_allows_exactly_10_verifies_across_both_instances(
    cluster: Cluster,
) -> None:
    _, key = new_key(cluster, new_project(cluster, "Exact limits"), limits={"rpm": 10})
    away_from_a_minute_boundary()
    with ThreadPoolExecutor(8) as pool:
        codes = Counter(pool.map(lambda _: cluster.code(key), range(30)))
    assert codes == {"VALID": 10, "RATE_LIMITED": 20}
    assert wait_until(lambda: len(cluster.answers()) >= 30)
    served_by = {upstream for _, _, upstream in cluster.answers()}
    assert served_by == {instance.address for instance in cluster.instances}


def test_400_keys_disabled_by_32_writers_verify_on_no_instance(cluster: Cluster) -> None:
    projects = [new_project(cluster, f"Revocations {n}") for n in range(4)]
    keys = [new_key(cluster, projects[n % 4]) for n in range(KEYS)]
    for instance in cluster.instances:  # every instance has every key cached as VALID
        assert {cluster.code(key, instance.url) for _, key in keys} == {"VALID"}

    def disable(key_id: str) -> int:
        response = cluster.client(cluster.url).patch(
            f"/v1/keys/{key_id}",
            json={"state": "DISABLED"},
            headers={"Authorization": f"Bearer {cluster.admin_token}"},
        )
        return response.status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        assert set(pool.map(disable, [key_id for key_id, _ in keys])) == {200}

    def stale() -> list[tuple[str, str]]:
        return [
            (instance.address, key_id)
            for instance in cluster.instances
            for key_id, key in keys
            if cluster.code(key, instance.url) != "DISABLED"
        ]

    wait_until(lambda: not stale())
    assert stale() == []


def test_an_instance_killed_under_load_fails_over_and_loses_at_most_its_last_flush(
    cluster: Cluster,
) -> None:
    """docs/deployment.md: a SIGKILL loses what the killed instance counted since its last
    flush, at most the verifies it answered in its last two flush intervals."""
    key_id, key = new_key(cluster, new_project(cluster, "Failover"))
    stop = threading.Event()
    statuses: Counter[int] = Counter()

    def load() -> None:
        while not stop.is_set():
            try:
                statuses[cluster.verify(key).status_code] += 1
            except httpx.HTTPError:
                statuses[0] += 1

    killed, survivor = cluster.instances
    with ThreadPoolExecutor(LOADERS) as pool:
        for _ in range(LOADERS):
            pool.submit(load)
        assert wait_until(lambda: statuses[200] > 200)
        time.sleep(3 * FLUSH_SECONDS)  # long enough for usage flushed before the kill to count
        killed_at = time.time()
        killed.kill()
        assert wait_until(lambda: any(u == survivor.address and t > killed_at + 1
                                      for t, _, u in cluster.answers()))  # fmt: skip
        stop.set()
    survivor.stop()  # a clean stop: everything it counted is written
    answered = statuses[200]
    failed = sum(statuses.values()) - answered
    assert wait_until(lambda: sum(s == 200 for _, s, _ in cluster.answers()) == answered)
    answers = cluster.answers()
    with cluster.llavero.db.reading() as session:
        recorded = session.scalar(
            select(func.sum(tables.UsageBucket.requests)).where(
                tables.UsageBucket.key_id == key_id,
                tables.UsageBucket.granularity == "minute",
                tables.UsageBucket.code == "VALID",
            )
        )
    last_flushes = sum(
        1
        for when, status, upstream in answers
        if status == 200 and upstream == killed.address and when >= killed_at - 2 * FLUSH_SECONDS
    )
    assert any(u == killed.address for _, _, u in answers), "the killed instance served load"
    assert failed <= 2 * LOADERS  # only requests in flight to the killed instance are refused
    assert recorded is not None
    assert recorded <= answered + failed  # nothing is counted twice
    assert answered - recorded <= last_flushes
