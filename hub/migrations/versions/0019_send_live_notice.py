"""SEND: one live notification per pagoPA notice, enforced by the database
(``send_payments.live_notice``: the notice code while the notification is live, NULL once it
is refused, failed or cancelled; unique per tenant).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_LIVE = "('queued', 'uploaded', 'requesting', 'waiting', 'accepted', 'cancelling')"


def upgrade() -> None:
    with op.batch_alter_table("send_payments") as batch:
        batch.add_column(sa.Column("live_notice", sa.String(18), nullable=True))
    # the payments of live notifications, the oldest one per notice if two already share it
    op.execute(
        f"""
        UPDATE send_payments SET live_notice = notice_code
        WHERE id IN (
            SELECT MIN(p.id) FROM send_payments p
            JOIN send_notifications n ON n.id = p.notification_id
            WHERE n.status IN {_LIVE}
            GROUP BY p.tenant_id, p.notice_code
        )
        """
    )
    with op.batch_alter_table("send_payments") as batch:
        batch.create_unique_constraint("uq_send_payments_live_notice", ["tenant_id", "live_notice"])


def downgrade() -> None:
    with op.batch_alter_table("send_payments") as batch:
        batch.drop_constraint("uq_send_payments_live_notice", type_="unique")
        batch.drop_column("live_notice")
