"""Tenants stored in the database (admin API, `sportello tenants add`) and the configuration
generation replicas compare to learn of changes.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_documents",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_documents"),
    )
    op.create_table(
        "config_generation",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_config_generation"),
    )


def downgrade() -> None:
    op.drop_table("config_generation")
    op.drop_table("tenant_documents")
