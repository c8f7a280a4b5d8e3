"""What usage metering and rate limits cost a verify, measured in process, in one run.

`python -m bench.metering [--rounds 7] [--verifies 20000] [--requests 3000] [--redis URL]`
(run from the repository root, with the project venv).

Verifiers that share one service, one key cache and one set of keys differ only in these:

- `off`: no usage meter; a plan without limits and a limiter that allows at once;
- `meter`: the usage meter counts every verify (its flusher thread writes to the SQLite
  database every `LLAVERO_USAGE_FLUSH_SECONDS`, as under `llavero serve`); limits off;
- `limits`: the limiter judges all four limits (rpm, rpd, upm, upd) of the project's plan, set
  high enough never to refuse; no meter;
- `on`: both, as `llavero serve` runs.

Two layers are timed. *Hot path*: `Verifier.verify` called in a loop, nothing else, so the
ratios show the whole relative cost of each part. *API*: `POST /v1/keys:verify` through the
ASGI app (token check, JSON in and out, and whatever the app does around the verifier) without
sockets, one app per variant. Each round times every variant in interleaved slices, in
rotating order, and takes ratios within the round; the median over rounds is reported, so drift
on a shared machine hits both sides of a ratio alike. The target is `on / off` >= 0.8 with the
memory limiter.

At the end the meter is closed and its counts read back from the database: every verify of the
metered variants must be there (exit code 1 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from llavero.application import create_app
from llavero.config import Settings
from llavero.core.limits import Check, Decision, Limiter, MemoryLimiter
from llavero.core.plans import MAX_LIMIT, Plan
from llavero.core.verify import Verifier, VerifyRequest
from llavero.service import Actor, Llavero
from llavero.store import tables
from llavero.store.redis_limiter import RedisLimiter

TARGET = 0.8
PLAN = "free"  # the plan of a project without billing, which every bench key is on
ROOMY = Plan(PLAN, "Roomy", MAX_LIMIT, MAX_LIMIT, MAX_LIMIT, MAX_LIMIT)
UNLIMITED = Plan(PLAN, "Unlimited")
IP = "203.0.113.7"
COST = 3
METERED = frozenset({"meter", "on"})
SLICES = 10


class NoLimits:
    """The limiter of the variants without limits: allows at once, counts nothing."""

    ALLOWED = Decision(allowed=True, code=None, limits={}, retry_after=None)

    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        return self.ALLOWED

    def hit_held(self, checks: Sequence[Check], now: float) -> Decision:
        return self.ALLOWED

    def add(self, checks: Sequence[Check], now: float) -> None:
        return None

    def peek(self, checks: Sequence[Check], now: float) -> Decision:
        return self.ALLOWED

    def close(self) -> None:
        return None


def median_ratios(
    rounds: int,
    slices: int,
    variants: Sequence[str],
    run: Callable[[str], float],
    baseline: str,
) -> tuple[dict[str, float], dict[str, float]]:
    """Median rate of each variant and median of its per-round ratio to `baseline`.

    A round runs every variant `slices` times, interleaved in rotating order, so that a burst
    of load from elsewhere on the machine falls on all variants of the round alike. `run`
    returns the rate (per second) of one slice."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        seconds = dict.fromkeys(variants, 0.0)
        for index in range(slices):
            shift = index % len(variants)
            for name in [*variants[shift:], *variants[:shift]]:
                seconds[name] += 1 / run(name)  # seconds per verify, summed over slices
        for name in variants:
            rates[name].append(slices / seconds[name])
            ratios[name].append(seconds[baseline] / seconds[name])
    return (
        {name: statistics.median(values) for name, values in rates.items()},
        {name: statistics.median(values) for name, values in ratios.items()},
    )


def verifier_rate(verifier: Verifier, requests: Sequence[VerifyRequest], count: int) -> float:
    """Verifies per second over `count` verifies, cycling through `requests`."""
    verify = verifier.verify
    size = len(requests)
    started = time.perf_counter()
    for index in range(count):
        if verify(requests[index % size]).code != "VALID":
            raise SystemExit("a bench verify was refused: the figures would not be comparable")
    return count / (time.perf_counter() - started)


