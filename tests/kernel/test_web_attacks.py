"""An attacker's review of the kernel's web layer and of onboarding (SQLite and PostgreSQL):

- ``/static/{version}/{path}``: ``..`` (plain and encoded), NUL bytes, names too long for
  the file system, non-ASCII, a wrong version: 404, never a file outside the folder, never
  500;
- session cookies that are not tokens (long, non-ASCII, NUL) open no session;
- ``POST /api/v1/admin/tenants/{id}/onboard`` 20 times at once makes each key once (the
  reports together say ``made`` five times), never a 500; the check results of 20
  simultaneous runs are stored without a duplicate-key error;
- the onboarding routes with no key, a tenant's key, odd tenant ids.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_onboarding import auth, made_files, write_config

from sportello import apikeys, onboarding
from sportello.app import CLOCK, ENGINE, create_app
from sportello.config import load_config
from sportello.web import assets

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
async def client(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    path = write_config(
        tmp_path,
        db_url,
        hub="http://127.0.0.1:9",
        pdnd="http://127.0.0.1:9",
        io="http://127.0.0.1:9",
    )
    app = create_app(load_config(path), apply_migrations=True)
    async with TestClient(TestServer(app)) as c:
        now = app[CLOCK].now()
        async with app[ENGINE].begin() as conn:
            admin = await apikeys.create(
                conn, tenant_id=None, name="ops", scopes=["admin"], now=now
            )
            scoped = await apikeys.create(
                conn, tenant_id="comune", name="g", scopes=["read", "write"], now=now
            )
        yield c, admin, scoped


@pytest.mark.parametrize(
    "path",
    [
        "../../pyproject.toml",
        "%2e%2e/%2e%2e/pyproject.toml",
        "..%2f..%2fpyproject.toml",
        "kit/../../__init__.py",
        "sportello.css%00.png",
        "x" * 5000,
        ("a/" * 300) + "b",
        "%C3%A8.css",
        "%FF%FE",
        "/etc/passwd",
        "",
    ],
)
async def test_static_paths_outside_or_odd_are_404(client, path: str) -> None:  # type: ignore[no-untyped-def]
    c, _, _ = client
    r = await c.get(f"/static/{assets.version()}/{path}")
    assert r.status in (404, 400), (path, r.status)
    body = await r.read()
    assert b"[project]" not in body and b"__future__" not in body


async def test_static_wrong_version_is_404_and_right_one_serves(client) -> None:  # type: ignore[no-untyped-def]
    c, _, _ = client
    assert (await c.get("/static/nope/sportello.css")).status == 404
    assert (await c.get(f"/static/{'v' * 5000}/sportello.css")).status in (404, 414, 400)
    r = await c.get(f"/static/{assets.version()}/sportello.css")
    assert r.status == 200 and r.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("cookie", ["x" * 5000, "è" * 10, "a=b; c", "%00", "\u00ff\u00fe"])
async def test_odd_console_cookies_open_no_session(client, cookie: str) -> None:  # type: ignore[no-untyped-def]
    c, _, _ = client
    r = await c.get(
        "/console/t/comune/",
        headers={"Cookie": f"sportello-console={cookie}"},
        allow_redirects=False,
    )
    assert r.status in (303, 400), r.status
    if r.status == 303:
        assert r.headers["Location"].startswith("/console/")


async def test_onboarding_routes_need_an_admin_key(client) -> None:  # type: ignore[no-untyped-def]
    c, admin, scoped = client
    base = "/api/v1/admin/tenants/comune"
    for method, url in (("POST", base + "/onboard"), ("GET", base + "/readiness")):
        r = await c.request(method, url)
        assert r.status == 401 and r.content_type == "application/problem+json"
        r = await c.request(method, url, headers=auth(scoped))
        assert r.status == 403 and r.content_type == "application/problem+json"
    for tenant in ("%C3%A8" * 50, "x" * 5000, "..", "%00", "comune%20"):
        for method, suffix in (("POST", "/onboard?check=false"), ("GET", "/readiness")):
            url = f"/api/v1/admin/tenants/{tenant}{suffix}"
            r = await c.request(method, url, headers=auth(admin))
            assert r.status == 404 and r.content_type == "application/problem+json", (url, r.status)
    for flag in ("dry_run=%00", "check=" + "1" * 5000, "check=%C2%B2"):
        r = await c.post(f"{base}/onboard?{flag}", headers=auth(admin))
        assert r.status == 400 and r.content_type == "application/problem+json", flag


async def test_twenty_onboardings_at_once_make_each_key_once(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c, admin, _ = client
    url = "/api/v1/admin/tenants/comune/onboard?check=false"
    answers = await asyncio.gather(*(c.post(url, headers=auth(admin)) for _ in range(20)))
    statuses = [r.status for r in answers]
    assert statuses == [200] * 20, [await r.text() for r in answers if r.status != 200][:1]
    reports = [await r.json() for r in answers]
    assert sum(r["made"] for r in reports) == 5, [r["made"] for r in reports]
    files = made_files(tmp_path)
    again = await c.post(url, headers=auth(admin))
    assert (await again.json())["made"] == 0
    assert made_files(tmp_path) == files  # nothing replaced
    assert not [p for p in files if p.name.endswith(".tmp")]


async def test_twenty_readiness_checks_at_once_store_their_results(client) -> None:  # type: ignore[no-untyped-def]
    c, admin, _ = client
    url = "/api/v1/admin/tenants/comune/readiness?check=true"
    answers = await asyncio.gather(*(c.get(url, headers=auth(admin)) for _ in range(20)))
    statuses = [r.status for r in answers]
    assert statuses == [200] * 20, [await r.text() for r in answers if r.status != 200][:1]
    rows = [await r.json() for r in answers]
    assert all(row["platforms"] for row in rows)


async def test_check_results_of_twenty_runs_at_once_are_stored(db_url: str, tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        db_url,
        hub="http://127.0.0.1:9",
        pdnd="http://127.0.0.1:9",
        io="http://127.0.0.1:9",
    )
    app = create_app(load_config(path), apply_migrations=True)
    async with TestClient(TestServer(app)):
        engine = app[ENGINE]
        results = [
            onboarding.CheckResult("comune", "io", f"check-{i}", True, "ok", T0) for i in range(5)
        ]
        await asyncio.gather(
            *(onboarding.store_results(engine, "comune", results) for _ in range(20))
        )
        async with engine.connect() as conn:
            stored = (await onboarding.load_results(conn, ["comune"]))["comune"]
    assert sorted(r.name for r in stored) == [f"check-{i}" for i in range(5)]


@pytest.mark.parametrize("value", [b"\xff\xfe", b"id\x80", "è".encode()])
async def test_a_request_id_of_odd_bytes_is_never_500(client, value: bytes) -> None:  # type: ignore[no-untyped-def]
    c, admin, _ = client
    for path in ("/console/accesso", "/api/v1/admin/tenants/comune/readiness"):
        reader, writer = await asyncio.open_connection(c.server.host, c.server.port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n"
            "Connection: close\r\nX-Request-ID: ".encode()
            + value
            + b"\r\n\r\n"
        )
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert int(status_line.split()[1]) < 500, (path, status_line)
