"""Where a server's CPU goes: py-spy samples of its processes while wrk loads it.

`run.py` calls `server_profile` for the subject of every missed HTTP target, with the servers
still up: py-spy (bench/requirements.txt) attaches to the server and its workers
(`--subprocesses`), samples the threads that are running (idle ones are left out) for a few
seconds while wrk repeats the target's request, and the functions that were on top of the most
samples are the explanation printed next to the MISS.

Before those, `cpu_split` says where the time of a request goes, subject beside baseline: the
CPU seconds the kernel charged to each thread of the server (`/proc`) and to wrk, per request.
On a 2-core machine wrk and the server share the cores, so throughput follows the sum of the
three; the event-loop thread is the one the app's Python runs on, holding the GIL.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from bench import wrk

RATE = 200  # samples a second
_LINE_NUMBER = re.compile(r":\d+\)$")
# Threads py-spy saw as running that were waiting in Python: a thread pool's idle workers.
WAITING = ("Condition.wait (", "Event.wait (", "Thread.join (", "Queue.get (")
# The worker's outermost Python frame: samples there were in native code beneath it (the event
# loop, granian's Rust I/O), as a native call is counted in the Python function that made it.
NATIVE = {"MPServer._spawn_asgi_lifespan_worker (granian/server/mp.py)": "native: event loop, "
          "granian's I/O (MPServer._spawn_asgi_lifespan_worker)"}  # fmt: skip


def top_functions(raw: str, top: int = 10) -> list[str]:
    """The `top` leaf functions of py-spy's raw (collapsed) output, as `share  function (file)`,
    shares of the samples not `WAITING`.

    A raw line is `frame;frame;…;leaf COUNT`; frames naming a process are dropped and the line
    number is cut, so one function's lines add up."""
    leaves: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if frames and count.isdigit():
            leaves[_LINE_NUMBER.sub(")", frames[-1])] += int(count)
    waiting = sum(n for name, n in leaves.items() if name.startswith(WAITING))
    busy = Counter({name: n for name, n in leaves.items() if not name.startswith(WAITING)})
    total = sum(busy.values()) or 1
    lines = [
        f"{100 * n / total:5.1f} %  {NATIVE.get(name, name)}" for name, n in busy.most_common(top)
    ]
    return [
        *lines,
        f"(left out: {waiting} samples of idle pool threads waiting, of {total + waiting})",
    ]


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def server_profile(pid: int, target: wrk.Target, seconds: float = 5) -> list[str]:
    """Top functions of the server `pid` (its workers included) under wrk's load."""
    spy = py_spy()
    if spy is None:
        return ["no profile: py-spy is not installed (run bench/setup.sh)"]
    with tempfile.TemporaryDirectory(prefix="llavero-profile-") as tmp:
        out = Path(tmp) / "raw.txt"
        argv = [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                "--rate", str(RATE), "--duration", f"{seconds:g}", "--format", "raw",
                "--output", str(out)]  # fmt: skip
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as spying:
            wrk.run(target, seconds + 1)
            output = spying.communicate(timeout=60)[0].decode(errors="replace")
        if spying.returncode != 0 or not out.exists():
            return [f"no profile: py-spy failed: {output.strip().splitlines()[-1:]}"]
        return top_functions(out.read_text())


class CpuPerRequest(NamedTuple):
    """µs of CPU per request: the server's event-loop threads, its other threads, and wrk."""

    loop: float
    others: float
    load: float


def cpu_split(servers: dict[str, tuple[int, wrk.Target]], seconds: float = 5) -> list[str]:
    """One wrk run per server (`name: (pid, target)`), one line each: CPU per request."""
    lines = ["CPU µs per request      event loop  other threads  server total  wrk  all"]
    for name, (pid, target) in servers.items():
        cpu = cpu_per_request(pid, target, seconds)
        total = cpu.loop + cpu.others
        lines.append(
            f"{name:22} {cpu.loop:10.1f} {cpu.others:14.1f} {total:13.1f} {cpu.load:4.0f} "
            f"{total + cpu.load:4.0f}"
        )
    return lines


def cpu_per_request(pid: int, target: wrk.Target, seconds: float) -> CpuPerRequest:
    before, load_before = thread_seconds(pid), _children_seconds()
    result = wrk.run(target, seconds)
    after, load_after = thread_seconds(pid), _children_seconds()
    requests = max(result.requests, 1)

    def spent(loop: bool) -> float:
        return sum(t - before.get(k, 0.0) for k, t in after.items() if k[1] == loop) / requests

    return CpuPerRequest(
        spent(True) * 1e6, spent(False) * 1e6, (load_after - load_before) / requests * 1e6
    )


def thread_seconds(pid: int) -> dict[tuple[int, bool], float]:
    """CPU seconds of every thread of `pid` and its descendants, by (thread id, whether it is
    a process's main thread: where asyncio runs the app)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[tuple[int, bool], float] = {}
    for process in [pid, *_descendants(pid)]:
        for task in Path(f"/proc/{process}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            seconds[int(task.name), int(task.name) == process] = (
                int(fields[11]) + int(fields[12])
            ) / tick
    return seconds


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(child) for child in children.read_text().split()] if children.exists() else []
    return [*found, *(d for child in found for d in _descendants(child))]


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
