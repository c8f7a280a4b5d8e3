"""Limits, logs and lifecycles with real processes on loopback: `llavero serve` (forward auth),
`llavero gateway`, an ASGI and a WSGI app with the middleware, all on one SQLite file."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llavero.config import Settings
from llavero.core.limits import checks_for
from llavero.service import Actor, Llavero
from tests.conftest import require
from tests.loopback import free_port
from tests.loopback import serve as serve_in_thread
from tests.processes import Processes, alive, processes

FREE_RPM = 10
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) llavero\.[\w.]+: ", re.MULTILINE
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "LLAVERO_DATA_DIR": str(tmp_path),
        "LLAVERO_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "LLAVERO_SECRET_KEY": "processes-test-secret-0123456789",
        "LLAVERO_INSTANCE_HEARTBEAT_SECONDS": "0.5",
    }


@pytest.fixture
def group(tmp_path: Path, env: dict[str, str]) -> Iterator[Processes]:
    with processes(tmp_path, env) as started:
        yield started


@pytest.fixture
def upstream() -> Iterator[str]:
    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"upstream"})  # type: ignore[operator]

    with serve_in_thread(app) as base:  # type: ignore[arg-type]
        yield base


def service(env: dict[str, str]) -> Llavero:
    return Llavero(
        Settings(**{name.removeprefix("LLAVERO_").lower(): v for name, v in env.items()})
    )


def free_key(env: dict[str, str]) -> tuple[str, str, str]:
    """A key of a new project on the free plan: its project id, key id and key string."""
    llavero = service(env)
    try:
        llavero.upgrade()
        admin = Actor.system("test")
        project = llavero.projects.create(admin, "Free project")
        created = llavero.keys.create(admin, project.id)
        return project.id, created.key.id, created.key_string
    finally:
        llavero.close()


def wait_for_minute_start() -> None:
    """Send a burst well inside one minute, so that one window holds all of it."""
    if time.time() % 60 > 40:
        time.sleep(61 - time.time() % 60)


def allowed(url: str, key: str, times: int) -> int:
    with httpx.Client(timeout=30) as client:
        return sum(
            client.get(url, headers={"x-goog-api-key": key}).status_code == 200
            for _ in range(times)
        )


def metric(base: str, name: str) -> dict[str, float]:
    """`{labels: value}` of one metric in an instance's `/metrics`."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def eventually(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def four_counters(group: Processes, upstream: str, env: dict[str, str] | None = None) -> list[str]:
    """URLs of serve's forward auth, the gateway and two middleware apps."""
    served = group.serve(env=env)
    gateway = group.gateway(upstream, env=env)
    asgi = group.asgi_app(env=env)
    wsgi = group.wsgi_app(env=env)
    return [
        f"{served.base}/v1/forward-auth",
        f"{gateway.base}/v1beta/models",
        f"{asgi.base}/",
        f"{wsgi.base}/",
    ]


def test_four_processes_on_one_database_allow_a_10_rpm_key_10_requests(
    group: Processes, env: dict[str, str], upstream: str
) -> None:
    project, key_id, key = free_key(env)
    urls = four_counters(group, upstream)
    served = group.started[0]
    eventually(lambda: metric(served.base, "llavero_instances") == {'{limiter="database"}': 4.0})

    wait_for_minute_start()
    total = sum(allowed(url, key, FREE_RPM) for url in urls)

    assert total == FREE_RPM
    llavero = service(env)  # what the console's limits read: every process's count
    try:
        plan = llavero.plans.get("free")
        status = llavero.limiter.peek(checks_for(plan, {}, project, key_id, 0), time.time())
        assert status.limits["rpm"]["remaining"] == 0
    finally:
        llavero.close()
    assert metric(served.base, "llavero_limits_counted_apart") == {"": 0.0}


def test_processes_counting_on_their_own_are_reported(
    group: Processes, env: dict[str, str], upstream: str
) -> None:
    free_key(env)
    memory = {"LLAVERO_RATE_LIMIT_BACKEND": "memory"}
    served = group.serve(env=memory)
    group.asgi_app(env=memory)

    eventually(lambda: metric(served.base, "llavero_limits_counted_apart") == {"": 2.0})
    assert metric(served.base, "llavero_instances") == {'{limiter="memory"}': 2.0}
    eventually(lambda: "counting rate limits on their own" in served.text())
    warning = next(line for line in served.text().splitlines() if "on their own" in line)
    assert LOG_LINE.match(warning), warning


def test_serve_logs_llavero_info_lines_with_time_level_and_logger(
    group: Processes, env: dict[str, str]
) -> None:
    served = group.serve()

    eventually(lambda: "worker" in served.text() and "ready" in served.text())
    lines = [line for line in served.text().splitlines() if "llavero.serve" in line]
    assert lines and all(LOG_LINE.match(line) for line in lines), served.text()


