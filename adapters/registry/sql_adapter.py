"""Reference registry adapter: any SQL database the comune's registry software writes to.

Options: ``url`` (a SQLAlchemy async URL, e.g. ``postgresql+asyncpg://...``,
``sqlite+aiosqlite:///anagrafe.db``; read-only access is enough), ``table``, and ``columns``
(field to column mapping). Values that do not validate are reported with table, row key and
field, and that resident is treated as unknown rather than half-read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError
from sqlalchemy import MetaData, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..sql_query import sqlite_relative_to
from .base import RegistryDataError, RegistryRecord, mapping_from
from .certificates import ReferenceDesk


class SqlRegistryAdapter(ReferenceDesk):
    name: ClassVar[str] = "sql"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        self._options, self._base_dir = dict(options), base_dir
        for required in ("url", "table"):
            if required not in options:
                raise ValueError(f"the sql registry adapter needs options.{required}")
        self.url = sqlite_relative_to(str(options["url"]), base_dir)
        self.table_name = str(options["table"])
        self.columns = mapping_from(options)
        self._engine: AsyncEngine | None = None
        self._table: Table | None = None
        self._problems: list[RegistryDataError] = []

    async def _prepare(self) -> tuple[AsyncEngine, Table]:
        if self._engine is None or self._table is None:
            self._engine = create_async_engine(self.url)
            meta = MetaData()
            async with self._engine.connect() as conn:
                await conn.run_sync(meta.reflect, only=[self.table_name])
            self._table = meta.tables[self.table_name]
        return self._engine, self._table

    def _record(self, row: dict[str, Any]) -> RegistryRecord | None:
        values = {
            f: (str(row[c]).strip() or None) if row.get(c) is not None else None
            for f, c in self.columns.items()
            if c in row
        }
        if values.get("fiscal_code"):
            values["fiscal_code"] = str(values["fiscal_code"]).upper()
        try:
            return RegistryRecord.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else "?"
            self._problems.append(
                RegistryDataError(
                    f"{self.table_name}[{values.get('fiscal_code')}]",
                    0,
                    self.columns.get(field, field),
                    err["msg"],
                )
            )
            return None

    async def _select(self, column: str, value: str) -> list[RegistryRecord]:
        engine, table = await self._prepare()
        async with engine.connect() as conn:
            rows = await conn.execute(select(table).where(table.c[column] == value))
            out = [self._record(dict(r._mapping)) for r in rows]
        return [r for r in out if r is not None]

    async def lookup(self, fiscal_code: str) -> RegistryRecord | None:
        found = await self._select(self.columns["fiscal_code"], fiscal_code.upper())
        return found[0] if found else None

    async def household(self, fiscal_code: str) -> list[RegistryRecord]:
        me = await self.lookup(fiscal_code)
        if me is None:
            return []
        if me.family_id is None:
            return [me]
        return await self._select(self.columns["family_id"], me.family_id)

    def problems(self) -> list[RegistryDataError]:
        return list(self._problems)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
