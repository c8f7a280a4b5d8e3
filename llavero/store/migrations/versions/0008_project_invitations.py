"""project invitations: a role for an address that has no account yet

`POST /v1/projects/{project}/members` for an unknown address keeps the role here; the address's
first sign-in (password, link or OIDC) turns it into a project_members row.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project_invitations",
        sa.Column("project_id", sa.String(length=30), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("invited_by", sa.String(length=300), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_invitations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "email", name=op.f("pk_project_invitations")),
    )
    op.create_index(
        op.f("ix_project_invitations_email"), "project_invitations", ["email"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_project_invitations_email"), table_name="project_invitations")
    op.drop_table("project_invitations")
