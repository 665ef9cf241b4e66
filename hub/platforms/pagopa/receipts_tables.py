"""GPD receipts read-back cursor (migration 0009): how far each tenant's receipts were read.

Kept out of ``schema.py`` like ``pagopa_tables``; ``schema.py`` imports this module at its
end, so ``schema.metadata`` holds the table.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from sportello.schema import UTCDateTime, metadata

# One row per GPD-mode tenant: the payment day (Italian time, ``YYYY-MM-DD``) the next
# read starts from (that day is read again: the API filters by day), when the last read
# ended and how many receipts it stored.
receipt_cursors = Table(
    "pagopa_receipt_cursors",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("from_day", String(10), nullable=True),
    Column("synced_at", UTCDateTime(), nullable=False),
    Column("stored", Integer(), nullable=False),
)
