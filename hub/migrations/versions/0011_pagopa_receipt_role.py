"""pagoPA: what the tenant is in each receipt (creditor, secondary beneficiary, neither).

Receipts stored before this revision were all applied as the creditor's: they keep
``creditor`` (an operator can look for ``receipt/fiscalCode`` ≠ the EC in their ``data``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "pagopa_receipts",
        sa.Column("role", sa.String(12), nullable=False, server_default=sa.text("'creditor'")),
    )


def downgrade() -> None:
    with op.batch_alter_table("pagopa_receipts") as batch:
        batch.drop_column("role")
