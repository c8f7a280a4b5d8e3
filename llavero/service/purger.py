"""The purge of keys deleted more than 30 days ago, run by a serving instance.

A key can be undeleted for 30 days; after that its row goes (its audit history stays). Each
serving instance purges once when it starts and then every hour: the purge is one idempotent
`DELETE`, so instances that share a database need not take turns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from llavero.core.background import Periodic

log = logging.getLogger("llavero.purge")
PURGE_INTERVAL_SECONDS = 3600.0


class Purger:
    def __init__(self, purge: Callable[[], int], interval: float = PURGE_INTERVAL_SECONDS) -> None:
        self._purge = purge
        self._thread = Periodic("llavero-purge", interval, self.run_once, log)
        self._started = False

    def run_once(self) -> int:
        """Purge now; a failure is logged, not raised: the next hour tries again."""
        try:
            purged = self._purge()
        except Exception:  # the database may be restarting: keep serving
            log.exception("could not purge deleted keys; retrying in an hour")
            return 0
        if purged:
            log.info("purged %d keys deleted more than 30 days ago", purged)
        return purged

    def start(self) -> None:
        """Purge at once, in the caller's thread, then every `interval` seconds in a thread."""
        if self._started:
            return
        self._started = True
        self.run_once()
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()
