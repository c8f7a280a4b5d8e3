"""The service layer: the one place where domain rules live. The API, the console and the CLI
call `Llavero`; none of them touches the database."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from llavero.config import Settings
from llavero.core.background import Periodic
from llavero.core.cache import KeyCache
from llavero.core.clock import SYSTEM_CLOCK, Clock
from llavero.core.keyformat import KeyHasher
from llavero.core.meter import UsageMeter
from llavero.core.plans import load_plans
from llavero.core.verify import Verifier
from llavero.errors import AlreadyExists
from llavero.service.alerts import Alerts
from llavero.service.apikeys import ApiKeys
from llavero.service.audit import Audit
from llavero.service.billing import Billing
from llavero.service.context import Actor, Context
from llavero.service.delivery import Dispatcher
from llavero.service.federation import Federation
from llavero.service.leaks import Leaks
from llavero.service.members import Members
from llavero.service.pagination import PageTokens
from llavero.service.plans import PlanCatalog
from llavero.service.projects import Projects
from llavero.service.purger import Purger
from llavero.service.secret_scanning import SignatureChecker
from llavero.service.sessions import Sessions
from llavero.service.tokens import Tokens
from llavero.service.usage import Usage
from llavero.service.usage_report import UsageReports
from llavero.service.users import Users
from llavero.service.webhooks import Webhooks
from llavero.store import Database, DatabaseTimeouts
from llavero.store.changes import KEY, PROJECT, TOKEN, ChangeFeed
from llavero.store.db_limiter import DatabaseLimiter
from llavero.store.instances import OWN_COUNTERS, Registry
from llavero.store.key_lookup import KeyRecords
from llavero.store.limiters import create_limiter
from llavero.store.metering import UsageWriter

log = logging.getLogger("llavero")
SECRET_FILE = "hash-secret"

__all__ = ["Actor", "Bootstrap", "Llavero"]


def load_secret(settings: Settings) -> bytes:
    """The keyed-hash secret: from settings, else generated once into the data dir (0600)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def database_timeouts(settings: Settings) -> DatabaseTimeouts:
    return DatabaseTimeouts(
        connect=settings.database_connect_timeout_seconds,
        statement=settings.database_statement_timeout_seconds,
        pool=settings.database_pool_timeout_seconds,
    )


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What `llavero serve` prints on an empty database, once."""

    email: str
    signin_token: str
    management_token: str


class Llavero:
    def __init__(self, settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings or Settings()
        secret = load_secret(self.settings)
        self.ctx = Context(
            settings=self.settings,
            db=Database(self.settings.sqlalchemy_url, database_timeouts(self.settings)),
            clock=clock,
            hasher=KeyHasher(secret),
            cache=KeyCache(
                self.settings.cache_size,
                ttl=self.settings.cache_ttl_seconds,
                monotonic=clock.monotonic,
            ),
            page_tokens=PageTokens(secret),
        )
        self.users = Users(self.ctx)
        self.sessions = Sessions(self.ctx)
        self.tokens = Tokens(self.ctx)
        self.projects = Projects(self.ctx)
        self.members = Members(self.ctx)
        self.federation = Federation(self.ctx)
        self.keys = ApiKeys(self.ctx)
        self.leaks = Leaks(self.ctx, self.keys, self.tokens)
        self.secret_scanning = SignatureChecker(
            self.settings.github_secret_scanning_keys, clock=clock
        )
        self.audit = Audit(self.ctx)
        self.plans = PlanCatalog(load_plans(self.settings))
        self.limiter = create_limiter(self.settings, self.ctx.db)
        self.billing = Billing(self.ctx, self.plans)
        self.usage_meter = UsageMeter(self.settings, clock, UsageWriter(self.ctx.db))
        self.usage = Usage(self.ctx)
        self.usage_reports = UsageReports(
            self.ctx, self.limiter, self.plans, self.usage_meter.record_units
        )
        self.verifier = Verifier(
            self.ctx,
            KeyRecords(self.ctx.db, self.settings, self.plans.plans, self.ctx.cache),
            self.limiter,
            self.plans.plans,
            self.usage_meter,
        )
        self.webhooks = Webhooks(self.ctx)
        self.alerts = Alerts(self.ctx, self.plans)
        self.dispatcher = Dispatcher(self.ctx)
        self._alert_checks = Periodic(
            "llavero-alerts", self.settings.alert_check_seconds, self.alerts.check, log
        )
        self._feed: ChangeFeed | None = None
        self._purger: Purger | None = None
        self.instances = Registry(
            self.ctx.db,
            clock,
            self.limiter_mode,
            interval=self.settings.instance_heartbeat_seconds,
            on_heartbeat=self._drop_ended_counters,
        )

    @property
    def db(self) -> Database:
        return self.ctx.db

    def upgrade(self) -> None:
        self.ctx.db.upgrade()

    def limiter_mode(self) -> str:
        """How this process counts limits now, for the instance registry."""
        outage = getattr(self.limiter, "outage", None)
        if outage is not None and outage.down:
            return OWN_COUNTERS
        return self.settings.rate_limit_backend

    def register(self, kind: str) -> None:
        """Join the instance registry (idempotent): other processes then know how this one
        counts limits, and it knows how they do."""
        self.instances.start(kind)

    def _drop_ended_counters(self) -> None:
        if isinstance(self.limiter, DatabaseLimiter):
            self.limiter.give_back()
            self.limiter.drop_ended(self.ctx.clock.time())

    def start(self, kind: str = "serve") -> None:
        """Background work of a serving instance: the instance registry, the change feed from
        other instances, the purge of keys deleted more than 30 days ago and of sign-in counts
        a day old (now, then every hour), the usage flusher, the delivery of queued events and
        the check for expiring keys and quota thresholds."""
        self.register(kind)
        self._feed = ChangeFeed(self.ctx.db, self._apply_change, self.settings.change_poll_seconds)
        self._feed.start()
        self._purger = Purger(self.purge)
        self._purger.start()
        self.usage_meter.start()
        self.dispatcher.start()
        self._alert_checks.start()

    def close(self) -> None:
        self.instances.stop()
        if self._feed is not None:
            self._feed.stop()
        if self._purger is not None:
            self._purger.stop()
        self._alert_checks.stop()
        self.dispatcher.close()
        self.usage_meter.close()
        self.limiter.close()
        self.ctx.db.dispose()

    def purge(self) -> int:
        """What `llavero db purge` and the hourly purge drop; returns the keys purged."""
        self.users.throttle.purge()
        return self.keys.purge()

    def bootstrap(self, email: str = "admin@localhost") -> Bootstrap | None:
        """On an empty database: the first admin, a sign-in link and an admin token. Several
        instances starting at once on an empty database race here: the first one to create
        the admin wins, the others go on serving (None), as on a database already set up."""
        if self.users.count():
            return None
        system = Actor.system("bootstrap")
        try:
            user = self.users.create(system, email, None, role="admin")
        except AlreadyExists:
            return None
        link = self.users.create_signin_link(system, user.id)
        token = self.tokens.create(system, ["admin"], display_name="first admin token")
        return Bootstrap(user.email, link, token.token)

    def _apply_change(self, kind: str, target_id: str) -> None:
        if kind == KEY:
            self.ctx.cache.invalidate_key(target_id)
        elif kind == PROJECT:
            self.ctx.cache.invalidate_project(target_id)
        elif kind == TOKEN:
            self.tokens.forget()
