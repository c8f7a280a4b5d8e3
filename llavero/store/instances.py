"""The registry of running Llavero processes on one database, kept by heartbeats.

Every serving process (a `llavero serve` worker, `llavero gateway`, the middleware in an app)
writes a row with how it counts rate limits and refreshes it every
`LLAVERO_INSTANCE_HEARTBEAT_SECONDS`. From
the live rows each process knows whether several processes count limits on their own (the
`memory` backend, or a shared backend that is down): then a limit multiplies by their number,
and Llavero says so in the log, in `/metrics` and on the console's limits (docs/limits.md).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError

from llavero.core.background import Periodic
from llavero.core.clock import Clock
from llavero.store import Database, tables

log = logging.getLogger("llavero.instances")
STALE_HEARTBEATS = 3
OWN_COUNTERS = "own"  # the `limiter` of a process whose shared backend is down


@dataclass(frozen=True, slots=True)
class Peer:
    kind: str
    host: str
    pid: int
    limiter: str

    @property
    def counts_alone(self) -> bool:
        return self.limiter in ("memory", OWN_COUNTERS)


def counting_apart(peers: list[Peer]) -> list[Peer]:
    """The processes that count on their own, when more than one process is live (else [])."""
    alone = [peer for peer in peers if peer.counts_alone]
    return alone if len(peers) > 1 and alone else []


class Registry:
    """This process's row, its heartbeat, and what the last heartbeat saw of the others."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        limiter_mode: Callable[[], str],
        *,
        interval: float,
        on_heartbeat: Callable[[], object] | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self._db = db
        self._clock = clock
        self._mode = limiter_mode
        self._on_heartbeat = on_heartbeat
        self._stale = timedelta(seconds=STALE_HEARTBEATS * interval)
        self._thread = Periodic("llavero-instances", interval, self.heartbeat, log)
        self._kind: str | None = None
        self._started = clock.now()
        self.peers: list[Peer] = []
        self._warned = False

    @property
    def started(self) -> bool:
        return self._kind is not None

    def start(self, kind: str) -> None:
        """Join (idempotent). A database without the registry's table yet (before `llavero db
        upgrade`) costs a warning, not the app: the heartbeat joins once the table exists."""
        if self._kind is not None:
            return
        self._kind = kind
        self._started = self._clock.now()
        try:
            self.heartbeat()
        except SQLAlchemyError as exc:
            log.warning(
                "instance registry unavailable (%s); run `llavero db upgrade`", type(exc).__name__
            )
        self._thread.start()
        REGISTRY_SOURCES.current = self

    def heartbeat(self) -> None:
        """Refresh this row (written again if others dropped it while this process stalled),
        forget processes gone silent, and read the live ones."""
        now = self._clock.now()
        mode = self._mode()
        with self._db.transaction() as session:
            refreshed = session.execute(
                update(tables.Instance)
                .where(tables.Instance.id == self.id)
                .values(heartbeat_time=now, limiter=mode)
            )
            if not getattr(refreshed, "rowcount", 0):
                session.add(self._row(now, mode))
            stale = now - self._stale
            session.execute(delete(tables.Instance).where(tables.Instance.heartbeat_time < stale))
            session.flush()
            rows = session.execute(
                select(
                    tables.Instance.kind,
                    tables.Instance.host,
                    tables.Instance.pid,
                    tables.Instance.limiter,
                ).order_by(tables.Instance.start_time)
            ).all()
        self.peers = [Peer(*row) for row in rows]
        self._report()
        if self._on_heartbeat is not None:
            self._on_heartbeat()

    def _row(self, now: datetime, mode: str) -> tables.Instance:
        return tables.Instance(
            id=self.id,
            kind=self._kind or "unknown",
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            limiter=mode,
            start_time=self._started,
            heartbeat_time=now,
        )

    def stop(self) -> None:
        self._thread.stop()
        if self._kind is None:
            return
        self._kind = None
        with self._db.transaction() as session:
            session.execute(delete(tables.Instance).where(tables.Instance.id == self.id))

    def _report(self) -> None:
        """One warning when limits start to multiply, one info line when they stop."""
        apart = counting_apart(self.peers)
        if apart and not self._warned:
            self._warned = True
            log.warning(
                "%d Llavero processes on this database, %d of them counting rate limits on "
                "their own (%s): each may allow a full limit; set LLAVERO_RATE_LIMIT_BACKEND "
                "to database or redis (docs/limits.md)",
                len(self.peers),
                len(apart),
                ", ".join(f"{peer.kind} pid {peer.pid} on {peer.host}" for peer in apart),
            )
        elif not apart and self._warned:
            self._warned = False
            log.info("rate limits are counted in one place again (%d processes)", len(self.peers))


class RegistryCollector(Collector):
    """`llavero_instances` by limiter and `llavero_limits_counted_apart`, from the last
    heartbeat of this process's registry."""

    def __init__(self) -> None:
        self.current: Registry | None = None

    def collect(self) -> Iterator[Metric]:
        peers = self.current.peers if self.current is not None else []
        instances = GaugeMetricFamily(
            "llavero_instances",
            "Live Llavero processes on this database, by how they count rate limits.",
            labels=["limiter"],
        )
        for mode in sorted({peer.limiter for peer in peers}):
            instances.add_metric([mode], sum(peer.limiter == mode for peer in peers))
        yield instances
        yield GaugeMetricFamily(
            "llavero_limits_counted_apart",
            "Processes counting rate limits on their own while others run on the same "
            "database (0 when limits hold across processes).",
            value=len(counting_apart(peers)),
        )


REGISTRY_SOURCES = RegistryCollector()
REGISTRY.register(REGISTRY_SOURCES)
