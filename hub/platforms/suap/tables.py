"""SUAP table (migration 0005): where each tenant's change feed was last read.

Defined on the shared ``sportello.schema.metadata``; the platform lists them in its
``hub_tables`` hook (migrations and the schema test load every platform's tables that way).
"""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from sportello.schema import UTCDateTime, metadata

# Where each tenant's SUAP change feed was last read (notifications resume from here).
suap_cursors = Table(
    "suap_cursors",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("last_seen", UTCDateTime(), nullable=False),
)
