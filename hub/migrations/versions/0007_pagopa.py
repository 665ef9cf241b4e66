"""pagoPA: IUV counters, debt positions, payment options, receipts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sportello.schema import Id, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pagopa_iuv_counters",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("segregation_code", sa.String(2), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "segregation_code", name="pk_pagopa_iuv_counters"),
    )
    op.create_table(
        "pagopa_positions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("iupd", sa.String(256), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("debtor_fiscal_code", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pagopa_positions"),
    )
    op.create_index(
        "uq_pagopa_positions_tenant_iupd", "pagopa_positions", ["tenant_id", "iupd"], unique=True
    )
    op.create_index(
        "ix_pagopa_positions_tenant_status", "pagopa_positions", ["tenant_id", "status", "id"]
    )
    op.create_index(
        "ix_pagopa_positions_tenant_debtor",
        "pagopa_positions",
        ["tenant_id", "debtor_fiscal_code"],
    )
    op.create_table(
        "pagopa_payment_options",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("position_id", Id, nullable=False),
        sa.Column("iuv", sa.String(35), nullable=False),
        sa.Column("nav", sa.String(18), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("due_date", UTCDateTime(), nullable=False),
        sa.Column("retention_date", UTCDateTime(), nullable=True),
        sa.Column("is_partial_payment", sa.Boolean(), nullable=False),
        sa.Column("installment_number", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("receipt_id", sa.String(255), nullable=True),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pagopa_payment_options"),
    )
    op.create_index(
        "uq_pagopa_payment_options_tenant_nav",
        "pagopa_payment_options",
        ["tenant_id", "nav"],
        unique=True,
    )
    op.create_index(
        "uq_pagopa_payment_options_tenant_iuv",
        "pagopa_payment_options",
        ["tenant_id", "iuv"],
        unique=True,
    )
    op.create_index("ix_pagopa_payment_options_position", "pagopa_payment_options", ["position_id"])
    op.create_table(
        "pagopa_receipts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("receipt_id", sa.String(255), nullable=False),
        sa.Column("nav", sa.String(18), nullable=False),
        sa.Column("iuv", sa.String(35), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("id_psp", sa.String(35), nullable=False),
        sa.Column("psp_company_name", sa.String(70), nullable=False),
        sa.Column("payment_date_time", UTCDateTime(), nullable=True),
        sa.Column("stand_in", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position_id", Id, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("raw_xml", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("forward_status", sa.String(12), nullable=False),
        sa.Column("forwarded_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pagopa_receipts"),
    )
    op.create_index(
        "uq_pagopa_receipts_tenant_receipt_id",
        "pagopa_receipts",
        ["tenant_id", "receipt_id"],
        unique=True,
    )
    op.create_index("ix_pagopa_receipts_tenant_nav", "pagopa_receipts", ["tenant_id", "nav"])
    op.create_index(
        "ix_pagopa_receipts_tenant_forward",
        "pagopa_receipts",
        ["tenant_id", "forward_status", "id"],
    )


def downgrade() -> None:
    for index, table in (
        ("ix_pagopa_receipts_tenant_forward", "pagopa_receipts"),
        ("ix_pagopa_receipts_tenant_nav", "pagopa_receipts"),
        ("uq_pagopa_receipts_tenant_receipt_id", "pagopa_receipts"),
        ("ix_pagopa_payment_options_position", "pagopa_payment_options"),
        ("uq_pagopa_payment_options_tenant_iuv", "pagopa_payment_options"),
        ("uq_pagopa_payment_options_tenant_nav", "pagopa_payment_options"),
        ("ix_pagopa_positions_tenant_debtor", "pagopa_positions"),
        ("ix_pagopa_positions_tenant_status", "pagopa_positions"),
        ("uq_pagopa_positions_tenant_iupd", "pagopa_positions"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "pagopa_receipts",
        "pagopa_payment_options",
        "pagopa_positions",
        "pagopa_iuv_counters",
    ):
        op.drop_table(table)
