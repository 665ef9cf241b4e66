"""Reference SEND notification source: rows from a SQL query on the comune's own database.

Options: ``url`` (a SQLAlchemy async URL; relative SQLite paths resolve against
``base_dir``) and ``query`` (a SELECT whose column names are the notification columns of
docs/send.md). Rows are numbered from 1 in the order the query gives them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine


class SqlNotificationSource:
    name: ClassVar[str] = "sql"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        for required in ("url", "query"):
            if not options.get(required):
                raise ValueError(f"the sql notification source needs option {required}")
        url = str(options["url"])
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and not Path(url[len(prefix) :]).is_absolute():
            url = prefix + str(base_dir / url[len(prefix) :])
        query = str(options["query"]).strip()
        if not query.lower().startswith("select"):
            raise ValueError("option query must be a SELECT")
        self.url, self.query = url, query
        self.label = "sql query"

    async def rows(self) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        try:
            engine = create_async_engine(self.url)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            what = type(exc).__name__
            raise ValueError(f"option url: not a usable database URL ({what})") from None
        n = 0
        try:
            async with engine.connect() as conn:
                result = await conn.stream(text(self.query))
                async for row in result.mappings():
                    n += 1
                    yield n, dict(row)
        except SQLAlchemyError as exc:  # the class only: the message may quote the database
            raise ValueError(
                f"{self.label}: row {n + 1}: the query failed ({type(exc).__name__})"
            ) from None
        finally:
            await engine.dispose()
