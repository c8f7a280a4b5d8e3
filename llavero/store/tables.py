"""The database schema. Alembic migrations in `migrations/versions` are the source of truth for
existing databases; this module must always describe the head revision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite forgets the zone, so put it back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    create_time: Mapped[datetime]
    last_signin_time: Mapped[datetime | None]


class SigninLink(Base):
    """One-time sign-in links (the first run, invitations); only a hash is kept."""

    __tablename__ = "signin_links"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    create_time: Mapped[datetime]
    expire_time: Mapped[datetime]
    used_time: Mapped[datetime | None]


class ConsoleSession(Base):
    __tablename__ = "console_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime]
    expire_time: Mapped[datetime]
    last_seen_time: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(String(64))


class SigninThrottle(Base):
    """Sign-in attempts per (email, client address), shared by every instance: an attempt is
    counted before its password is checked, and the count sets when the next may be
    (docs/security.md, "Account enumeration and throttling"). Purged a day after the last."""

    __tablename__ = "signin_throttles"
    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_time: Mapped[datetime] = mapped_column(index=True)
    retry_time: Mapped[datetime]


class Token(Base):
    """Management tokens: credentials for the REST API and for verifiers."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    scopes: Mapped[list[str]]
    created_by: Mapped[str] = mapped_column(String(300))
    create_time: Mapped[datetime]
    expire_time: Mapped[datetime | None]
    revoke_time: Mapped[datetime | None]
    last_used_time: Mapped[datetime | None]


class BillingAccount(Base):
    __tablename__ = "billing_accounts"
    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(30), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    billing_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("billing_accounts.id"), index=True
    )
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    delete_time: Mapped[datetime | None]
    leak_policy: Mapped[str] = mapped_column(String(16), default="revoke", server_default="revoke")


class ProjectMember(Base):
    __tablename__ = "project_members"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))


class ProjectInvitation(Base):
    """A role waiting for an address that has no account yet; it becomes a `ProjectMember` at
    that address's first sign-in (`service.members.claim_invitations`)."""

    __tablename__ = "project_invitations"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str] = mapped_column(String(254), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    invited_by: Mapped[str] = mapped_column(String(300))
    create_time: Mapped[datetime]


class Key(Base):
    """An API key: `key_hash` verifies; after a rotation `previous_hash` does too, until
    `previous_expire_time`."""

    __tablename__ = "keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    display_name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    previous_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    previous_last4: Mapped[str | None] = mapped_column(String(4))
    previous_expire_time: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))
    state_before_delete: Mapped[str | None] = mapped_column(String(16))
    environment: Mapped[str | None] = mapped_column(String(63))
    restrictions: Mapped[dict[str, Any]]
    annotations: Mapped[dict[str, Any]]
    limits: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(300))
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    expire_time: Mapped[datetime | None]
    delete_time: Mapped[datetime | None]
    last_used_time: Mapped[datetime | None]
    last_used_ip: Mapped[str | None] = mapped_column(String(64))
    # The latest report of this key's string found leaked (docs/leaks.md).
    leak_time: Mapped[datetime | None]
    leak_url: Mapped[str | None] = mapped_column(String(2048))
    leak_source: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index("ix_keys_project_created", "project_id", "create_time", "id"),
        Index("ix_keys_created", "create_time", "id"),  # the key list of every project
        # The console's list of leaked keys: only the (few) leaked rows are in this index.
        Index(
            "ix_keys_leaked",
            "create_time",
            "id",
            sqlite_where=text("leak_time IS NOT NULL"),
            postgresql_where=text("leak_time IS NOT NULL"),
        ),
    )


class UsageBucket(Base):
    """Verifies counted per key, outcome and time bucket; minutes roll up into hours and days."""

    __tablename__ = "usage_buckets"
    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    granularity: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(30))
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    units: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        Index("ix_usage_project", "project_id", "granularity", "bucket_start"),
        Index("ix_usage_rollup", "granularity", "bucket_start"),
    )


class UsageReport(Base):
    """`POST /v1/usage:report` calls seen, so that a retried report counts once."""

    __tablename__ = "usage_reports"
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(36))
    units: Mapped[int] = mapped_column(BigInteger)
    create_time: Mapped[datetime] = mapped_column(index=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), index=True)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]
    # The project the event concerns (None: users, tokens, billing accounts): who may read it.
    project_id: Mapped[str | None] = mapped_column(String(30), index=True)


class Change(Base):
    """The change feed: every write to a key or project appends a row in the same transaction,
    and every instance drops its cached copies of what changed elsewhere."""

    __tablename__ = "changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))


class Webhook(Base):
    """An endpoint that receives signed events: one project's, or the whole deployment's
    (`project_id` NULL, admins only). The signing secret is kept as is: signing needs it."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(30), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]]
    description: Mapped[str] = mapped_column(String(500), default="")
    secret: Mapped[str] = mapped_column(String(100))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(300))
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]


class Event(Base):
    """The outbox: one row per event, written in the transaction of the change it tells of.
    `event_id` is the `webhook-id` receivers deduplicate by; `body` is what is signed."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str | None] = mapped_column(String(30))
    body: Mapped[dict[str, Any]]
    create_time: Mapped[datetime]


class Delivery(Base):
    """One event to one target (`webhook:<id>` or `mailto:<address>`). A target's deliveries
    go out one at a time in id order; the head is claimed with a lease (`lease_until`)."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(300))
    webhook_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_time: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    create_time: Mapped[datetime]
    last_attempt_time: Mapped[datetime | None]
    delivered_time: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_deliveries_pending", "status", "target", "id"),
        Index("ix_deliveries_webhook", "webhook_id", "id"),
    )


class AlertMark(Base):
    """Moments already told (a key 7 days from expiry, a project at 80 % of `rpd` today): the
    primary key makes each one an event once, whichever instance sees it first."""

    __tablename__ = "alert_marks"
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    moment: Mapped[str] = mapped_column(String(64), primary_key=True)
    window: Mapped[str] = mapped_column(String(64), primary_key=True)
    time: Mapped[datetime]


class RateCounter(Base):
    """One rate-limit counter of the `database` backend: a limit, a scope (`p:<project>` or
    `k:<key>`) and the end of its window (epoch seconds), shared by every process on the
    database (docs/limits.md)."""

    __tablename__ = "rate_counters"
    name: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope: Mapped[str] = mapped_column(String(48), primary_key=True)
    window_end: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_rate_counters_end", "window_end"),)


class Instance(Base):
    """A running Llavero process (serve worker, gateway, middleware), with its heartbeat: how
    Llavero knows that several processes count limits on their own (docs/limits.md)."""

    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    limiter: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[datetime]
    heartbeat_time: Mapped[datetime] = mapped_column(index=True)
