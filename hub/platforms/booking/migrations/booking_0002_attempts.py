"""Booking: wrong second-factor attempts per booking code, and the agenda's own id of an
appointment booked in a comune's existing agenda (``[tenants.adapters.booking]``).

Revision ID: booking_0002
Revises: booking_0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "booking_0002"
down_revision = "booking_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_attempts",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("booking_appointments") as batch:
        batch.add_column(sa.Column("agenda_ref", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("booking_appointments") as batch:
        batch.drop_column("agenda_ref")
    op.drop_table("booking_attempts")
