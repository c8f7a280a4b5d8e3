"""Llavero with a million keys: bulk create, first page of the key list, uncached verify, memory.

`python -m bench.scale [--keys 1000000] [--postgres URL | --no-postgres] [--no-sqlite]
[--json FILE]`
(run from the repository root). Each database gets a fresh schema and `--keys` keys spread over
`PROJECTS` projects, inserted through the fast path a bulk import would use: rows prepared in
Python with the real keyed hash (`KeyHasher`), then one executemany per batch in a transaction.
Then, on that database:

- *bulk create*: keys per second, generation + hashing + insert, end to end;
- *first page* (statistics refreshed first on PostgreSQL, see `refresh_statistics`):
  `ApiKeys.list` of every project (what the console's keys page shows an admin)
  and of one project, default page size, median of `LIST_RUNS` calls;
- *uncached verify*: `Verifier.verify` of `VERIFIES` distinct keys, each a cache miss (one
  indexed read), p50/p99;
- *memory per cached key* (on the first database only: a record is the same whatever the
  database): growth of the Python heap (tracemalloc) with every key of the database in the key
  cache, as after a warm-up of `--keys` keys (the default cache holds 1,000,000), divided by
  their number; and the source lines that allocate a record's bytes, from `PROFILED` records.
"""

from __future__ import annotations

import argparse
import gc
import json
import linecache
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, select, text

from bench.scenarios import ROOMY_PLANS
from llavero.config import Settings
from llavero.core import keyformat
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from llavero.store import tables
from llavero.store.key_lookup import KeyRecords

