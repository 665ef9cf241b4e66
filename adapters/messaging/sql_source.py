"""Reference campaign source: rows from a SQL query on the comune's own database.

Options: ``url`` (a SQLAlchemy async URL; relative SQLite paths resolve next to the
configuration file) and ``query`` (a SELECT whose column names are the campaign columns:
``fiscal_code``, ``expedition_date``, ``due_date``, ``notice_number``, ``amount``, then any
template fields). Every row is validated by the hub before anything is queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


class SqlCampaignSource:
    name: ClassVar[str] = "sql"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        for required in ("url", "query"):
            if not options.get(required):
                raise ValueError(f"the sql campaign source needs options.{required}")
        url = str(options["url"])
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and not Path(url[len(prefix) :]).is_absolute():
            url = prefix + str(base_dir / url[len(prefix) :])
        query = str(options["query"]).strip()
        if not query.lower().startswith("select"):
            raise ValueError("options.query must be a SELECT")
        self.url, self.query = url, query

    async def rows(self) -> AsyncIterator[dict[str, Any]]:
        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as conn:
                result = await conn.stream(text(self.query))
                async for row in result.mappings():
                    yield dict(row)
        finally:
            await engine.dispose()
