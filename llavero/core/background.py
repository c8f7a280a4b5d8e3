"""The periodic jobs of a serving instance (change feed, usage flush, purge) share one shape:
a daemon thread that runs a job every few seconds and survives the job's failures.

A job failing for a while (the database restarting) logs its first failure with the traceback,
a summary once a minute while it goes on, and one line when the job works again: not a
traceback every interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

SUMMARY_SECONDS = 60.0


class Periodic:
    def __init__(
        self, name: str, interval: float, job: Callable[[], object], log: logging.Logger
    ) -> None:
        self._name = name
        self._interval = interval
        self._job = job
        self._log = log
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the job every `interval` seconds until `stop`; an interval of 0 or less is off."""
        if self._interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the job now rather than at the end of the current interval."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        failing_since: float | None = None
        last_line = 0.0
        due = time.monotonic() + self._interval
        while True:
            # at a fixed rate: the job's own duration does not stretch the interval
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            if now >= due:  # woken early (`wake`), the next run stays where it was
                due = max(due + self._interval, now)
            try:
                self._job()
            except Exception as exc:  # the database may be restarting: keep the thread, try again
                now = time.monotonic()
                if failing_since is None:
                    failing_since = last_line = now
                    self._log.exception(
                        "%s failed; retrying every %s s", self._name, self._interval
                    )
                elif now - last_line >= SUMMARY_SECONDS:
                    last_line = now
                    self._log.warning(
                        "%s still failing after %.0f s (%s)",
                        self._name,
                        now - failing_since,
                        type(exc).__name__,
                    )
                continue
            if failing_since is not None:
                lasted = time.monotonic() - failing_since
                self._log.info("%s works again after %.0f s", self._name, lasted)
                failing_since = None
