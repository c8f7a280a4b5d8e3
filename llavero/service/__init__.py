"""The service layer: the one place where domain rules live. The API, the console and the CLI
call `Llavero`; none of them touches the database."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from llavero.cache import KeyCache
from llavero.changes import KEY, PROJECT, TOKEN, ChangeFeed
from llavero.clock import SYSTEM_CLOCK, Clock
from llavero.config import Settings
from llavero.instances import OWN_COUNTERS, Registry
from llavero.keys import KeyHasher
from llavero.limits import create_limiter
from llavero.limits_db import DatabaseLimiter
from llavero.plans import load_plans
from llavero.service.apikeys import ApiKeys
from llavero.service.audit import Audit
from llavero.service.billing import Billing
from llavero.service.context import Actor, Context
from llavero.service.plans import PlanCatalog
from llavero.service.projects import Projects
from llavero.service.purger import Purger
from llavero.service.sessions import Sessions
from llavero.service.tokens import Tokens
from llavero.service.usage import Usage
from llavero.service.usage_report import UsageReports
from llavero.service.users import Users
from llavero.store import Database
from llavero.usage import UsageMeter
from llavero.verify import Verifier

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


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What `llavero serve` prints on an empty database, once."""

    email: str
    signin_token: str
    management_token: str


class Llavero:
    def __init__(self, settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings or Settings()
        self.ctx = Context(
            settings=self.settings,
            db=Database(self.settings.sqlalchemy_url),
            clock=clock,
            hasher=KeyHasher(load_secret(self.settings)),
            cache=KeyCache(self.settings.cache_size),
        )
        self.users = Users(self.ctx)
        self.sessions = Sessions(self.ctx)
        self.tokens = Tokens(self.ctx)
        self.projects = Projects(self.ctx)
        self.keys = ApiKeys(self.ctx)
        self.audit = Audit(self.ctx)
        self.plans = PlanCatalog(load_plans(self.settings))
        self.limiter = create_limiter(self.settings, self.ctx.db)
        self.billing = Billing(self.ctx, self.plans)
        self.usage_meter = UsageMeter(self.ctx)
        self.usage = Usage(self.ctx)
        self.usage_reports = UsageReports(
            self.ctx, self.limiter, self.plans, self.usage_meter.record_units
        )
        self.verifier = Verifier(self.ctx, self.limiter, self.plans.plans, self.usage_meter)
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
            self.limiter.drop_ended(self.ctx.clock.time())

    def start(self, kind: str = "serve") -> None:
        """Background work of a serving instance: the instance registry, the change feed from
        other instances, and the purge of keys deleted more than 30 days ago (now, then every
        hour)."""
        self.register(kind)
        self._feed = ChangeFeed(self.ctx.db, self._apply_change, self.settings.change_poll_seconds)
        self._feed.start()
        self._purger = Purger(self.keys.purge)
        self._purger.start()
        self.usage_meter.start()

    def close(self) -> None:
        self.instances.stop()
        if self._feed is not None:
            self._feed.stop()
        if self._purger is not None:
            self._purger.stop()
        self.usage_meter.close()
        self.limiter.close()
        self.ctx.db.dispose()

    def bootstrap(self, email: str = "admin@localhost") -> Bootstrap | None:
        """On an empty database: the first admin, a sign-in link and an admin token."""
        if self.users.count():
            return None
        system = Actor.system("bootstrap")
        user = self.users.create(system, email, None, role="admin")
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
