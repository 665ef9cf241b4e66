"""SEND: notifications, their documents, the progress stream's cursor and its events.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "send_notifications",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("pa_protocol_number", sa.String(256), nullable=False),
        sa.Column("idempotence_token", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(134), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("notification_request_id", sa.String(64), nullable=True),
        sa.Column("iun", sa.String(32), nullable=True),
        sa.Column("send_status", sa.String(40), nullable=True),
        sa.Column("errors", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint(
            "tenant_id", "pa_protocol_number", name="uq_send_notifications_protocol"
        ),
    )
    op.create_index("ix_send_notifications_iun", "send_notifications", ["iun"])
    op.create_table(
        "send_documents",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("notification_id", Id, nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_key", sa.String(512), nullable=True),
        sa.Column("version_token", sa.String(256), nullable=True),
        sa.UniqueConstraint("notification_id", "idx", name="uq_send_documents_idx"),
    )
    op.create_table(
        "send_streams",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("last_event_id", sa.String(40), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "send_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("notification_request_id", sa.String(64), nullable=True),
        sa.Column("iun", sa.String(32), nullable=True),
        sa.Column("category", sa.String(60), nullable=True),
        sa.Column("new_status", sa.String(40), nullable=True),
        sa.Column("element", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "event_id", name="uq_send_events_event"),
    )
    op.create_index("ix_send_events_iun", "send_events", ["tenant_id", "iun"])


def downgrade() -> None:
    op.drop_index("ix_send_events_iun", table_name="send_events")
    op.drop_table("send_events")
    op.drop_table("send_streams")
    op.drop_table("send_documents")
    op.drop_index("ix_send_notifications_iun", table_name="send_notifications")
    op.drop_table("send_notifications")
