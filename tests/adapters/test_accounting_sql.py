"""The SQL accounting adapter on a SQLite file database (and the CSV adapter's results)."""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sportello.adapters.accounting.base import (
    AccountingReceipt,
    PositionRow,
    ReceiptTransferLine,
    ReconciliationResult,
    RowError,
)
from sportello.adapters.accounting.csv_adapter import CsvAccountingAdapter
from sportello.adapters.accounting.sql_adapter import SqlAccountingAdapter
from sportello.adapters.plugin import hub_accounting_adapters

EC = "77777777777"
PROVINCE = "80000000001"
IBAN = "IT60X0542811101000000123456"
PROVINCE_IBAN = "IT43X0542803200000000654321"

SCHEMA = """
CREATE TABLE rate (
    id INTEGER PRIMARY KEY,
    codice TEXT, cf TEXT, nominativo TEXT, causale TEXT, rata INTEGER, scadenza DATE,
    importo_tari NUMERIC, iban_tari TEXT, tassonomia_tari TEXT,
    importo_tefa NUMERIC, cf_tefa TEXT, iban_tefa TEXT, tassonomia_tefa TEXT
);
CREATE TABLE ricevute (
    id INTEGER PRIMARY KEY, id_ricevuta TEXT UNIQUE, avviso TEXT, iuv TEXT, pratica TEXT,
    importo_centesimi INTEGER, pagato_il DATETIME, stand_in BOOLEAN, esito TEXT
);
CREATE TABLE quadrature (
    id INTEGER PRIMARY KEY, flusso TEXT, iuv TEXT, ricevuta TEXT, importo NUMERIC,
    stato TEXT, dettaglio TEXT
);
"""

COLUMNS = {
    "iupd": "codice",
    "debtor_fiscal_code": "cf",
    "debtor_name": "nominativo",
    "description": "causale",
    "installment": "rata",
    "due_date": "scadenza",
    "transfer1_amount": "importo_tari",
    "transfer1_iban": "iban_tari",
    "transfer1_category": "tassonomia_tari",
    "transfer2_amount": "importo_tefa",
    "transfer2_fiscal_code": "cf_tefa",
    "transfer2_iban": "iban_tefa",
    "transfer2_category": "tassonomia_tefa",
}


def rate_row(code: str, n: int, **changes: Any) -> dict[str, Any]:
    row = {
        "codice": code,
        "cf": "RSSMRA80A01H501U",
        "nominativo": "Mario Rossi",
        "causale": f"TARI 2026 - rata {n}",
        "rata": n,
        "scadenza": date(2026, 6 * n, 16).isoformat(),
        "importo_tari": 90.5,
        "iban_tari": IBAN,
        "tassonomia_tari": "9/0101101IM/",
        "importo_tefa": "4,53",
        "cf_tefa": PROVINCE,
        "iban_tefa": PROVINCE_IBAN,
        "tassonomia_tefa": "9/0201102IM/",
    }
    row.update(changes)
    return row


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "ragioneria.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        rows = [
            rate_row("TARI-1", 1),
            rate_row("TARI-1", 2),
            rate_row("TARI-2", 1, importo_tari="dieci euro"),  # bad amount
            rate_row("TARI-2", 2),
            rate_row("TARI-3", 1, iban_tari="IT00XBAD"),  # bad IBAN
            rate_row("TARI-4", 1),
            rate_row("TARI-4", 2),
        ]
        for row in rows:
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            db.execute(f"INSERT INTO rate ({names}) VALUES ({marks})", list(row.values()))
    return path


def adapter(path: Path) -> SqlAccountingAdapter:
    return SqlAccountingAdapter(
        {
            "url": f"sqlite+aiosqlite:///{path.name}",
            "positions_table": "rate",
            "columns": COLUMNS,
            "receipts_table": "ricevute",
            "receipt_columns": {
                "receipt_id": "id_ricevuta",
                "notice_number": "avviso",
                "iupd": "pratica",
                "amount": "importo_centesimi",
                "payment_date_time": "pagato_il",
                "outcome": "esito",
            },
            "reconciliation_table": "quadrature",
            "reconciliation_columns": {
                "flow_id": "flusso",
                "receipt_id": "ricevuta",
                "amount": "importo",
                "status": "stato",
                "detail": "dettaglio",
            },
            "company_name": "Comune di Prova",
            "fiscal_code": EC,
        },
        base_dir=path.parent,
    )


