"""The accounting adapter contract: the CSV reference adapter passes it, broken adapters do
not, and it runs without pytest too."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import sportello.adapters.plugin as adapters_plugin
from sportello.adapter_kit.accounting_contract import (
    BAD_IUPD,
    CREDITOR_FISCAL_CODE,
    AccountingContract,
    AccountingFactory,
    ContractViolation,
    ReceiptReader,
    ReconciliationReader,
    canonical_positions,
    run_accounting_contract,
)
from sportello.adapter_kit.pytest_plugin import AccountingContractTests
from sportello.adapters.accounting.base import AccountingReceipt, PositionRow, RowError
from sportello.adapters.accounting.csv_adapter import CsvAccountingAdapter

COLUMNS = (
    "iupd",
    "debtor_type",
    "debtor_fiscal_code",
    "debtor_name",
    "debtor_email",
    "description",
    "installment",
    "due_date",
    "amount",
    "transfer1_amount",
    "transfer1_iban",
    "transfer1_category",
    "transfer2_amount",
    "transfer2_fiscal_code",
    "transfer2_iban",
    "transfer2_category",
)


def _euro(cents: int) -> str:
    return f"{cents // 100},{cents % 100:02d}"


def csv_rows(positions: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The positions as the csv adapter's rows: one per payment option."""
    rows = []
    for p in positions:
        for o in p["payment_options"]:
            t = {x["id_transfer"]: x for x in o["transfers"]}
            row = {
                "iupd": p["iupd"],
                "debtor_type": p["type"],
                "debtor_fiscal_code": p["fiscal_code"],
                "debtor_name": p["full_name"],
                "debtor_email": p.get("email") or "",
                "description": o["description"],
                "installment": str(o["installment_number"] or ""),
                "due_date": o["due_date"].date().isoformat(),
                "amount": _euro(o["amount"]),
                "transfer1_amount": _euro(t[1]["amount"]),
                "transfer1_iban": t[1]["iban"],
                "transfer1_category": t[1]["category"],
            }
            if 2 in t:
                row |= {
                    "transfer2_amount": _euro(t[2]["amount"]),
                    "transfer2_fiscal_code": t[2]["organization_fiscal_code"],
                    "transfer2_iban": t[2]["iban"],
                    "transfer2_category": t[2]["category"],
                }
            rows.append(row)
    return rows


