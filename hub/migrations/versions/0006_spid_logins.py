"""SPID/CIE logins: pending requests, replay cache, sessions, handoff codes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saml_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("idp_entity_id", sa.String(1024), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("comparison", sa.String(10), nullable=False),
        sa.Column("issue_instant", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("return_to", sa.Text(), nullable=True),
        sa.Column("client_state", sa.String(200), nullable=True),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_saml_requests"),
    )
    op.create_index("ix_saml_requests_expires_at", "saml_requests", ["expires_at"])
    op.create_table(
        "saml_assertions",
        sa.Column("idp_entity_id", sa.String(1024), nullable=False),
        sa.Column("assertion_id", sa.String(128), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("idp_entity_id", "assertion_id", name="pk_saml_assertions"),
    )
    op.create_index("ix_saml_assertions_expires_at", "saml_assertions", ["expires_at"])
    op.create_table(
        "login_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("idp_entity_id", sa.String(1024), nullable=False),
        sa.Column("name_id", sa.String(256), nullable=False),
        sa.Column("name_qualifier", sa.String(1024), nullable=False),
        sa.Column("session_index", sa.String(256), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("session_id", name="pk_login_sessions"),
    )
    op.create_index(
        "ix_login_sessions_tenant_id_name_id", "login_sessions", ["tenant_id", "name_id"]
    )
    op.create_table(
        "login_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_login_codes"),
    )


def downgrade() -> None:
    op.drop_table("login_codes")
    op.drop_index("ix_login_sessions_tenant_id_name_id", table_name="login_sessions")
    op.drop_table("login_sessions")
    op.drop_index("ix_saml_assertions_expires_at", table_name="saml_assertions")
    op.drop_table("saml_assertions")
    op.drop_index("ix_saml_requests_expires_at", table_name="saml_requests")
    op.drop_table("saml_requests")
