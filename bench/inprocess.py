"""In-process verify against the least any verify must do: a keyed hash and a dict lookup.

`python -m bench.inprocess [--rounds 5] [--calls 20000] [--keys 100] [--json FILE]`
(run from the repository root).

*verify* is `Verifier.verify`, the function the HTTP fast path, the route, forward auth and the
gateway all call, as `llavero serve` runs it: metering on (the flusher thread writing to SQLite),
the memory limiter (`LLAVERO_RATE_LIMIT_BACKEND=memory`: the database and Redis limiters are
I/O, measured over HTTP by `bench.run`) judging the plan's four limits (set out of reach, so
every answer is VALID), and every key restricted to an IP range and one API, so restrictions
are checked on each call.
Records are cached, as they are for every verify but a key's first.

*floor* is `KeyHasher.hash` of the same key strings plus `dict.get` in a dict of as many
entries: the two steps no verify can skip. Each round times both, alternating which goes first;
the figure is the median over rounds of verify / floor. Target: at most 3. Times are the CPU
time of the calling thread (`time.thread_time`), not the wall clock: on a shared machine the
wall clock also counts whatever else ran meanwhile.

*steps* times each step of a cached verify on its own (best of `STEP_REPEATS` × `--calls`), so
the report says where the microseconds go, and last one whole `POST /v1/keys:verify` through
the ASGI app `llavero serve` runs (`http_request_cost`: the fast path, its access line queued),
with no server: what Llavero's own Python costs an HTTP verify. The steps are what `make bench`
prints when the target is missed, beside `bench.instructions`' count of each compiled function
(cProfile sees nothing inside the compiled verify).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from bench.scenarios import ROOMY_PLANS
from llavero.application import create_app
from llavero.config import Settings
from llavero.core import keyformat
from llavero.core.cache import KeyRecord
from llavero.core.verify import VALID, VerifyRequest
from llavero.edges.access_log import AccessLogWriter
from llavero.service import Actor, Llavero

TARGET = 3.0
STEP_REPEATS = 5
RESTRICTIONS = {
    "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
    "api_targets": [{"service": "generativelanguage.googleapis.com"}],
}


def seconds_per_call(call: Callable[[int], object], calls: int) -> float:
    started = time.thread_time()
    for index in range(calls):
        call(index)
    return (time.thread_time() - started) / calls


def step_costs(llavero: Llavero, request: VerifyRequest, calls: int) -> dict[str, float]:
    """µs per call of each step `Verifier.verify` takes for a cached, restricted key."""
    verifier = llavero.verifier
    record = verifier.record(request.key)
    assert isinstance(record, KeyRecord)
    now = llavero.ctx.clock.time()
    meter, prefix = llavero.usage_meter, llavero.ctx.key_prefix
    steps: dict[str, Callable[[], object]] = {
        "keyed hash + cache lookup (`Verifier.cached`)": lambda: verifier.cached(request.key),
        "key checksum (only on a cache miss)": lambda: keyformat.is_well_formed(
            request.key, prefix
        ),
        "state, environment and restrictions (`refusal`)": lambda: verifier.refusal(
            record, request, now
        ),
        "limiter: judge and count 4 limits (`MemoryLimiter.hit`)": lambda: llavero.limiter.hit(
            record.checks, now
        ),
        "usage meter (`UsageMeter.record`)": lambda: meter.record(
            record.key_id, record.project_id, VALID, 0, request.ip, now
        ),
        "whole verify": lambda: verifier.verify(request),
    }
    costs = {
        name: min(timeit.repeat(step, number=calls, repeat=STEP_REPEATS, timer=time.thread_time))
        / calls
        * 1e6
        for name, step in steps.items()
    }
    costs[HTTP_STEP] = http_request_cost(llavero, request, calls)
    return costs


HTTP_STEP = "one HTTP verify through the ASGI app, no server (`create_app`, fast path, access log)"


def http_request_cost(llavero: Llavero, request: VerifyRequest, calls: int) -> float:
    """µs of CPU per `POST /v1/keys:verify` handed straight to the app, best of STEP_REPEATS."""
    token = llavero.tokens.create(Actor.system("bench"), ["keys:verify"]).token
    with open(os.devnull, "wb") as devnull:
        app = create_app(llavero, access_log=AccessLogWriter(devnull))
        context = {"ip": request.ip, "service": request.service}
        body = json.dumps({"key": request.key, **context}).encode()
        verifies, answers = asgi_verifies(app, token, body)

        async def timed(count: int) -> float:
            started = time.thread_time()
            await verifies(count)
            return (time.thread_time() - started) / count

        async def best() -> float:
            await timed(2)  # the route authenticates the token; the fast path answers after
            return min([await timed(calls) for _ in range(STEP_REPEATS)])

        seconds = asyncio.run(best())
    if set(answers) != {VALID_ANSWER}:
        raise SystemExit(f"bench HTTP verifies answered (status, valid) {sorted(answers)}")
    return seconds * 1e6


VALID_ANSWER = (200, True)  # (status, "valid": true in the body)


def asgi_verifies(
    app: Callable[..., Awaitable[None]], token: str, body: bytes
) -> tuple[Callable[[int], Awaitable[None]], Counter[tuple[int, bool]]]:
    """A coroutine function handing `app` that many `POST /v1/keys:verify` with `body`, as an
    ASGI server would (a new scope each), and how many answers had each (status, valid)."""
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    answers: Counter[tuple[int, bool]] = Counter()
    status = 0

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            answers[status, b'"valid":true' in message["body"]] += 1

    async def verifies(count: int) -> None:
        for _ in range(count):
            scope = {"type": "http", "http_version": "1.1", "method": "POST",
                     "path": "/v1/keys:verify", "raw_path": b"/v1/keys:verify",
                     "query_string": b"", "root_path": "", "headers": headers,
                     "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
                     "scheme": "http", "state": {}}  # fmt: skip
            await app(scope, receive, send)

    return verifies, answers


def restricted_keys(scratch: Path, count: int) -> tuple[Llavero, list[str]]:
    """A Llavero on SQLite in `scratch` as `llavero serve` runs it, but with the memory
    limiter (the limiter's own cost is measured by bench.run), and `count` restricted keys."""
    plans = scratch / "plans.toml"
    plans.write_text(ROOMY_PLANS)
    settings = Settings(
        data_dir=scratch,
        secret_key="bench-inprocess-secret-0123456789",
        change_poll_seconds=0,
        plans_file=plans,
        rate_limit_backend="memory",
    )
    llavero = Llavero(settings)
    llavero.upgrade()
    system = Actor.system("bench")
    project = llavero.projects.create(system, "Bench", "bench-inprocess")
    keys = [
        llavero.keys.create(system, project.id, restrictions=RESTRICTIONS).key_string
        for _ in range(count)
    ]
    return llavero, keys


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000, help="per side and round")
    parser.add_argument("--keys", type=int, default=100, help="keys verified in turn")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="llavero-inprocess-") as scratch:
        llavero, key_strings = restricted_keys(Path(scratch), args.keys)
        requests = [
            VerifyRequest(key, ip="203.0.113.7", service="generativelanguage.googleapis.com")
            for key in key_strings
        ]
        llavero.usage_meter.start()

        verify, size = llavero.verifier.verify, len(requests)
        digest = llavero.ctx.hasher.hash
        table = {digest(key): index for index, key in enumerate(key_strings)}

        def one_verify(index: int) -> object:
            return verify(requests[index % size])

        def floor(index: int) -> object:
            return table.get(digest(key_strings[index % size]))

        for request in requests:  # cache every record; check that the setup verifies VALID
            if (code := verify(request).code) != "VALID":
                raise SystemExit(f"a bench verify answered {code}: the figures mean nothing")
        ratios, verify_us, floor_us = [], [], []
        for round_number in range(args.rounds):
            sides = (one_verify, floor) if round_number % 2 == 0 else (floor, one_verify)
            timed = {side: seconds_per_call(side, args.calls) for side in sides}
            verify_us.append(timed[one_verify] * 1e6)
            floor_us.append(timed[floor] * 1e6)
            ratios.append(timed[one_verify] / timed[floor])
            print(
                f"round {round_number + 1}: verify {verify_us[-1]:.2f} µs, "
                f"floor {floor_us[-1]:.2f} µs, ratio {ratios[-1]:.2f}",
                flush=True,
            )
        steps = step_costs(llavero, requests[0], args.calls // 5)
        llavero.close()
        llavero.db.dispose()

    figures = {
        "verify_us": statistics.median(verify_us),
        "floor_us": statistics.median(floor_us),
        "ratio": statistics.median(ratios),
        "target": TARGET,
        "steps_us": steps,
    }
    for name, cost in steps.items():
        print(f"{cost:8.2f} µs  {name}")
    print(
        f"\nverify {figures['verify_us']:.2f} µs/call, keyed hash + dict lookup "
        f"{figures['floor_us']:.2f} µs/call: ratio {figures['ratio']:.2f} "
        f"(median of {args.rounds} rounds; target ≤ {TARGET:g})"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
