"""What the gateway adds to an upstream call, and what the middleware costs a request.

`python -m bench.gateway [--rounds 5] [--seconds 3] [--connections 16] [--requests 3000]
[--clients]` (from the repository root, with the project venv; the gateway part needs `wrk`
and `ss`).

*Gateway.* A fake Gemini (`upstream_app` below: uvicorn, one process, a constant 300-byte
`generateContent` answer) and `llavero gateway` in front of it (one process, SQLite, plans out
of reach so nothing is refused), both on loopback. wrk loads, in turn within each round, the
upstream called directly with its own key, the gateway on a call whose answer states
`usageMetadata.totalTokenCount` (metered: its units counted in memory) and the gateway on
`countTokens`, whose answer states no token total (verify and forward only). Ratios are taken
within a round (gateway / direct, for throughput) and the median over rounds is reported, with
the p50 latency each side saw and the CPU time the serving process spent per answer (from
/proc: on a shared machine the figure other load disturbs least). The fake upstream answers in
well under a millisecond, so the ratio is the worst case: a real model answers in hundreds of
milliseconds, and the added p50 is then what matters.

`--clients` adds, in the same rounds, the metered call through the same gateway with each
upstream client (`CLIENTS`): httpx with its default pool, httpx with a pool of 8, httpx2 and
aiohttp (what `llavero gateway` ships), each in its own process started as `llavero gateway`
starts one.

*Middleware.* In process, no sockets: the same Starlette app (one route answering "ok") and the
same Flask app called through their ASGI/WSGI entry points with and without Llavero's
middleware, in interleaved slices; cost = (time with - time without) / requests, in µs, median
over rounds. The ASGI middleware is measured inline and in a worker thread (its default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import flask
import httpx
import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from bench import wrk
from bench.scenarios import llavero_cli, llavero_env
from bench.servers import HOST, REPO, free_port, run_step, serve
from llavero.config import Settings
from llavero.core.verify import VerifyResult
from llavero.edges import answers
from llavero.edges.gateway import (
    Gateway,
    from_settings,
    is_metered,
    request_body,
)
from llavero.edges.logs import install_access_log_filter
from llavero.edges.middleware import LlaveroMiddleware, LlaveroWSGIMiddleware
from llavero.edges.relay import NOT_DOWNSTREAM_RAW
from llavero.edges.units import UnitsScanner
from llavero.service import Actor, Llavero

PYTHON = sys.executable
UPSTREAM_KEY = "bench-upstream-key"
MODEL = "/v1beta/models/gemini-2.5-flash"
BODY = '{"contents": [{"parts": [{"text": "Hola"}]}]}'
OUT = REPO / "bench" / "out" / "gateway.md"


# --- the fake upstream ---------------------------------------------------------------------

ANSWER = {
    "candidates": [{"content": {"parts": [{"text": "¡Hola! ¿En qué puedo ayudarte?"}]}}],
    "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 9, "totalTokenCount": 11},
    "modelVersion": "gemini-2.5-flash",
}


async def generate(request: Request) -> Response:
    await request.body()
    if request.headers.get("x-goog-api-key") != UPSTREAM_KEY:
        return JSONResponse({"error": {"code": 403}}, 403)
    if request.path_params["call"].endswith(":countTokens"):
        return JSONResponse({"totalTokens": 2})
    return JSONResponse(ANSWER)


upstream_app = Starlette(routes=[Route("/v1beta/models/{call}", generate, methods=["POST"])])


# --- the gateway with each upstream client ------------------------------------------------


class HttpxGateway(Gateway):
    """The gateway's forwarding on httpx, for the side-by-side: `module` is httpx or httpx2
    (the same API on httpcore2), `limits` its pool size (None: the default, 100). Every answer
    streams: httpx cannot tell that one has arrived whole."""

    module: Any = httpx
    limits: int | None = None

    def _new_client(self) -> Any:
        timeout = self.module.Timeout(connect=10.0, read=300.0, write=60.0, pool=10.0)
        pool = {}
        if self.limits is not None:
            pool["limits"] = self.module.Limits(
                max_connections=self.limits, max_keepalive_connections=self.limits
            )
        return self.module.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, **pool
        )

    async def forward(
        self,
        request: Request,
        headers: dict[str, str],
        query: str,
        result: VerifyResult | None,
        key: str | None,
    ) -> Response:
        client: Any = self._client
        upstream_request = client.build_request(
            request.method,
            str(self._upstream_url(request.scope, query)),
            headers=self._upstream_headers(request.scope, headers, result is not None),
            content=await request_body(request, headers),
        )
        answer = await client.send(upstream_request, stream=True)
        metered = key if result is not None and is_metered(answer) else None
        response = StreamingResponse(self._relay_httpx(answer, metered), answer.status_code)
        response.raw_headers = [
            (name, value) for name, value in answer.headers.raw
            if name.lower() not in NOT_DOWNSTREAM_RAW
        ]  # fmt: skip
        limits = answers.rate_limit_headers(result.limits) if result else {}
        response.raw_headers += [(k.lower().encode(), v.encode()) for k, v in limits.items()]
        return response

    async def _relay_httpx(self, answer: Any, key: str | None) -> AsyncIterator[bytes]:
        scanner = UnitsScanner()
        try:
            async for chunk in answer.aiter_raw():
                scanner.feed(chunk)
                yield chunk
        finally:
            await answer.aclose()
            if key is not None and scanner.units:
                await self._count(key, scanner.units)


class SmallPoolHttpxGateway(HttpxGateway):
    limits = 8


class Httpx2Gateway(HttpxGateway):
    module = httpx2


CLIENTS: dict[str, type[Gateway]] = {
    "httpx, default pool": HttpxGateway,
    "httpx, pool of 8": SmallPoolHttpxGateway,
    "httpx2": Httpx2Gateway,
    "aiohttp (shipped)": Gateway,
}


def serve_variant(client: str, upstream: str, port: int) -> None:
    """What `llavero gateway` runs (same settings, uvicorn, redacted access log), with the
    upstream client named `client`."""
    llavero = Llavero(Settings())
    shipped = from_settings(llavero, upstream)
    gateway = CLIENTS[client](
        shipped.verifier,
        shipped.upstream,
        trust=shipped.trust,
        count_units=shipped.count_units,
        environment=shipped.environment,
        may_block=shipped.may_block,
    )
    install_access_log_filter()
    app = gateway.app(lifespans=[llavero.start])
    uvicorn.run(app, host=HOST, port=port, log_level=llavero.settings.log_level)


# --- gateway against direct ----------------------------------------------------------------


def target(url: str, key: str, expect: str) -> wrk.Target:
    headers = {"x-goog-api-key": key, "content-type": "application/json"}
    return wrk.Target(url, expect, "POST", headers, BODY)


@contextmanager
def gateway_targets(workdir: Path, clients: Sequence[str]) -> Iterator[dict[str, wrk.Target]]:
    env = llavero_env(workdir)
    llavero = str(Path(PYTHON).parent / "llavero")
    run_step([llavero, "db", "upgrade"], env)
    project = llavero_cli("projects", "create", "Benchmark", env=env)["id"]
    key = llavero_cli("keys", "create", "--project", project, env=env)["key_string"]
    upstream_port, gateway_port = free_port(), free_port()
    upstream_argv = [PYTHON, "-m", "uvicorn", "bench.gateway:upstream_app", "--host", HOST,
                     "--port", str(upstream_port), "--log-level", "warning",
                     "--no-access-log"]  # fmt: skip
    with serve(upstream_argv, upstream_port, workdir / "upstream.log") as upstream:
        gateway_argv = [llavero, "gateway", "--upstream", upstream, "--host", HOST,
                        "--port", str(gateway_port)]  # fmt: skip
        gateway_env = {**env, "GEMINI_API_KEY": UPSTREAM_KEY}
        with ExitStack() as stack:
            gateway = stack.enter_context(
                serve(gateway_argv, gateway_port, workdir / "gateway.log", gateway_env)
            )
            targets = {
                "direct": target(f"{upstream}{MODEL}:generateContent", UPSTREAM_KEY, "Hola"),
                "gateway, metered": target(f"{gateway}{MODEL}:generateContent", key, "Hola"),
                "gateway, no units": target(f"{gateway}{MODEL}:countTokens", key, "totalTokens"),
            }
            for number, client in enumerate(clients):
                port = free_port()
                argv = [PYTHON, "-m", "bench.gateway", "--serve-client", client,
                        "--upstream", upstream, "--port", str(port)]  # fmt: skip
                log = workdir / f"gateway-client-{number}.log"
                url = stack.enter_context(serve(argv, port, log, gateway_env))
                targets[f"metered, {client}"] = target(f"{url}{MODEL}:generateContent", key, "Hola")
            yield targets


def server_pid(url: str) -> int:
    """The process listening on `url`'s port (`ss`): `bench.servers.serve` yields only the URL,
    and CPU time per answer is the figure a busy shared machine disturbs least."""
    port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    listing = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"pid=(\d+)", listing)
    if match is None:
        raise RuntimeError(f"nothing listens on port {port}")
    return int(match.group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_gateway(
    rounds: int, seconds: float, connections: int, clients: Sequence[str]
) -> list[str]:
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="llavero-bench-gateway-"))
        targets = stack.enter_context(gateway_targets(Path(tmp), clients))
        pids = {name: server_pid(each.url) for name, each in targets.items()}
        for each in targets.values():
            wrk.run(each, 1.0, connections)  # warm-up
        runs: dict[str, list[wrk.WrkResult]] = {name: [] for name in targets}
        cpu_us: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, each in targets.items():
                before = cpu_seconds(pids[name])
                result = wrk.run(each, seconds, connections)
                spent = cpu_seconds(pids[name]) - before
                runs[name].append(result)
                cpu_us[name].append(spent / max(result.requests, 1) * 1e6)
    lines = [
        "| target | answers/s | p50 ms | p99 ms | errors | ratio to direct | CPU µs/answer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, results in runs.items():
        ratios = [
            mine.requests_per_second / direct.requests_per_second
            for mine, direct in zip(results, runs["direct"], strict=True)
        ]
        lines.append(
            f"| {name} | {statistics.median(r.requests_per_second for r in results):,.0f} "
            f"| {statistics.median(r.p50_ms for r in results):.2f} "
            f"| {statistics.median(r.p99_ms for r in results):.2f} "
            f"| {sum(r.errors for r in results)} | {statistics.median(ratios):.2f} "
            f"| {statistics.median(cpu_us[name]):,.0f} |"
        )
    return lines


# --- middleware cost -----------------------------------------------------------------------


def service(workdir: Path) -> tuple[Llavero, str]:
    plans = Path(llavero_env(workdir)["LLAVERO_PLANS_FILE"])
    settings = Settings(
        data_dir=workdir,
        database_url=f"sqlite:///{workdir / 'middleware.sqlite3'}",
        secret_key="bench-secret-0123456789abcdef",
        plans_file=plans,
        change_poll_seconds=0,
    )
    llavero = Llavero(settings)
    llavero.upgrade()
    admin = Actor.system("bench")
    project = llavero.projects.create(admin, "Benchmark")
    return llavero, llavero.keys.create(admin, project.id).key_string


def asgi_caller(app: ASGIApp, key: str) -> Callable[[int], float]:
    """Seconds for `n` requests through `app`, driven without a server."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": f"{MODEL}:generateContent", "raw_path": b"", "root_path": "",
        "query_string": b"", "client": ("203.0.113.7", 50000), "server": ("127.0.0.1", 80),
        "headers": [(b"x-goog-api-key", key.encode()), (b"content-type", b"application/json")],
    }  # fmt: skip

    async def receive() -> Message:
        return {"type": "http.request", "body": BODY.encode(), "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"answer {message['status']}")

    async def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(scope, state={}), receive, send)
        return time.perf_counter() - start

    loop = asyncio.new_event_loop()
    return lambda n: loop.run_until_complete(run(n))


