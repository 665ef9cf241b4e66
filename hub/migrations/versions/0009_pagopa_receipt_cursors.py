"""pagoPA GPD receipts read-back cursor.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pagopa_receipt_cursors",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("from_day", sa.String(10), nullable=True),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_pagopa_receipt_cursors"),
    )


def downgrade() -> None:
    op.drop_table("pagopa_receipt_cursors")
