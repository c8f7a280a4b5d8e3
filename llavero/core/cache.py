"""Key records kept in memory by hash, so that a valid key costs no database round trip.

Every write to a key or a project calls `invalidate_key` / `invalidate_project` in the process
that made it, and the change feed (`llavero.store.changes`) calls the same two methods in every
other instance: that small surface is all a multi-instance deployment needs.

Every entry also lives at most `ttl` seconds (`LLAVERO_CACHE_TTL_SECONDS`), then the next verify
reads the row again: so even a change whose message never arrived (a dropped notification, a
transaction that committed after the feed stopped waiting for it) stops a revoked key within
that bound, instead of never.

A million keys must fit a worker (`bench.cache_memory`: bytes per cached key), so an entry is
small: the raw 32-byte digest as its dict key, the record's staleness in the record itself
(no tuple per entry), one digest (not a set) per key in the index, and what many keys have in
common (project, plan, limit checks, compiled restrictions) shared through `shared`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from llavero.core.limits import Check
from llavero.core.restrictions import CompiledRestrictions

T = TypeVar("T")
MAX_SHARED: Final = 100_000  # distinct shared values kept; past that the table starts over


# No `slots=True`: mypyc compiles a slotted dataclass as a plain Python class, and its own
# (native) class is as small, a C struct. The pure-Python fallback pays a `__dict__`.
@dataclass
class KeyRecord:
    """What verify needs to know of one key string, with what it computes from it done once:
    restrictions compiled and the checks of a verify of cost 0 built."""

    key_id: str
    project_id: str
    state: str
    valid_until: float | None  # the key's expire_time, or the end of a rotation grace period
    environment: str | None
    restrictions: CompiledRestrictions
    limits: Mapping[str, int]
    plan: str
    checks: tuple[Check, ...]  # the plan's and the key's limits for a verify of cost 0
    stale_at: float = field(default=0.0, compare=False, repr=False)  # set by `KeyCache.put`


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
        self._records: dict[bytes, KeyRecord] = {}
        self._missing: dict[bytes, float] = {}  # each known miss with the time it goes stale
        self._ttl = ttl
        self._monotonic = monotonic
        # key id -> its digest, or a tuple of them (a rotated key during its grace period)
        self._digests_by_key: dict[str, bytes | tuple[bytes, ...]] = {}
        self._keys_by_project: dict[str, set[str]] = {}
        self._shared: dict[Hashable, object] = {}
        self._max_size = max_size
        self._max_missing = max_missing
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, digest: bytes) -> KeyRecord | Missing | None:
        """The record, `MISSING` when the hash is known to match nothing, None when not cached
        or cached more than `ttl` seconds ago."""
        record = self._records.get(digest)
        if record is not None:
            return record if record.stale_at > self._monotonic() else None
        stale_at = self._missing.get(digest)
        if stale_at is None or stale_at <= self._monotonic():
            return None
        return MISSING

    def put(self, digest: bytes, record: KeyRecord | Missing, generation: int) -> None:
        """Keep a record read at `generation`, unless an invalidation came in since: a verify
        that read a row just before a revocation must not cache the stale copy."""
        with self._lock:
            if generation != self.generation:
                return
            stale_at = self._monotonic() + self._ttl
            if isinstance(record, Missing):
                if len(self._missing) >= self._max_missing:
                    self._missing.clear()
                self._missing[digest] = stale_at
                return
            if len(self._records) >= self._max_size:
                self._evict_oldest()
            record.stale_at = stale_at
            self._records[digest] = record
            self._index(record.key_id, digest)
            self._keys_by_project.setdefault(record.project_id, set()).add(record.key_id)

    def shared(self, value: T, key: Hashable | None = None) -> T:
        """An equal value already held by the cache, else `value` (kept for the next caller):
        so a million records of a few projects and plans hold a few copies of each."""
        found = self._shared.get(value if key is None else key)
        if found is not None:
            return found  # type: ignore[return-value]  # stored under this key below
        if len(self._shared) >= MAX_SHARED:
            self._shared.clear()
        self._shared[value if key is None else key] = value
        return value

    def invalidate_key(self, key_id: str) -> None:
        with self._lock:
            self.generation += 1
            self._drop_key(key_id)

    def invalidate_project(self, project_id: str) -> None:
        with self._lock:
            self.generation += 1
            for key_id in self._keys_by_project.pop(project_id, ()):
                self._drop_key(key_id)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._records.clear()
            self._missing.clear()
            self._digests_by_key.clear()
            self._keys_by_project.clear()
            self._shared.clear()

    def __len__(self) -> int:
        return len(self._records)

    def _index(self, key_id: str, digest: bytes) -> None:
        known = self._digests_by_key.get(key_id)
        if known is None or known == digest:
            self._digests_by_key[key_id] = digest
        elif isinstance(known, bytes):
            self._digests_by_key[key_id] = (known, digest)
        elif digest not in known:
            self._digests_by_key[key_id] = (*known, digest)

    def _drop_key(self, key_id: str) -> None:
        known = self._digests_by_key.pop(key_id, ())
        for digest in (known,) if isinstance(known, bytes) else known:
            self._records.pop(digest, None)

    def _evict_oldest(self) -> None:
        digest, record = next(iter(self._records.items()))
        del self._records[digest]
        known = self._digests_by_key.get(record.key_id)
        if known is None:
            return
        left = tuple(d for d in ((known,) if isinstance(known, bytes) else known) if d != digest)
        if not left:
            del self._digests_by_key[record.key_id]
        else:
            self._digests_by_key[record.key_id] = left[0] if len(left) == 1 else left
