"""Requests tables (migration ``requests_0001``): the citizens' requests, their milestones,
their documents, the hub's protocol numbering and the ratings.

``requests_protocol`` holds one row per tenant and year with the last number given: a
request takes its number with one atomic upsert (insert 1, or add 1 on conflict, returning
the value), so however many requests are submitted at once on however many replicas, no
number is given twice and none is skipped by a rollback of another request's insert.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Table, Text

from sportello.schema import Id, UTCDateTime, metadata

# Request statuses: draft -> submitted -> in_progress -> completed | rejected.
requests_requests = Table(
    "requests_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("ref", String(16), nullable=False, unique=True),  # random, shown to the citizen
    Column("service", String(40), nullable=False),
    Column("fiscal_code", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("data", Text(), nullable=False),  # JSON: the fields' values
    Column("step", Integer(), nullable=False),  # the furthest step reached
    Column("protocol_number", String(40), nullable=True),
    Column("submitted_at", UTCDateTime(), nullable=True),
    Column("deadline", String(10), nullable=True),  # YYYY-MM-DD, Europe/Rome
    Column("stamp", String(12), nullable=True),  # due | paid | exempt (certificates)
    Column("notice_number", String(18), nullable=True),
    Column("practice_ref", String(64), nullable=True),  # the registry's practice
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_requests_requests_citizen", "tenant_id", "fiscal_code"),
    Index("ix_requests_requests_notice", "tenant_id", "notice_number"),
)

requests_milestones = Table(
    "requests_milestones",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", Id, ForeignKey("requests_requests.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("label", String(200), nullable=False),
    Column("note", String(500), nullable=True),
    Column("actor", String(120), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_requests_milestones_request", "request_id", "id"),
)

requests_documents = Table(
    "requests_documents",
    metadata,
    Column("request_id", Id, ForeignKey("requests_requests.id"), primary_key=True),
    Column("content_type", String(60), nullable=False),
    Column("body", LargeBinary(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

requests_protocol = Table(
    "requests_protocol",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("year", Integer(), primary_key=True),
    Column("last", Integer(), nullable=False),
)

requests_ratings = Table(
    "requests_ratings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("service", String(60), nullable=False),
    Column("score", Integer(), nullable=False),  # 1-5
    Column("follow_up", String(40), nullable=True),  # an option of the follow-up question
    Column("comment", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_requests_ratings_service", "tenant_id", "service", "created_at"),
)

TABLES = [
    requests_requests,
    requests_milestones,
    requests_documents,
    requests_protocol,
    requests_ratings,
]