def wsgi_caller(app: Any, key: str) -> Callable[[int], float]:
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": f"{MODEL}:generateContent", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.7", "HTTP_X_GOOG_API_KEY": key, "CONTENT_LENGTH": "0",
        "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": sys.stderr,
    }  # fmt: skip

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        if not status.startswith("200"):
            raise RuntimeError(f"answer {status}")
        return None

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            for _chunk in app(dict(environ), start_response):
                pass
        return time.perf_counter() - start

    return run


def apps(llavero: Llavero, key: str) -> dict[str, Callable[[int], float]]:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    def starlette_app(*middleware: dict[str, Any]) -> Starlette:
        app = Starlette(routes=[Route(f"{MODEL}:generateContent", ok, methods=["POST"])])
        for options in middleware:
            app.add_middleware(LlaveroMiddleware, llavero=llavero, **options)
        return app

    flask_app = flask.Flask("bench")
    flask_app.add_url_rule(f"{MODEL}:generateContent", "ok", lambda: "ok", methods=["POST"])
    bare_wsgi = flask_app.wsgi_app
    return {
        "starlette": asgi_caller(starlette_app(), key),
        "starlette + middleware, inline": asgi_caller(starlette_app({"in_thread": False}), key),
        "starlette + middleware, thread": asgi_caller(starlette_app({}), key),
        "flask": wsgi_caller(bare_wsgi, key),
        "flask + middleware": wsgi_caller(LlaveroWSGIMiddleware(bare_wsgi, llavero), key),
    }


