"""SPID/CIE OpenID Connect: the tokens logout revokes, and the refreshed trust marks.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("provider", sa.String(1024), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("token_expires_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("logout_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoke_error", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("session_id", name="pk_oidc_sessions"),
    )
    op.create_index("ix_oidc_sessions_expires_at", "oidc_sessions", ["expires_at"])
    op.create_table(
        "oidc_trust_marks",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("mark_id", sa.String(512), nullable=False),
        sa.Column("issuer", sa.String(1024), nullable=False),
        sa.Column("trust_mark", sa.Text(), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("refreshed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "mark_id", name="pk_oidc_trust_marks"),
    )


def downgrade() -> None:
    op.drop_table("oidc_trust_marks")
    op.drop_index("ix_oidc_sessions_expires_at", table_name="oidc_sessions")
    op.drop_table("oidc_sessions")
