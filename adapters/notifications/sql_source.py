"""Reference SEND notification source: rows from a SQL query on the comune's own database.

Options: ``url`` (a SQLAlchemy async URL; relative SQLite paths resolve against
``base_dir``) and ``query`` (a SELECT whose column names are the notification columns of
docs/send.md). Rows are numbered from 1 in the order the query gives them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from sqlalchemy.exc import SQLAlchemyError

from ..sql_query import SqlQuerySource


class SqlNotificationSource(SqlQuerySource):
    name: ClassVar[str] = "sql"
    kind: ClassVar[str] = "notification"
    label: ClassVar[str] = "sql query"

    async def rows(self) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        n = 0
        try:
            async for row in self.mappings():
                n += 1
                yield n, row
        except SQLAlchemyError as exc:  # the class only: the message may quote the database
            raise ValueError(
                f"{self.label}: row {n + 1}: the query failed ({type(exc).__name__})"
            ) from None
