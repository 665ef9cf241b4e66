"""pagoPA tables (migration 0007): IUV counters, debt positions, payment options, receipts.

Kept out of ``schema.py`` so the pagoPA work can change without touching the shared file;
``schema.py`` imports this module at its end, so ``schema.metadata`` holds these tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text, text

from sportello.schema import Id, UTCDateTime, metadata

# Option statuses.
OPEN, PAID = "open", "paid"
# Forwarding of a receipt to the tenant's accounting system.
FORWARD_PENDING, FORWARDED, NO_ADAPTER = "pending", "forwarded", "no_adapter"
#: A receipt that is not the tenant's money (``ROLE_UNRELATED``): never forwarded.
NOT_OURS = "not_ours"
# What the tenant is in a receipt (migration 0011): the creditor (``receipt/fiscalCode`` is
# its EC: the receipt pays one of its notices), a secondary beneficiary (another creditor's
# notice with transfers credited to it: ``transfer/fiscalCodePA``), or neither.
ROLE_CREDITOR, ROLE_BENEFICIARY, ROLE_UNRELATED = "creditor", "beneficiary", "unrelated"

# The last IUV base handed out per tenant and segregation code (allocated in ranges).
iuv_counters = Table(
    "pagopa_iuv_counters",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("segregation_code", String(2), primary_key=True),
    Column("last_value", BigInteger(), nullable=False),
)

# Debt positions: ``content`` is the DebtPosition model as JSON (the debtor's data is in it;
# ``debtor_fiscal_code`` is copied out for look-ups). ``status`` is GPD's state machine.
# ``gpd_seq`` (migration 0010) counts the changes made after creation (update, publish,
# invalidate): the n-th one's outbox job is keyed by it and waits for the (n-1)-th.
positions = Table(
    "pagopa_positions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("iupd", String(256), nullable=False),
    Column("status", String(20), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("debtor_fiscal_code", String(16), nullable=False),
    Column("content", Text(), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("gpd_seq", Integer(), nullable=False, server_default=text("0")),
    Index("uq_pagopa_positions_tenant_iupd", "tenant_id", "iupd", unique=True),
    Index("ix_pagopa_positions_tenant_status", "tenant_id", "status", "id"),
    Index("ix_pagopa_positions_tenant_debtor", "tenant_id", "debtor_fiscal_code"),
)

# One row per payment option (the payment in full or one instalment), found by its notice
# number when the Node asks. ``activated_at``: last paGetPayment answered OK (a payment
# started; no receipt yet means it may need recovery).
payment_options = Table(
    "pagopa_payment_options",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("position_id", Id, nullable=False),
    Column("iuv", String(35), nullable=False),
    Column("nav", String(18), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    Column("due_date", UTCDateTime(), nullable=False),
    Column("retention_date", UTCDateTime(), nullable=True),
    Column("is_partial_payment", Boolean(), nullable=False),
    Column("installment_number", Integer(), nullable=True),
    Column("status", String(10), nullable=False),
    Column("receipt_id", String(255), nullable=True),
    Column("paid_at", UTCDateTime(), nullable=True),
    Column("activated_at", UTCDateTime(), nullable=True),
    Index("uq_pagopa_payment_options_tenant_nav", "tenant_id", "nav", unique=True),
    Index("uq_pagopa_payment_options_tenant_iuv", "tenant_id", "iuv", unique=True),
    Index("ix_pagopa_payment_options_position", "position_id"),
)

# Every receipt the Node delivered, exactly once per (tenant, receipt id), with the raw XML.
# ``role`` (migration 0011): only a ``creditor`` receipt may pay the tenant's options
# (``position_id``); ``nav`` and ``iuv`` identify a notice of ``receipt/fiscalCode``.
receipts = Table(
    "pagopa_receipts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("receipt_id", String(255), nullable=False),
    Column("nav", String(18), nullable=False),
    Column("iuv", String(35), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("id_psp", String(35), nullable=False),
    Column("psp_company_name", String(70), nullable=False),
    Column("payment_date_time", UTCDateTime(), nullable=True),
    Column("stand_in", Boolean(), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("position_id", Id, nullable=True),
    Column("note", Text(), nullable=True),
    Column("raw_xml", Text(), nullable=False),
    Column("data", Text(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("forward_status", String(12), nullable=False),
    Column("forwarded_at", UTCDateTime(), nullable=True),
    Column("role", String(12), nullable=False, server_default=text("'creditor'")),
    Index("uq_pagopa_receipts_tenant_receipt_id", "tenant_id", "receipt_id", unique=True),
    Index("ix_pagopa_receipts_tenant_nav", "tenant_id", "nav"),
    Index("ix_pagopa_receipts_tenant_forward", "tenant_id", "forward_status", "id"),
)