class AsgiVerify:
    """`POST /v1/keys:verify` straight into the ASGI app: the API's own work, no sockets."""

    def __init__(self, app: FastAPI, token: str, keys: Sequence[str]) -> None:
        self.app = app
        self.bodies = [json.dumps({"key": key, "ip": IP, "cost": COST}).encode() for key in keys]
        self.headers = [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ]

    def rate(self, count: int) -> float:
        return asyncio.run(self._rate(count))

    async def _rate(self, count: int) -> float:
        started = time.perf_counter()
        for index in range(count):
            await self._call(self.bodies[index % len(self.bodies)])
        return count / (time.perf_counter() - started)

    async def _call(self, body: bytes) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/keys:verify",
            "raw_path": b"/v1/keys:verify",
            "query_string": b"",
            "root_path": "",
            "headers": [*self.headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        answer = bytearray()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError("unreachable")

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.body":
                answer.extend(message.get("body", b""))

        await self.app(scope, receive, send)
        if b'"VALID"' not in answer:
            raise SystemExit(f"a bench verify was refused: {bytes(answer)[:200]!r}")


def metered_valid(llavero: Llavero) -> int:
    query = select(func.coalesce(func.sum(tables.UsageBucket.requests), 0)).where(
        tables.UsageBucket.granularity == "day", tables.UsageBucket.code == "VALID"
    )
    with llavero.db.reading() as session:
        return int(session.scalar(query) or 0)


class Bench:
    def __init__(self, scratch: Path, keys: int, limiter: Limiter) -> None:
        settings = Settings(
            data_dir=scratch, secret_key="bench-metering-secret-0123456789", change_poll_seconds=0
        )
        self.llavero = llavero = Llavero(settings)
        llavero.upgrade()
        system = Actor.system("bench")
        project = llavero.projects.create(system, "Bench", "bench-metering")
        key_strings = [llavero.keys.create(system, project.id).key_string for _ in range(keys)]
        self.requests = [VerifyRequest(key, ip=IP, cost=COST) for key in key_strings]
        meter, ctx = llavero.usage_meter, llavero.ctx
        self.verifiers = {
            "off": Verifier(ctx, NoLimits(), {PLAN: UNLIMITED}, None),
            "meter": Verifier(ctx, NoLimits(), {PLAN: UNLIMITED}, meter),
            "limits": Verifier(ctx, limiter, {PLAN: ROOMY}, None),
            "on": Verifier(ctx, limiter, {PLAN: ROOMY}, meter),
        }
        token = llavero.tokens.create(system, ["keys:verify"]).token
        self.apis: dict[str, AsgiVerify] = {}
        for name in self.verifiers:  # the app may bind the verifier when it is built
            llavero.verifier = self.verifiers[name]
            self.apis[name] = AsgiVerify(create_app(llavero), token, key_strings)
        self.metered = 0

    def hot_path(self, name: str, count: int) -> float:
        self._count(name, count)
        return verifier_rate(self.verifiers[name], self.requests, count)

    def through_api(self, name: str, count: int) -> float:
        self._count(name, count)
        self.llavero.verifier = self.verifiers[name]  # for the route, which reads it per call
        return self.apis[name].rate(count)

    def _count(self, name: str, count: int) -> None:
        if name in METERED:
            self.metered += count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--verifies", type=int, default=20_000, help="hot path, per variant")
    parser.add_argument("--requests", type=int, default=3_000, help="API, per variant")
    parser.add_argument("--keys", type=int, default=100, help="keys verified in turn")
    parser.add_argument("--redis", metavar="URL", help="the Redis limiter instead of memory")
    args = parser.parse_args(argv)
    limiter: Limiter = RedisLimiter.from_url(args.redis) if args.redis else MemoryLimiter()
    backend = "redis" if args.redis else "memory"

    with tempfile.TemporaryDirectory() as scratch:
        bench = Bench(Path(scratch), args.keys, limiter)
        bench.llavero.usage_meter.start()
        for name in bench.verifiers:  # warm the key cache, the limiter and the code paths
            bench.hot_path(name, len(bench.requests) * 2)
        for name in bench.apis:
            bench.through_api(name, len(bench.requests))
        hot_rates, hot_ratios = median_ratios(
            args.rounds,
            SLICES,
            list(bench.verifiers),
            lambda name: bench.hot_path(name, args.verifies // SLICES),
            "off",
        )
        api_rates, api_ratios = median_ratios(
            args.rounds,
            SLICES,
            list(bench.apis),
            lambda name: bench.through_api(name, args.requests // SLICES),
            "off",
        )
        bench.llavero.close()  # flushes what the meter still holds
        counted = metered_valid(bench.llavero)
        bench.llavero.ctx.db.dispose()

    print(
        f"limiter: {backend}; median of {args.rounds} rounds of {SLICES} interleaved slices; "
        f"one thread; target on/off >= {TARGET}"
    )
    print("\n| layer | variant | verifies/s | ratio to off |\n| --- | --- | ---: | ---: |")
    for name in hot_rates:
        print(f"| hot path | {name} | {hot_rates[name]:,.0f} | {hot_ratios[name]:.3f} |")
    for name in api_rates:
        print(f"| API | {name} | {api_rates[name]:,.0f} | {api_ratios[name]:.3f} |")
    for layer, ratio in (("hot path", hot_ratios["on"]), ("API", api_ratios["on"])):
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"\n{layer}: metering + limits on / both off = {ratio:.3f} ({verdict} {TARGET})")
    print(f"\nmetered VALID verifies in the database: {counted:,} of {bench.metered:,}")
    return 0 if counted == bench.metered else 1


if __name__ == "__main__":
    sys.exit(main())
