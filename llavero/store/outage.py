"""The state of a shared rate-limit backend (Redis, or the database) seen from one process.

Two jobs, one lock. Single-flight reconnect: while the backend is down, one caller per back-off
interval probes it and every other caller falls back at once, without touching it, so a dead
Redis costs one failed attempt per interval, not one per request in flight. Readable logs: one
warning when the outage starts, a summary every `summary_seconds` while it lasts (how long, how
many answers came from in-process counters), and one line when it ends; never a traceback per
request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from llavero.metrics import RATE_LIMIT_BACKEND_ERRORS

BACKOFF_SECONDS = 5.0
SUMMARY_SECONDS = 60.0


class Outage:
    def __init__(
        self,
        backend: str,
        log: logging.Logger,
        *,
        backoff_seconds: float = BACKOFF_SECONDS,
        summary_seconds: float = SUMMARY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._log = log
        self._backoff = backoff_seconds
        self._summary = summary_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._last_summary = 0.0
        self._fallbacks = 0
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def may_try(self) -> bool:
        """Whether this caller may call the backend now; False means: use the fallback.

        Lock-free while the backend is up (the hot path); while it is down, only the caller
        that claims the probe of this interval gets True."""
        if self._down_since is None:
            return True
        with self._lock:
            if self._down_since is None:
                return True
            now = self._monotonic()
            if now < self._retry_at:
                self._fallbacks += 1
                return False
            # This caller probes; the next probe is due an interval later even if this one
            # never reports back (a cancelled request).
            self._retry_at = now + self._backoff
            return True

    def failed(self, error: BaseException) -> None:
        RATE_LIMIT_BACKEND_ERRORS.inc()
        with self._lock:
            now = self._monotonic()
            self._retry_at = now + self._backoff
            self._failures += 1
            self._fallbacks += 1
            if self._down_since is None:
                self._down_since = self._last_summary = now
                message = "%s failed (%s); using in-process counters, one retry every %.0f s"
                self._log.warning(message, self._backend, type(error).__name__, self._backoff)
                return
            if now - self._last_summary < self._summary:
                return
            self._last_summary = now
            lasted, fallbacks, failures = now - self._down_since, self._fallbacks, self._failures
        self._log.warning(
            "%s still down after %.0f s (%s); %d answers from in-process counters, "
            "%d failed attempts so far",
            self._backend,
            lasted,
            type(error).__name__,
            fallbacks,
            failures,
        )

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            lasted = self._monotonic() - self._down_since
            fallbacks = self._fallbacks
            self._down_since = None
            self._fallbacks = self._failures = 0
        self._log.info(
            "%s is back after %.0f s (%d answers came from in-process counters); "
            "shared counters resume",
            self._backend,
            lasted,
            fallbacks,
        )
