"""Migrated template databases for the tests (used by ``tests/conftest.py``).

Running every Alembic revision costs about 2.5 s per database on PostgreSQL, and nearly every
hub test gets a database of its own. So the migrations run once per pytest process and
backend, into a *template*, and each test gets a copy:

- SQLite: the template is a file in a temporary folder; a test's database is a copy of it;
- PostgreSQL: the template is a database ``sportello_tpl_<pid>_<time>_<hex>``; a test's
  database is ``CREATE DATABASE sportello_t_<pid>_<time>_<hex> TEMPLATE <that>``, dropped
  after the test. Nobody else connects to the template (PostgreSQL refuses to copy a
  database with open connections), and the names carry the process id and a random part,
  so pytest processes running at the same time against one server never collide. A
  background thread makes the next test's copy while a test runs, another drops finished ones.

A template is keyed by the migration files (paths, sizes, modification times): a revision
added or edited while the session runs gives a new template. Templates are dropped when the
session ends; databases left behind by a killed process (its pid gone, older than a few
hours, no connection open) are dropped by the next session that builds a template.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
import tempfile
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import asyncpg

from sportello import migrate
from sportello.config import DatabaseSettings
from sportello.db import create_engine

DB_PREFIX = "sportello_t"
TEMPLATE_PREFIX = "sportello_tpl"
# A database of ours whose process is gone is left alone this long (another machine's
# process could share the number); a session's template lives as long as the session.
STALE_AFTER_S = 6 * 3600
# Databases of finished tests waiting for their DROP at most (each ~10 MB).
MAX_PENDING_DROPS = 8
_OURS = re.compile(rf"^(?:{TEMPLATE_PREFIX}|{DB_PREFIX})_(\d+)_(\d+)_[0-9a-f]+$")

Fingerprint = tuple[tuple[str, int, int], ...]


def unique_name(prefix: str) -> str:
    """``<prefix>_<pid>_<unix time>_<random hex>`` (at most 63 characters for PostgreSQL)."""
    return f"{prefix}_{os.getpid()}_{int(time.time())}_{uuid.uuid4().hex[:8]}"


def migrations_fingerprint() -> Fingerprint:
    """Every revision file of the installed plugins' migration folders, with size and
    modification time: a different value means the template is out of date."""
    files = []
    for folder in migrate.migration_locations():
        for path in sorted(Path(folder).glob("*.py")):
            st = path.stat()
            files.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(files)


async def _admin(admin_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    """Every migration to every head, then no connection left open."""
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Templates:
    """This process's templates, built on first use; :meth:`close` drops them."""

    def __init__(self, pg_admin_url: str) -> None:
        self.pg_admin_url = pg_admin_url
        self._pg_base = pg_admin_url.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        self._sqlite: dict[Fingerprint, Path] = {}
        self._pg: dict[Fingerprint, str] = {}
        self._pg_all: list[str] = []
        self._dir: Path | None = None
        self._swept = False
        # The slow server work runs off the tests' path: one thread makes the next test's
        # copy (``_spare``) while a test runs, another drops the databases of finished tests.
        self._creator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-create")
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-drop")
        self._spare: tuple[str, Future[str]] | None = None  # (its template, its name)
        self._drops: list[Future[None]] = []

    def pg_url(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name`` on the test server."""
        return f"{self._pg_base}/{name}"

    # --- SQLite -----------------------------------------------------------------------------
    def sqlite_copy(self, dest: Path) -> None:
        """Write a migrated SQLite database at ``dest`` (a copy of the template)."""
        key = migrations_fingerprint()
        template = self._sqlite.get(key)
        if template is None:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="sportello-db-templates-"))
            template = self._dir / f"template_{len(self._sqlite)}.sqlite"
            asyncio.run(_migrate(f"sqlite+aiosqlite:///{template}"))
            # fold the write-ahead log into the file: the file alone is then the database
            with contextlib.closing(sqlite3.connect(template)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            wal = template.with_name(template.name + "-wal")
            if wal.exists() and wal.stat().st_size:
                raise RuntimeError(f"{wal}: not checkpointed, the template would be incomplete")
            self._sqlite[key] = template
        shutil.copyfile(template, dest)

    # --- PostgreSQL -------------------------------------------------------------------------
    def pg_create(self) -> str:
        """A new migrated PostgreSQL database (its name); drop it with :meth:`pg_drop`."""
        key = migrations_fingerprint()
        template = self._pg.get(key)
        if template is None:
            if not self._swept:
                self._swept = True
                asyncio.run(self._sweep())
            template = unique_name(TEMPLATE_PREFIX)
            asyncio.run(_admin(self.pg_admin_url, f'CREATE DATABASE "{template}"'))
            self._pg_all.append(template)
            try:
                asyncio.run(_migrate(self.pg_url(template)))
            except BaseException:
                self.pg_drop(template)
                self._pg_all.remove(template)
                raise
            self._pg[key] = template
        name = self._take_spare(template) or self._copy(template)
        self._spare = (template, self._creator.submit(self._copy, template))
        return name

    def _copy(self, template: str) -> str:
        name = unique_name(DB_PREFIX)
        asyncio.run(_admin(self.pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        return name

    def _take_spare(self, template: str) -> str | None:
        """The copy made in the background, when it is of ``template`` and came out well."""
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        of, future = spare
        try:
            name = future.result()
        except Exception:
            return None
        if of != template:  # the migrations changed since
            self.pg_drop(name)
            return None
        return name

    def pg_create_empty(self) -> str:
        """A new empty PostgreSQL database (its name); drop it with :meth:`pg_drop`."""
        name = unique_name(DB_PREFIX)
        asyncio.run(_admin(self.pg_admin_url, f'CREATE DATABASE "{name}"'))
        return name

    def pg_drop(self, name: str) -> None:
        """Drop database ``name`` in the background (the next test need not wait); when
        ``MAX_PENDING_DROPS`` are still waiting (a DROP DATABASE forces a checkpoint, slow on
        a busy server), wait for the oldest first, so that copies never pile up."""
        self._drops = [f for f in self._drops if not f.done()]
        while len(self._drops) >= MAX_PENDING_DROPS:
            with contextlib.suppress(Exception):
                self._drops.pop(0).result()
        self._drops.append(self._dropper.submit(self._drop_now, name))

    def _drop_now(self, name: str) -> None:
        asyncio.run(_admin(self.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _sweep(self) -> None:
        """Drop the databases killed sessions left behind: named like ours, their process
        gone, older than ``STALE_AFTER_S``, and nobody connected (never forced)."""
        conn = await asyncpg.connect(self.pg_admin_url)
        try:
            rows = await conn.fetch(
                "SELECT d.datname FROM pg_database d WHERE NOT EXISTS"
                " (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)"
            )
            now = time.time()
            for row in rows:
                match = _OURS.match(row["datname"])
                if not match:
                    continue
                pid, created = int(match[1]), int(match[2])
                if _process_alive(pid) or now - created < STALE_AFTER_S:
                    continue
                with contextlib.suppress(asyncpg.PostgresError):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}"')
        finally:
            await conn.close()

    # --- end of session ---------------------------------------------------------------------
    def close(self) -> None:
        """Drop this session's PostgreSQL databases and templates, remove the SQLite ones."""
        if self._spare is not None:
            with contextlib.suppress(Exception):
                self.pg_drop(self._spare[1].result())
            self._spare = None
        self._creator.shutdown(wait=True)
        self._dropper.shutdown(wait=True)
        for drop in self._drops:
            with contextlib.suppress(Exception):
                drop.result()
        self._drops.clear()
        self._creator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-create")
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-drop")
        if self._pg_all:

            async def drop_all() -> None:
                for name in self._pg_all:
                    await _admin(
                        self.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                    )

            asyncio.run(drop_all())
            self._pg_all.clear()
            self._pg.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._sqlite.clear()
