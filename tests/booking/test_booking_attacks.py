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


@pytest.mark.parametrize(
    "change",
    [
        {"name": "An\x00na"},
        {"reason": "x\x00"},
        {"office_id": "anag\x00rafe"},
        {"email": "a\x00@b.it"},
        {"surname": "\u202eissoR"},
        {"name": 12},
        {"logged_in": "yes"},
        {"start": ["2027-03-02T09:00:00+01:00"]},
    ],
)
async def test_nul_bytes_and_wrong_types_in_a_booking_are_4xx(hub, change) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, auth, _ = hub
    body = {**citizen(start="2027-03-02T09:00:00+01:00"), **change}
    r = await post(client, "/bookings", body, auth)
    assert 200 <= r.status < 500, (change, r.status, await r.text())
    if r.status >= 400:
        assert r.content_type == "application/problem+json"
    for path in ("/bookings/ABCD-EFGH-JKMN/read", "/bookings/AB\x00CD/cancel"):
        r = await post(client, path, {"verify": "x\x00@y.it"}, auth)
        assert 400 <= r.status < 500, (path, r.status)


async def test_nul_bytes_in_the_manage_forms_are_never_500(hub) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, _, _ = hub
    token = await _token(client)
    fields = {"csrf_token": token, "codice": "AB\x00CD-EFGH", "verifica": "x\x00@y.it"}
    for path in ("/gestisci", "/annulla", "/sposta"):
        r = await client.post(PAGES + path, data=fields, allow_redirects=False)
        assert r.status < 500, (path, r.status, await r.text())
    r = await client.get(PAGES + "/gestisci", params={"codice": "AB\x00CD"}, allow_redirects=False)
    assert r.status < 500
    r = await client.get(PAGES + "/AB%00CD/confermata", allow_redirects=False)
    assert r.status < 500
    r = await client.get(PAGES + "/AB%00CD/calendario.ics", allow_redirects=False)
    assert r.status < 500


async def test_twenty_moves_and_cancels_at_once_keep_the_seats_right(hub) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, auth, _ = hub
    slots_url = "/api/v1/tenants/demo/booking/offices/anagrafe/services/cie/slots"
    first, later = "2027-03-02T08:00:00+00:00", "2027-03-02T14:00:00+00:00"
    r = await post(client, "/bookings", citizen(start=first), auth)
    assert r.status == 201
    booked = await r.json()
    code, verify = booked["code"], booked["email"]
    answers = await asyncio.gather(
        *(
            post(client, f"/bookings/{code}/reschedule", {"verify": verify, "start": later}, auth)
            for _ in range(20)
        )
    )
    # 429: attempts in flight count against the per-code limit (parallel guessing)
    assert all(a.status in (200, 409, 429) for a in answers), [a.status for a in answers]
    assert any(a.status == 200 for a in answers)
    r = await client.get(f"{slots_url}?from=2027-03-02&days=1", headers=auth)
    by_start = {s["start"]: s["free"] for s in (await r.json())["items"]}
    assert (by_start[first], by_start[later]) == (2, 1), by_start
    answers = await asyncio.gather(
        *(post(client, f"/bookings/{code}/cancel", {"verify": verify}, auth) for _ in range(20))
    )
    assert all(a.status in (200, 409, 429) for a in answers), [a.status for a in answers]
    assert any(a.status == 200 for a in answers)
    r = await client.get(f"{slots_url}?from=2027-03-02&days=1", headers=auth)
    assert all(s["free"] == 2 for s in (await r.json())["items"])


HOSTILE_VALUES = (
    "",
    "\x00",
    "è" * 300,
    "x" * 5000,
    "9999-12-31",
    "0001-01-01",
    "anagrafe/cie/../x",
    "/",
    "²",
    "2027-03-02T09:00:00+01:00",
    "9999-12-31T23:59:59-14:00",
)


async def test_every_page_with_every_hostile_query_value_is_never_500(hub) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, _, _ = hub
    paths = ("/", "/orari", "/dati", "/gestisci", "/ABCD-EFGH-JKMN/confermata")
    names = ("servizio", "inizio", "dal", "errore", "codice", "verifica")
    for path in paths:
        for name in names:
            for value in HOSTILE_VALUES:
                params = {"servizio": "anagrafe/cie", name: value}
                r = await client.get(PAGES + path, params=params, allow_redirects=False)
                assert r.status < 500, (path, name, value[:20], r.status)
