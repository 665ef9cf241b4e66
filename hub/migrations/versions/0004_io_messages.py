"""App IO campaigns and messages; idempotency keys of API requests.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import Id, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "io_campaigns",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("subject_template", sa.Text(), nullable=False),
        sa.Column("markdown_template", sa.Text(), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_io_campaigns"),
    )
    op.create_index("ix_io_campaigns_tenant", "io_campaigns", ["tenant_id"])
    op.create_table(
        "io_messages",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("campaign_id", Id, nullable=True),
        sa.Column("row_number", sa.Integer(), nullable=True),
        sa.Column("fiscal_code", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("feature_level_type", sa.String(12), nullable=False),
        sa.Column("expedition_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("io_message_id", sa.String(40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_io_messages"),
    )
    op.create_index("ix_io_messages_campaign_status", "io_messages", ["campaign_id", "status"])
    op.create_index("ix_io_messages_tenant_status", "io_messages", ["tenant_id", "status"])
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_io_messages_tenant_status", table_name="io_messages")
    op.drop_index("ix_io_messages_campaign_status", table_name="io_messages")
    op.drop_table("io_messages")
    op.drop_index("ix_io_campaigns_tenant", table_name="io_campaigns")
    op.drop_table("io_campaigns")
