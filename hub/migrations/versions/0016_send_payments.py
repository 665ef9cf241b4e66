"""SEND: the pagoPA payments of each notification (notice code, creditor, applyCost, the
notice PDF the hub attached), so the station finds a notice's notification in one lookup.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "send_payments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("notification_id", Id, nullable=False),
        sa.Column("rec_index", sa.Integer(), nullable=False),
        sa.Column("pay_index", sa.Integer(), nullable=False),
        sa.Column("notice_code", sa.String(18), nullable=False),
        sa.Column("creditor_tax_id", sa.String(11), nullable=False),
        sa.Column("apply_cost", sa.Boolean(), nullable=False),
        sa.Column("document_idx", sa.Integer(), nullable=True),
        sa.UniqueConstraint(
            "notification_id", "rec_index", "pay_index", name="uq_send_payments_item"
        ),
    )
    op.create_index("ix_send_payments_notice", "send_payments", ["tenant_id", "notice_code"])


def downgrade() -> None:
    op.drop_index("ix_send_payments_notice", table_name="send_payments")
    op.drop_table("send_payments")
