"""What an accounting (ragioneria) adapter is: a class returned by the
``hub_accounting_adapters`` hook, built per tenant as ``cls(options, base_dir=...)``.

It is where debt positions come from (``pull_positions``) and where receipts and
reconciliation results go (``push_receipt``, ``push_reconciliation``). The hub calls
``push_receipt`` from the outbox, so it may call it again for the same receipt after a
crash or a timeout: it MUST be idempotent by ``receipt_id``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class PositionRow:
    """One debt position read from the comune's system.

    ``position`` holds the fields of ``DebtPosition`` (python names); payment options may
    lack ``iuv``: the hub allocates them (``PagopaStore.create_position``).
    """

    source: str
    row: int
    iupd: str
    position: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class RowError:
    """A record that cannot be used: where (source, row, field) and why (no values)."""

    source: str
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: row {self.row}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class ReceiptTransferLine:
    id_transfer: int
    amount: int
    fiscal_code_pa: str
    iban: str | None
    category: str
    remittance_information: str


@dataclass(frozen=True, slots=True)
class AccountingReceipt:
    """A receipt as the accounting system gets it (amounts in cents)."""

    tenant_id: str
    receipt_id: str
    notice_number: str
    iuv: str
    iupd: str | None
    amount: int
    outcome: str
    id_psp: str
    psp_company_name: str
    payment_date_time: datetime | None
    stand_in: bool
    received_at: datetime
    debtor_fiscal_code: str | None = field(default=None, repr=False)
    transfers: tuple[ReceiptTransferLine, ...] = ()
    #: What the hub found odd (Stand-In, amount differs, no matching option...).
    note: str | None = None
    #: ``creditor``: the notice is the tenant's own. ``beneficiary``: another creditor's
    #: notice (``creditor_fiscal_code``) of a multi-beneficiary payment; ``transfers`` then
    #: holds only the tenant's transfers and ``amount`` is their sum.
    role: str = "creditor"
    creditor_fiscal_code: str | None = None


@dataclass(frozen=True, slots=True)
class ReconciliationResult:
    """One payment matched (or not) against a reporting flow (FdR) and the treasury."""

    tenant_id: str
    flow_id: str
    iuv: str
    amount: int
    status: str
    receipt_id: str | None = None
    detail: str | None = None


class AccountingAdapter(Protocol):
    """The contract an accounting adapter class fulfils (reference: the CSV adapter)."""

    name: ClassVar[str]

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None: ...

    def pull_positions(self) -> AsyncIterator[PositionRow | RowError]:
        """Positions to create; a bad record yields a :class:`RowError` and the rest goes on."""
        ...

    async def push_receipt(self, receipt: AccountingReceipt) -> None:
        """Hand a receipt over; idempotent by ``receipt_id`` (called again after failures)."""
        ...

    async def push_reconciliation(self, result: ReconciliationResult) -> None: ...

    async def close(self) -> None: ...
