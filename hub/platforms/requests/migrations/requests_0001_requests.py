"""Requests: the citizens' requests, milestones, documents, protocol numbering, ratings
(the platform's own branch).

Revision ID: requests_0001
Revises: (none: a branch of its own)
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "requests_0001"
down_revision = None
branch_labels = ("requests",)
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "requests_requests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("ref", sa.String(16), nullable=False, unique=True),
        sa.Column("service", sa.String(40), nullable=False),
        sa.Column("fiscal_code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("protocol_number", sa.String(40), nullable=True),
        sa.Column("submitted_at", UTCDateTime(), nullable=True),
        sa.Column("deadline", sa.String(10), nullable=True),
        sa.Column("stamp", sa.String(12), nullable=True),
        sa.Column("notice_number", sa.String(18), nullable=True),
        sa.Column("practice_ref", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_requests_requests_citizen", "requests_requests", ["tenant_id", "fiscal_code"]
    )
    op.create_index(
        "ix_requests_requests_notice", "requests_requests", ["tenant_id", "notice_number"]
    )
    op.create_table(
        "requests_milestones",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("request_id", Id, sa.ForeignKey("requests_requests.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_requests_milestones_request", "requests_milestones", ["request_id", "id"])
    op.create_table(
        "requests_documents",
        sa.Column("request_id", Id, sa.ForeignKey("requests_requests.id"), primary_key=True),
        sa.Column("content_type", sa.String(60), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "requests_protocol",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("year", sa.Integer(), primary_key=True),
        sa.Column("last", sa.Integer(), nullable=False),
    )
    op.create_table(
        "requests_ratings",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("service", sa.String(60), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("follow_up", sa.String(40), nullable=True),
        sa.Column("comment", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_requests_ratings_service", "requests_ratings", ["tenant_id", "service", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_requests_ratings_service", table_name="requests_ratings")
    op.drop_table("requests_ratings")
    op.drop_table("requests_protocol")
    op.drop_table("requests_documents")
    op.drop_index("ix_requests_milestones_request", table_name="requests_milestones")
    op.drop_table("requests_milestones")
    op.drop_index("ix_requests_requests_notice", table_name="requests_requests")
    op.drop_index("ix_requests_requests_citizen", table_name="requests_requests")
    op.drop_table("requests_requests")
