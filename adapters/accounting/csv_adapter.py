"""Reference accounting adapter: debt positions from a CSV file, receipts appended to another.

Options: ``path`` (positions CSV), ``receipts_path`` (receipts CSV, created when missing),
``reconciliation_path`` (FdR reconciliation results CSV, created when missing; optional),
``company_name`` (the creditor's name as payers see it, e.g. "Comune di Prova"),
``fiscal_code`` (the comune's 11-digit fiscal code, beneficiary of transfer 1),
``office_name`` (optional), ``delimiter`` (default ``;``), ``encoding`` (default
``utf-8-sig``). Relative paths resolve against the configuration file's directory.

Positions CSV, one row per payment option; consecutive rows with the same ``iupd`` are the
options of one position (the payment in full and/or instalments):

===================== ======== =========================================================
column                required meaning
===================== ======== =========================================================
iupd                  yes      the position's id in the comune's system (A-Z a-z 0-9 - _)
debtor_type           no       F (person, default) or G (legal entity)
debtor_fiscal_code    yes      16 characters (or 11 digits for G)
debtor_name           yes      name and surname or company name (≤ 70)
debtor_email          no       e-mail address
description           yes      what is paid, e.g. "TARI 2026 - rata 1" (≤ 140)
installment           no       empty: payment in full; 1..n: instalment number
due_date              yes      YYYY-MM-DD or DD/MM/YYYY (end of that day, Italian time)
amount                no       total in euro ("120,50" or "120.50"); must equal the sum
transfer1_amount      yes      euro to the comune (e.g. TARI)
transfer1_iban        yes      the comune's IBAN
transfer1_postal_iban no       the comune's postal IBAN (Poste, ABI 07601)
transfer1_category    yes      taxonomy code, e.g. 9/0101101IM/
transfer2_amount      no       euro to a second beneficiary (e.g. TEFA to the province)
transfer2_fiscal_code with 2   the second beneficiary's fiscal code (11 digits)
transfer2_iban        with 2   its IBAN
transfer2_category    with 2   its taxonomy code
===================== ======== =========================================================

A bad row yields a ``RowError`` naming file, row and column, and its position is skipped;
the other positions go on. Receipts CSV columns: :data:`RECEIPT_COLUMNS`; a receipt whose
``receipt_id`` is already in the file is not written again. Reconciliation CSV columns:
:data:`RECONCILIATION_COLUMNS`; a result already there (same flow, IUV, receipt and detail,
which names the revision and transfer) is not written again.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from sportello.connectors.pagopa.identifiers import iuv_for
from sportello.connectors.pagopa.models import DebtPosition

from .base import AccountingReceipt, PositionRow, ReconciliationResult, RowError

ROME = ZoneInfo("Europe/Rome")
REQUIRED = (
    "iupd",
    "debtor_fiscal_code",
    "debtor_name",
    "description",
    "due_date",
    "transfer1_amount",
    "transfer1_iban",
    "transfer1_category",
)
RECEIPT_COLUMNS = (
    "receipt_id",
    "notice_number",
    "iuv",
    "iupd",
    "amount",
    "outcome",
    "payment_date_time",
    "id_psp",
    "psp_company_name",
    "stand_in",
    "debtor_fiscal_code",
    "transfers",
    "note",
    "received_at",
)
RECONCILIATION_COLUMNS = ("flow_id", "iuv", "receipt_id", "amount", "status", "detail", "tenant_id")
_EURO = re.compile(r"([0-9]+)(?:[.,]([0-9]{1,2}))?")

# Model field path → CSV column, for error messages.
_OPTION_COLUMNS = {
    "amount": "amount",
    "description": "description",
    "due_date": "due_date",
    "installment_number": "installment",
    "is_partial_payment": "installment",
}
_TRANSFER_COLUMNS = {
    "amount": "amount",
    "iban": "iban",
    "postal_iban": "postal_iban",
    "category": "category",
    "organization_fiscal_code": "fiscal_code",
    "remittance_information": "description",
}
_POSITION_COLUMNS = {
    "iupd": "iupd",
    "type": "debtor_type",
    "fiscal_code": "debtor_fiscal_code",
    "full_name": "debtor_name",
    "email": "debtor_email",
}


class _Bad(ValueError):
    def __init__(self, column: str, message: str) -> None:
        self.column = column
        super().__init__(message)


def euro_to_cents(value: str, column: str) -> int:
    match = _EURO.fullmatch(value.strip())
    if not match:
        raise _Bad(column, "expected an amount in euro such as 120,50")
    cents = (match.group(2) or "0").ljust(2, "0")
    return int(match.group(1)) * 100 + int(cents)


def parse_due_date(value: str) -> datetime:
    text = value.strip()
    try:
        if re.fullmatch(r"\d{2}/\d{2}/\d{4}", text):
            day = datetime.strptime(text, "%d/%m/%Y").date()
        else:
            day = date.fromisoformat(text)
    except ValueError:
        raise _Bad("due_date", "expected a date as YYYY-MM-DD or DD/MM/YYYY") from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=ROME)


class CsvAccountingAdapter:
    name: ClassVar[str] = "csv"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        def where(key: str) -> Path | None:
            raw = options.get(key)
            if not raw:
                return None
            path = Path(str(raw))
            return path if path.is_absolute() else base_dir / path

        self.path = where("path")
        self.receipts_path = where("receipts_path")
        self.reconciliation_path = where("reconciliation_path")
        self.company_name = str(options.get("company_name") or "")
        self.fiscal_code = str(options.get("fiscal_code") or "")
        self.office_name = options.get("office_name")
        self.delimiter = str(options.get("delimiter", ";"))
        self.encoding = str(options.get("encoding", "utf-8-sig"))
        self._lock = asyncio.Lock()
        self._seen: set[str] = set()
        self._seen_size = -1
        self._results: set[tuple[str, ...]] = set()
        self._results_size = -1

    # -- positions ------------------------------------------------------------------------

    async def pull_positions(self) -> AsyncIterator[PositionRow | RowError]:
        if self.path is None:
            raise ValueError("the csv accounting adapter needs options.path to read positions")
        for item in await asyncio.to_thread(lambda: list(self.read_positions())):
            yield item

    def read_positions(self, path: Path | None = None) -> Iterator[PositionRow | RowError]:
        """Parse a positions CSV (``path`` or ``options.path``), position by position."""
        source = path or self.path
        assert source is not None
        name = str(source)
        with source.open(encoding=self.encoding, newline="") as fh:
            reader = csv.DictReader(fh, delimiter=self.delimiter)
            header = set(reader.fieldnames or [])
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                yield RowError(name, 1, missing[0], "column missing from the header")
                return
            group: list[tuple[int, dict[str, str]]] = []
            done: set[str] = set()
            for number, row in enumerate(reader, start=2):
                clean = {k: (v or "").strip() for k, v in row.items() if k}
                if group and clean.get("iupd") != group[0][1].get("iupd"):
                    yield from self._position(name, group, done)
                    group = []
                group.append((number, clean))
            if group:
                yield from self._position(name, group, done)

    def _position(
        self, source: str, rows: list[tuple[int, dict[str, str]]], done: set[str]
    ) -> Iterator[PositionRow | RowError]:
        first_row, first = rows[0]
        iupd = first.get("iupd", "")
        if iupd in done:
            yield RowError(source, first_row, "iupd", "appears again after other positions")
            return
        done.add(iupd)
        options = []
        for number, row in rows:
            try:
                options.append(self._option(row))
            except _Bad as exc:
                yield RowError(source, number, exc.column, str(exc))
                return
        raw: dict[str, Any] = {
            "iupd": iupd,
            "type": first.get("debtor_type") or "F",
            "fiscal_code": first.get("debtor_fiscal_code", "").upper(),
            "full_name": first.get("debtor_name", ""),
            "email": first.get("debtor_email") or None,
            "company_name": self.company_name,
            "office_name": self.office_name,
            "payment_options": options,
        }
        # Check with placeholder IUVs now, so errors point at the CSV and not at the store.
        trial = dict(raw)
        trial["payment_options"] = [
            {**o, "iuv": iuv_for(i + 1, segregation_code="01")} for i, o in enumerate(options)
        ]
        try:
            DebtPosition.model_validate(trial)
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            number, column = self._locate(err["loc"], rows)
            yield RowError(source, number, column, str(err["msg"]).removeprefix("Value error, "))
            return
        yield PositionRow(source, first_row, iupd, raw)

    def _option(self, row: dict[str, str]) -> dict[str, Any]:
        transfers: list[dict[str, Any]] = [
            {
                "id_transfer": 1,
                "amount": euro_to_cents(row.get("transfer1_amount", ""), "transfer1_amount"),
                "organization_fiscal_code": self.fiscal_code,
                "remittance_information": row.get("description", ""),
                "category": row.get("transfer1_category", ""),
                "iban": row.get("transfer1_iban", ""),
                "postal_iban": row.get("transfer1_postal_iban") or None,
            }
        ]
        if row.get("transfer2_amount"):
            for column in ("transfer2_fiscal_code", "transfer2_iban", "transfer2_category"):
                if not row.get(column):
                    raise _Bad(column, "required when transfer2_amount is given")
            transfers.append(
                {
                    "id_transfer": 2,
                    "amount": euro_to_cents(row["transfer2_amount"], "transfer2_amount"),
                    "organization_fiscal_code": row["transfer2_fiscal_code"],
                    "remittance_information": row.get("description", ""),
                    "category": row["transfer2_category"],
                    "iban": row["transfer2_iban"],
                }
            )
        total = sum(t["amount"] for t in transfers)
        if row.get("amount") and euro_to_cents(row["amount"], "amount") != total:
            raise _Bad("amount", "differs from the sum of the transfer amounts")
        installment = row.get("installment") or ""
        if installment and not installment.isdigit():
            raise _Bad("installment", "expected an instalment number (1, 2, ...) or nothing")
        return {
            "amount": total,
            "description": row.get("description", ""),
            "due_date": parse_due_date(row.get("due_date", "")),
            "is_partial_payment": bool(installment),
            "installment_number": int(installment) if installment else None,
            "transfers": transfers,
        }

    @staticmethod
    def _locate(
        loc: tuple[int | str, ...], rows: list[tuple[int, dict[str, str]]]
    ) -> tuple[int, str]:
        """(CSV row, column) for a validation error location."""
        parts = list(loc)
        if not parts or parts[0] != "payment_options":
            return rows[0][0], _POSITION_COLUMNS.get(str(parts[0]) if parts else "", "row")
        index = parts[1] if len(parts) > 1 and isinstance(parts[1], int) else 0
        number = rows[min(index, len(rows) - 1)][0]
        if len(parts) > 4 and parts[2] == "transfers" and isinstance(parts[3], int):
            column = _TRANSFER_COLUMNS.get(str(parts[4]), str(parts[4]))
            return number, f"transfer{parts[3] + 1}_{column}"
        if len(parts) > 2:
            return number, _OPTION_COLUMNS.get(str(parts[2]), str(parts[2]))
        return number, "row"

    # -- receipts -------------------------------------------------------------------------

    async def push_receipt(self, receipt: AccountingReceipt) -> None:
        if self.receipts_path is None:
            raise ValueError("the csv accounting adapter needs options.receipts_path")
        async with self._lock:
            await asyncio.to_thread(self._append, receipt)

    def _append(self, receipt: AccountingReceipt) -> None:
        assert self.receipts_path is not None
        self.receipts_path.parent.mkdir(parents=True, exist_ok=True)
        with self.receipts_path.open("a+", encoding="utf-8", newline="") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # other worker processes
            try:
                size = os.fstat(fh.fileno()).st_size
                if size != self._seen_size:
                    fh.seek(0)
                    rows = csv.reader(fh, delimiter=self.delimiter)
                    self._seen = {r[0] for r in rows if r}
                if receipt.receipt_id in self._seen:
                    return
                writer = csv.writer(fh, delimiter=self.delimiter)
                if size == 0:
                    writer.writerow(RECEIPT_COLUMNS)
                writer.writerow(self._receipt_row(receipt))
                fh.flush()
                os.fsync(fh.fileno())
                self._seen.add(receipt.receipt_id)
                self._seen_size = os.fstat(fh.fileno()).st_size
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _receipt_row(r: AccountingReceipt) -> list[str]:
        def euro(cents: int) -> str:
            return f"{cents // 100}.{cents % 100:02d}"

        transfers = "|".join(
            f"{t.id_transfer}:{euro(t.amount)}:{t.fiscal_code_pa}:{t.iban or ''}:{t.category}"
            for t in r.transfers
        )
        return [
            r.receipt_id,
            r.notice_number,
            r.iuv,
            r.iupd or "",
            euro(r.amount),
            r.outcome,
            r.payment_date_time.isoformat() if r.payment_date_time else "",
            r.id_psp,
            r.psp_company_name,
            "true" if r.stand_in else "false",
            r.debtor_fiscal_code or "",
            transfers,
            r.note or "",
            r.received_at.isoformat(),
        ]

    async def push_reconciliation(self, result: ReconciliationResult) -> None:
        """Append ``result`` to ``reconciliation_path`` (nothing without it); a result
        already there (same flow, IUV, receipt and detail) is not written again."""
        if self.reconciliation_path is None:
            return
        async with self._lock:
            await asyncio.to_thread(self._append_result, result)

    def _append_result(self, result: ReconciliationResult) -> None:
        assert self.reconciliation_path is not None
        row = [
            result.flow_id,
            result.iuv,
            result.receipt_id or "",
            f"{result.amount // 100}.{result.amount % 100:02d}",
            result.status,
            result.detail or "",
            result.tenant_id,
        ]
        key = (row[0], row[1], row[2], row[5])
        self.reconciliation_path.parent.mkdir(parents=True, exist_ok=True)
        with self.reconciliation_path.open("a+", encoding="utf-8", newline="") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                size = os.fstat(fh.fileno()).st_size
                if size != self._results_size:
                    fh.seek(0)
                    self._results = {
                        (r[0], r[1], r[2], r[5])
                        for r in csv.reader(fh, delimiter=self.delimiter)
                        if len(r) >= 6
                    }
                if key in self._results:
                    return
                writer = csv.writer(fh, delimiter=self.delimiter)
                if size == 0:
                    writer.writerow(RECONCILIATION_COLUMNS)
                writer.writerow(row)
                fh.flush()
                os.fsync(fh.fileno())
                self._results.add(key)
                self._results_size = os.fstat(fh.fileno()).st_size
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    async def close(self) -> None:
        return None
