"""An attacker's review of the booking additions: the citizen pages (``/t/{t}/sportello/
prenota/...``) with hostile query strings and forms (dates out of the calendar's range,
malformed multipart, repeated fields, NUL bytes), and the API's second factor and
idempotency under 20 identical requests at once (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from test_booking import citizen, hub, post  # noqa: F401  (the fixture)

PAGES = "/t/demo/sportello/prenota"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EXTREME = (
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+23:59",
    "2027-03-02T09:00:00",
    "2027-03-02T09:00:00+01:00\x00",
    "2027-03-02T09:00:00+01:00ÿ",
)


async def _token(client: Any) -> str:
    r = await client.get(
        PAGES + "/dati",
        params={"servizio": "anagrafe/cie", "inizio": "2027-03-02T09:00:00+01:00"},
    )
    found = CSRF.search(await r.text())
    assert found, "no CSRF token on the booking pages"
    return found.group(1)


@pytest.mark.parametrize("start", EXTREME)
async def test_a_start_out_of_the_calendar_is_never_a_500_on_the_pages(hub, start) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, _, _ = hub
    r = await client.get(
        PAGES + "/dati",
        params={"servizio": "anagrafe/cie", "inizio": start},
        allow_redirects=False,
    )
    assert r.status < 500, (start, r.status)
    token = await _token(client)
    for path in ("/dati", "/riepilogo", "/conferma", "/sposta", "/gestisci"):
        r = await client.post(
            PAGES + path,
            data={
                "csrf_token": token,
                "servizio": "anagrafe/cie",
                "inizio": start,
                "codice": "ABCD-EFGH-JKMN",
                "verifica": "x@y.it",
            },
            allow_redirects=False,
        )
        assert r.status < 500, (path, start, r.status, await r.text())


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary
        ("multipart/form-data; boundary=x", b"garbage without a boundary line"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n",
        ),
        ("application/x-www-form-urlencoded", b"csrf_token=%ff%fe&inizio=%00&inizio=a"),
        ("application/x-www-form-urlencoded", b"\xff\xfe\x00=" * 100),
        ("application/x-www-form-urlencoded; charset=nope", b"a=b"),
        ("text/plain", b"csrf_token=x"),
    ],
)
async def test_unreadable_forms_are_a_4xx_page_never_a_500(hub, content_type, body) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, _, _ = hub
    for path in ("/dati", "/riepilogo", "/conferma", "/gestisci", "/annulla", "/sposta"):
        r = await client.post(
            PAGES + path, data=body, headers={"Content-Type": content_type}, allow_redirects=False
        )
        assert r.status < 500, (path, content_type, r.status, await r.text())


async def test_twenty_identical_bookings_at_once_make_one(hub) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, auth, _ = hub
    body = citizen(start="2027-03-02T09:30:00+01:00")
    headers = {**auth, "Idempotency-Key": "same-booking"}
    url = "/api/v1/tenants/demo/booking/bookings"
    answers = await asyncio.gather(
        *(client.post(url, json=body, headers=headers) for _ in range(20))
    )
    statuses = [r.status for r in answers]
    assert all(s in (201, 409) for s in statuses), statuses
    codes = {(await r.json())["code"] for r in answers if r.status == 201}
    assert len(codes) == 1, codes
    # the same key with another body is refused, never a second booking
    other = citizen(start="2027-03-02T10:00:00+01:00")
    r = await client.post(url, json=other, headers=headers)
    assert r.status == 422 and r.content_type == "application/problem+json"
