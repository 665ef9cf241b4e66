"""The last result of each tenant check (``sportello tenants status --check``, onboarding).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_checks",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("platform", sa.String(40), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "platform", "name", name="pk_tenant_checks"),
    )


def downgrade() -> None:
    op.drop_table("tenant_checks")
