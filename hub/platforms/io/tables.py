"""App IO tables (migrations 0001 and 0004): campaigns and every message sent.

Defined on the shared ``sportello.schema.metadata``; the platform lists them in its
``hub_tables`` hook (migrations and the schema test load every platform's tables that way).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from sportello.schema import Id, UTCDateTime, metadata

# App IO: campaigns (many messages from one CSV and one template) and every message sent.
io_campaigns = Table(
    "io_campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("subject_template", Text(), nullable=False),
    Column("markdown_template", Text(), nullable=False),
    Column("source", String(300), nullable=False),
    Column("rows_total", Integer(), nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_io_campaigns_tenant", "tenant_id"),
)

# Message statuses: queued -> sending -> sent -> processed | rejected, or a final
# not_on_io, sender_not_allowed, failed, or unknown (the call may have reached IO and its
# answer was lost: IO has no idempotency key, so it is never resent without an operator).
io_messages = Table(
    "io_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("campaign_id", Id, nullable=True),
    Column("row_number", Integer(), nullable=True),
    Column("fiscal_code", String(16), nullable=False),
    Column("content", Text(), nullable=False),
    Column("feature_level_type", String(12), nullable=False),
    Column("expedition_at", UTCDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("io_message_id", String(40), nullable=True),
    Column("error", Text(), nullable=True),
    Column("attempts", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Index("ix_io_messages_campaign_status", "campaign_id", "status"),
    Index("ix_io_messages_tenant_status", "tenant_id", "status"),
)
