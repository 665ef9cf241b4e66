"""Rate-limit log shared by replicas.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import Id

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_keys",
        sa.Column("key", sa.String(120), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limit_keys"),
    )
    op.create_table(
        "rate_limit_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rate_limit_events"),
    )
    op.create_index("ix_rate_limit_events_key_at", "rate_limit_events", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_events_key_at", table_name="rate_limit_events")
    op.drop_table("rate_limit_events")
    op.drop_table("rate_limit_keys")
