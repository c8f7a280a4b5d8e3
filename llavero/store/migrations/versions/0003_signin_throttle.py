"""sign-in throttle per (email, address); the project of each audit event

`signin_failures` kept one row per failed sign-in, per email, never purged: five failures from
anyone locked the account out, and concurrent attempts were counted after they were evaluated.
`signin_throttles` keeps one row per (email, client address) that an attempt claims before its
password is checked (docs/security.md, "Account enumeration and throttling").

`audit_events.project_id` names the project an event concerns, so that a member reads the
events of their projects only ("Audit log visibility"). Existing events get it from their
target (`project/<id>`) or their `project` detail (key events).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROJECT_PREFIX = "project/"


def upgrade() -> None:
    with op.batch_alter_table("signin_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signin_failures_time"))
        batch_op.drop_index(batch_op.f("ix_signin_failures_email"))
    op.drop_table("signin_failures")
    op.create_table(
        "signin_throttles",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retry_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email", "ip", name=op.f("pk_signin_throttles")),
    )
    with op.batch_alter_table("signin_throttles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_signin_throttles_last_failure_time"), ["last_failure_time"]
        )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.String(length=30), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_events_project_id"), ["project_id"])
    _backfill_audit_projects()


def _backfill_audit_projects() -> None:
    events = sa.table(
        "audit_events",
        sa.column("id", sa.Integer),
        sa.column("target", sa.String),
        sa.column("details", sa.JSON),
        sa.column("project_id", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(events.c.id, events.c.target, events.c.details)).all()
    for event_id, target, details in rows:
        project = details.get("project") if isinstance(details, dict) else None
        if not isinstance(project, str) and target.startswith(PROJECT_PREFIX):
            project = target[len(PROJECT_PREFIX) :]
        if isinstance(project, str):
            connection.execute(
                sa.update(events).where(events.c.id == event_id).values(project_id=project[:30])
            )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_project_id"))
        batch_op.drop_column("project_id")
    with op.batch_alter_table("signin_throttles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signin_throttles_last_failure_time"))
    op.drop_table("signin_throttles")
    op.create_table(
        "signin_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_failures")),
    )
    with op.batch_alter_table("signin_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signin_failures_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_signin_failures_time"), ["time"], unique=False)
