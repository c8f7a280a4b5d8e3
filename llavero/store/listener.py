"""PostgreSQL `LISTEN` for the change feed (`llavero.store.changes`): the low-latency half of it.

One thread per instance holds one connection of its own (outside the pool, autocommit) and
hands every notification's payload to the feed as soon as it arrives. When the connection
drops (database restart, failover, a killed backend) it logs one warning, reconnects every
`RETRY_SECONDS`, and once listening again asks the feed to read the `changes` table: what
committed while nobody listened is caught up from there, so a lost notification costs only
time, never a change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final, cast

import psycopg
from psycopg import sql
from sqlalchemy import Engine

log = logging.getLogger("llavero.changes")
RETRY_SECONDS: Final = 1.0
WAIT_SECONDS: Final = 0.5  # one wait for notifications: how soon `stop` is noticed
PING_SECONDS: Final = 5.0  # an idle connection is checked this often, so a dead one is noticed


class Listener:
    def __init__(
        self,
        engine: Engine,
        channel: str,
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._channel = channel
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in force (tests wait on it)
        self.backend_pid: int | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="llavero-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        lost = False
        while not self._stop.is_set():
            try:
                self._listen(recovering=lost)
            except (psycopg.Error, OSError) as error:
                self.listening.clear()
                if not lost:
                    log.warning(
                        "change feed: lost the PostgreSQL LISTEN connection (%s); reconnecting "
                        "every %s s, then catching up from the changes table",
                        type(error).__name__,
                        RETRY_SECONDS,
                    )
                lost = True
                self._stop.wait(RETRY_SECONDS)

    def _listen(self, recovering: bool) -> None:
        """LISTEN, catch up, then hand over notifications until stopped or the line drops."""
        connection = self._connect()
        try:
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self.backend_pid = connection.info.backend_pid
            self.listening.set()
            self._on_connect()  # after LISTEN: nothing can fall between the read and the wait
            if recovering:
                log.info("change feed: listening on PostgreSQL again")
            pinged = time.monotonic()
            while not self._stop.is_set():
                for notification in connection.notifies(timeout=WAIT_SECONDS):
                    self._deliver(notification.payload)
                if time.monotonic() - pinged > PING_SECONDS:
                    connection.execute("SELECT 1")
                    pinged = time.monotonic()
        finally:
            self.listening.clear()
            self.backend_pid = None
            connection.close()

    def _deliver(self, payload: str) -> None:
        try:
            self._on_notify(payload)
        except Exception:  # the poll applies it again: keep listening
            log.exception("change feed: applying a notification failed")

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """A connection made as the engine makes them (same URL and options), but kept out of
        its pool: it lives as long as the listener and must not run in a transaction."""
        proxied = self._engine.raw_connection()
        connection = cast(psycopg.Connection[tuple[object, ...]], proxied.driver_connection)
        proxied.detach()
        connection.rollback()  # a pool ping may have opened one
        connection.autocommit = True
        return connection