def bench_middleware(rounds: int, requests: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="llavero-bench-middleware-") as tmp:
        llavero, key = service(Path(tmp))
        with ExitStack() as stack:
            stack.callback(llavero.close)
            callers = apps(llavero, key)
            for call in callers.values():
                call(200)  # warm-up: caches, imports, thread pool
            per_request: dict[str, list[float]] = {name: [] for name in callers}
            for _ in range(rounds):
                for name, call in callers.items():
                    per_request[name].append(call(requests) / requests * 1e6)
    pairs = [
        ("starlette + middleware, inline", "starlette"),
        ("starlette + middleware, thread", "starlette"),
        ("flask + middleware", "flask"),
    ]
    lines = ["| app | µs per request | middleware cost µs |", "| --- | ---: | ---: |"]
    for name, values in per_request.items():
        base = next((b for n, b in pairs if n == name), None)
        cost = (
            statistics.median(v - b for v, b in zip(values, per_request[base], strict=True))
            if base
            else None
        )
        lines.append(
            f"| {name} | {statistics.median(values):.1f} | "
            f"{'' if cost is None else f'{cost:.1f}'} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--skip-gateway", action="store_true", help="Middleware only.")
    parser.add_argument(
        "--clients", action="store_true", help="Also the gateway with each upstream client."
    )
    parser.add_argument("--serve-client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_client:
        serve_variant(args.serve_client, args.upstream, args.port)
        return 0
    report = [f"# Gateway and middleware ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)"]
    if not args.skip_gateway:
        report += ["", "## Gateway against the upstream called directly", ""]
        clients = list(CLIENTS) if args.clients else []
        report += bench_gateway(args.rounds, args.seconds, args.connections, clients)
    report += ["", "## Middleware, in process", ""]
    report += bench_middleware(args.rounds, args.requests)
    text = "\n".join(report) + "\n"
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
