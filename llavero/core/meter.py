"""Usage metering: every verify of a known key counted per key, minute and outcome, plus units.

Counting must not cost a database write per verify, so `UsageMeter.record` only bumps a counter
in a dict under a lock held for a few dictionary operations. A flusher thread swaps that dict
out every `usage_flush_seconds` and writes it in one transaction: the minute buckets, the same
deltas added into their hour and day buckets (the rollup, so minute, hour and day series always
add up to the same totals), and `last_used_time` / `last_used_ip` of each key verified `VALID`
("last used" means used successfully: a refused verify is counted but moves neither). A clean
shutdown (`close`) flushes everything; a crash loses at most the last flush interval. When the
database refuses a flush, the deltas go back into the buffer and the next tick retries them.

Units reported after the answer (`POST /v1/usage:report`) are counted under the code
`REPORTED` with zero requests, so that they add to the units of a bucket without adding a verify.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from mypy_extensions import mypyc_attr

from llavero import metrics
from llavero.config import Settings
from llavero.core.background import Periodic
from llavero.core.clock import Clock
from llavero.core.codes import REPORTED, Code

log = logging.getLogger("llavero.usage")

GRANULARITIES: Final[Mapping[str, int]] = {"minute": 60, "hour": 3600, "day": 86400}
PRUNE_EVERY_SECONDS: Final = 3600.0
VALID: Final = Code.VALID  # a constant to compiled code (`llavero.core.verify.VALID`)

# (key_id, project_id, minute_start, code) -> [requests, units]
Deltas = dict[tuple[str, str, int, str], list[int]]
# key_id -> (time, ip) of its latest VALID verify
LastUsed = dict[str, tuple[float, str | None]]


class UsageStore(Protocol):
    """Where the counts go (`llavero.store.metering.UsageWriter` on the database)."""

    def add(self, rows: list[dict[str, Any]], last_used: LastUsed) -> None:
        """Add `rollup` rows to their buckets and move `last_used`, in one transaction."""

    def prune(self, cutoffs: Mapping[str, datetime]) -> int:
        """Delete the buckets of each granularity older than its cutoff; returns how many."""


class Tally:
    """The counts since the last flush, under one lock held for a few dict operations: what a
    verify pays for metering. A native class (mypyc builds it in C), unlike `UsageMeter`: its
    attributes are read by offset, not looked up by name, and `Verifier` calls `record` as C
    (`Verifier._answer`, meter included, 6,200 -> 4,300 instructions: bench/notes.md item 15)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: Deltas = {}
        self.last_used: LastUsed = {}
        self.verifies: dict[str, int] = {}

    def record(
        self, key_id: str, project_id: str, code: str, units: int, ip: str | None, now: float
    ) -> None:
        """Count one verify of a known key, whatever its code: O(1), no I/O."""
        second = int(now)
        bucket = (key_id, project_id, second - second % 60, code)
        with self.lock:
            counts = self.pending.get(bucket)
            if counts is None:
                self.pending[bucket] = [1, units]
            else:
                counts[0] += 1
                counts[1] += units
            if code == VALID:
                self.last_used[key_id] = (now, ip)
            self.verifies[code] = self.verifies.get(code, 0) + 1

    def record_unmatched(self, code: str) -> None:
        """A verify that matched no key (MALFORMED, NOT_FOUND): counted for Prometheus only,
        since there is no key or project to store it under."""
        with self.lock:
            self.verifies[code] = self.verifies.get(code, 0) + 1

    def record_units(self, key_id: str, project_id: str, units: int, now: float) -> None:
        """Units learned after the answer (usage:report): code REPORTED, zero requests."""
        bucket = (key_id, project_id, int(now // 60) * 60, REPORTED)
        with self.lock:
            counts = self.pending.setdefault(bucket, [0, 0])
            counts[1] += units

    def take(self) -> tuple[Deltas, LastUsed]:
        """What was counted since the last `take`, leaving the tally empty."""
        with self.lock:
            deltas, self.pending = self.pending, {}
            last_used, self.last_used = self.last_used, {}
        return deltas, last_used

    def put_back(self, deltas: Deltas, last_used: LastUsed) -> None:
        """Counts taken but not written: added back, a newer `last_used` kept."""
        with self.lock:
            for bucket, (requests, units) in deltas.items():
                counts = self.pending.setdefault(bucket, [0, 0])
                counts[0] += requests
                counts[1] += units
            for key_id, used in last_used.items():
                newer = self.last_used.get(key_id)
                if newer is None or newer[0] < used[0]:
                    self.last_used[key_id] = used


# A Python class with compiled methods (setup.py): `llavero.metrics` holds meters in a WeakSet,
# and mypyc's native classes take no weak references. The counting is its `tally`'s.
@mypyc_attr(native_class=False)
class UsageMeter:
    def __init__(self, settings: Settings, clock: Clock, store: UsageStore) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.tally = Tally()
        self.record = self.tally.record
        self.record_unmatched = self.tally.record_unmatched
        self.record_units = self.tally.record_units
        self._flush_lock = threading.Lock()
        interval = max(settings.usage_flush_seconds, 0.01)
        self._flusher = Periodic("llavero-usage", interval, self._tick, log)
        self._next_prune = 0.0
        metrics.USAGE_SOURCES.add(self)

    # -- what Prometheus reads at scrape time ---------------------------------------------------

    def verify_counts(self) -> dict[str, int]:
        with self.tally.lock:
            return dict(self.tally.verifies)

    def buffered_buckets(self) -> int:
        return len(self.tally.pending)

    # -- flushing --------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write what was counted since the last flush; returns how many minute buckets.

        On a database error the deltas go back into the buffer (nothing is lost) and the error
        propagates; the flusher thread logs it and retries on its next tick. A connection lost
        during COMMIT itself is ambiguous: the batch is then retried, counted twice rather than
        lost if that commit had in fact landed.
        """
        with self._flush_lock:
            deltas, last_used = self.tally.take()
            if not deltas and not last_used:
                return 0
            started = time.perf_counter()
            try:
                self.store.add(rollup(deltas), last_used)
            except BaseException:
                self.tally.put_back(deltas, last_used)
                metrics.USAGE_FLUSH_FAILURES.inc()
                raise
            metrics.USAGE_FLUSH_SECONDS.observe(time.perf_counter() - started)
            return len(deltas)

    def prune(self, now: float) -> int:
        """Delete buckets older than the retention of their granularity; returns how many."""
        settings = self.settings
        retention_days = {
            "minute": settings.usage_retention_minute_days,
            "hour": settings.usage_retention_hour_days,
            "day": settings.usage_retention_day_days,
        }
        cutoffs = {
            granularity: datetime.fromtimestamp(now - days * 86400, UTC)
            for granularity, days in retention_days.items()
        }
        return self.store.prune(cutoffs)

    def start(self) -> None:
        """Flush every `usage_flush_seconds` and prune every hour, in a daemon thread."""
        self._flusher.start()

    def close(self) -> None:
        """Clean shutdown: stop the flusher, then flush everything still buffered."""
        self._flusher.stop()
        try:
            self.flush()
        except Exception:
            log.exception("could not write the last usage counts at shutdown; they are lost")
        finally:
            metrics.USAGE_SOURCES.discard(self)

    def _tick(self) -> None:
        """A failure here keeps every count buffered (see `flush`); the next tick retries."""
        self.flush()
        now = self.clock.time()
        if now >= self._next_prune:
            self.prune(now)
            self._next_prune = now + PRUNE_EVERY_SECONDS


def rollup(deltas: Deltas) -> list[dict[str, Any]]:
    """Bucket rows for every granularity: each minute delta is also added to its hour and day.

    Rows come sorted by primary key, so that two instances flushing the same buckets lock them
    in the same order (no deadlock on PostgreSQL)."""
    merged: dict[tuple[str, str, int, str], list[Any]] = {}
    for (key_id, project_id, minute, code), (requests, units) in deltas.items():
        for granularity, seconds in GRANULARITIES.items():
            row = merged.setdefault(
                (key_id, granularity, minute - minute % seconds, code), [project_id, 0, 0]
            )
            row[1] += requests
            row[2] += units
    return [
        {
            "key_id": key_id,
            "granularity": granularity,
            "bucket_start": datetime.fromtimestamp(start, UTC),
            "code": code,
            "project_id": project_id,
            "requests": requests,
            "units": units,
        }
        for (key_id, granularity, start, code), (project_id, requests, units) in sorted(
            merged.items()
        )
    ]


__all__ = ["GRANULARITIES", "REPORTED", "Tally", "UsageMeter", "UsageStore", "rollup"]
