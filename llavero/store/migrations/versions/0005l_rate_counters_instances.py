"""rate counters shared through the database, and the registry of running instances

`rate_counters` holds the counters of the `database` rate-limit backend (the default), so that
serve, the gateway and the middleware on one database count one limit together. `instances`
lists running processes with a heartbeat, so that Llavero can tell when several of them count
limits on their own (docs/limits.md).

Revision ID: 0005l
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005l"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_counters",
        sa.Column("name", sa.String(8), nullable=False),
        sa.Column("scope", sa.String(48), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", "scope", "window_end", name="pk_rate_counters"),
    )
    op.create_index("ix_rate_counters_end", "rate_counters", ["window_end"])
    op.create_table(
        "instances",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("limiter", sa.String(16), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.create_index("ix_instances_heartbeat_time", "instances", ["heartbeat_time"])


def downgrade() -> None:
    op.drop_table("instances")
    op.drop_table("rate_counters")
