"""Revocation across instances: how long a key disabled through one `llavero serve` still
verifies on another, on PostgreSQL (LISTEN/NOTIFY, table catch-up) and SQLite (table poll).

`python -m bench.revocation [--keys 100] [--stale-keys 400] [--writers 32]
[--postgres URL | --no-postgres] [--no-sqlite] [--json FILE]` (from the repository root).

Two `llavero serve` processes, A and B, share one database (a fresh PostgreSQL schema, or one
SQLite file: there B stands for any second process on the file, such as the CLI). The cache
TTL is an hour, so that only the change feed can bring a revocation; the poll is the default
1 s. Then:

- *latency*: `--keys` keys, each verified on B (so B has it cached as VALID), then disabled
  with `PATCH /v1/keys/{id}` through A, one after the other, each after a random pause of up
  to one poll interval (so that the writes do not fall in step with B's poll). The latency of
  one revocation runs from A's answer (the change is committed) to B's first `DISABLED`, B
  being asked in a tight loop; p50, p99 and max over all keys. So a figure includes one
  verify round trip to B, whose median is shown too: below it, the figure cannot resolve.
- *stale verifies*: `--stale-keys` keys cached VALID on B, disabled through A by `--writers`
  concurrent clients; once the last write has returned, every key is verified on B at once
  (*right after*: the figure says how long that pass took), then twice more once one poll
  interval has passed since the last write (*after one poll*). A stale verify answers
  anything but `DISABLED`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.scale import drop_schema, fresh_schema
from bench.servers import free_port, serve
from llavero.config import Settings
from llavero.core.clock import SYSTEM_CLOCK
from llavero.service import Actor, Llavero

DEFAULT_POSTGRES = os.environ.get(
    "LLAVERO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SECRET = "bench-revocation-secret-0123456789abcdef"
POLL_SECONDS = 1.0
UNLIMITED = "".join(f'{name} = "unlimited"\n' for name in ("rpm", "rpd", "upm", "upd"))
ADMIN = Actor.system("bench")
LATER_PASSES = 2


@dataclass(frozen=True)
class RevocationFigures:
    database: str
    revocations: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    verify_round_trip_ms: float
    writers: int
    stale_keys: int
    stale_right_after: int
    first_pass_seconds: float
    verifies_after_poll: int
    stale_after_poll: int


@dataclass
class Pair:
    a: httpx.Client
    b: httpx.Client
    admin_token: str
    verify_token: str

    def code(self, client: httpx.Client, key: str) -> str:
        answer = client.post(
            "/v1/keys:verify",
            json={"key": key},
            headers={"Authorization": f"Bearer {self.verify_token}"},
        )
        answer.raise_for_status()
        code: str = answer.json()["code"]
        return code

    def disable(self, client: httpx.Client, key_id: str) -> None:
        client.patch(
            f"/v1/keys/{key_id}",
            json={"state": "DISABLED"},
            headers={"Authorization": f"Bearer {self.admin_token}"},
        ).raise_for_status()


def environment(scratch: Path, url: str) -> dict[str, str]:
    plans = scratch / "plans.toml"
    plans.write_text(f"[plans.free]\n{UNLIMITED}")
    return {
        "LLAVERO_DATA_DIR": str(scratch),
        "LLAVERO_DATABASE_URL": url,
        "LLAVERO_SECRET_KEY": SECRET,
        "LLAVERO_PLANS_FILE": str(plans),
        "LLAVERO_CHANGE_POLL_SECONDS": str(POLL_SECONDS),
        "LLAVERO_CACHE_TTL_SECONDS": "3600",
        "LLAVERO_LOG_LEVEL": "warning",
    }


@contextmanager
def two_instances(scratch: Path, url: str) -> Iterator[tuple[Llavero, Pair]]:
    """Llavero in this process (for set-up, feed off) and A and B as servers."""
    env = environment(scratch, url)
    settings = Settings(
        data_dir=scratch,
        database_url=url,
        secret_key=SECRET,
        plans_file=Path(env["LLAVERO_PLANS_FILE"]),
        change_poll_seconds=0,
    )
    llavero = Llavero(settings, clock=SYSTEM_CLOCK)
    llavero.upgrade()
    llavero.bootstrap()
    admin_token = llavero.tokens.create(ADMIN, ["admin"]).token
    verify_token = llavero.tokens.create(ADMIN, ["keys:verify"]).token
    with ExitStack() as stack:
        urls = []
        for name in ("a", "b"):
            port = free_port()
            argv = [sys.executable, "-m", "llavero", "serve", "--port", str(port)]
            log = scratch / f"serve-{name}.log"
            urls.append(stack.enter_context(serve(argv, port, log, env, "/openapi.json")))
        a, b = (stack.enter_context(httpx.Client(base_url=u, timeout=30)) for u in urls)
        try:
            yield llavero, Pair(a, b, admin_token, verify_token)
        finally:
            llavero.close()


def new_keys(llavero: Llavero, count: int) -> list[tuple[str, str]]:
    project = llavero.projects.create(ADMIN, "Revocation bench").id
    made = (llavero.keys.create(ADMIN, project) for _ in range(count))
    return [(created.key.id, created.key_string) for created in made]


def latencies(llavero: Llavero, pair: Pair, count: int) -> tuple[list[float], list[float]]:
    """Seconds from A's answer to a disable to B's first DISABLED, per key; and the round
    trip of each verify asked of B meanwhile (the resolution of the first figure)."""
    found, round_trips = [], []
    for key_id, key in new_keys(llavero, count):
        assert pair.code(pair.b, key) == "VALID"
        time.sleep(random.uniform(0, POLL_SECONDS))  # no lock-step with B's poll
        pair.disable(pair.a, key_id)
        committed = asked = time.perf_counter()
        while pair.code(pair.b, key) != "DISABLED":
            round_trips.append(time.perf_counter() - asked)
            asked = time.perf_counter()
        now = time.perf_counter()
        round_trips.append(now - asked)
        found.append(now - committed)
    return found, round_trips


def stale_counts(
    llavero: Llavero, pair: Pair, count: int, writers: int
) -> tuple[int, float, int, int]:
    """(stale in the pass right after the last write, how long that pass took, verifies
    after one poll interval, stale among them)."""
    keys = new_keys(llavero, count)
    for _, key in keys:
        assert pair.code(pair.b, key) == "VALID"
    clients = [httpx.Client(base_url=pair.a.base_url, timeout=30) for _ in range(writers)]
    with ThreadPoolExecutor(writers) as pool:
        jobs = [
            pool.submit(pair.disable, clients[n % writers], key_id)
            for n, (key_id, _) in enumerate(keys)
        ]
        for job in jobs:
            job.result()
    done = time.monotonic()
    for client in clients:
        client.close()

    def stale() -> int:
        return sum(pair.code(pair.b, key) != "DISABLED" for _, key in keys)

    right_after = stale()
    first_pass = time.monotonic() - done
    time.sleep(max(0.0, done + POLL_SECONDS - time.monotonic()))
    later = sum(stale() for _ in range(LATER_PASSES))
    return right_after, round(first_pass, 1), LATER_PASSES * len(keys), later


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def measure(name: str, url: str, scratch: Path, keys: int, stale_keys: int, writers: int) -> (
    RevocationFigures
):  # fmt: skip
    with two_instances(scratch, url) as (llavero, pair):
        found, round_trips = latencies(llavero, pair, keys)
        found.sort()
        right_after, first_pass, checked, later = stale_counts(llavero, pair, stale_keys, writers)
    p99 = found[min(len(found) - 1, int(len(found) * 0.99))]
    figures = RevocationFigures(
        name,
        len(found),
        ms(statistics.median(found)),
        ms(p99),
        ms(found[-1]),
        ms(statistics.median(round_trips)),
        writers,
        stale_keys,
        right_after,
        first_pass,
        checked,
        later,
    )
    print(f"{name}: {figures}", flush=True)
    return figures


def run(
    keys: int, stale_keys: int, writers: int, sqlite: bool, postgres: str | None
) -> list[RevocationFigures]:
    results = []
    if postgres is not None:
        schema = f"llavero_revocation_{os.getpid()}"
        url = fresh_schema(postgres, schema)
        try:
            with tempfile.TemporaryDirectory(prefix="llavero-revocation-") as scratch:
                results.append(measure("PostgreSQL", url, Path(scratch), keys, stale_keys, writers))
        finally:
            drop_schema(postgres, schema)
    if sqlite:
        with tempfile.TemporaryDirectory(prefix="llavero-revocation-") as scratch:
            url = f"sqlite:///{Path(scratch) / 'revocation.sqlite3'}"
            results.append(measure("SQLite", url, Path(scratch), keys, stale_keys, writers))
    return results


def table(results: Sequence[RevocationFigures]) -> str:
    lines = [
        "| database | revocations | p50 ms | p99 ms | max ms | verify round trip ms "
        "| writers | keys "
        "| stale right after (pass took) | stale after one poll |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.database} | {r.revocations} | {r.p50_ms} | {r.p99_ms} | {r.max_ms} "
            f"| {r.verify_round_trip_ms} "
            f"| {r.writers} | {r.stale_keys} "
            f"| {r.stale_right_after} of {r.stale_keys} ({r.first_pass_seconds} s) "
            f"| {r.stale_after_poll} of {r.verifies_after_poll} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--stale-keys", type=int, default=400)
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, metavar="URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    postgres = None if args.no_postgres else args.postgres
    results = run(args.keys, args.stale_keys, args.writers, not args.no_sqlite, postgres)
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
