"""An attacker's review of the operator console: filters and path parameters that pass a
naive check (Unicode digits, dates at the ends of the calendar), forms that cannot be read,
and 20 identical retries of one failed job at once (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pyotp
import pytest
import sqlalchemy as sa
from test_console import (
    PASSWORD,
    Hub,
    _admin_login,
    _failed_job,
    _staff_session,
    _token,
    hub,  # noqa: F401  (the fixture)
)

from sportello.app import ENGINE
from sportello.schema import audit_log, outbox


@pytest.mark.parametrize(
    "query",
    [
        "/console/t/uno/registro?pagina=%C2%B2",  # "²": str.isdigit() but not int()
        "/console/t/uno/coda?pagina=%E2%91%A0",  # "①"
        "/console/registro?pagina=%C2%B9%C2%B2",
        "/console/t/uno/registro?al=0001-01-01",
        "/console/t/uno/registro?al=9999-12-31",
        "/console/t/uno/registro?dal=0001-01-01&al=0001-01-02",
        "/console/t/uno/?al=0001-01-01",
        "/console/t/uno/?al=9999-12-31",
        "/console/t/uno/p/io-messages?al=0001-01-01",
        "/console/t/uno/p/booking-day?giorno=9999-12-31",
        "/console/t/uno/p/booking-day?giorno=0001-01-01",
        "/console/registro?dal=9999-12-31&al=9999-12-31",
    ],
)
async def test_filters_at_the_ends_of_the_calendar_are_a_400_page(hub: Hub, query: str) -> None:  # noqa: F811
    await _admin_login(hub)
    r = await hub.client.get(query)
    assert r.status == 400, (query, r.status, await r.text())
    assert r.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("job", ["%C2%B2", "%D9%A3", "1" * 19, "..", "%00", "-1", "1e3"])
async def test_odd_job_ids_are_404_not_500(hub: Hub, job: str) -> None:  # noqa: F811
    await _admin_login(hub)
    home = await hub.client.get("/console/t/uno/coda")
    token = _token(await home.text())
    r = await hub.client.post(f"/console/t/uno/coda/{job}/riprova", data={"csrf_token": token})
    assert r.status == 404, (job, r.status)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\n"),
        ("multipart/form-data; boundary=x", b"garbage"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n",
        ),
        ("application/x-www-form-urlencoded; charset=nope", b"a=b"),
        ("application/x-www-form-urlencoded", b"name=%ff&password=\xff\xfe"),
    ],
)
async def test_unreadable_login_and_retry_forms_are_4xx(
    hub: Hub,  # noqa: F811
    content_type: str,
    body: bytes,
) -> None:
    headers = {"Content-Type": content_type}
    for path in ("/console/accesso", "/console/accesso/codice", "/console/esci"):
        r = await hub.client.post(path, data=body, headers=headers, allow_redirects=False)
        assert r.status < 500, (path, r.status, await r.text())
    await _admin_login(hub)
    job = await _failed_job(hub, "uno")
    for path in (f"/console/t/uno/coda/{job}/riprova", "/console/esci"):
        r = await hub.client.post(path, data=body, headers=headers, allow_redirects=False)
        assert 400 <= r.status < 500, (path, r.status, await r.text())


async def test_login_with_repeated_and_hostile_fields_is_never_500(hub: Hub) -> None:  # noqa: F811
    page = await hub.client.get("/console/accesso")
    token = _token(await page.text())
    for fields in (
        [("csrf_token", token), ("name", "ops"), ("name", "other"), ("password", "x")],
        [("csrf_token", token), ("name", "ops\x00"), ("password", "x\x00")],
        [("csrf_token", token), ("name", "é" * 5000), ("password", "p" * 100_000)],
        [("csrf_token", token), ("csrf_token", "other"), ("name", "ops"), ("password", "x")],
    ):
        r = await hub.client.post("/console/accesso", data=fields, allow_redirects=False)
        assert r.status in (400, 401, 403), (fields[1], r.status)


async def test_twenty_retries_of_one_job_at_once_requeue_it_once(hub: Hub) -> None:  # noqa: F811
    job = await _failed_job(hub, "uno")
    await _staff_session(hub, "uno", "VRDGPP70B02F205X")  # tenant-admin of uno
    page = await hub.client.get("/console/t/uno/coda")
    token = _token(await page.text())
    answers = await asyncio.gather(
        *(
            hub.client.post(
                f"/console/t/uno/coda/{job}/riprova",
                data={"csrf_token": token},
                allow_redirects=False,
            )
            for _ in range(20)
        )
    )
    statuses = sorted(r.status for r in answers)
    assert statuses.count(303) == 1 and set(statuses) <= {303, 409}, statuses
    async with hub.app[ENGINE].connect() as conn:
        assert await conn.scalar(sa.select(outbox.c.status).where(outbox.c.id == job)) == (
            "pending"
        )
        retried = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(audit_log)
            .where(audit_log.c.action == "console.outbox.retry")
        )
    assert retried == 1


@pytest.mark.parametrize("code", ["²²²²²²", "١٢٣٤٥٦", "１２３４５６", "12345\x00", "1" * 10_000])
async def test_a_code_of_unicode_digits_is_a_wrong_code_not_a_500(hub: Hub, code: str) -> None:  # noqa: F811
    page = await hub.client.get("/console/accesso")
    r = await hub.client.post(
        "/console/accesso",
        data={"csrf_token": _token(await page.text()), "name": "ops", "password": PASSWORD},
        allow_redirects=False,
    )
    assert r.status == 303
    page = await hub.client.get("/console/accesso/codice")
    r = await hub.client.post(
        "/console/accesso/codice",
        data={"csrf_token": _token(await page.text()), "code": code},
        allow_redirects=False,
    )
    assert r.status == 401, (code, r.status, await r.text())


async def test_staff_login_returns_with_hostile_codes_are_400(hub: Hub) -> None:  # noqa: F811
    page = await hub.client.get("/console/t/uno/entra")
    assert page.status == 200
    state = hub.client.session.cookie_jar.filter_cookies(hub.client.make_url("/")).get(
        "sportello-csrf"
    )
    assert state is not None
    for code in ("x" * 300, "a\x00b", "è" * 50, "never-issued", "%ff"):
        r = await hub.client.get(
            "/console/t/uno/accesso", params={"code": code, "state": state.value}
        )
        assert r.status in (400, 503), (code, r.status)
    r = await hub.client.get("/console/t/uno/accesso", params={"code": "x", "state": "forged"})
    assert r.status == 400
    r = await hub.client.get("/console/t/nessuno/accesso", params={"code": "x", "state": "y"})
    assert r.status == 404


async def test_one_totp_code_sent_twenty_times_at_once_logs_in_once(hub: Hub) -> None:  # noqa: F811
    page = await hub.client.get("/console/accesso")
    r = await hub.client.post(
        "/console/accesso",
        data={"csrf_token": _token(await page.text()), "name": "ops", "password": PASSWORD},
        allow_redirects=False,
    )
    assert r.status == 303
    page = await hub.client.get("/console/accesso/codice")
    token = _token(await page.text())
    code = pyotp.TOTP(hub.secret).at(hub.clock.now())
    answers = await asyncio.gather(
        *(
            hub.client.post(
                "/console/accesso/codice",
                data={"csrf_token": token, "code": code},
                allow_redirects=False,
            )
            for _ in range(20)
        )
    )
    statuses = sorted(r.status for r in answers)
    assert statuses.count(303) <= 20 and set(statuses) <= {303, 401, 429}, statuses
    logged_in = [r for r in answers if r.headers.get("Location") == "/console/"]
    assert len(logged_in) == 1, statuses


async def test_every_console_page_with_every_hostile_filter_is_never_500(hub: Hub) -> None:  # noqa: F811
    await _admin_login(hub)
    paths = (
        "/console/",
        "/console/registro",
        "/console/t/uno/",
        "/console/t/uno/coda",
        "/console/t/uno/registro",
        "/console/t/uno/p/booking-day",
        "/console/t/uno/p/io-messages",
    )
    names = ("dal", "al", "giorno", "stato", "pagina", "ente", "attore", "azione", "soggetto")
    values = ("\x00", "²", "9999-12-31", "0001-01-01", "x" * 3000, "%", "_", "è", "-0", "+1")
    for path in paths:
        for name in names:
            for value in values:
                r = await hub.client.get(path, params={name: value})
                assert r.status in (200, 400, 404), (path, name, value[:20], r.status)


async def test_an_audited_view_with_a_request_id_of_odd_bytes_is_never_500(hub: Hub) -> None:  # noqa: F811
    await _admin_login(hub)
    jar = hub.client.session.cookie_jar.filter_cookies(hub.client.make_url("/"))
    cookie = "; ".join(f"{k}={m.value}" for k, m in jar.items())
    for value in (b"\xff\xfe", b"r\x80"):
        reader, writer = await asyncio.open_connection(
            hub.client.server.host, hub.client.server.port
        )
        writer.write(
            f"GET /console/t/uno/coda HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
            "Connection: close\r\nX-Request-Id: ".encode()
            + value
            + b"\r\n\r\n"
        )
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert int(status_line.split()[1]) == 200, status_line
