"""Outbox lock keys: the jobs of one key (the GPD changes of one position) run one at a
time, in order, ordered by the claim itself.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("outbox", sa.Column("lock", sa.String(200), nullable=True))
    op.create_table(
        "outbox_locks",
        sa.Column("lock_key", sa.String(200), nullable=False),
        sa.Column("outbox_id", Id, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("lock_key", "outbox_id", name="pk_outbox_locks"),
    )
    op.create_index("ix_outbox_locks_outbox", "outbox_locks", ["outbox_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_locks_outbox", table_name="outbox_locks")
    op.drop_table("outbox_locks")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lock")
