"""Serve an ASGI app on a free loopback port in a thread, for tests that need real sockets."""

from __future__ import annotations

import os
import random
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

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
FIRST_PORT = 10_000
TRIES = 1000


def _worker_ports() -> Iterator[int]:
    """This process's own block of ports, below the kernel's ephemeral range: a port given out
    there could be taken before the server binds it, by another xdist worker's `bind(0)` or as
    the local port of any outgoing connection. The walk starts at a random place in the block,
    so two runs on one machine seldom try the same port at the same moment."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    ephemeral = EPHEMERAL_RANGE.read_text().split() if EPHEMERAL_RANGE.exists() else ["32768"]
    size = (int(ephemeral[0]) - FIRST_PORT) // workers
    first = FIRST_PORT + worker * size
    start = random.randrange(size)
    while True:
        yield from (first + (start + step) % size for step in range(size))


_PORTS = _worker_ports()
_PORTS_LOCK = threading.Lock()


def _unused(port: int) -> bool:
    """Nothing listens or is bound on `port`, on any IPv4 or IPv6 address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    if not socket.has_ipv6:
        return True
    try:
        probe6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:  # IPv6 off in this kernel
        return True
    with probe6:
        probe6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            probe6.bind(("::", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free right now, for a server (a subprocess, nginx) that binds it itself."""
    with _PORTS_LOCK:
        for _ in range(TRIES):
            port = next(_PORTS)
            if _unused(port):
                return port
    raise AssertionError("no free port in this worker's block")


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
