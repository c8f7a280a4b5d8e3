"""Serve an ASGI app on a free loopback port in a thread, for tests that need real sockets."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    """A loopback port free right now (for a server that binds it itself)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(server: subprocess.Popen[bytes], base: str, output: Path) -> None:
    """Wait for a `llavero serve` subprocess to answer; fail with what it printed if it dies."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"llavero serve exited with {server.returncode}:\n{output.read_text()}")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llavero serve did not answer within 60 s:\n{output.read_text()}")


@contextmanager
def serve(app: ASGIApp, *, access_log: bool = False) -> Iterator[str]:
    """Yields the base URL (`http://127.0.0.1:PORT`) while `app` is served."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # proxy_headers off, as under granian: proxy trust is Llavero's own (llavero.proxy_trust).
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="info",
        access_log=access_log,
        lifespan="on",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(500):
        if server.started:
            started.set()
            break
        threading.Event().wait(0.01)
    try:
        assert started.is_set(), "the loopback server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