def test_serve_logs_json_when_asked(group: Processes) -> None:
    served = group.serve(env={"LLAVERO_LOG_FORMAT": "json"})

    eventually(lambda: '"logger":"llavero.serve"' in served.text())
    line = next(line for line in served.text().splitlines() if "llavero.serve" in line)
    assert re.match(r'^\{"time":"\d{4}-\d\d-\d\dT[^"]+","level":"INFO",', line), line


def test_kill_9_of_serve_takes_its_worker_with_it(group: Processes) -> None:
    served = group.serve()
    workers = served.children()
    assert workers, "granian started no worker"

    os.kill(served.popen.pid, signal.SIGKILL)
    served.popen.wait(timeout=10)

    eventually(lambda: not any(alive(pid) for pid in workers))
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.base}/openapi.json", timeout=2)


def test_a_second_serve_on_a_taken_port_fails_at_start(
    group: Processes, env: dict[str, str]
) -> None:
    served = group.serve()
    port = served.base.rsplit(":", 1)[1]

    second = subprocess.run(
        [sys.executable, "-m", "llavero", "serve", "--port", port],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    assert "already in use" in second.stderr


def test_two_workers_share_one_limit(group: Processes, env: dict[str, str]) -> None:
    _, _, key = free_key(env)
    served = group.serve("--workers", "2")
    eventually(lambda: len(served.children()) == 2)
    eventually(lambda: metric(served.base, "llavero_instances") == {'{limiter="database"}': 2.0})

    wait_for_minute_start()
    url = f"{served.base}/v1/forward-auth"
    passed = sum(  # a new connection each time, so that both workers answer some
        httpx.get(url, headers={"x-goog-api-key": key}, timeout=30).status_code == 200
        for _ in range(3 * FREE_RPM)
    )

    assert passed == FREE_RPM


def test_several_workers_with_memory_limits_are_refused(env: dict[str, str]) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "llavero", "serve", "--port", str(free_port()), "--workers", "2"],
        env={**os.environ, **env, "LLAVERO_RATE_LIMIT_BACKEND": "memory"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert refused.returncode == 1
    assert "--workers 2" in refused.stderr
    assert "use database or redis" in refused.stderr


def redis_server(group: Processes, port: int) -> subprocess.Popen[bytes]:
    """A Redis of this test only (never the machine's), without persistence."""
    binary = shutil.which("redis-server")
    require("redis-server", binary is not None)
    argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    process = group.start(f"redis-{port}", [*argv, "--appendonly", "no"])
    eventually(lambda: "Ready to accept connections" in process.text())
    return process.popen


def hammer(urls: list[tuple[str, dict[str, str], bytes | None]], seconds: float) -> int:
    """Verifies from 8 threads for `seconds`; returns how many were answered."""
    deadline = time.monotonic() + seconds

    def worker(index: int) -> int:
        url, headers, body = urls[index % len(urls)]
        answered = 0
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                if body is None:
                    client.get(url, headers=headers)
                else:
                    client.post(url, headers=headers, content=body)
                answered += 1
        return answered

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(worker, range(8)))


def errors(base: str) -> float:
    return metric(base, "llavero_rate_limit_backend_errors_total").get("", 0.0)


def test_a_dead_redis_is_tried_once_per_back_off_and_its_outage_logged_in_three_lines(
    group: Processes, env: dict[str, str]
) -> None:
    port = free_port()
    redis = redis_server(group, port)
    shared = {
        "LLAVERO_RATE_LIMIT_BACKEND": "redis",
        "LLAVERO_REDIS_URL": f"redis://127.0.0.1:{port}/0",
    }
    _, _, key = free_key(env)
    llavero = service(env)
    try:
        token = llavero.tokens.create(Actor.system("test"), ["admin"]).token
    finally:
        llavero.close()
    served = group.serve(env=shared)
    verify = (
        f"{served.base}/v1/keys:verify",
        {"authorization": f"Bearer {token}", "content-type": "application/json"},
        b'{"key": "%s"}' % key.encode(),
    )
    forward = (f"{served.base}/v1/forward-auth", {"x-goog-api-key": key}, None)
    assert hammer([verify, forward], 1) > 0
    assert errors(served.base) == 0

    redis.kill()
    redis.wait(timeout=10)
    hammer([verify, forward], 1)  # requests in flight when Redis died fail once each
    eventually(lambda: "failed (ConnectionError)" in served.text())
    before = errors(served.base)
    answered = hammer([verify, forward], 11)  # two back-off intervals of 5 s, and a bit

    assert answered > 100  # verify kept answering, from in-process counters
    assert errors(served.base) - before <= 3  # one attempt per interval, not one per request
    redis_server(group, port)
    eventually(lambda: (hammer([verify], 0.5), "is back after" in served.text())[1])
    text = served.text()
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "rate limit backend Redis" in line]
    assert len(lines) == 2, text  # it started, it ended (a summary comes once a minute)
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert " INFO llavero.limits: " in lines[-1]
