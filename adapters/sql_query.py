"""The reference SQL adapters' shared part: a database URL read relative to the configuration
and a SELECT streamed from the comune's own database.

``sqlite_relative_to(url, base_dir)`` resolves a relative SQLite path (``sqlite+aiosqlite:///x``)
against ``base_dir``; ``SqlQuerySource`` checks the ``url`` and ``query`` options of a source
whose rows come from one SELECT and streams them (``mappings()``) as dicts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

SQLITE_PREFIX = "sqlite+aiosqlite:///"


def sqlite_relative_to(url: str, base_dir: Path) -> str:
    """``url`` with a relative SQLite database path made relative to ``base_dir``."""
    if url.startswith(SQLITE_PREFIX) and not Path(url[len(SQLITE_PREFIX) :]).is_absolute():
        return SQLITE_PREFIX + str(base_dir / url[len(SQLITE_PREFIX) :])
    return url


class SqlQuerySource:
    """Rows from options ``url`` (a SQLAlchemy async URL) and ``query`` (a SELECT)."""

    kind: ClassVar[str]  # named in the configuration errors: "the sql <kind> source ..."

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        for required in ("url", "query"):
            if not options.get(required):
                raise ValueError(f"the sql {self.kind} source needs options.{required}")
        query = str(options["query"]).strip()
        if not query.lower().startswith("select"):
            raise ValueError("options.query must be a SELECT")
        self.url = sqlite_relative_to(str(options["url"]), base_dir)
        self.query = query

    async def mappings(self) -> AsyncIterator[dict[str, Any]]:
        """The query's rows in its order; an unusable URL is a ``ValueError`` naming the option
        (database errors while reading propagate as they are)."""
        try:
            engine = create_async_engine(self.url)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            what = type(exc).__name__
            raise ValueError(f"options.url: not a usable database URL ({what})") from None
        try:
            async with engine.connect() as conn:
                result = await conn.stream(text(self.query))
                async for row in result.mappings():
                    yield dict(row)
        finally:
            await engine.dispose()
