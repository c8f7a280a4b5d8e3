"""The rate-limit backends side by side: a cached verify with each, in process.

`python -m bench.limiters [--rounds 5] [--calls 20000] [--concurrency 32] [--redis URL]
[--postgres URL] [--json FILE]` (from the repository root; Redis and PostgreSQL rows are
skipped when not given).

Each backend runs `Verifier.verify` (sync: one caller, as worker threads and WSGI apps call it)
and `Verifier.averify` (async: `--concurrency` callers in one event loop, as the HTTP fast path
and the gateway call it) on the same cached key, with plans set out of reach so every answer is
VALID and counts. The figures per backend are verifies per second of wall time and of this
process's CPU time, each with its ratio to the memory limiter's (median of rounds, the backends
alternating within each round); on a busy machine the CPU figure is the steadier one. Target:
Redis ≥ 0.5 of memory, async (where the server calls it).
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy

from bench.scenarios import ROOMY_PLANS
from llavero.config import Settings
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero

REDIS_TARGET = 0.5
BENCH_SCHEMA = f"llavero_bench_limiters_{os.getpid()}"


@contextmanager
def bench_schema(url: str | None) -> Iterator[None]:
    """A PostgreSQL schema of this run's own, dropped at the end."""
    if url is None:
        yield
        return
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {BENCH_SCHEMA}"))
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {BENCH_SCHEMA} CASCADE"))
        engine.dispose()


class Rate(NamedTuple):
    """Verifies per second of wall time, and per second of this process's CPU time: on a
    shared machine the wall figure also measures who else got the cores."""

    wall: float
    cpu: float


def timed(calls: int, run: Callable[[], object]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return Rate(calls / (time.perf_counter() - wall), calls / (time.process_time() - cpu))


def verifies_per_second_sync(llavero: Llavero, request: VerifyRequest, calls: int) -> Rate:
    verify = llavero.verifier.verify

    def run() -> None:
        for _ in range(calls):
            verify(request)

    return timed(calls, run)


def verifies_per_second_async(
    llavero: Llavero, request: VerifyRequest, calls: int, concurrency: int
) -> Rate:
    averify = llavero.verifier.averify
    each = max(1, calls // concurrency)

    async def caller() -> None:
        for _ in range(each):
            await averify(request)

    async def run() -> Rate:
        await averify(request)  # open the loop's connection outside the timing
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        calls = each * concurrency
        rate = Rate(calls / (time.perf_counter() - wall), calls / (time.process_time() - cpu))
        aclose = getattr(llavero.limiter, "aclose", None)
        if aclose is not None:
            await aclose()
        return rate

    return asyncio.run(run())


def backend_settings(scratch: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Settings per backend row: the name it is reported under -> Settings fields."""
    plans = scratch / "plans.toml"
    plans.write_text(ROOMY_PLANS)
    base: dict[str, Any] = {
        "secret_key": "bench-limiters-secret-0123456789",
        "change_poll_seconds": 0,
        "plans_file": plans,
    }
    sqlite = f"sqlite:///{scratch / 'bench.sqlite3'}"
    rows: dict[str, dict[str, Any]] = {
        "memory": {**base, "rate_limit_backend": "memory", "database_url": sqlite},
        "database (SQLite)": {**base, "rate_limit_backend": "database", "database_url": sqlite},
    }
    if args.postgres:
        rows["database (PostgreSQL)"] = {
            **base,
            "rate_limit_backend": "database",
            "database_url": f"{args.postgres}?options=-csearch_path%3D{BENCH_SCHEMA}",
        }
    if args.redis:
        rows["redis"] = {
            **base,
            "rate_limit_backend": "redis",
            "redis_url": args.redis,
            "database_url": sqlite,
        }
    return rows


def open_backend(fields: dict[str, Any], data_dir: Path) -> tuple[Llavero, VerifyRequest]:
    llavero = Llavero(Settings(data_dir=data_dir, **fields))
    llavero.upgrade()
    system = Actor.system("bench")
    project = llavero.projects.create(system, "Bench limiters")
    request = VerifyRequest(llavero.keys.create(system, project.id).key_string)
    if (code := llavero.verifier.verify(request).code) != "VALID":  # also caches the record
        raise SystemExit(f"a bench verify answered {code}: the figures mean nothing")
    return llavero, request


def measure(
    backends: dict[str, tuple[Llavero, VerifyRequest]],
    rounds: int,
    rate: Callable[[Llavero, VerifyRequest], Rate],
) -> dict[str, Rate]:
    """Median verifies/s per backend; the order of backends turns each round."""
    names = list(backends)
    rates: dict[str, list[Rate]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(rate(*backends[name]))
    return {
        name: Rate(
            statistics.median(r.wall for r in values), statistics.median(r.cpu for r in values)
        )
        for name, values in rates.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000, help="per backend, mode and round")
    parser.add_argument("--concurrency", type=int, default=32, help="async callers")
    parser.add_argument("--redis", help="a Redis URL, e.g. redis://127.0.0.1:6379/7")
    parser.add_argument("--postgres", help="a PostgreSQL URL (a schema of the run's own is used)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(prefix="llavero-limiters-") as scratch,
        bench_schema(args.postgres),
    ):
        rows = backend_settings(Path(scratch), args)
        backends = {
            name: open_backend(fields, Path(scratch) / f"data-{index}")
            for index, (name, fields) in enumerate(rows.items())
        }
        try:
            sync = measure(
                backends, args.rounds, lambda ll, rq: verifies_per_second_sync(ll, rq, args.calls)
            )
            concurrent = measure(
                backends,
                args.rounds,
                lambda ll, rq: verifies_per_second_async(ll, rq, args.calls, args.concurrency),
            )
        finally:
            for llavero, _ in backends.values():
                llavero.close()

    figures: dict[str, dict[str, float]] = {}
    print(f"{'verifies/s (ratio to memory)':30} {'sync wall':>14} {'sync CPU':>14} ", end="")
    print(f"{'async wall':>14} {'async CPU':>14}")
    for name in rows:
        row = figures[name] = {}
        cells = []
        for mode, rates in (("sync", sync), ("async", concurrent)):
            for kind in ("wall", "cpu"):
                value = getattr(rates[name], kind)
                row[f"{mode}_{kind}_per_second"] = value
                row[f"{mode}_{kind}_ratio"] = ratio = value / getattr(rates["memory"], kind)
                cells.append(f"{value:8,.0f} {ratio:5.2f}")
        print(f"{name:30} " + " ".join(cells))
    if "redis" in figures:
        for kind in ("wall", "cpu"):
            ratio = figures["redis"][f"async_{kind}_ratio"]
            verdict = "PASS" if ratio >= REDIS_TARGET else "MISS"
            print(f"redis / memory, async, {kind}: {ratio:.2f} (target ≥ {REDIS_TARGET}) {verdict}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
