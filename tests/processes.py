"""Real Llavero processes on loopback for the tests that need them: `llavero serve`, `llavero
gateway` and apps with the middleware, each a subprocess with its output in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.loopback import free_port

STARTUP_SECONDS = 60.0


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    output: Path
    base: str = ""

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def children(self) -> list[int]:
        """PIDs whose parent is this process (granian's workers)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.popen.pid:
                    found.append(int(entry.name))
        return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Processes:
    """Starts processes sharing one environment; stops every one it started."""

    tmp: Path
    env: dict[str, str]
    started: list[Process] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        ready: Callable[[Process], bool] | None = None,
        env: dict[str, str] | None = None,
    ) -> Process:
        output = self.tmp / f"{name}.out"
        with output.open("w") as sink:
            popen = subprocess.Popen(
                argv,
                env={**os.environ, **self.env, **(env or {}), "PYTHONUNBUFFERED": "1"},
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
            )
        process = Process(name, popen, output)
        self.started.append(process)
        if ready is not None:
            wait_for(process, ready)
        return process

    def serve(self, *extra: str, env: dict[str, str] | None = None) -> Process:
        port = free_port()
        argv = [sys.executable, "-m", "llavero", "serve", "--port", str(port), *extra]
        process = self.start(f"serve-{port}", argv, env=env)
        process.base = f"http://127.0.0.1:{port}"
        wait_for(process, answers("/openapi.json"))
        return process

    def gateway(self, upstream: str, env: dict[str, str] | None = None) -> Process:
        port = free_port()
        argv = [
            sys.executable, "-m", "llavero", "gateway", "--upstream", upstream,
            "--port", str(port), "--upstream-key-env", "",
        ]  # fmt: skip
        process = self.start(f"gateway-{port}", argv, env=env)
        process.base = f"http://127.0.0.1:{port}"
        wait_for(process, lambda p: "Uvicorn running" in p.text() or "startup complete" in p.text())
        return process

    def asgi_app(self, env: dict[str, str] | None = None) -> Process:
        """A Starlette app with `LlaveroMiddleware`, on uvicorn."""
        return self._app("asgi_app", ASGI_APP, env)

    def wsgi_app(self, env: dict[str, str] | None = None) -> Process:
        """A WSGI app with `LlaveroWSGIMiddleware`, on wsgiref (as Flask's would be)."""
        return self._app("wsgi_app", WSGI_APP, env)

    def _app(self, module: str, source: str, env: dict[str, str] | None) -> Process:
        (self.tmp / f"{module}.py").write_text(textwrap.dedent(source))
        port = free_port()
        process = self.start(
            f"{module}-{port}", [sys.executable, f"{module}.py", str(port)], env=env
        )
        process.base = f"http://127.0.0.1:{port}"
        wait_for(process, answers("/health"))
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            stop(process.popen)


def stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=15)


def answers(path: str) -> Callable[[Process], bool]:
    def ready(process: Process) -> bool:
        try:
            return httpx.get(f"{process.base}{path}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    return ready


def wait_for(process: Process, ready: Callable[[Process], bool]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(
                f"{process.name} exited with {process.popen.returncode}:\n{process.text()}"
            )
        if ready(process):
            return
        time.sleep(0.2)
    raise AssertionError(f"{process.name} not ready within {STARTUP_SECONDS} s:\n{process.text()}")


@contextmanager
def processes(tmp: Path, env: dict[str, str]) -> Iterator[Processes]:
    group = Processes(tmp, env)
    try:
        yield group
    finally:
        group.stop_all()


ASGI_APP = """
    import sys

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from llavero.edges.middleware import LlaveroMiddleware
    from llavero.service import Llavero

    async def hello(request):
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello), Route("/health", hello)])
    app.add_middleware(LlaveroMiddleware, llavero=Llavero(), public_paths=["/health"])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

WSGI_APP = """
    import sys
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from llavero.edges.middleware import LlaveroWSGIMiddleware
    from llavero.service import Llavero

    def hello(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    app = LlaveroWSGIMiddleware(hello, llavero=Llavero(), public_paths=["/health"])
    make_server("127.0.0.1", int(sys.argv[1]), app, handler_class=Quiet).serve_forever()
"""
