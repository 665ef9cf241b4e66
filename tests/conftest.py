"""Shared fixtures: every storage and outbox test runs on SQLite and on PostgreSQL.

PostgreSQL comes from SPORTELLO_TEST_PG_URL (default: the local server, database `test`);
each test gets a database of its own, dropped afterwards. When the server does not answer,
the PostgreSQL variants are skipped and the run ends with a loud warning.

Databases (see ``db_templates.py``):

- ``db_url``: already migrated to every head (kernel and platform branches), a copy of a
  template the migrations ran into once per pytest process; ``create_app(...,
  apply_migrations=True)`` and ``migrate.upgrade`` find nothing to do on it;
- ``empty_db_url``: empty, for tests of the migrations themselves (upgrade from nothing or
  from an old revision, plugin branches, a hub refusing an unmigrated database);
- ``pg_url``: an empty PostgreSQL database; ``engine``: a migrated engine on ``db_url``.

``SPORTELLO_TEST_DB_TEMPLATE=0`` makes ``db_url`` empty again (every test migrates, as
before the templates; for comparing times, or when a template is suspected).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from db_templates import Templates
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello import migrate
from sportello.config import DatabaseSettings
from sportello.db import create_engine

PG_ADMIN_URL = os.environ.get("SPORTELLO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}
USE_TEMPLATES = os.environ.get("SPORTELLO_TEST_DB_TEMPLATE", "1") != "0"


def _pg_unavailable() -> str | None:
    """None when PostgreSQL answers, else the reason (checked once per session)."""
    if "reason" not in _pg_state:

        async def probe() -> str | None:
            try:
                conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            await conn.close()
            return None

        _pg_state["reason"] = asyncio.run(probe())
    return _pg_state["reason"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = _pg_state.get("reason")
    if reason:
        terminalreporter.write_sep(
            "!", "PostgreSQL NOT REACHABLE: its tests were SKIPPED", red=True
        )
        terminalreporter.write_line(f"{PG_ADMIN_URL}: {reason}", red=True)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _skip_without_pg() -> None:
    reason = _pg_unavailable()
    if reason:
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {reason}")


@pytest.fixture(scope="session")
def db_templates() -> Iterator[Templates]:
    """This process's migrated template databases (built on first use, dropped at the end)."""
    templates = Templates(PG_ADMIN_URL)
    try:
        yield templates
    finally:
        templates.close()


@pytest.fixture
def pg_url(db_templates: Templates) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped after the test."""
    _skip_without_pg()
    name = db_templates.pg_create_empty()
    try:
        yield db_templates.pg_url(name)
    finally:
        db_templates.pg_drop(name)


@pytest.fixture
def migrated_pg_url(db_templates: Templates) -> Iterator[str]:
    """A PostgreSQL database at every migration head (a copy of the template), dropped after."""
    _skip_without_pg()
    name = db_templates.pg_create()
    try:
        yield db_templates.pg_url(name)
    finally:
        db_templates.pg_drop(name)


@pytest.fixture
def migrated_sqlite_url(db_templates: Templates, tmp_path: Path) -> str:
    """A SQLite database at every migration head (``tmp_path/hub.sqlite``, a copy of the
    template)."""
    path = tmp_path / "hub.sqlite"
    db_templates.sqlite_copy(path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL, on a database at every migration head
    (empty when ``SPORTELLO_TEST_DB_TEMPLATE=0``)."""
    if not USE_TEMPLATES:
        if request.param == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"
        return str(request.getfixturevalue("pg_url"))
    if request.param == "sqlite":
        return str(request.getfixturevalue("migrated_sqlite_url"))
    return str(request.getfixturevalue("migrated_pg_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL, on an empty database (no migration run)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated engine on each backend."""
    eng = create_engine(DatabaseSettings(url=db_url))
    if not USE_TEMPLATES:
        await migrate.upgrade(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


class Sink:
    """A local HTTP receiver for outbox deliveries (webhook kind): records every request.

    ``respond`` decides the answer for each request (status, headers); default 200.
    """

    def __init__(self) -> None:
        from aiohttp import web

        self.received: list[dict[str, object]] = []
        self.respond = lambda body, attempt: (200, {})
        self.delay = 0.0
        self._attempts: dict[str, int] = {}
        self.app = web.Application()
        self.app.router.add_post("/hook", self._hook)
        self.url = ""

    async def _hook(self, request):  # type: ignore[no-untyped-def]
        import json

        from aiohttp import web

        raw = await request.read()
        body = json.loads(raw)
        key = request.headers.get("Idempotency-Key", "")
        self._attempts[key] = self._attempts.get(key, 0) + 1
        self.received.append(
            {
                "key": key,
                "n": (body.get("data") or {}).get("n"),
                "signature": request.headers.get("Sportello-Signature"),
                "raw": raw,
            }
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers = self.respond(body, self._attempts[key])
        return web.json_response({"ok": status < 300}, status=status, headers=headers)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    from aiohttp.test_utils import TestServer

    s = Sink()
    server = TestServer(s.app, host="127.0.0.1")
    await server.start_server()
    s.url = str(server.make_url("/hook"))
    try:
        yield s
    finally:
        await server.close()
