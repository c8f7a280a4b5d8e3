"""Start a server as a subprocess on a free loopback port, wait until it answers, always stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


# The process serving each base URL while it is up: `run.py` profiles servers by their URL.
SERVING: dict[str, int] = {}


class ServerFailed(RuntimeError):
    pass


def serving_pid(url: str) -> int | None:
    """The process of the server `url` (a base URL or any URL under it) belongs to."""
    return next((pid for base, pid in SERVING.items() if url.startswith(base + "/")), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def bench_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The caller's environment, with the repository importable (for `bench.peers.*`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_step(argv: Sequence[str], env: Mapping[str, str] = {}) -> str:
    """Run a set-up command (migrate, create a key…) and return its stdout."""
    done = subprocess.run(
        argv, cwd=REPO, env=bench_env(env), capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise ServerFailed(f"{' '.join(argv)} failed:\n{done.stderr.strip()}")
    return done.stdout


@contextmanager
def serve(
    argv: Sequence[str], port: int, log: Path, env: Mapping[str, str] = {}, ready_path: str = "/"
) -> Iterator[str]:
    """Yield the base URL once the server answers any HTTP request on `ready_path`.

    The server gets its own process group, so stopping it also stops its workers.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, env=bench_env(env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        base_url = f"http://{HOST}:{port}"
        try:
            wait_until_ready(process, base_url + ready_path, log)
            SERVING[base_url] = process.pid
            yield base_url
        finally:
            SERVING.pop(base_url, None)
            stop(process)


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"server exited with {process.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            time.sleep(0.1)
    raise ServerFailed(f"server did not answer {url} within 60 s:\n{tail(log)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