async def csv_accounting(positions: list[dict[str, Any]], workdir: Path) -> CsvAccountingAdapter:
    with (workdir / "positions.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, delimiter=";")
        writer.writeheader()
        writer.writerows(csv_rows(positions))
    options = {
        "path": "positions.csv",
        "receipts_path": "out/receipts.csv",
        "reconciliation_path": "out/reconciliation.csv",
        "company_name": positions[0]["company_name"],
        "fiscal_code": CREDITOR_FISCAL_CODE,
    }
    return CsvAccountingAdapter(options, base_dir=workdir)


async def csv_receipts(workdir: Path) -> list[str]:
    path = workdir / "out" / "receipts.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["receipt_id"] for row in csv.DictReader(fh, delimiter=";")]


async def csv_reconciliations(workdir: Path) -> list[tuple[str, str]]:
    path = workdir / "out" / "reconciliation.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [(row["flow_id"], row["iuv"]) for row in csv.DictReader(fh, delimiter=";")]


class TestCsvAccountingContract(AccountingContractTests):
    @pytest.fixture
    def accounting_factory(self) -> AccountingFactory:
        return csv_accounting

    @pytest.fixture
    def read_receipts(self) -> ReceiptReader:
        return csv_receipts

    @pytest.fixture
    def read_reconciliations(self) -> ReconciliationReader:
        return csv_reconciliations

    @pytest.fixture
    def sportello_plugin(self) -> object:
        return adapters_plugin


async def test_run_accounting_contract_without_pytest(tmp_path: Path) -> None:
    outcome = await run_accounting_contract(
        csv_accounting, csv_receipts, tmp_path, plugin=adapters_plugin
    )
    assert set(outcome) == set(AccountingContract.CHECKS)
    assert set(outcome.values()) == {"passed"}
    outcome = await run_accounting_contract(csv_accounting, csv_receipts, tmp_path / "again")
    assert outcome["registered_through_the_hook"].startswith("skipped: no plugin given")


class Forgetful(CsvAccountingAdapter):
    """Breaks the contract: appends every receipt, and stops at the first bad position."""

    async def push_receipt(self, receipt: AccountingReceipt) -> None:
        assert self.receipts_path is not None
        self.receipts_path.parent.mkdir(parents=True, exist_ok=True)
        with self.receipts_path.open("a", encoding="utf-8", newline="") as fh:
            if fh.tell() == 0:
                fh.write("receipt_id\n")
            fh.write(receipt.receipt_id + "\n")

    async def pull_positions(self) -> AsyncIterator[PositionRow | RowError]:
        async for item in super().pull_positions():
            yield item
            if isinstance(item, RowError):
                return


async def test_the_contract_catches_a_broken_adapter(tmp_path: Path) -> None:
    async def broken(positions: list[dict[str, Any]], workdir: Path) -> Forgetful:
        good = await csv_accounting(positions, workdir)
        return Forgetful(
            {
                "path": good.path,
                "receipts_path": good.receipts_path,
                "company_name": good.company_name,
                "fiscal_code": good.fiscal_code,
            },
            base_dir=workdir,
        )

    with pytest.raises(ContractViolation) as caught:
        await run_accounting_contract(broken, csv_receipts, tmp_path)
    message = str(caught.value)
    assert message.startswith("4 accounting contract check(s) failed:"), message
    assert "positions_are_valid: pull_positions() yielded positions" in message
    assert "bad_position_is_named_and_skipped: pull_positions() stopped at the invalid" in message
    assert "receipt_is_pushed_once: after pushing rcpt-0001 three times" in message
    assert "receipt_is_pushed_once_across_instances: two adapter instances" in message


async def test_a_changed_field_and_a_vague_error_are_named(tmp_path: Path) -> None:
    async def wrong_fiscal_code(positions: list[dict[str, Any]], workdir: Path) -> Any:
        adapter = await csv_accounting(positions, workdir)
        adapter.fiscal_code = "88888888888"  # not the comune of the dataset
        return adapter

    contract = AccountingContract(wrong_fiscal_code, csv_receipts)
    with pytest.raises(ContractViolation, match=r"payment_options is .*88888888888"):
        await contract.run("positions_are_valid", tmp_path)
    vague = AccountingContract(csv_accounting, csv_receipts, bad_field="debtor_name")
    with pytest.raises(
        ContractViolation, match=r"'debtor_fiscal_code', expected one naming debtor_name"
    ):
        await vague.run("bad_position_is_named_and_skipped", tmp_path / "vague")


def test_the_canonical_positions() -> None:
    positions = canonical_positions()
    assert positions is not canonical_positions()
    assert [p["iupd"] for p in positions][2] == BAD_IUPD
    assert {p["company_name"] for p in positions} == {"Comune di Prova"}
    with pytest.raises(ValueError, match="at least two valid ones"):
        AccountingContract(csv_accounting, csv_receipts, positions=positions[:1])


# --- the sql reference adapter, on a SQLite file database ------------------------------------
SQL_SCHEMA = """
CREATE TABLE rate (
    id INTEGER PRIMARY KEY, iupd TEXT, debtor_type TEXT, debtor_fiscal_code TEXT,
    debtor_name TEXT, debtor_email TEXT, description TEXT, installment INTEGER, due_date DATE,
    amount TEXT, transfer1_amount TEXT, transfer1_iban TEXT, transfer1_category TEXT,
    transfer2_amount TEXT, transfer2_fiscal_code TEXT, transfer2_iban TEXT,
    transfer2_category TEXT
);
CREATE TABLE ricevute (
    id INTEGER PRIMARY KEY, receipt_id TEXT UNIQUE, notice_number TEXT, iupd TEXT,
    amount INTEGER, payment_date_time DATETIME, outcome TEXT
);
CREATE TABLE quadrature (
    id INTEGER PRIMARY KEY, flow_id TEXT, iuv TEXT, receipt_id TEXT, amount NUMERIC,
    status TEXT, detail TEXT
);
"""


def _sql_database(positions: list[dict[str, Any]], workdir: Path) -> None:
    import sqlite3

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "ragioneria.db"
    if path.exists():
        return
    with sqlite3.connect(path) as db:
        db.executescript(SQL_SCHEMA)
        for row in csv_rows(positions):
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            db.execute(f"INSERT INTO rate ({names}) VALUES ({marks})", list(row.values()))


async def sql_accounting(positions: list[dict[str, Any]], workdir: Path) -> Any:
    from sportello.adapters.accounting.sql_adapter import SqlAccountingAdapter

    _sql_database(positions, workdir)
    receipt_fields = ("receipt_id", "notice_number", "iupd", "amount", "payment_date_time")
    options = {
        "url": "sqlite+aiosqlite:///ragioneria.db",
        "positions_table": "rate",
        "columns": {c: c for c in COLUMNS},
        "receipts_table": "ricevute",
        "receipt_columns": {c: c for c in (*receipt_fields, "outcome")},
        "reconciliation_table": "quadrature",
        "reconciliation_columns": {
            c: c for c in ("flow_id", "iuv", "receipt_id", "amount", "status", "detail")
        },
        "company_name": positions[0]["company_name"],
        "fiscal_code": CREDITOR_FISCAL_CODE,
    }
    return SqlAccountingAdapter(options, base_dir=workdir)


def _sql_read(workdir: Path, query: str) -> list[tuple[Any, ...]]:
    import sqlite3

    path = workdir / "ragioneria.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return list(db.execute(query))


async def sql_receipts(workdir: Path) -> list[str]:
    return [r[0] for r in _sql_read(workdir, "SELECT receipt_id FROM ricevute")]


async def sql_reconciliations(workdir: Path) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in _sql_read(workdir, "SELECT flow_id, iuv FROM quadrature")]


class TestSqlAccountingContract(AccountingContractTests):
    @pytest.fixture
    def accounting_factory(self) -> AccountingFactory:
        return sql_accounting

    @pytest.fixture
    def read_receipts(self) -> ReceiptReader:
        return sql_receipts

    @pytest.fixture
    def read_reconciliations(self) -> ReconciliationReader:
        return sql_reconciliations

    @pytest.fixture
    def sportello_plugin(self) -> object:
        return adapters_plugin
