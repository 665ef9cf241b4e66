"""Shared fixtures: every storage and outbox test runs on SQLite and on PostgreSQL.

PostgreSQL comes from SPORTELLO_TEST_PG_URL (default: the local server, database `test`);
each test gets a database of its own, dropped afterwards. When the server does not answer,
the PostgreSQL variants are skipped and the run ends with a loud warning.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello import migrate
from sportello.config import DatabaseSettings
from sportello.db import create_engine

PG_ADMIN_URL = os.environ.get("SPORTELLO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped after the test."""
    reason = _pg_unavailable()
    if reason:
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {reason}")
    name = f"sportello_t_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated engine on each backend."""
    eng = create_engine(DatabaseSettings(url=db_url))
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
