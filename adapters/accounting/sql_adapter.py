"""Reference accounting adapter: any SQL database the comune's accounting software uses.

Options:

- ``url``: a SQLAlchemy async URL (``postgresql+asyncpg://...``,
  ``sqlite+aiosqlite:///ragioneria.db``; a relative SQLite path resolves against the
  configuration file's directory);
- ``positions_table`` and ``columns``: where positions are read, one row per payment
  option, with the fields of the CSV adapter (``iupd``, ``debtor_fiscal_code``,
  ``debtor_name``, ``description``, ``installment``, ``due_date``, ``transfer1_amount``,
  ``transfer1_iban``, ``transfer1_category``, ``transfer2_*``, ...; see
  ``csv_adapter``) mapped to the table's columns (``{"iupd": "codice_pratica", ...}``; a
  field not mapped is read from the column of the same name). Rows are read ordered by
  IUPD (then instalment) and grouped by IUPD into positions. Amounts are euro (numbers or
  text such as ``120,50``), or cents when ``amounts_in_cents`` is true; dates are dates,
  date-times or text;
- ``receipts_table`` and ``receipt_columns``: where receipts are INSERTed, idempotent by
  ``receipt_id`` (fields: those of the CSV adapter's receipts file);
- ``reconciliation_table`` and ``reconciliation_columns``: where FdR results go, one row
  per (``flow_id``, ``iuv``, ``receipt_id``, ``detail``), updated when it is there (fields:
  ``tenant_id``, ``flow_id``, ``iuv``, ``receipt_id``, ``amount``, ``status``,
  ``detail``);
- ``company_name``, ``fiscal_code``, ``office_name``: as for the CSV adapter.

Values are written in the column's type: an integer amount column gets cents, a numeric
one euro, a text one ``120.50``; date-time columns get date-times, boolean ones booleans.
A bad row yields a ``RowError`` naming the table, the row (its position in the reading
order, from 1) and the column, and the rest of the batch goes on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    Table,
    and_,
    insert,
    select,
    update,
)
from sqlalchemy import column as untyped
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..sql_query import sqlite_relative_to
from .base import AccountingReceipt, PositionRow, ReconciliationResult, RowError
from .csv_adapter import RECEIPT_COLUMNS, REQUIRED, CsvAccountingAdapter

RESULT_FIELDS = ("tenant_id", "flow_id", "iuv", "receipt_id", "amount", "status", "detail")
_AMOUNT_FIELDS = ("amount", "transfer1_amount", "transfer2_amount")


def _mapping(options: dict[str, Any], key: str) -> dict[str, str]:
    raw = options.get(key) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"the sql accounting adapter's options.{key} must be a table")
    return {str(k): str(v) for k, v in raw.items()}


def _euro(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class SqlAccountingAdapter:
    name: ClassVar[str] = "sql"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        if "url" not in options:
            raise ValueError("the sql accounting adapter needs options.url")
        self.url = sqlite_relative_to(str(options["url"]), base_dir)
        self.positions_table = options.get("positions_table")
        self.receipts_table = options.get("receipts_table")
        self.reconciliation_table = options.get("reconciliation_table")
        self.columns = _mapping(options, "columns")
        self.receipt_columns = _mapping(options, "receipt_columns")
        self.reconciliation_columns = _mapping(options, "reconciliation_columns")
        self.amounts_in_cents = bool(options.get("amounts_in_cents", False))
        self._csv = CsvAccountingAdapter(
            {k: options[k] for k in ("company_name", "fiscal_code", "office_name") if k in options},
            base_dir=base_dir,
        )
        self._engine: AsyncEngine | None = None
        self._tables: dict[str, Table] = {}

    def __repr__(self) -> str:
        return f"SqlAccountingAdapter(positions={self.positions_table!r})"

    async def _table(self, name: str) -> tuple[AsyncEngine, Table]:
        if self._engine is None:
            self._engine = create_async_engine(self.url)
        if name not in self._tables:
            meta = MetaData()
            async with self._engine.connect() as conn:
                await conn.run_sync(meta.reflect, only=[name])
            self._tables[name] = meta.tables[name]
        return self._engine, self._tables[name]

    # -- positions ------------------------------------------------------------------------

    def _text(self, field: str, value: Any) -> str:
        """A database value as the CSV adapter's text."""
        if value is None:
            return ""
        if field in _AMOUNT_FIELDS and not isinstance(value, str):
            if self.amounts_in_cents:
                return _euro(int(value))
            return f"{Decimal(str(value)):.2f}"
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return str(value).strip()

    async def pull_positions(self) -> AsyncIterator[PositionRow | RowError]:
        if not self.positions_table:
            raise ValueError("the sql accounting adapter needs options.positions_table")
        name = str(self.positions_table)
        engine, table = await self._table(name)
        for field in REQUIRED:
            column = self.columns.get(field, field)
            if column not in table.c:
                yield RowError(name, 0, column, "column missing from the table")
                return
        iupd_column = self.columns.get("iupd", "iupd")
        order = [table.c[iupd_column]]
        installment = self.columns.get("installment", "installment")
        if installment in table.c:
            order.append(table.c[installment])
        order += [c for c in table.primary_key.columns]
        # untyped columns: a bad value reaches the row check as it is, not as a driver error
        raw: Any = select(*(untyped(c.name) for c in table.c)).select_from(table).order_by(*order)
        async with engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(raw)]
        for item in self._positions(name, rows):
            yield item

    def _positions(self, name: str, rows: list[dict[str, Any]]) -> Iterator[PositionRow | RowError]:
        wanted = {field: self.columns.get(field, field) for field in self._csv_fields()}
        back = dict(wanted)
        group: list[tuple[int, dict[str, str]]] = []
        done: set[str] = set()

        def flush() -> Iterator[PositionRow | RowError]:
            for item in self._csv._position(name, group, done):
                if isinstance(item, RowError):
                    yield RowError(name, item.row, back.get(item.field, item.field), item.message)
                else:
                    yield item

        for number, row in enumerate(rows, start=1):
            clean = {f: self._text(f, row.get(c)) for f, c in wanted.items() if c in row}
            if group and clean.get("iupd") != group[0][1].get("iupd"):
                yield from flush()
                group = []
            group.append((number, clean))
        if group:
            yield from flush()

    @staticmethod
    def _csv_fields() -> tuple[str, ...]:
        return (
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
            "transfer1_postal_iban",
            "transfer1_category",
            "transfer2_amount",
            "transfer2_fiscal_code",
            "transfer2_iban",
            "transfer2_category",
        )

    # -- receipts and results --------------------------------------------------------------

    @staticmethod
    def _coerce(table: Table, column: str, value: Any, *, cents: bool) -> Any:
        """``value`` in the type of ``table.c[column]`` (amounts given in cents)."""
        if value is None:
            return None
        kind = table.c[column].type
        if cents:
            if isinstance(kind, Integer):
                return int(value)
            if isinstance(kind, Numeric | Float):
                return Decimal(int(value)) / 100
            return _euro(int(value))
        if isinstance(value, bool):
            return value if isinstance(kind, Boolean) else ("true" if value else "false")
        if isinstance(value, datetime):
            if isinstance(kind, DateTime):
                return value
            if isinstance(kind, Date):
                return value.date()
            return value.isoformat()
        return value

    def _row(
        self, table: Table, mapping: dict[str, str], values: dict[str, Any], cents: set[str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field, value in values.items():
            column = mapping.get(field, field)
            if column in table.c:
                out[column] = self._coerce(table, column, value, cents=field in cents)
        return out

    async def push_receipt(self, receipt: AccountingReceipt) -> None:
        if not self.receipts_table:
            raise ValueError("the sql accounting adapter needs options.receipts_table")
        engine, table = await self._table(str(self.receipts_table))
        key = self.receipt_columns.get("receipt_id", "receipt_id")
        if key not in table.c:
            raise ValueError(f"{table.name}: no column {key!r} for the receipt id")
        transfers = json.dumps(
            [
                {
                    "id_transfer": t.id_transfer,
                    "amount": t.amount,
                    "fiscal_code_pa": t.fiscal_code_pa,
                    "iban": t.iban,
                    "category": t.category,
                }
                for t in receipt.transfers
            ]
        )
        values = {
            "receipt_id": receipt.receipt_id,
            "notice_number": receipt.notice_number,
            "iuv": receipt.iuv,
            "iupd": receipt.iupd,
            "amount": receipt.amount,
            "outcome": receipt.outcome,
            "payment_date_time": receipt.payment_date_time,
            "id_psp": receipt.id_psp,
            "psp_company_name": receipt.psp_company_name,
            "stand_in": receipt.stand_in,
            "debtor_fiscal_code": receipt.debtor_fiscal_code,
            "transfers": transfers,
            "note": receipt.note,
            "received_at": receipt.received_at,
            "tenant_id": receipt.tenant_id,
        }
        assert set(RECEIPT_COLUMNS) <= set(values)
        row = self._row(table, self.receipt_columns, values, {"amount"})
        async with engine.begin() as conn:
            found = (
                await conn.execute(
                    select(table.c[key]).where(table.c[key] == receipt.receipt_id).limit(1)
                )
            ).first()
            if found is not None:
                return
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(table).values(**row))
            except IntegrityError:
                # a concurrent insert of the same receipt won (unique receipt_id)
                return

    async def push_reconciliation(self, result: ReconciliationResult) -> None:
        if not self.reconciliation_table:
            return
        engine, table = await self._table(str(self.reconciliation_table))
        values = {f: getattr(result, f) for f in RESULT_FIELDS}
        row = self._row(table, self.reconciliation_columns, values, {"amount"})
        keys = [
            self.reconciliation_columns.get(f, f)
            for f in ("flow_id", "iuv", "receipt_id", "detail")
        ]
        present = [k for k in keys if k in table.c]
        if not present:
            raise ValueError(f"{table.name}: no flow_id/iuv columns to key results by")
        where = and_(
            *(table.c[k].is_(None) if row.get(k) is None else table.c[k] == row[k] for k in present)
        )
        async with engine.begin() as conn:
            found = (await conn.execute(select(table).where(where).limit(1))).first()
            if found is None:
                await conn.execute(insert(table).values(**row))
            else:
                await conn.execute(update(table).where(where).values(**row))

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
