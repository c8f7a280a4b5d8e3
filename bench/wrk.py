"""Drive wrk and read its report.

wrk is the load generator because it is a separate C process: it costs the servers under
test little CPU and measures them all the same way. The Lua script is generated per target,
sets method, headers and body, and counts answers that are not the expected one, so a server
that answers fast with errors cannot pass for a fast server.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s+(\d+) requests in", re.M)
_NON_2XX = re.compile(r"^\s+Non-2xx or 3xx responses: (\d+)", re.M)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_UNEXPECTED = re.compile(r"^unexpected_responses: (\d+)", re.M)

_SCRIPT = """\
wrk.method = {method}
wrk.body = {body}
{headers}
local expected = {expect}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  unexpected = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, expected, 1, true) then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("unexpected")
  end
  io.write(string.format("unexpected_responses: %d\\n", total))
end
"""


@dataclass(frozen=True)
class Target:
    """One request, repeated by wrk, and the text every good answer contains."""

    url: str
    expect: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    requests: int
    latency_ms: dict[int, float]
    errors: int
    """Socket errors plus answers that were not a 200 holding the expected text."""

    @property
    def p50_ms(self) -> float:
        return self.latency_ms[50]

    @property
    def p99_ms(self) -> float:
        return self.latency_ms[99]


def lua_string(text: str) -> str:
    """A Lua long-bracket literal: no escaping rules to get wrong, whatever the text holds."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def lua_script(target: Target) -> str:
    headers = "\n".join(
        f"wrk.headers[ {lua_string(name)} ] = {lua_string(value)}"
        for name, value in target.headers.items()
    )
    return _SCRIPT.format(
        method=lua_string(target.method),
        body=lua_string(target.body),
        headers=headers,
        expect=lua_string(target.expect),
    )


def parse(output: str) -> WrkResult:
    """Read wrk's `--latency` report (4.x), converting every latency to milliseconds."""
    rate, total = _RATE.search(output), _TOTAL.search(output)
    if rate is None or total is None:
        raise ValueError(f"not a wrk report:\n{output}")
    latency = {int(p): float(v) * _UNIT_TO_MS[unit] for p, v, unit in _PERCENTILE.findall(output)}
    if 50 not in latency or 99 not in latency:
        raise ValueError(f"wrk report without --latency percentiles:\n{output}")
    socket_errors = _SOCKET_ERRORS.search(output)
    unexpected = _UNEXPECTED.search(output)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    if unexpected is not None:
        errors += int(unexpected.group(1))
    else:
        non_2xx = _NON_2XX.search(output)
        errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        requests=int(total.group(1)),
        latency_ms=latency,
        errors=errors,
    )


def command(url: str, script: Path, duration_s: float, connections: int, threads: int) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def run(target: Target, duration_s: float, connections: int = 32, threads: int = 1) -> WrkResult:
    with tempfile.TemporaryDirectory(prefix="llavero-wrk-") as tmp:
        script = Path(tmp) / "request.lua"
        script.write_text(lua_script(target))
        argv = command(target.url, script, duration_s, connections, threads)
        done = subprocess.run(
            argv, capture_output=True, text=True, check=True, timeout=duration_s + 30
        )
    return parse(done.stdout)
