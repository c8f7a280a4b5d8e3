"""The servers under test. Each scenario starts one, prepares its key, and yields the request.

A scenario is a context manager taking a scratch directory and yielding a `wrk.Target`; the
server stops when the context closes. Every server runs one process on 127.0.0.1 (but
`llavero_verify_redis_workers2`). Llavero runs as it ships, access log included (`llavero_env`);
the reference it is divided by, the bare ASGI app on granian, writes none: the access log is
part of what Llavero costs. The peers log warnings only.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
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

DRF_THREADS = 8


@contextmanager
def drf_api_key(workdir: Path) -> Iterator[Target]:
    """DRF view guarded by `HasAPIKey`, SQLite, gunicorn: one process, 8 threads.

    One process like every other server here, so each gets the same CPU; gunicorn's threaded
    worker (`gthread`) serves several connections in it, as its sync worker cannot.
    """
    require("rest_framework_api_key", "djangorestframework-api-key not installed")
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.peers.drf.settings",
        "BENCH_DRF_DB": str(workdir / "drf.sqlite3"),
    }
    run_step([PYTHON, "-m", "django", "migrate", "--verbosity", "0"], env)
    key = run_step([PYTHON, "-m", "django", "create_bench_key"], env).strip()
    port = free_port()
    argv = [PYTHON, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
            "--threads", str(DRF_THREADS), "--bind", f"{HOST}:{port}", "--no-control-socket",
            "--log-level", "warning", "bench.peers.drf.wsgi"]  # fmt: skip
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


def llavero_env(workdir: Path, **settings: str) -> dict[str, str]:
    """Llavero as it ships (log level `info` with its access log, the `database` limiter) on a
    fresh SQLite database in `workdir`, but for `settings` (`log_level="warning"` sets
    `LLAVERO_LOG_LEVEL`) and plans out of reach (`ROOMY_PLANS`), so every answer is `VALID`."""
    workdir.mkdir(exist_ok=True)
    plans = workdir / "plans.toml"
    plans.write_text(ROOMY_PLANS)
    return {
        "LLAVERO_DATA_DIR": str(workdir / "llavero"),
        "LLAVERO_DATABASE_URL": f"sqlite:///{workdir / 'llavero.sqlite3'}",
        "LLAVERO_PLANS_FILE": str(plans),
        **{f"LLAVERO_{name.upper()}": value for name, value in settings.items()},
    }


def llavero_cli(*args: str, env: dict[str, str]) -> dict[str, str]:
    """Run `llavero ARGS --json` on the benchmark database and return its JSON answer."""
    out = run_step([str(Path(PYTHON).parent / "llavero"), *args, "--json"], env)
    answer: dict[str, str] = json.loads(out)
    return answer


def llavero_credentials(env: dict[str, str]) -> tuple[str, str]:
    """A token with scope `keys:verify` and a key of a fresh project, made with the CLI once per
    run and copied for each scenario (database and data directory): four CLI runs per Llavero
    scenario took a minute each on a loaded machine."""
    template = Path(env["LLAVERO_DATA_DIR"]).parent.parent / "llavero-template"
    if not template.exists():
        made = llavero_env(template)
        run_step([str(Path(PYTHON).parent / "llavero"), "db", "upgrade"], made)
        token = llavero_cli("tokens", "create", "--scope", "keys:verify", env=made)["token"]
        project = llavero_cli("projects", "create", "Benchmark", env=made)["id"]
        key = llavero_cli("keys", "create", "--project", project, env=made)["key_string"]
        (template / "credentials.json").write_text(json.dumps([token, key]))
    shutil.copytree(template / "llavero", env["LLAVERO_DATA_DIR"], dirs_exist_ok=True)
    database = env["LLAVERO_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(template / "llavero.sqlite3") as source, sqlite3.connect(database) as copy:
        source.backup(copy)
    token, key = json.loads((template / "credentials.json").read_text())
    return token, key


def llavero_serve(port: int, env: dict[str, str], *extra: str) -> list[str]:
    return [str(Path(PYTHON).parent / "llavero"), "serve", "--host", HOST, "--port", str(port),
            "--db", env["LLAVERO_DATABASE_URL"], *extra]  # fmt: skip


@contextmanager
def llavero_served(workdir: Path, env: dict[str, str], *extra: str) -> Iterator[Target]:
    """`llavero serve ARGS` (granian) with `env`, its output in `workdir/llavero.log`."""
    require("llavero.cli", "llavero not installed")
    token, key = llavero_credentials(env)
    port = free_port()
    with serve(llavero_serve(port, env, *extra), port, workdir / "llavero.log", env) as url:
        yield verify_target(url, token, key)


def shipped_but(
    subdir: str, doc: str, env: Callable[[Path], dict[str, str]], *extra: str
) -> Scenario:
    """A scenario of `llavero serve ARGS` with the settings of `env(workdir / subdir)`."""

    @contextmanager
    def scenario(workdir: Path) -> Iterator[Target]:
        with llavero_served(workdir / subdir, env(workdir / subdir), *extra) as target:
            yield target

    scenario.__doc__ = doc
    return scenario


llavero_verify = shipped_but(
    "shipped",
    "`POST /v1/keys:verify` on `llavero serve` as it ships: access log, `database` limiter.",
    llavero_env,
)
llavero_verify_no_access_log = shipped_but(
    "no-access-log",
    "The same at `LLAVERO_LOG_LEVEL=warning`, which turns the access log off.",
    lambda workdir: llavero_env(workdir, log_level="warning"),
)
llavero_verify_memory = shipped_but(
    "memory",
    "The same as shipped but `LLAVERO_RATE_LIMIT_BACKEND=memory` (this process counts alone).",
    lambda workdir: llavero_env(workdir, rate_limit_backend="memory"),
)


@contextmanager
def llavero_verify_uvicorn(workdir: Path) -> Iterator[Target]:
    """The app `llavero serve` runs (`llavero.asgi`, as shipped) under uvicorn, one process."""
    require("llavero.asgi", "llavero not installed")
    workdir = workdir / "uvicorn"
    env = llavero_env(workdir)
    token, key = llavero_credentials(env)
    port = free_port()
    # The app reads proxy headers itself (for granian) and writes its own access log (at the
    # default level `info`): uvicorn's are not doubled.
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
    return llavero_env(workdir, rate_limit_backend="redis", redis_url=REDIS_URL)


llavero_verify_redis = shipped_but(
    "redis",
    "The same as shipped but `LLAVERO_RATE_LIMIT_BACKEND=redis` (a round trip per verify).",
    redis_env,
)
llavero_verify_redis_workers2 = shipped_but(
    "redis2",
    "The same with `--workers 2`: two granian workers sharing the counters in Redis.",
    redis_env,
    "--workers",
    "2",
)


REFERENCE = "bare_asgi_granian"  # ratio 1: what granian itself allows for this request
SCENARIOS: dict[str, Scenario] = {
    "bare_asgi_granian": bare_asgi_granian,
    "bare_granian": bare_granian,
    "bare_uvicorn": bare_uvicorn,
    "llavero_verify": llavero_verify,
    "llavero_verify_no_access_log": llavero_verify_no_access_log,
    "llavero_verify_memory": llavero_verify_memory,
    "llavero_verify_redis": llavero_verify_redis,
    "llavero_verify_redis_workers2": llavero_verify_redis_workers2,
    "llavero_verify_uvicorn": llavero_verify_uvicorn,
    "drf_api_key": drf_api_key,
    "fastapi_keygate": fastapi_keygate,
    "plain_sqlalchemy": plain_sqlalchemy,
}
