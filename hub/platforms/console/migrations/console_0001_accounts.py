"""Operator console: local accounts, comune staff added by CLI, login attempts (the
platform's own branch).

Revision ID: console_0001
Revises: (none: a branch of its own)
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "console_0001"
down_revision = None
branch_labels = ("console",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(128), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("totp_secret", sa.String(300), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("enrolled_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "console_staff",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("fiscal_code", sa.String(16), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "console_attempts",
        sa.Column("account", sa.String(80), primary_key=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("console_attempts")
    op.drop_table("console_staff")
    op.drop_table("console_users")
