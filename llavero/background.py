"""The periodic jobs of a serving instance (change feed, usage flush, purge) share one shape:
a daemon thread that runs a job every few seconds and survives the job's failures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


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
            except Exception:  # the database may be restarting: keep the thread, try again
                self._log.exception("%s failed; retrying in %s s", self._name, self._interval)