DEFAULT_POSTGRES = os.environ.get(
    "LLAVERO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PROJECTS = 10
BATCH = 20_000
LIST_RUNS = 15
VERIFIES = 2_000
PROFILED = 10_000
SECRET = "bench-scale-secret-0123456789abcdef"
_BYTE_TO_BASE62 = bytes(ord(keyformat.ALPHABET[b % 62]) for b in range(256))


@dataclass
class ScaleFigures:
    database: str
    keys: int
    bulk_create_keys_per_s: float
    list_all_projects_ms: float
    list_one_project_ms: float
    uncached_verify_p50_ms: float
    uncached_verify_p99_ms: float
    cached_key_bytes: float | None = None
    cache_profile: list[str] | None = None


def fast_key(prefix: str) -> str:
    """A well-formed key from 32 random bytes: `keyformat.generate` draws each character with
    `secrets.choice`, 30 s for a million; the bench needs shape and checksum, not secrecy."""
    body = os.urandom(keyformat.RANDOM_LENGTH).translate(_BYTE_TO_BASE62).decode()
    return f"{prefix}_{body}{keyformat.checksum(prefix, body)}"


# Every key row of the bench is alike but for these columns.
VARYING = ("id", "project_id", "display_name", "key_hash", "last4", "create_time", "update_time")
CONSTANT: dict[str, Any] = {
    "previous_hash": None,
    "previous_last4": None,
    "previous_expire_time": None,
    "state": "ACTIVE",
    "state_before_delete": None,
    "environment": None,
    "restrictions": {},
    "annotations": {},
    "limits": {},
    "created_by": "bench",
    "expire_time": None,
    "delete_time": None,
    "last_used_time": None,
    "last_used_ip": None,
    "leak_time": None,
    "leak_url": None,
    "leak_source": None,
}


class RowWriter:
    """Key rows straight to the driver (`executemany` of prepared tuples), values converted
    once by the column types' own bind processors. SQLAlchemy's insert spent 40 % of a bulk
    create converting the same constants row after row."""

    def __init__(self, llavero: Llavero) -> None:
        table = tables.Key.__table__
        assert isinstance(table, Table)
        dialect = llavero.db.engine.dialect
        self.columns = [column.name for column in table.columns]
        assert set(self.columns) == set(VARYING) | set(CONSTANT)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.sql = (
            f"INSERT INTO {table.name} ({', '.join(self.columns)}) "
            f"VALUES ({', '.join(mark for _ in self.columns)})"
        )
        convert_time = table.c.create_time.type.bind_processor(dialect) or (lambda v: v)
        self.convert_time: Callable[[Any], Any] = convert_time
        self.constants = {
            name: self._bound(table.c[name].type, dialect, value)
            for name, value in CONSTANT.items()
        }

    @staticmethod
    def _bound(column_type: Any, dialect: Any, value: Any) -> Any:
        """The value as the driver takes it; psycopg has no processor for JSON (SQLAlchemy
        wraps it at execution), and takes the JSON text for a json column."""
        process = column_type.bind_processor(dialect)
        if process is not None:
            return process(value)
        return json.dumps(value) if isinstance(value, dict) else value

    def row(self, key_id: str, project_id: str, name: str, digest: str, last4: str,
            created: datetime) -> tuple[Any, ...]:  # fmt: skip
        stamp = self.convert_time(created)
        varying = {
            "id": key_id, "project_id": project_id, "display_name": name, "key_hash": digest,
            "last4": last4, "create_time": stamp, "update_time": stamp,
        }  # fmt: skip
        return tuple(varying[c] if c in varying else self.constants[c] for c in self.columns)


def bulk_create(
    llavero: Llavero, project_ids: Sequence[str], count: int
) -> tuple[float, list[str]]:
    """Keys per second (generation, keyed hash and insert) and a sample of the key strings."""
    writer = RowWriter(llavero)
    prefix, digest = llavero.ctx.key_prefix, llavero.ctx.hasher.hash
    sample_every = max(1, count // (VERIFIES * 2))
    sample: list[str] = []
    batch: list[tuple[Any, ...]] = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    with llavero.db.transaction() as session:
        connection = session.connection()
        for index in range(count):
            key = fast_key(prefix)
            if index % sample_every == 0:
                sample.append(key)
            batch.append(
                writer.row(
                    str(uuid.uuid4()),
                    project_ids[index % len(project_ids)],
                    f"key {index}",
                    digest(key),
                    key[-4:],
                    start + timedelta(seconds=index),
                )  # fmt: skip
            )
            if len(batch) == BATCH:
                connection.exec_driver_sql(writer.sql, batch)
                batch = []
        if batch:
            connection.exec_driver_sql(writer.sql, batch)
    return count / (time.perf_counter() - began), sample


def median_ms(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def uncached_verifies(llavero: Llavero, sample: Sequence[str]) -> tuple[float, float]:
    """p50 and p99 in ms of verifies that each read their key from the database."""
    verify = llavero.verifier.verify
    chosen = random.sample(list(sample), min(VERIFIES, len(sample)))
    llavero.ctx.cache.clear()
    times = []
    for key in chosen:
        began = time.perf_counter()
        code = verify(VerifyRequest(key)).code
        times.append((time.perf_counter() - began) * 1000)
        if code != "VALID":
            raise SystemExit(f"an inserted key verified as {code}: the figures mean nothing")
    quantiles = statistics.quantiles(times, n=100)
    return quantiles[49], quantiles[98]


def fill_cache(llavero: Llavero, limit: int | None) -> int:
    """Cache the records of `limit` keys (all when None), built as a cache miss builds them
    from rows streamed in batches (plain rows: ORM objects made loading a million take ten
    minutes under tracemalloc on a loaded machine). Returns how many records the cache holds."""
    cache = llavero.ctx.cache
    records = KeyRecords(llavero.db, llavero.settings, llavero.plans.plans, cache)
    query = select(tables.Key.__table__).limit(limit).execution_options(yield_per=BATCH)
    with llavero.db.reading() as session:
        for row in session.execute(query):
            record = records.record(row, None, is_previous=False)  # what a cache miss keeps
            cache.put(bytes.fromhex(row.key_hash), record, cache.generation)
    return len(cache)


def cached_key_bytes(llavero: Llavero) -> tuple[float, list[str]]:
    """Heap growth per cached record with every key cached, and the top source lines of a
    record's bytes (from `PROFILED` records). Garbage is collected before each reading."""
    cache = llavero.ctx.cache
    cache.clear()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    sample = fill_cache(llavero, PROFILED)
    gc.collect()
    grown = tracemalloc.take_snapshot().compare_to(before, "lineno")
    profile = [
        f"{stat.size_diff / sample:5.0f} bytes  {Path(where.filename).name}:{where.lineno}  "
        f"{linecache.getline(where.filename, where.lineno).strip()[:70]}"
        for stat in grown[:10]
        if (where := stat.traceback[0])
    ]
    del before, grown
    cache.clear()
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    cached = fill_cache(llavero, None)
    gc.collect()
    per_record = (tracemalloc.get_traced_memory()[0] - start) / cached
    tracemalloc.stop()
    cache.clear()
    return per_record, profile


def refresh_statistics(llavero: Llavero) -> None:
    """ANALYZE after a bulk load, as autovacuum would within a minute and as any bulk import
    should: with the statistics of an empty table PostgreSQL sorted all the keys for the first
    list page (1.8 s) instead of walking `ix_keys_created` (0.1 ms). Not on SQLite: there,
    statistics lead the verify query to scan a project's keys instead of the hash index."""
    with llavero.db.transaction() as session:
        session.execute(text("ANALYZE keys"))
        session.execute(text("ANALYZE projects"))


def measure(name: str, url: str, count: int, data_dir: Path, memory: bool) -> ScaleFigures:
    plans = data_dir / "plans.toml"
    plans.write_text(ROOMY_PLANS)  # thousands of verifies a second must not be refused
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=SECRET,
        change_poll_seconds=0,
        plans_file=plans,
    )
    llavero = Llavero(settings)
    try:
        llavero.upgrade()
        admin = Actor.system("bench")
        project_ids = [
            llavero.projects.create(admin, f"Scale {n}", f"scale-{n:03d}").id
            for n in range(PROJECTS)
        ]
        print(f"{name}: inserting {count:,} keys …", flush=True)
        rate, sample = bulk_create(llavero, project_ids, count)
        print(f"{name}: {rate:,.0f} keys/s", flush=True)
        if not llavero.db.is_sqlite:
            refresh_statistics(llavero)
        figures = ScaleFigures(
            database=name,
            keys=count,
            bulk_create_keys_per_s=rate,
            list_all_projects_ms=median_ms(lambda: llavero.keys.list(admin), LIST_RUNS),
            list_one_project_ms=median_ms(
                lambda: llavero.keys.list(admin, project_ids[0]), LIST_RUNS
            ),
            uncached_verify_p50_ms=0.0,
            uncached_verify_p99_ms=0.0,
        )
        figures.uncached_verify_p50_ms, figures.uncached_verify_p99_ms = uncached_verifies(
            llavero, sample
        )
        if memory:
            print(f"{name}: caching {count:,} keys …", flush=True)
            figures.cached_key_bytes, figures.cache_profile = cached_key_bytes(llavero)
        print(f"{name}: {figures}", flush=True)
        return figures
    finally:
        llavero.close()
        llavero.db.dispose()


def fresh_schema(url: str, schema: str) -> str:
    """A URL whose connections use a new, empty schema (dropped first if a run left one)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{url}?options=-csearch_path%3D{schema}"


def drop_schema(url: str, schema: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def run(count: int, sqlite: bool, postgres: str | None) -> list[ScaleFigures]:
    results = []
    with tempfile.TemporaryDirectory(prefix="llavero-scale-") as scratch:
        if sqlite:
            sqlite_url = f"sqlite:///{Path(scratch) / 'scale.sqlite3'}"
            results.append(measure("SQLite", sqlite_url, count, Path(scratch), memory=True))
        if postgres is not None:
            schema = f"llavero_scale_{os.getpid()}"
            try:
                url = fresh_schema(postgres, schema)
            except Exception as exc:  # noqa: BLE001 — any reason PostgreSQL is not usable
                print(f"PostgreSQL skipped: {type(exc).__name__}", flush=True)
                return results
            try:
                memory = not results
                results.append(measure("PostgreSQL", url, count, Path(scratch), memory))
            finally:
                drop_schema(postgres, schema)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, metavar="URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    results = run(args.keys, not args.no_sqlite, None if args.no_postgres else args.postgres)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
