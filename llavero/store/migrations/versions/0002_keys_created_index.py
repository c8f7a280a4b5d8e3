"""index keys by creation time for the key list of every project

The console's keys page lists the newest keys of every project an admin sees: ORDER BY
create_time DESC, id DESC with no project filter. Only (project_id, create_time, id) was indexed,
so PostgreSQL sorted the whole table for the first page: 1.6 s at 1,000,000 keys
(docs/benchmarks.md). With this index the first page is an index scan that stops after one page.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_keys_created", "keys", ["create_time", "id"])


def downgrade() -> None:
    op.drop_index("ix_keys_created", table_name="keys")
