"""KeyCache: records and known misses by hash, invalidation by key and by project, the
generation guard against caching a stale read, and bounded size."""

from __future__ import annotations

import threading

from llavero.core.cache import MISSING, KeyCache, KeyRecord
from llavero.core.restrictions import compile_restrictions


def record(key_id: str = "k1", project_id: str = "p1") -> KeyRecord:
    return KeyRecord(
        key_id=key_id,
        project_id=project_id,
        state="ACTIVE",
        valid_until=None,
        environment=None,
        restrictions=compile_restrictions({}),
        limits={},
        plan="free",
        checks=(),
    )


def test_get_put_and_missing() -> None:
    cache = KeyCache()
    assert cache.get(b"h1") is None
    cache.put(b"h1", record(), cache.generation)
    cache.put(b"h2", MISSING, cache.generation)
    assert cache.get(b"h1") == record()
    assert cache.get(b"h2") is MISSING
    assert len(cache) == 1


def test_invalidate_key_drops_every_hash_of_that_key_only() -> None:
    cache = KeyCache()
    cache.put(b"current", record("k1"), cache.generation)
    cache.put(b"previous", record("k1"), cache.generation)  # a rotation grace period
    cache.put(b"other", record("k2"), cache.generation)
    cache.invalidate_key("k1")
    assert cache.get(b"current") is None
    assert cache.get(b"previous") is None
    assert cache.get(b"other") == record("k2")


def test_invalidate_project_drops_its_keys_only() -> None:
    cache = KeyCache()
    cache.put(b"a", record("k1", "p1"), cache.generation)
    cache.put(b"b", record("k2", "p1"), cache.generation)
    cache.put(b"c", record("k3", "p2"), cache.generation)
    cache.invalidate_project("p1")
    assert (cache.get(b"a"), cache.get(b"b")) == (None, None)
    assert cache.get(b"c") == record("k3", "p2")


def test_a_read_from_before_an_invalidation_is_not_cached() -> None:
    cache = KeyCache()
    read_at = cache.generation
    cache.invalidate_key("k1")  # a revocation commits while the row is being read
    cache.put(b"h1", record("k1"), read_at)
    cache.put(b"h2", MISSING, read_at)
    assert cache.get(b"h1") is None
    assert cache.get(b"h2") is None
    cache.put(b"h1", record("k1"), cache.generation)
    assert cache.get(b"h1") == record("k1")


def test_any_invalidation_bumps_the_generation() -> None:
    cache = KeyCache()
    seen = [cache.generation]
    for invalidate in (
        lambda: cache.invalidate_key("x"),
        lambda: cache.invalidate_project("y"),
        cache.clear,
    ):
        invalidate()
        seen.append(cache.generation)
    assert seen == sorted(set(seen))


def test_clear_forgets_records_and_misses() -> None:
    cache = KeyCache()
    cache.put(b"h1", record(), cache.generation)
    cache.put(b"h2", MISSING, cache.generation)
    cache.clear()
    assert (cache.get(b"h1"), cache.get(b"h2"), len(cache)) == (None, None, 0)


def test_size_is_bounded_and_the_oldest_goes_first() -> None:
    cache = KeyCache(max_size=3, max_missing=2)
    for index in range(5):
        cache.put(f"h{index}".encode(), record(f"k{index}"), cache.generation)
    assert len(cache) == 3
    assert [cache.get(f"h{index}".encode()) is None for index in range(5)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    cache.invalidate_key("k0")  # its bookkeeping went with the eviction; nothing else drops
    assert len(cache) == 3
    for index in range(3):
        cache.put(f"m{index}".encode(), MISSING, cache.generation)
    assert sum(cache.get(f"m{index}".encode()) is MISSING for index in range(3)) <= 2


def test_concurrent_puts_and_invalidations_leave_no_stale_record() -> None:
    cache = KeyCache()
    stop = threading.Event()

    def invalidate() -> None:
        while not stop.is_set():
            cache.invalidate_key("k1")

    thread = threading.Thread(target=invalidate)
    thread.start()
    try:
        for _ in range(2000):
            cache.put(b"h1", record("k1"), cache.generation)
    finally:
        stop.set()
        thread.join()
    cache.invalidate_key("k1")
    assert cache.get(b"h1") is None


def test_an_entry_is_dropped_once_its_ttl_has_passed() -> None:
    """What bounds a missed change: after `ttl` the next verify reads the row again."""
    now = [100.0]

    def monotonic() -> float:
        return now[0]

    cache = KeyCache(ttl=60.0, monotonic=monotonic)
    cache.put(b"h1", record(), cache.generation)
    cache.put(b"h2", MISSING, cache.generation)
    now[0] += 59.9
    assert cache.get(b"h1") == record()
    assert cache.get(b"h2") is MISSING
    now[0] += 0.1
    assert cache.get(b"h1") is None
    assert cache.get(b"h2") is None
    cache.put(b"h1", record(), cache.generation)  # read again: good for another `ttl`
    assert cache.get(b"h1") == record()


def test_evicting_one_hash_of_a_rotated_key_keeps_the_other_invalidatable() -> None:
    cache = KeyCache(max_size=2)
    cache.put(b"previous", record("k1"), cache.generation)
    cache.put(b"current", record("k1"), cache.generation)
    cache.put(b"other", record("k2"), cache.generation)  # evicts b"previous", the oldest
    assert cache.get(b"previous") is None
    cache.invalidate_key("k1")
    assert (cache.get(b"current"), cache.get(b"other")) == (None, record("k2"))


def test_shared_gives_back_the_first_equal_value() -> None:
    cache = KeyCache()
    first, second = ("rpm", "p:1"), tuple(["rpm", "p:1"])
    assert second is not first
    assert cache.shared(first) is first
    assert cache.shared(second) is first
    assert cache.shared([1], key="list") == [1]
    assert cache.shared([2], key="list") == [1]
