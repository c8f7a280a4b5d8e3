"""The servers under test. Each scenario starts one, prepares its key, and yields the request.

A scenario is a context manager taking a scratch directory and yielding a `wrk.Target`; the
server stops when the context closes. Every server runs one process on 127.0.0.1, except the
DRF peer (see `drf_api_key`). Servers log warnings only, Llavero included, so no one pays for
an access log the others skip.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib.util import find_spec
from pathlib import Path

from bench.servers import HOST, free_port, run_step, serve
from bench.wrk import Target

Scenario = Callable[[Path], AbstractContextManager[Target]]
PYTHON = sys.executable
VERIFY_PATH = "/v1/keys:verify"
VERIFY_EXPECT = '"VALID"'
PEER_EXPECT = '"ok":true'


class Skipped(Exception):
    """The scenario cannot run here; the message says why."""


def require(module: str, why: str) -> None:
    if find_spec(module) is None:
        raise Skipped(why)


def verify_target(base_url: str, token: str, key: str) -> Target:
    return Target(
        url=base_url + VERIFY_PATH,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body=json.dumps({"key": key, "ip": "203.0.113.7"}),
        expect=VERIFY_EXPECT,
    )


def uvicorn(app: str, port: int) -> list[str]:
    return [PYTHON, "-m", "uvicorn", app, "--host", HOST, "--port", str(port),
            "--no-access-log", "--log-level", "warning"]  # fmt: skip


def granian(app: str, port: int) -> list[str]:
    return [PYTHON, "-m", "granian", "--interface", "asgi", "--http", "1", "--no-ws",
            "--host", HOST, "--port", str(port), "--log-level", "warning", app]  # fmt: skip


# -- the ceiling: a constant answer on Llavero's own stack -------------------------------------

# Shaped like Llavero's key string and token, so the bare server reads the same bytes.
_SAMPLE_KEY = "llv_" + "x" * 38
_SAMPLE_TOKEN = "t" * 43


@contextmanager
def bare_uvicorn(workdir: Path) -> Iterator[Target]:
    """Constant answer to the same verify request: FastAPI on uvicorn, one process."""
    port = free_port()
    with serve(uvicorn("bench.peers.bare:app", port), port, workdir / "bare-uvicorn.log") as url:
        yield verify_target(url, _SAMPLE_TOKEN, _SAMPLE_KEY)


@contextmanager
def bare_granian(workdir: Path) -> Iterator[Target]:
    """Constant answer to the same verify request: FastAPI on granian, one process."""
    require("granian", "granian not installed (run bench/setup.sh)")
    port = free_port()
    with serve(granian("bench.peers.bare:app", port), port, workdir / "bare-granian.log") as url:
        yield verify_target(url, _SAMPLE_TOKEN, _SAMPLE_KEY)


@contextmanager
def bare_asgi_granian(workdir: Path) -> Iterator[Target]:
    """Constant answer after reading the body: plain ASGI, no framework, granian, one process."""
    require("granian", "granian not installed (run bench/setup.sh)")
    port = free_port()
    argv = granian("bench.peers.bare_asgi:app", port)
    with serve(argv, port, workdir / "bare-asgi-granian.log") as url:
        yield verify_target(url, _SAMPLE_TOKEN, _SAMPLE_KEY)


# -- peers -----------------------------------------------------------------------------------

DRF_WORKERS = 2 * (os.cpu_count() or 1) + 1


@contextmanager
def drf_api_key(workdir: Path) -> Iterator[Target]:
    """DRF view guarded by `HasAPIKey`, SQLite, gunicorn sync workers ((2 × cores) + 1).

    The worker count is gunicorn's documented advice (here 2, 3, 5 and 8 workers gave the same
    throughput within noise, 8 less). A sync worker serves one request at a time, so this peer
    gets more processes than the one-process servers; that favours the peer.
    """
    require("rest_framework_api_key", "djangorestframework-api-key not installed")
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.peers.drf.settings",
        "BENCH_DRF_DB": str(workdir / "drf.sqlite3"),
    }
    run_step([PYTHON, "-m", "django", "migrate", "--verbosity", "0"], env)
    key = run_step([PYTHON, "-m", "django", "create_bench_key"], env).strip()
    port = free_port()
    argv = [PYTHON, "-m", "gunicorn", "--workers", str(DRF_WORKERS), "--worker-class", "sync",
            "--bind", f"{HOST}:{port}", "--no-control-socket", "--log-level", "warning",
            "bench.peers.drf.wsgi"]  # fmt: skip
    with serve(argv, port, workdir / "drf.log", env) as url:
        headers = {"Authorization": f"Api-Key {key}"}
        yield Target(url=url + "/ok", headers=headers, expect=PEER_EXPECT)


@contextmanager
def fastapi_keygate(workdir: Path) -> Iterator[Target]:
    """FastAPI route guarded by `Depends(gate.require)`, SQLite, uvicorn, one process."""
    require("keygate", "fastapi-keygate not installed (run bench/setup.sh)")
    env = {"BENCH_KEYGATE_DB": str(workdir / "keygate.sqlite3")}
    key = run_step([PYTHON, "-m", "bench.peers.keygate_app"], env).strip()
    port = free_port()
    argv = uvicorn("bench.peers.keygate_app:app", port)
    with serve(argv, port, workdir / "keygate.log", env) as url:
        yield Target(url=url + "/ok", headers={"X-API-Key": key}, expect=PEER_EXPECT)


@contextmanager
def plain_sqlalchemy(workdir: Path) -> Iterator[Target]:
    """FastAPI route selecting the SHA-256 of the key among 10,000 rows, SQLite, uvicorn."""
    env = {"BENCH_PLAIN_DB": str(workdir / "plain.sqlite3")}
    key = run_step([PYTHON, "-m", "bench.peers.plain_sqlalchemy"], env).strip()
    port = free_port()
    argv = uvicorn("bench.peers.plain_sqlalchemy:app", port)
    with serve(argv, port, workdir / "plain.log", env) as url:
        yield Target(url=url + "/ok", headers={"X-API-Key": key}, expect=PEER_EXPECT)


# -- Llavero ---------------------------------------------------------------------------------

# Limits far above any benchmark load: the limiter still counts every request, never denies.
ROOMY_PLANS = "".join(
    f"[plans.{plan}]\nrpm = 10_000_000_000\nrpd = 100_000_000_000\n"
    f"upm = 10_000_000_000\nupd = 100_000_000_000\n\n"
    for plan in ("free", "tier-1")
)


def llavero_env(workdir: Path) -> dict[str, str]:
    plans = workdir / "plans.toml"
    plans.write_text(ROOMY_PLANS)
    return {
        "LLAVERO_DATA_DIR": str(workdir / "llavero"),
        "LLAVERO_DATABASE_URL": f"sqlite:///{workdir / 'llavero.sqlite3'}",
        "LLAVERO_PLANS_FILE": str(plans),
        "LLAVERO_LOG_LEVEL": "warning",
        # The figure against peers is one process counting in memory; the shared backends
        # (database, the default, and Redis) have scenarios of their own.
        "LLAVERO_RATE_LIMIT_BACKEND": "memory",
    }


def llavero_cli(*args: str, env: dict[str, str]) -> dict[str, str]:
    """Run `llavero ARGS --json` on the benchmark database and return its JSON answer."""
    out = run_step([str(Path(PYTHON).parent / "llavero"), *args, "--json"], env)
    answer: dict[str, str] = json.loads(out)
    return answer


def llavero_credentials(env: dict[str, str]) -> tuple[str, str]:
    """A token with scope `keys:verify` and a key of a fresh project, made with the CLI."""
    run_step([str(Path(PYTHON).parent / "llavero"), "db", "upgrade"], env)
    token = llavero_cli("tokens", "create", "--scope", "keys:verify", env=env)["token"]
    project = llavero_cli("projects", "create", "Benchmark", env=env)["id"]
    key = llavero_cli("keys", "create", "--project", project, env=env)["key_string"]
    return token, key


def llavero_serve(port: int, env: dict[str, str]) -> list[str]:
    return [str(Path(PYTHON).parent / "llavero"), "serve", "--host", HOST, "--port", str(port),
            "--db", env["LLAVERO_DATABASE_URL"]]  # fmt: skip


@contextmanager
def llavero_verify_http(workdir: Path) -> Iterator[Target]:
    """`POST /v1/keys:verify` on `llavero serve` (granian), fresh SQLite database.

    Plan limits are raised out of reach (`ROOMY_PLANS`) so every answer is `VALID`.
    """
    require("llavero.cli", "llavero not installed")
    env = llavero_env(workdir)
    token, key = llavero_credentials(env)
    port = free_port()
    with serve(llavero_serve(port, env), port, workdir / "llavero.log", env) as url:
        yield verify_target(url, token, key)


@contextmanager
def llavero_verify_uvicorn(workdir: Path) -> Iterator[Target]:
    """The same app as `llavero serve` (`llavero.asgi`) under uvicorn, fresh SQLite database."""
    require("llavero.asgi", "llavero not installed")
    workdir = workdir / "uvicorn"
    workdir.mkdir()
    env = llavero_env(workdir)
    token, key = llavero_credentials(env)
    port = free_port()
    # The app reads proxy headers itself (for granian): uvicorn's own reader is not doubled.
    argv = [*uvicorn("llavero.asgi:serving_app", port), "--factory", "--no-proxy-headers"]
    with serve(argv, port, workdir / "llavero.log", env) as url:
        yield verify_target(url, token, key)


REDIS_URL = os.environ.get("LLAVERO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def redis_env(workdir: Path) -> dict[str, str]:
    require("redis", "redis client not installed")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        raise Skipped(f"no Redis at {REDIS_URL} ({type(exc).__name__})") from None
    return {
        **llavero_env(workdir),
        "LLAVERO_RATE_LIMIT_BACKEND": "redis",
        "LLAVERO_REDIS_URL": REDIS_URL,
    }


@contextmanager
def llavero_backend(workdir: Path, env: dict[str, str], *extra: str) -> Iterator[Target]:
    """`llavero serve` (granian) on the database of `env`, with `extra` arguments to serve."""
    require("llavero.cli", "llavero not installed")
    token, key = llavero_credentials(env)
    port = free_port()
    argv = [*llavero_serve(port, env), *extra]
    with serve(argv, port, workdir / "llavero.log", env) as url:
        yield verify_target(url, token, key)


def subdir(workdir: Path, name: str) -> Path:
    path = workdir / name
    path.mkdir()
    return path


@contextmanager
def llavero_verify_redis(workdir: Path) -> Iterator[Target]:
    """`llavero serve` (granian), rate limits in Redis (one round trip, awaited in the loop)."""
    workdir = subdir(workdir, "redis")
    with llavero_backend(workdir, redis_env(workdir)) as target:
        yield target


@contextmanager
def llavero_verify_redis_workers2(workdir: Path) -> Iterator[Target]:
    """The same with `--workers 2`: two granian workers sharing the counters in Redis."""
    workdir = subdir(workdir, "redis2")
    with llavero_backend(workdir, redis_env(workdir), "--workers", "2") as target:
        yield target


@contextmanager
def llavero_verify_database(workdir: Path) -> Iterator[Target]:
    """`llavero serve` with the default limiter: counters in the SQLite database (one write).

    One write transaction per verify, shared by every process on the database."""
    workdir = subdir(workdir, "database")
    env = {**llavero_env(workdir), "LLAVERO_RATE_LIMIT_BACKEND": "database"}
    with llavero_backend(workdir, env) as target:
        yield target


SCENARIOS: dict[str, Scenario] = {
    "bare_uvicorn": bare_uvicorn,
    "bare_granian": bare_granian,
    "bare_asgi_granian": bare_asgi_granian,
    "llavero_verify_http": llavero_verify_http,
    "llavero_verify_uvicorn": llavero_verify_uvicorn,
    "llavero_verify_redis": llavero_verify_redis,
    "llavero_verify_redis_workers2": llavero_verify_redis_workers2,
    "llavero_verify_database": llavero_verify_database,
    "drf_api_key": drf_api_key,
    "fastapi_keygate": fastapi_keygate,
    "plain_sqlalchemy": plain_sqlalchemy,
}
