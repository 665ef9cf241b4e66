"""Engines for SQLite (default, one replica) and PostgreSQL (several replicas).

SQLite runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE`` (the recipe
from SQLAlchemy's aiosqlite docs: disable the driver's own BEGIN, emit ours), so a writer
takes the lock up front instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .config import DatabaseSettings

READ_ONLY = "sportello_read_only"
# One connection for SQLite: it has one writer anyway, and a queue in the pool is far cheaper
# than SQLite's sleep-and-retry busy handler (measured with bench/io: 799 vs 572 messages/s).
SQLITE_POOL = 1


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for read-only work. On SQLite it starts a deferred transaction, so a
    read never waits for (or blocks) the single writer; elsewhere it is a plain connection."""
    async with engine.connect() as conn:
        await conn.execution_options(**{READ_ONLY: True})
        yield conn


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message is one line, without the password."""


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to show and log."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    db = make_url(url).database
    return Path(db) if db and db != ":memory:" else None


def create_engine(settings: DatabaseSettings, *, pre_ping: bool = True) -> AsyncEngine:
    """Create the async engine for ``settings.url`` with the per-backend tuning.

    ``pre_ping`` (PostgreSQL) checks each pooled connection before use, so an HTTP request
    never meets a connection the server dropped (a restart). A dedicated outbox worker
    (``sportello worker``) turns it off: a dropped connection fails one batch, which the
    outbox retries, and SQLAlchemy refreshes the pool; the check would cost round trips on
    every checkout (15 % of the worker's CPU per App IO message, bench/io).
    """
    url = settings.url
    if settings.is_sqlite:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, pool_size=SQLITE_POOL, max_overflow=0
        )
        sync = settings.sqlite_synchronous

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers lock up front; read-only work (see `reading`) does not queue behind them.
            readonly = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN DEFERRED" if readonly else "BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=pre_ping,
        connect_args={"timeout": 10},
    )


async def check_reachable(engine: AsyncEngine) -> None:
    """Raise :class:`DatabaseUnavailable` with a one-line reason when the database is down."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        detail = reason[0] if reason else type(exc).__name__
        raise DatabaseUnavailable(
            f"database {redact_url(engine.url.render_as_string(hide_password=True))} "
            f"is unreachable: {detail}"
        ) from exc


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached (down, restarting, the
    connection dropped), not that a statement was wrong: the caller may try again later.
    asyncpg's connect errors reach the caller unwrapped (``ConnectionRefusedError``) or as a
    plain ``DBAPIError`` caused by asyncpg's (``the database system is shutting down``)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    try:
        from asyncpg import exceptions as pg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pg = None
    seen: BaseException | None = exc
    for _ in range(5):  # the exception and its causes (SQLAlchemy wraps the driver's)
        if seen is None:
            return False
        if isinstance(seen, DBAPIError) and (
            seen.connection_invalidated or isinstance(seen, OperationalError | InterfaceError)
        ):
            return True
        if isinstance(seen, ConnectionError):  # asyncpg's own, raised bare
            return True
        if pg is not None and isinstance(
            seen,
            pg.CannotConnectNowError
            | pg.ConnectionDoesNotExistError
            | pg.AdminShutdownError
            | pg.ConnectionFailureError,
        ):
            return True
        seen = seen.__cause__ or (seen.orig if isinstance(seen, DBAPIError) else None)
    return False


class ReplicaLock:
    """Refuses a second replica on one SQLite file.

    SQLite serves one hub process with workers; a second one would fight for the write lock.
    The lock is an OS file lock (``flock``), so it is released when the process dies, even by
    SIGKILL, and a restarted replica never finds a stale lock.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".replica.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ReplicaLockError(
                f"another Sportello replica (pid {other}) is already running on the SQLite "
                f"database {self.path.with_suffix('').with_suffix('')}; SQLite supports one "
                "replica: stop it, or use PostgreSQL (database.url = "
                '"postgresql+asyncpg://...") to run several'
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class ReplicaLockError(Exception):
    """A second replica tried to start on SQLite."""
