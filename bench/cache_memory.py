"""Bytes per cached key at a million keys: what the default key cache costs a worker.

`python -m bench.cache_memory [--keys 1000000] [--projects 100] [--json FILE]`
(run from the repository root).

Records are built as a cache miss builds them (`Verifier._record` on a key row) and put in the
cache under their digest, for `--keys` unrestricted keys without limits of their own, spread
over `--projects` projects on the free plan: the common case. The figure is the growth of the
traced heap (tracemalloc, no snapshots) divided by the number of keys cached. Target: 512 bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import tracemalloc
import uuid
from pathlib import Path
from types import SimpleNamespace

from llavero.config import Settings
from llavero.service import Llavero

TARGET = 512


def bytes_per_key(llavero: Llavero, keys: int, projects: int) -> float:
    verifier, cache, digest = llavero.verifier, llavero.ctx.cache, llavero.ctx.hasher.digest
    project_ids = [str(uuid.uuid4()) for _ in range(projects)]
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for index in range(keys):
        row = SimpleNamespace(  # the columns of tables.Key that a record is built from
            id=str(uuid.uuid4()),
            project_id=project_ids[index % projects],
            state="ACTIVE",
            expire_time=None,
            environment=None,
            restrictions={},
            limits={},
        )
        record = verifier._record(row, None, is_previous=False)  # type: ignore[arg-type]
        cache.put(digest(f"bench-key-{index}"), record, cache.generation)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (after - before) / len(cache)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llavero-cache-memory-") as scratch:
        settings = Settings(
            data_dir=Path(scratch),
            secret_key="bench-cache-memory-secret-0123456789",
            cache_size=args.keys,
        )
        llavero = Llavero(settings)
        figure = bytes_per_key(llavero, args.keys, args.projects)
        llavero.db.dispose()
    print(f"{figure:.0f} bytes per cached key at {args.keys:,} keys (target ≤ {TARGET})")
    if args.json is not None:
        figures = {"bytes_per_key": figure, "keys": args.keys, "target": TARGET}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
