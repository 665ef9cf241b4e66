"""FdR reconciliation tables (migration 0008): the flows read and each payment's result.

Kept out of ``schema.py`` like ``pagopa_tables``; ``schema.py`` imports this module at its
end, so ``schema.metadata`` holds these tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from sportello.schema import Id, UTCDateTime, metadata

# Flow statuses: its payments were reconciled; it could not be read (``reason`` says why,
# the next run tries again); a higher revision replaced it (its results were removed).
FLOW_RECONCILED, FLOW_FAILED, FLOW_SUPERSEDED = "reconciled", "failed", "superseded"

# One row per (flow, PSP, revision) read for a tenant. ``raw`` keeps the flow and its
# payments exactly as FdR served them (JSON), so nothing is lost; ``reason`` is why a
# flow failed; ``forwarded_at`` when its results reached the accounting adapter.
fdr_flows = Table(
    "pagopa_fdr_flows",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("organization_id", String(11), nullable=False),
    Column("fdr", String(100), nullable=False),
    Column("psp_id", String(35), nullable=False),
    Column("revision", Integer(), nullable=False),
    Column("status", String(12), nullable=False),
    Column("published_at", UTCDateTime(), nullable=True),
    Column("regulation", String(35), nullable=True),
    Column("regulation_date", String(10), nullable=True),
    Column("total_payments", Integer(), nullable=True),
    Column("sum_payments", BigInteger(), nullable=True),
    Column("reason", Text(), nullable=True),
    Column("raw", Text(), nullable=True),
    Column("fetched_at", UTCDateTime(), nullable=False),
    Column("forwarded_at", UTCDateTime(), nullable=True),
    Index("uq_pagopa_fdr_flows_key", "tenant_id", "fdr", "psp_id", "revision", unique=True),
    Index("ix_pagopa_fdr_flows_tenant_published", "tenant_id", "published_at"),
)

# One row per payment (transfer) of a reconciled flow: what it was matched to and how.
fdr_results = Table(
    "pagopa_fdr_results",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("flow_id", Id, nullable=False),
    Column("idx", Integer(), nullable=False),
    Column("iuv", String(35), nullable=False),
    Column("iur", String(255), nullable=False),
    Column("id_transfer", Integer(), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    Column("pay_status", String(20), nullable=False),
    Column("pay_date", UTCDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("receipt_id", String(255), nullable=True),
    Column("nav", String(18), nullable=True),
    Column("position_id", Id, nullable=True),
    Column("detail", Text(), nullable=True),
    Index("uq_pagopa_fdr_results_flow_idx", "flow_id", "idx", unique=True),
    Index("ix_pagopa_fdr_results_tenant_pay_date", "tenant_id", "pay_date"),
    Index("ix_pagopa_fdr_results_tenant_receipt", "tenant_id", "receipt_id"),
)