def receipt(receipt_id: str = "R1") -> AccountingReceipt:
    return AccountingReceipt(
        tenant_id="prova",
        receipt_id=receipt_id,
        notice_number="301000000000000144",
        iuv="01000000000000144",
        iupd="TARI-1",
        amount=9503,
        outcome="OK",
        id_psp="SNDBITMM",
        psp_company_name="Banca Sandbox",
        payment_date_time=datetime(2026, 3, 10, 10, 0),
        stand_in=True,
        received_at=datetime(2026, 3, 10, 9, 0, 1, tzinfo=UTC),
        transfers=(ReceiptTransferLine(1, 9050, EC, IBAN, "9/0101101IM/", "TARI"),),
    )


def test_registered() -> None:
    assert hub_accounting_adapters()["sql"] is SqlAccountingAdapter


async def test_pull_positions_groups_by_iupd_and_names_bad_rows(database: Path) -> None:
    sql = adapter(database)
    try:
        items = [i async for i in sql.pull_positions()]
    finally:
        await sql.close()
    good = [i for i in items if isinstance(i, PositionRow)]
    bad = [i for i in items if isinstance(i, RowError)]
    assert [p.iupd for p in good] == ["TARI-1", "TARI-4"]
    first = good[0].position
    assert len(first["payment_options"]) == 2
    option = first["payment_options"][0]
    assert option["amount"] == 9050 + 453 and option["installment_number"] == 1
    assert [t["amount"] for t in option["transfers"]] == [9050, 453]
    assert option["transfers"][1]["organization_fiscal_code"] == PROVINCE
    assert [(e.source, e.row, e.field) for e in bad] == [
        ("rate", 3, "importo_tari"),
        ("rate", 5, "iban_tari"),
    ]
    assert str(bad[0]).startswith("rate: row 3: importo_tari: ")


async def test_missing_column_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE rate (codice TEXT)")
    sql = adapter(path)
    try:
        items = [i async for i in sql.pull_positions()]
    finally:
        await sql.close()
    assert len(items) == 1 and isinstance(items[0], RowError)
    assert (items[0].source, items[0].field) == ("rate", "cf")


async def test_push_receipt_is_idempotent(database: Path) -> None:
    sql = adapter(database)
    try:
        await sql.push_receipt(receipt())
        await sql.push_receipt(receipt())
        await sql.push_receipt(receipt("R2"))
    finally:
        await sql.close()
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT id_ricevuta, avviso, pratica, importo_centesimi, stand_in, esito, iuv "
            "FROM ricevute ORDER BY id"
        ).fetchall()
    assert rows == [
        ("R1", "301000000000000144", "TARI-1", 9503, 1, "OK", "01000000000000144"),
        ("R2", "301000000000000144", "TARI-1", 9503, 1, "OK", "01000000000000144"),
    ]


async def test_push_reconciliation_upserts(database: Path) -> None:
    sql = adapter(database)
    result = ReconciliationResult(
        tenant_id="prova",
        flow_id="2026-03-11SNDBITMM-00001",
        iuv="01000000000000144",
        amount=9050,
        status="missing_receipt",
        receipt_id="R1",
        detail="revision 1, transfer 1, EXECUTED",
    )
    try:
        await sql.push_reconciliation(result)
        await sql.push_reconciliation(result)
        await sql.push_reconciliation(replace(result, status="matched"))
    finally:
        await sql.close()
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT flusso, iuv, ricevuta, importo, stato FROM quadrature").fetchall()
    assert rows == [("2026-03-11SNDBITMM-00001", "01000000000000144", "R1", 90.5, "matched")]


async def test_csv_push_reconciliation_appends_once(tmp_path: Path) -> None:
    out = tmp_path / "quadrature.csv"
    csv_adapter = CsvAccountingAdapter({"reconciliation_path": str(out)}, base_dir=tmp_path)
    results = [
        ReconciliationResult("prova", "F1", "01000000000000144", 9050, "matched", "R1", "t1"),
        ReconciliationResult("prova", "F1", "01000000000000151", 453, "matched", "R2", "t1"),
    ]
    for r in results + results:
        await csv_adapter.push_reconciliation(r)
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    assert [(r["flow_id"], r["iuv"], r["amount"]) for r in rows] == [
        ("F1", "01000000000000144", "90.50"),
        ("F1", "01000000000000151", "4.53"),
    ]
    # a fresh adapter (another process) reads what is there
    again = CsvAccountingAdapter({"reconciliation_path": str(out)}, base_dir=tmp_path)
    await again.push_reconciliation(results[0])
    with out.open(encoding="utf-8", newline="") as fh:
        assert len(list(csv.DictReader(fh, delimiter=";"))) == 2
