"""Booking: appointments and the seats they hold (the platform's own branch).

Revision ID: booking_0001
Revises: (none: a branch of its own)
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "booking_0001"
down_revision = None
branch_labels = ("booking",)
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "booking_appointments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("code", sa.String(16), nullable=False, unique=True),
        sa.Column("office_id", sa.String(40), nullable=False),
        sa.Column("service_id", sa.String(40), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("surname", sa.String(100), nullable=False),
        sa.Column("fiscal_code", sa.String(16), nullable=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(30), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("logged_in", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reminded_version", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_booking_appointments_day",
        "booking_appointments",
        ["tenant_id", "office_id", "starts_at"],
    )
    op.create_table(
        "booking_seats",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("office_id", sa.String(40), primary_key=True),
        sa.Column("service_id", sa.String(40), primary_key=True),
        sa.Column("starts_at", UTCDateTime(), primary_key=True),
        sa.Column("seat", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(16), nullable=False, unique=True),
    )


def downgrade() -> None:
    op.drop_table("booking_seats")
    op.drop_index("ix_booking_appointments_day", table_name="booking_appointments")
    op.drop_table("booking_appointments")
