"""Key records kept in memory by hash, so that a valid key costs no database round trip.

Every write to a key or a project calls `invalidate_key` / `invalidate_project` in the process
that made it, and the change feed (`llavero.store.changes`) calls the same two methods in every
other instance: that small surface is all a multi-instance deployment needs.

Every entry also lives at most `ttl` seconds (`LLAVERO_CACHE_TTL_SECONDS`), then the next verify
reads the row again: so even a change whose message never arrived (a dropped notification, a
transaction that committed after the feed stopped waiting for it) stops a revoked key within
that bound, instead of never.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from llavero.core.restrictions import CompiledRestrictions


@dataclass(slots=True, frozen=True)
class KeyRecord:
    """What verify needs to know of one key string, with restrictions already compiled."""

    key_id: str
    project_id: str
    state: str
    valid_until: float | None  # the key's expire_time, or the end of a rotation grace period
    environment: str | None
    restrictions: CompiledRestrictions
    limits: dict[str, int]
    plan: str


class Missing:
    """A hash known to match no key: cached too, so that junk keys cannot hammer the database."""

    __slots__ = ()


MISSING: Final = Missing()


class KeyCache:
    def __init__(
        self,
        max_size: int = 1_000_000,
        max_missing: int = 100_000,
        ttl: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # each entry with the monotonic time it goes stale
        self._records: dict[str, tuple[KeyRecord, float]] = {}
        self._missing: dict[str, tuple[Missing, float]] = {}
        self._ttl = ttl
        self._monotonic = monotonic
        self._hashes_by_key: dict[str, set[str]] = {}
        self._keys_by_project: dict[str, set[str]] = {}
        self._max_size = max_size
        self._max_missing = max_missing
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, digest: str) -> KeyRecord | Missing | None:
        """The record, `MISSING` when the hash is known to match nothing, None when not cached
        or cached more than `ttl` seconds ago."""
        entry: tuple[KeyRecord | Missing, float] | None = self._records.get(
            digest
        ) or self._missing.get(digest)
        if entry is None or entry[1] <= self._monotonic():
            return None
        return entry[0]

    def put(self, digest: str, record: KeyRecord | Missing, generation: int) -> None:
        """Keep a record read at `generation`, unless an invalidation came in since: a verify
        that read a row just before a revocation must not cache the stale copy."""
        with self._lock:
            if generation != self.generation:
                return
            stale_at = self._monotonic() + self._ttl
            if isinstance(record, Missing):
                if len(self._missing) >= self._max_missing:
                    self._missing.clear()
                self._missing[digest] = (record, stale_at)
                return
            if len(self._records) >= self._max_size:
                self._evict_oldest()
            self._records[digest] = (record, stale_at)
            self._hashes_by_key.setdefault(record.key_id, set()).add(digest)
            self._keys_by_project.setdefault(record.project_id, set()).add(record.key_id)

    def invalidate_key(self, key_id: str) -> None:
        with self._lock:
            self.generation += 1
            for digest in self._hashes_by_key.pop(key_id, ()):
                self._records.pop(digest, None)

    def invalidate_project(self, project_id: str) -> None:
        with self._lock:
            self.generation += 1
            for key_id in self._keys_by_project.pop(project_id, ()):
                for digest in self._hashes_by_key.pop(key_id, ()):
                    self._records.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._records.clear()
            self._missing.clear()
            self._hashes_by_key.clear()
            self._keys_by_project.clear()

    def __len__(self) -> int:
        return len(self._records)

    def _evict_oldest(self) -> None:
        digest, (record, _) = next(iter(self._records.items()))
        del self._records[digest]
        digests = self._hashes_by_key.get(record.key_id)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._hashes_by_key[record.key_id]
