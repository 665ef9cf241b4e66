"""Reference campaign source: rows from a SQL query on the comune's own database.

Options: ``url`` (a SQLAlchemy async URL; relative SQLite paths resolve next to the
configuration file) and ``query`` (a SELECT whose column names are the campaign columns:
``fiscal_code``, ``expedition_date``, ``due_date``, ``notice_number``, ``amount``, then any
template fields). Every row is validated by the hub before anything is queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ..sql_query import SqlQuerySource


class SqlCampaignSource(SqlQuerySource):
    name: ClassVar[str] = "sql"
    kind: ClassVar[str] = "campaign"

    def rows(self) -> AsyncIterator[dict[str, Any]]:
        return self.mappings()
