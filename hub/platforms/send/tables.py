"""SEND tables (migrations 0015 and 0016): notifications and their documents, their pagoPA
payments, the progress stream's cursor and every stream event, stored once.

Defined on the shared ``sportello.schema.metadata``; listed by the platform's
``hub_tables`` hook.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from sportello.schema import Id, UTCDateTime, metadata

# Notification statuses (ours): queued -> uploaded -> requesting -> waiting -> accepted |
# refused; accepted -> cancelling -> cancelled; failed (a permanent error before SEND
# answered). `send_status` is SEND's own status (ACCEPTED, DELIVERING...) from the stream.
send_notifications = Table(
    "send_notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("pa_protocol_number", String(256), nullable=False),
    Column("idempotence_token", String(64), nullable=False),
    Column("subject", String(134), nullable=False),
    Column("request", Text(), nullable=False),  # NewNotificationRequest JSON, no documents
    Column("recipients", Text(), nullable=False),  # JSON list of recipient tax ids
    Column("status", String(20), nullable=False),
    Column("notification_request_id", String(64), nullable=True),
    Column("iun", String(32), nullable=True),
    Column("send_status", String(40), nullable=True),
    Column("errors", Text(), nullable=True),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("accepted_at", UTCDateTime(), nullable=True),
    UniqueConstraint("tenant_id", "pa_protocol_number", name="uq_send_notifications_protocol"),
    Index("ix_send_notifications_iun", "iun"),
)

# The notification's documents: the bytes until SEND has them, then SEND's key and version.
send_documents = Table(
    "send_documents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("notification_id", Id, nullable=False),
    Column("idx", Integer(), nullable=False),
    Column("title", String(512), nullable=False),
    Column("content", LargeBinary(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("file_key", String(512), nullable=True),
    Column("version_token", String(256), nullable=True),
    UniqueConstraint("notification_id", "idx", name="uq_send_documents_idx"),
)

# One progress stream per tenant; `last_event_id` moves by compare-and-set.
send_streams = Table(
    "send_streams",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("stream_id", String(64), nullable=False),
    Column("last_event_id", String(40), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

send_events = Table(
    "send_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("notification_request_id", String(64), nullable=True),
    Column("iun", String(32), nullable=True),
    Column("category", String(60), nullable=True),
    Column("new_status", String(40), nullable=True),
    Column("element", Text(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "event_id", name="uq_send_events_event"),
    Index("ix_send_events_iun", "tenant_id", "iun"),
)

# The pagoPA payments of each notification (``recipients[rec_index].payments[pay_index].pagoPa``):
# the station finds a notice's notification here (applyCost: SEND's cost added to the amount).
# ``document_idx``: the ``send_documents`` row (idx >= PAYMENT_DOCUMENT_BASE) holding the
# notice PDF the hub attached; None when the caller gave none (or attached its own).
send_payments = Table(
    "send_payments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("notification_id", Id, nullable=False),
    Column("rec_index", Integer(), nullable=False),
    Column("pay_index", Integer(), nullable=False),
    Column("notice_code", String(18), nullable=False),
    Column("creditor_tax_id", String(11), nullable=False),
    Column("apply_cost", Boolean(), nullable=False),
    Column("document_idx", Integer(), nullable=True),
    # ``notice_code`` while the notification is live (queued ... accepted, cancelling), None
    # once refused, failed or cancelled: one live notification per notice, enforced by the
    # database (two simultaneous requests naming the same notice cannot both be queued).
    Column("live_notice", String(18), nullable=True),
    UniqueConstraint("notification_id", "rec_index", "pay_index", name="uq_send_payments_item"),
    UniqueConstraint("tenant_id", "live_notice", name="uq_send_payments_live_notice"),
    Index("ix_send_payments_notice", "tenant_id", "notice_code"),
)

#: ``send_documents.idx`` of the first payment attachment (a notification has at most 15
#: documents, idx 0-14).
PAYMENT_DOCUMENT_BASE = 100
#: ``send_documents.idx`` of the first F24 metadata file (JSON, preloaded as
#: ``application/json``; f24.py).
F24_DOCUMENT_BASE = 200
