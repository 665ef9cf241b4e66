"""SPID/CIE OpenID Connect: pending authorization requests, bound to a browser, used once.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_requests",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(1024), nullable=False),
        sa.Column("pending", sa.Text(), nullable=False),
        sa.Column("return_to", sa.Text(), nullable=True),
        sa.Column("client_state", sa.String(200), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name="pk_oidc_requests"),
    )
    op.create_index("ix_oidc_requests_expires_at", "oidc_requests", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oidc_requests_expires_at", table_name="oidc_requests")
    op.drop_table("oidc_requests")
