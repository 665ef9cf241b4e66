"""Reference registry adapter: a CSV export of the comune's anagrafe.

Options: ``path`` (relative to the configuration file), ``delimiter`` (default ``;``, as
Italian exports usually are), ``encoding`` (default ``utf-8-sig``), ``columns`` (a field to
column mapping when the export's headers differ). A bad row is reported with file, row and
field, and skipped; the other rows are served.
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from .base import RegistryDataError, RegistryRecord, mapping_from
from .certificates import ReferenceDesk


class CsvRegistryAdapter(ReferenceDesk):
    name: ClassVar[str] = "csv"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        self._options, self._base_dir = dict(options), base_dir
        if "path" not in options:
            raise ValueError("the csv registry adapter needs options.path")
        path = Path(options["path"])
        self.path = path if path.is_absolute() else base_dir / path
        self.delimiter = str(options.get("delimiter", ";"))
        self.encoding = str(options.get("encoding", "utf-8-sig"))
        self.columns = mapping_from(options)
        self._by_cf: dict[str, RegistryRecord] | None = None
        self._problems: list[RegistryDataError] = []
        self._lock = asyncio.Lock()

    def _load(self) -> tuple[dict[str, RegistryRecord], list[RegistryDataError]]:
        records: dict[str, RegistryRecord] = {}
        problems: list[RegistryDataError] = []
        src = str(self.path)
        with self.path.open(encoding=self.encoding, newline="") as fh:
            reader = csv.DictReader(fh, delimiter=self.delimiter)
            header = set(reader.fieldnames or [])
            column_cf = self.columns["fiscal_code"]
            if column_cf not in header:
                raise RegistryDataError(src, 1, column_cf, "the header has no fiscal code column")
            wanted = {f: c for f, c in self.columns.items() if c in header}
            for rowno, row in enumerate(reader, start=2):
                values = {f: (row.get(c) or "").strip() or None for f, c in wanted.items()}
                if values.get("fiscal_code"):
                    values["fiscal_code"] = str(values["fiscal_code"]).upper()
                try:
                    record = RegistryRecord.model_validate(values)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    field = str(err["loc"][0]) if err["loc"] else "?"
                    problems.append(
                        RegistryDataError(src, rowno, self.columns.get(field, field), err["msg"])
                    )
                    continue
                if record.fiscal_code in records:
                    problems.append(
                        RegistryDataError(src, rowno, column_cf, "fiscal code appears twice")
                    )
                    continue
                records[record.fiscal_code] = record
        return records, problems

    async def _records(self) -> dict[str, RegistryRecord]:
        async with self._lock:
            if self._by_cf is None:
                loaded, self._problems = await asyncio.to_thread(self._load)
                self._by_cf = loaded
                return loaded
            return self._by_cf

    async def lookup(self, fiscal_code: str) -> RegistryRecord | None:
        return (await self._records()).get(fiscal_code.upper())

    async def household(self, fiscal_code: str) -> list[RegistryRecord]:
        records = await self._records()
        me = records.get(fiscal_code.upper())
        if me is None:
            return []
        if me.family_id is None:
            return [me]
        return [r for r in records.values() if r.family_id == me.family_id]

    def problems(self) -> list[RegistryDataError]:
        return list(self._problems)

    async def close(self) -> None:
        self._by_cf = None
