"""Real processes on loopback for the edge tests: `llavero serve` and `llavero gateway` as users
run them (their whole output kept, byte for byte), an upstream that records every request it
gets, and raw HTTP requests sent from a chosen loopback address."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from llavero.config import Settings
from llavero.service import Actor, Llavero
from tests.loopback import free_port

SECRET = "edge-test-secret-0123456789abcdef"
TRUSTED_PEER = "127.0.0.2"
UNTRUSTED_PEER = "127.0.0.1"
UPSTREAM_KEY = "upstream-own-key-not-a-llavero-one"


@dataclass
class Instance:
    """A data dir and database shared by this test process and the servers it starts."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        """Every request of a matrix is counted: the free plan here has no limits."""
        plans = self.root / "plans.toml"
        plans.write_text('[plans.free]\nrpm = "unlimited"\nrpd = "unlimited"\n')
        return {
            "LLAVERO_DATA_DIR": str(self.root),
            "LLAVERO_DATABASE_URL": f"sqlite:///{self.root / 'edge.sqlite3'}",
            "LLAVERO_SECRET_KEY": SECRET,
            "LLAVERO_CHANGE_POLL_SECONDS": "0",
            "LLAVERO_PLANS_FILE": str(plans),
        }

    def settings(self, **fields: Any) -> Settings:
        env = self.env
        return Settings(
            data_dir=self.root,
            database_url=env["LLAVERO_DATABASE_URL"],
            secret_key=SECRET,
            change_poll_seconds=0,
            plans_file=Path(env["LLAVERO_PLANS_FILE"]),
            **fields,
        )

    def service(self) -> Llavero:
        settings = self.settings()
        llavero = Llavero(settings)
        llavero.upgrade()
        return llavero

    def new_key(self, **fields: Any) -> str:
        llavero = self.service()
        try:
            actor = Actor.system("edge-test")
            project = llavero.projects.create(actor, "Edge")
            return llavero.keys.create(actor, project.id, **fields).key_string
        finally:
            llavero.close()
            llavero.db.dispose()


@dataclass
class Server:
    """A `llavero` command serving on `port`; `output()` is everything it wrote."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    host: str

    def output(self) -> bytes:
        return self.log.read_bytes()


@contextmanager
def llavero_process(
    args: Sequence[str], env: dict[str, str], log: Path, host: str = "::"
) -> Iterator[Server]:
    """`python -m llavero ARGS --host HOST --port P`, stdout and stderr into `log`; stopped
    (its own process group, which this test started) when the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "llavero", *args, "--host", host, "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, port, log, "::1" if host == "::1" else "127.0.0.1")
    try:
        wait_until_serving(server)
        yield server
    finally:
        stop(process)


def wait_until_serving(server: Server) -> None:
    for _ in range(300):
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited: {server.output().decode(errors='replace')}")
        try:
            source = "::1" if server.host == "::1" else UNTRUSTED_PEER
            send(server.port, "GET /v1/forward-auth HTTP/1.1", [], source, server.host)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    port: int,
    request_line: str | bytes,
    headers: Sequence[tuple[str, str]],
    source: str = UNTRUSTED_PEER,
    host: str = "127.0.0.1",
) -> Answer:
    """One raw HTTP/1.1 request, exactly as given (no client library re-encodes the target),
    from the loopback address `source`."""
    line = request_line.encode("latin-1") if isinstance(request_line, str) else request_line
    head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)
    message = line + b"\r\nHost: edge.test\r\nConnection: close\r\n" + head + b"\r\n"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect((host, port))
        sock.sendall(message)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return parse_answer(b"".join(chunks))


def parse_answer(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunked(body)
    return Answer(int(status_line.split()[1]), headers, body)


def dechunked(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2 :]
    return out


@dataclass
class Recorded:
    request_line: str
    headers: str
    body: bytes

    @property
    def raw(self) -> bytes:
        return self.request_line.encode("latin-1") + self.headers.encode("latin-1") + self.body


@dataclass
class Upstream:
    """An upstream API on loopback that answers 200 `{}` and keeps what it was sent."""

    url: str
    received: list[Recorded] = field(default_factory=list)


class _Recorder(BaseHTTPRequestHandler):
    upstream: Upstream

    def _record(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.upstream.received.append(Recorded(self.requestline, str(self.headers), body))
        answer = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _record

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `received`."""


@contextmanager
def recording_upstream(base_path: str = "") -> Iterator[Upstream]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    upstream = Upstream(f"http://127.0.0.1:{server.server_address[1]}{base_path}")
    server.RequestHandlerClass = type("Recorder", (_Recorder,), {"upstream": upstream})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
