"""pagoPA FdR reconciliation: flows read and per-payment results.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import Id, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pagopa_fdr_flows",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("organization_id", sa.String(11), nullable=False),
        sa.Column("fdr", sa.String(100), nullable=False),
        sa.Column("psp_id", sa.String(35), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("regulation", sa.String(35), nullable=True),
        sa.Column("regulation_date", sa.String(10), nullable=True),
        sa.Column("total_payments", sa.Integer(), nullable=True),
        sa.Column("sum_payments", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.Column("forwarded_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pagopa_fdr_flows"),
    )
    op.create_index(
        "uq_pagopa_fdr_flows_key",
        "pagopa_fdr_flows",
        ["tenant_id", "fdr", "psp_id", "revision"],
        unique=True,
    )
    op.create_index(
        "ix_pagopa_fdr_flows_tenant_published", "pagopa_fdr_flows", ["tenant_id", "published_at"]
    )
    op.create_table(
        "pagopa_fdr_results",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("flow_id", Id, nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("iuv", sa.String(35), nullable=False),
        sa.Column("iur", sa.String(255), nullable=False),
        sa.Column("id_transfer", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("pay_status", sa.String(20), nullable=False),
        sa.Column("pay_date", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("receipt_id", sa.String(255), nullable=True),
        sa.Column("nav", sa.String(18), nullable=True),
        sa.Column("position_id", Id, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pagopa_fdr_results"),
    )
    op.create_index(
        "uq_pagopa_fdr_results_flow_idx", "pagopa_fdr_results", ["flow_id", "idx"], unique=True
    )
    op.create_index(
        "ix_pagopa_fdr_results_tenant_pay_date", "pagopa_fdr_results", ["tenant_id", "pay_date"]
    )
    op.create_index(
        "ix_pagopa_fdr_results_tenant_receipt", "pagopa_fdr_results", ["tenant_id", "receipt_id"]
    )


def downgrade() -> None:
    for index, table in (
        ("ix_pagopa_fdr_results_tenant_receipt", "pagopa_fdr_results"),
        ("ix_pagopa_fdr_results_tenant_pay_date", "pagopa_fdr_results"),
        ("uq_pagopa_fdr_results_flow_idx", "pagopa_fdr_results"),
        ("ix_pagopa_fdr_flows_tenant_published", "pagopa_fdr_flows"),
        ("uq_pagopa_fdr_flows_key", "pagopa_fdr_flows"),
    ):
        op.drop_index(index, table_name=table)
    op.drop_table("pagopa_fdr_results")
    op.drop_table("pagopa_fdr_flows")
