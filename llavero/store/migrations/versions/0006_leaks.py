"""leaks: where and when a key was found leaked, and what a project does about it

`keys.leak_*` record the latest report of a leaked key string (docs/leaks.md); a project's
`leak_policy` says what happens then: `revoke` (soft delete, the default), `disable` or `notify`.

Revision ID: 0006
Revises: 0005l
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005l"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        batch.add_column(sa.Column("leak_time", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("leak_url", sa.String(2048), nullable=True))
        batch.add_column(sa.Column("leak_source", sa.String(100), nullable=True))
    op.create_index(
        "ix_keys_leaked",
        "keys",
        ["create_time", "id"],
        sqlite_where=sa.text("leak_time IS NOT NULL"),
        postgresql_where=sa.text("leak_time IS NOT NULL"),
    )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("leak_policy", sa.String(16), nullable=False, server_default="revoke")
        )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("leak_policy")
    op.drop_index("ix_keys_leaked", table_name="keys")
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("leak_source")
        batch.drop_column("leak_url")
        batch.drop_column("leak_time")
