"""pagoPA: a per-position sequence of GPD operations (update, publish, invalidate).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "pagopa_positions",
        sa.Column("gpd_seq", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    with op.batch_alter_table("pagopa_positions") as batch:
        batch.drop_column("gpd_seq")
