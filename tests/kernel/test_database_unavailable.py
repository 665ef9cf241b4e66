"""The database down or restarting (found by `make chaos`'s PostgreSQL restart: resident
look-ups and SPID logins answered a bare 500) is a 503 problem naming the database, with
Retry-After; any other error is left alone."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from sportello.app import _database_unavailable
from sportello.db import is_unavailable


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),  # asyncpg connect, unwrapped
        ConnectionError("unexpected connection_lost() call"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        # what a request met during `make chaos`'s restart: a plain DBAPIError wrapping
        # asyncpg's "the database system is shutting down"
        DBAPIError("SELECT 1", {}, asyncpg.exceptions.CannotConnectNowError("shutting down")),
    ],
)
def test_unavailable(exc: BaseException) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        ProgrammingError("SELEC", {}, Exception("syntax error")),
        KeyError("x"),
    ],
)
def test_not_unavailable(exc: BaseException) -> None:
    assert not is_unavailable(exc)


async def test_a_database_outage_is_a_503_problem_and_other_errors_stay_500() -> None:
    async def down(request: web.Request) -> web.Response:
        raise ConnectionRefusedError(111, "Connection refused")

    async def broken(request: web.Request) -> web.Response:
        raise ValueError("a bug")

    app = web.Application(middlewares=[_database_unavailable])
    app.router.add_get("/down", down)
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/down")
        assert r.status == 503
        assert r.content_type == "application/problem+json"
        assert r.headers["Retry-After"] == "5"
        body = await r.json()
        assert body["status"] == 503 and "database" in body["detail"]
        assert "refused" not in body["detail"]  # no internals in the answer
        r = await client.get("/broken")
        assert r.status == 500
