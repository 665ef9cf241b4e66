"""Booking: slots from opening hours in Europe/Rome (DST, holidays), booking with and
without login, the code and its second factor, .ics, cancel and move, the operator's day
list and no-shows, App IO reminders through the outbox, hostile input, and 50 bookings of
the last seat at once (SQLite and PostgreSQL: the database decides)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from sqlalchemy import func, select

from sportello import apikeys
from sportello.app import CLOCK, ENGINE, SERVICES, create_app
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.outbox import Job, store
from sportello.platforms.booking import ics, service
from sportello.platforms.booking.jobs import reminder_handler
from sportello.platforms.booking.settings import BookingTenantSettings
from sportello.platforms.booking.tables import booking_seats
from sportello.platforms.io.tables import io_messages

IO_SERVICE = "01DEMOSERVICE0000000000000"
ANNA = "RSSMRA80A01H501U"
# Monday 1 March 2027, 09:00 in Rome (CET, UTC+1)
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
HOURS = {d: ["09:00-12:00", "14:30-16:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
BOOKING: dict[str, Any] = {
    "offices": [
        {
            "id": "anagrafe",
            "name": "Ufficio Anagrafe",
            "address": "Piazza del Municipio 1; piano terra",
            "services": [
                {"id": "cie", "name": "Carta d'identità elettronica", "minutes": 30, "capacity": 2},
                {"id": "residenza", "name": "Cambio di residenza", "minutes": 20},
            ],
            "hours": {**HOURS, "sun": ["01:00-04:00"]},  # a night desk, to cross the DST gap
            "holidays": ["2027-03-19"],
        }
    ],
    "holidays": ["2027-03-17"],
    "horizon_days": 40,
    "io_service": IO_SERVICE,
}


def tenant(tid: str, booking: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": tid,
        "name": f"Comune di {tid.title()}",
        "ipa_code": f"c_{tid[:4]}",
        "fiscal_code": "00000000999" if tid == "demo" else "00000000888",
        "cadastral_code": "Z999" if tid == "demo" else "Z888",
        "io": {
            "base_url": "http://127.0.0.1:9/api/v1",
            "services": [{"id": IO_SERVICE, "key": {"env": "X"}}],
        },
    }
    if booking is not None:
        out["booking"] = booking
    return out


def settings() -> BookingTenantSettings:
    return BookingTenantSettings.model_validate(BOOKING)


def rome(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=service.ROME)


@pytest.fixture
async def hub(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [tenant("demo", BOOKING), tenant("altro", BOOKING)],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    clock = FakeClock(NOW)
    app = create_app(config, apply_migrations=True, clock=clock)
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            key = await apikeys.create(
                conn,
                tenant_id="demo",
                name="front office",
                scopes=["read", "write", "personal_data"],
                now=clock.now(),
            )
            other = await apikeys.create(
                conn,
                tenant_id="altro",
                name="x",
                scopes=["read", "write", "personal_data"],
                now=clock.now(),
            )
        yield client, {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {other}"}


def citizen(**extra: Any) -> dict[str, Any]:
    return {
        "office_id": "anagrafe",
        "service_id": "cie",
        "name": "Anna",
        "surname": "Rossi",
        "email": "anna.rossi@example.it",
        "reason": "Rinnovo, carta scaduta",
        **extra,
    }


_keys = iter(range(10**6))


async def post(client: TestClient, path: str, body: Any, auth: dict[str, str]) -> Any:
    headers = {**auth, "Idempotency-Key": f"k-{next(_keys)}"}
    return await client.post(f"/api/v1/tenants/demo/booking{path}", json=body, headers=headers)


# --- the calendar ----------------------------------------------------------------------------


def test_slots_follow_the_hours_in_rome_across_dst_and_holidays() -> None:
    s = settings()
    office, cie = service.resolve(s, "anagrafe", "cie")
    # a winter Monday: 09:00 in Rome is 08:00 UTC; six 30-minute slots, then three more
    winter = service.slot_times(s, office, cie, date(2027, 3, 22))
    assert winter[0][0] == datetime(2027, 3, 22, 8, 0, tzinfo=UTC)
    assert len(winter) == 6 + 3
    assert winter[6][0] == rome(2027, 3, 22, 14, 30)
    # the Monday after the change (28 March 2027): 09:00 in Rome is 07:00 UTC
    summer = service.slot_times(s, office, cie, date(2027, 3, 29))
    assert summer[0][0] == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    # the night of the change: 02:00-03:00 does not exist in Rome, no slot touches it
    night = service.slot_times(s, office, cie, date(2027, 3, 28))
    assert [t[0] for t in night] == [
        datetime(2027, 3, 28, 0, 0, tzinfo=UTC),  # 01:00 CET
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC),  # 03:00 CEST
        datetime(2027, 3, 28, 1, 30, tzinfo=UTC),  # 03:30 CEST
    ]
    assert all(end - start == timedelta(minutes=30) for start, end in night)
    # the tenant's holiday and the office's own; Saturday is closed
    assert service.slot_times(s, office, cie, date(2027, 3, 17)) == []
    assert service.slot_times(s, office, cie, date(2027, 3, 19)) == []
    assert service.slot_times(s, office, cie, date(2027, 3, 20)) == []


def test_bad_settings_are_refused_naming_the_field() -> None:
    bad = {**BOOKING, "offices": [{**BOOKING["offices"][0], "hours": {"mon": ["12:00-09:00"]}}]}
    with pytest.raises(ValueError, match="ends before it starts"):
        BookingTenantSettings.model_validate(bad)
    bad = {**BOOKING, "offices": [{**BOOKING["offices"][0], "hours": {"mon": ["9-12"]}}]}
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        BookingTenantSettings.model_validate(bad)
    with pytest.raises(ValueError, match="unique"):
        BookingTenantSettings.model_validate({**BOOKING, "offices": BOOKING["offices"] * 2})


def test_codes_are_random_and_typed_back_in_any_form() -> None:
    codes = {service.new_code() for _ in range(1000)}
    assert len(codes) == 1000
    code = codes.pop()
    shown = service.display_code(code)
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", shown)
    assert service.normalize_code(shown.lower()) == code
    for bad in ("", "x" * 500, "ABCD-EFGH-JKM0", "../../etc"):
        with pytest.raises(service.NotFound):
            service.normalize_code(bad)


def test_ics_escapes_text_folds_lines_and_uses_utc() -> None:
    body = ics.calendar(
        uid="ABC@demo.booking.sportello",
        start=rome(2027, 7, 1, 9),
        end=rome(2027, 7, 1, 9, 30),
        stamp=NOW,
        summary="Carta d'identità; rinnovo, urgente\\sì",
        location="Piazza del Municipio 1, piano terra " + "è" * 60,
        description="riga 1\nriga 2",
    ).decode()
    assert body.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") and body.endswith("\r\n")
    assert "DTSTART:20270701T070000Z\r\n" in body  # 09:00 CEST
    assert "DTSTAMP:20270301T080000Z\r\n" in body
    assert "SUMMARY:Carta d'identità\\; rinnovo\\, urgente\\\\sì\r\n" in body
    assert "DESCRIPTION:riga 1\\nriga 2\r\n" in body
    for line in body.split("\r\n"):
        assert len(line.encode()) <= 75
    unfolded = body.replace("\r\n ", "")
    assert "LOCATION:Piazza del Municipio 1\\, piano terra " + "è" * 60 in unfolded


# --- through the API ---------------------------------------------------------------------------


async def test_book_without_login_read_ics_move_and_cancel(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = hub
    offices = await (await client.get("/api/v1/tenants/demo/booking/offices", headers=auth)).json()
    assert offices["timezone"] == "Europe/Rome"
    assert offices["items"][0]["holidays"] == ["2027-03-17", "2027-03-19"]
    slots_url = "/api/v1/tenants/demo/booking/offices/anagrafe/services/cie/slots"
    r = await client.get(f"{slots_url}?from=2027-03-02&days=1", headers=auth)
    slots = (await r.json())["items"]
    assert len(slots) == 9 and slots[0]["free"] == 2
    first = slots[0]["start"]
    assert first == "2027-03-02T08:00:00+00:00"

    r = await post(client, "/bookings", citizen(start=first), auth)
    assert r.status == 201, await r.text()
    booked = await r.json()
    code = booked["code"]
    assert booked["status"] == "booked" and booked["fiscal_code"] is None
    r = await client.get(f"{slots_url}?from=2027-03-02&days=1", headers=auth)
    assert (await r.json())["items"][0]["free"] == 1

    # the .ics: UID stable, times in UTC, no personal data
    r = await client.get(f"/api/v1/tenants/demo/booking/bookings/{code}/calendar.ics", headers=auth)
    assert r.status == 200 and r.content_type == "text/calendar"
    text = await r.text()
    assert "DTSTART:20270302T080000Z" in text and "DTEND:20270302T083000Z" in text
    assert "Rossi" not in text and "anna.rossi" not in text
    uid = re.search(r"UID:(.+)\r\n", text)
    assert uid is not None

    # the second factor: the e-mail in any case; a wrong one is the same 404 as no booking
    r = await post(
        client, f"/bookings/{code.lower()}/read", {"verify": "ANNA.ROSSI@example.it"}, auth
    )
    assert r.status == 200 and (await r.json())["surname"] == "Rossi"
    r = await post(client, f"/bookings/{code}/read", {"verify": "mario@example.it"}, auth)
    assert r.status == 404 and r.content_type == "application/problem+json"

    # move to the afternoon: the old seat is free again
    later = "2027-03-02T15:00:00+01:00"
    r = await post(
        client, f"/bookings/{code}/reschedule", {"verify": booked["email"], "start": later}, auth
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["start"] == "2027-03-02T14:00:00+00:00"
    r = await client.get(f"{slots_url}?from=2027-03-02&days=1", headers=auth)
    by_start = {s["start"]: s["free"] for s in (await r.json())["items"]}
    assert by_start[first] == 2 and by_start["2027-03-02T14:00:00+00:00"] == 1
    text = await (
        await client.get(f"/api/v1/tenants/demo/booking/bookings/{code}/calendar.ics", headers=auth)
    ).text()
    assert f"UID:{uid[1]}" in text and "SEQUENCE:1" in text

    r = await post(client, f"/bookings/{code}/cancel", {"verify": booked["email"]}, auth)
    assert r.status == 200 and (await r.json())["status"] == "cancelled"
    r = await post(client, f"/bookings/{code}/cancel", {"verify": booked["email"]}, auth)
    assert r.status == 200  # cancelling twice answers the cancelled appointment
    r = await post(
        client, f"/bookings/{code}/reschedule", {"verify": booked["email"], "start": first}, auth
    )
    assert r.status == 409
    r = await client.get(f"{slots_url}?from=2027-03-02&days=1", headers=auth)
    assert all(s["free"] == 2 for s in (await r.json())["items"])
    text = await (
        await client.get(f"/api/v1/tenants/demo/booking/bookings/{code}/calendar.ics", headers=auth)
    ).text()
    assert "STATUS:CANCELLED" in text

    audit = (await (await client.get("/api/v1/tenants/demo/audit", headers=auth)).json())["items"]
    assert ("booking.read", service.display_code(service.normalize_code(code))) in [
        (a["action"], a["subject"]) for a in audit
    ]


async def test_login_booking_needs_a_valid_fiscal_code(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = hub
    start = "2027-03-03T09:00:00+01:00"
    r = await post(client, "/bookings", citizen(start=start, logged_in=True), auth)
    assert r.status == 400 and "fiscal_code" in (await r.json())["detail"]
    r = await post(client, "/bookings", citizen(start=start, fiscal_code="RSSMRA80A01H501X"), auth)
    assert r.status == 400 and "fiscal_code" in (await r.json())["detail"]
    r = await post(
        client, "/bookings", citizen(start=start, fiscal_code=ANNA, logged_in=True), auth
    )
    assert r.status == 201
    code = (await r.json())["code"]
    r = await post(client, f"/bookings/{code}/read", {"verify": ANNA.lower()}, auth)
    assert r.status == 200 and (await r.json())["logged_in"] is True


HOSTILE: list[tuple[Any, int, str]] = [
    (None, 400, "body"),
    ([], 400, "body"),
    ("x", 400, "body"),
    ({}, 400, "office_id"),
    (citizen(start="domani"), 400, "start"),
    (citizen(start="2027-03-02T09:00:00"), 400, "start"),  # no offset
    (citizen(start="2027-03-02T09:00:00+01:00", extra=1), 400, "extra"),
    (citizen(start="2027-03-02T09:00:00+01:00", name="x" * 10_000), 400, "name"),
    (citizen(start="2027-03-02T09:00:00+01:00", email="nope"), 400, "email"),
    (citizen(start="2027-02-26T09:00:00+01:00"), 422, "past"),
    (citizen(start="2027-03-02T07:00:00+01:00"), 422, "opening hours"),
    (citizen(start="2027-03-02T09:10:00+01:00"), 422, "slot boundary"),
    (citizen(start="2027-03-17T09:00:00+01:00"), 422, "closed"),  # tenant holiday
    (citizen(start="2027-03-19T09:00:00+01:00"), 422, "closed"),  # office holiday
    (citizen(start="2027-03-06T09:00:00+01:00"), 422, "opening hours"),  # Saturday
    (citizen(start="2027-06-01T09:00:00+02:00"), 422, "days ahead"),
    (citizen(start="9999-12-31T23:59:59+14:00"), 422, "days ahead"),
    (citizen(start="9999-12-31T23:59:59-14:00"), 422, "out of range"),
    (citizen(start="0001-01-01T00:00:00+01:00"), 422, "out of range"),
    (citizen(start="2027-03-28T01:30:00+01:00"), 422, "opening hours"),  # ends in the DST gap
    (citizen(office_id="nope", start="2027-03-02T09:00:00+01:00"), 422, "office_id"),
    (citizen(service_id="nope", start="2027-03-02T09:00:00+01:00"), 422, "service_id"),
]


@pytest.mark.parametrize(("body", "status", "words"), HOSTILE)
async def test_hostile_bookings_get_problem_json_naming_why(hub, body, status, words) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = hub
    r = await post(client, "/bookings", body, auth)
    assert r.status == status, await r.text()
    assert r.content_type == "application/problem+json"
    assert words in (await r.json())["detail"]


async def test_hostile_paths_and_queries_are_never_500(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = hub
    base = "/api/v1/tenants/demo/booking"
    for url in (
        f"{base}/offices/anagrafe/services/cie/slots?from=ieri",
        f"{base}/offices/anagrafe/services/cie/slots?days=0",
        f"{base}/offices/anagrafe/services/cie/slots?days=abc",
        f"{base}/offices/anagrafe/services/cie/slots?days=99999999999999999999",
        f"{base}/offices/x/services/cie/slots",
        f"{base}/offices/anagrafe/day?date=2027-02-30",
        f"{base}/offices/nope/day",
        f"{base}/offices/anagrafe/day?date=0001-01-01",  # found by schemathesis: was a 500
        f"{base}/offices/anagrafe/day?date=9999-12-31",
        f"{base}/offices/anagrafe/services/cie/slots?from=9999-12-31&days=31",
        f"{base}/bookings/%00%ff/calendar.ics",
        f"{base}/bookings/{'A' * 5000}/calendar.ics",
    ):
        r = await client.get(url, headers=auth)
        assert 400 <= r.status < 500 and r.content_type == "application/problem+json", url
    for path, body in (
        ("/bookings/ABCD-EFGH-JKMN/read", {"verify": "x@y.it"}),
        ("/bookings/ABCD-EFGH-JKMN/cancel", {"verify": ["x"]}),
        ("/bookings/ABCD-EFGH-JKMN/reschedule", {"verify": "x@y.it", "start": 5}),
        ("/bookings/ABCD-EFGH-JKMN/no-show", None),
        ("/bookings/zz/read", {"verify": "x@y.it"}),
    ):
        r = await post(client, path, body, auth)
        assert r.status in (400, 404), (path, r.status)
        assert r.content_type == "application/problem+json"
    # far past the horizon, the slot list is empty, not an error
    r = await client.get(
        f"{base}/offices/anagrafe/services/cie/slots?from=2099-01-01", headers=auth
    )
    assert r.status == 200 and (await r.json())["items"] == []


async def test_another_tenants_key_meets_404_on_every_booking_route(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, other = hub
    r = await post(client, "/bookings", citizen(start="2027-03-02T09:00:00+01:00"), auth)
    code = (await r.json())["code"]
    base = "/api/v1/tenants/demo/booking"
    for method, url in (
        ("GET", f"{base}/offices"),
        ("GET", f"{base}/offices/anagrafe/services/cie/slots"),
        ("GET", f"{base}/offices/anagrafe/day"),
        ("POST", f"{base}/bookings"),
        ("POST", f"{base}/bookings/{code}/read"),
        ("POST", f"{base}/bookings/{code}/cancel"),
        ("POST", f"{base}/bookings/{code}/reschedule"),
        ("POST", f"{base}/bookings/{code}/no-show"),
        ("GET", f"{base}/bookings/{code}/calendar.ics"),
    ):
        r = await client.request(method, url, headers={**other, "Idempotency-Key": "i"}, json={})
        assert r.status == 404, (method, url)
    # and the booking of demo is not found under altro's own tenant either
    r = await client.get(
        f"/api/v1/tenants/altro/booking/bookings/{code}/calendar.ics", headers=other
    )
    assert r.status == 404


async def test_fifty_simultaneous_bookings_of_the_last_seat(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = hub
    start = "2027-03-04T10:00:00+01:00"
    r = await post(client, "/bookings", citizen(start=start), auth)
    assert r.status == 201  # one of the two seats
    answers = await asyncio.gather(
        *(post(client, "/bookings", citizen(start=start, name=f"N{i}"), auth) for i in range(50))
    )
    statuses = sorted(a.status for a in answers)
    assert statuses == [201] + [409] * 49
    for a in answers:
        if a.status == 409:
            assert a.content_type == "application/problem+json"
            assert "every seat" in (await a.json())["detail"]
    async with client.app[ENGINE].connect() as conn:
        seats = (
            await conn.execute(
                select(func.count())
                .select_from(booking_seats)
                .where(booking_seats.c.starts_at == datetime(2027, 3, 4, 9, tzinfo=UTC))
            )
        ).scalar_one()
    assert seats == 2


async def test_reminders_go_through_the_outbox_and_follow_moves(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = hub
    app = client.app
    r = await post(
        client, "/bookings", citizen(start="2027-03-10T09:00:00+01:00", fiscal_code=ANNA), auth
    )
    first = await r.json()
    r = await post(
        client, "/bookings", citizen(start="2027-03-11T09:00:00+01:00", fiscal_code=ANNA), auth
    )
    second = await r.json()
    # no fiscal code: no App IO reminder (and there is no e-mail connector)
    await post(client, "/bookings", citizen(start="2027-03-12T09:00:00+01:00"), auth)
    r = await post(
        client,
        f"/bookings/{first['code']}/reschedule",
        {"verify": ANNA, "start": "2027-03-10T10:00:00+01:00"},
        auth,
    )
    assert r.status == 200
    await post(client, f"/bookings/{second['code']}/cancel", {"verify": ANNA}, auth)

    async with app[ENGINE].connect() as conn:
        rows = [
            r
            for r in await store.list_rows(conn, tenant_id="demo")
            if r["kind"] == service.REMINDER_KIND
        ]
        jobs = []
        for row in rows:
            full = await store.inspect(conn, row["id"])
            assert full is not None
            jobs.append(full)
    assert len(jobs) == 3  # first (v1, v2) and second (v1)
    wanted = {
        (datetime(2027, 3, 9, 8, tzinfo=UTC), 1),
        (datetime(2027, 3, 9, 9, tzinfo=UTC), 2),
        (datetime(2027, 3, 10, 8, tzinfo=UTC), 1),
    }
    got = set()
    for j in jobs:
        at = j["next_attempt_at"]
        at = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        payload = j["payload"] if isinstance(j["payload"], dict) else json.loads(j["payload"])
        got.add((at.astimezone(UTC), payload["version"]))
    assert got == wanted

    handle = reminder_handler(app[SERVICES])
    outcomes = []
    for j in jobs:
        payload = j["payload"] if isinstance(j["payload"], dict) else json.loads(j["payload"])
        job = Job(j["id"], "demo", service.REMINDER_KIND, payload, j["idempotency_key"], 1, 3)
        outcomes.append((payload["code"], payload["version"], (await handle(job)).remote_id))
        again = await handle(job)  # a job run twice sends one message
        assert (
            again is not None
            and again.remote_id is not None
            and again.remote_id.startswith("skipped")
        )
    sent = [(c, v) for c, v, remote in outcomes if remote and remote.startswith("io-message:")]
    assert sent == [(service.normalize_code(first["code"]), 2)]  # the moved one, once
    async with app[ENGINE].connect() as conn:
        messages = (await conn.execute(select(io_messages))).all()
    assert len(messages) == 1 and messages[0].fiscal_code == ANNA
    assert messages[0].service_id == IO_SERVICE
    content = json.loads(messages[0].content)
    text = json.dumps(content)
    assert "10/03/2027 alle 10:00" in text and first["code"] in text


async def test_day_list_is_audited_and_no_show_waits_for_the_time(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = hub
    for start in ("2027-03-02T09:30:00+01:00", "2027-03-02T09:00:00+01:00"):
        await post(client, "/bookings", citizen(start=start), auth)
    r = await client.get(
        "/api/v1/tenants/demo/booking/offices/anagrafe/day?date=2027-03-02", headers=auth
    )
    day = await r.json()
    assert [i["start"] for i in day["items"]] == [
        "2027-03-02T08:00:00+00:00",
        "2027-03-02T08:30:00+00:00",
    ]
    code = day["items"][0]["code"]
    r = await post(client, f"/bookings/{code}/no-show", None, auth)
    assert r.status == 409 and "not started" in (await r.json())["detail"]
    client.app[CLOCK].advance(24 * 3600 + 15 * 60)  # 2 March, 09:15 in Rome
    r = await post(client, f"/bookings/{code}/no-show", None, auth)
    assert r.status == 200 and (await r.json())["status"] == "no_show"
    r = await post(client, f"/bookings/{code}/cancel", {"verify": "anna.rossi@example.it"}, auth)
    assert r.status == 409
    audit = (await (await client.get("/api/v1/tenants/demo/audit", headers=auth)).json())["items"]
    assert ("booking.day", "anagrafe:2027-03-02") in [(a["action"], a["subject"]) for a in audit]


def test_cli_day_lists_the_appointments(tmp_path: Path) -> None:
    import asyncio as aio

    from sportello import migrate
    from sportello.cli.main import main as cli
    from sportello.config import DatabaseSettings
    from sportello.db import create_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f'[database]\nurl = "{url}"\n\n[[tenants]]\nid = "demo"\nname = "Comune"\n'
        'ipa_code = "c_z999"\nfiscal_code = "00000000999"\ncadastral_code = "Z999"\n'
        "[tenants.booking]\n"
        '[[tenants.booking.offices]]\nid = "anagrafe"\nname = "Anagrafe"\n'
        'hours = { mon = ["09:00-12:00"] }\n'
        '[[tenants.booking.offices.services]]\nid = "cie"\nname = "CIE"\nminutes = 30\n'
    )

    async def seed() -> None:
        engine = create_engine(DatabaseSettings(url=url))
        await migrate.upgrade(engine)
        s = BookingTenantSettings.model_validate(
            {
                "offices": [
                    {
                        "id": "anagrafe",
                        "name": "Anagrafe",
                        "hours": {"mon": ["09:00-12:00"]},
                        "services": [{"id": "cie", "name": "CIE", "minutes": 30}],
                    }
                ]
            }
        )
        async with engine.begin() as conn:
            await service.book(
                conn,
                tenant_id="demo",
                settings=s,
                office_id="anagrafe",
                service_id="cie",
                start=rome(2027, 3, 8, 9, 30),
                citizen=service.Citizen("Anna", "Rossi", "a@b.it", "CIE"),
                now=NOW,
                max_attempts=3,
            )
        await engine.dispose()

    aio.run(seed())
    result = CliRunner().invoke(
        cli, ["booking", "day", "demo", "--config", str(toml), "--date", "2027-03-08"]
    )
    assert result.exit_code == 0, result.output
    assert "anagrafe 2027-03-08: 1 appointment(s)" in result.output
    assert "09:30 cie" in result.output and "Rossi Anna" in result.output


def test_config_check_names_an_io_service_the_tenant_does_not_have() -> None:
    from sportello.platforms import booking

    config = parse_config(
        {"tenants": [tenant("demo", {**BOOKING, "io_service": "01OTHER0000000000000000000"})]}
    )
    problems = booking.hub_config_problems(config, config.tenants[0], None)
    assert problems and problems[0][0] == "booking" and "01OTHER" in problems[0][1]
    config = parse_config({"tenants": [tenant("demo", BOOKING)]})
    assert booking.hub_config_problems(config, config.tenants[0], None) == []


async def test_no_reminder_when_the_lead_time_has_passed(engine) -> None:  # type: ignore[no-untyped-def]
    s = settings()
    async with engine.begin() as conn:
        # booked at 09:00 for 10:00 the same day: 24 hours ahead is already gone
        await service.book(
            conn,
            tenant_id="demo",
            settings=s,
            office_id="anagrafe",
            service_id="cie",
            start=rome(2027, 3, 1, 10),
            citizen=service.Citizen("Anna", "Rossi", "a@b.it", "CIE", fiscal_code=ANNA),
            now=NOW,
            max_attempts=3,
        )
        assert await store.list_rows(conn, tenant_id="demo") == []


# --- the limit on second-factor attempts ------------------------------------------------------


async def test_wrong_second_factors_lock_the_code_even_when_simultaneous(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, other = hub
    clock = client.app[CLOCK]
    r = await post(client, "/bookings", citizen(start="2027-03-03T09:00:00+01:00"), auth)
    code = (await r.json())["code"]
    r = await post(client, "/bookings", citizen(start="2027-03-03T09:30:00+01:00"), auth)
    untouched = (await r.json())["code"]
    # 20 wrong attempts at once, on read, cancel and move: only 5 (verify_attempts) are checked
    paths = ["read", "cancel", "reschedule"]
    answers = await asyncio.gather(
        *(
            post(
                client,
                f"/bookings/{code}/{paths[i % 3]}",
                {"verify": f"wrong{i}@example.it", "start": "2027-03-03T10:00:00+01:00"}
                if paths[i % 3] == "reschedule"
                else {"verify": f"wrong{i}@example.it"},
                auth,
            )
            for i in range(20)
        )
    )
    statuses = sorted(a.status for a in answers)
    assert statuses == [404] * 5 + [429] * 15, statuses
    for a in answers:
        assert a.content_type == "application/problem+json"
        if a.status == 429:
            assert 1 <= int(a.headers["Retry-After"]) <= 15 * 60
            assert "verify" in (await a.json())["detail"]
    # locked: even the right factor waits; the lock is per code (another code still answers)
    r = await post(client, f"/bookings/{code}/read", {"verify": "anna.rossi@example.it"}, auth)
    assert r.status == 429 and int(r.headers["Retry-After"]) <= 15 * 60
    r = await post(client, f"/bookings/{untouched}/read", {"verify": "anna.rossi@example.it"}, auth)
    assert r.status == 200
    # another tenant's key cannot lock (nor see) this tenant's code
    r = await client.post(
        f"/api/v1/tenants/demo/booking/bookings/{untouched}/read",
        json={"verify": "x@example.it"},
        headers=other,
    )
    assert r.status == 404
    # after the lock the count starts again; the right factor works and resets it
    clock.advance(15 * 60 + 1)
    for _ in range(4):
        r = await post(client, f"/bookings/{code}/read", {"verify": "nope@example.it"}, auth)
        assert r.status == 404
    r = await post(client, f"/bookings/{code}/read", {"verify": "anna.rossi@example.it"}, auth)
    assert r.status == 200
    for _ in range(4):
        r = await post(client, f"/bookings/{code}/read", {"verify": "nope@example.it"}, auth)
        assert r.status == 404
    r = await post(client, f"/bookings/{code}/cancel", {"verify": "anna.rossi@example.it"}, auth)
    assert r.status == 200 and (await r.json())["status"] == "cancelled"


async def test_the_attempt_count_is_atomic_under_concurrency(engine) -> None:  # type: ignore[no-untyped-def]
    """Many transactions taking attempts at once on the same code get distinct numbers; only
    ``verify_attempts`` of them pass, whatever the backend."""
    settings_ = settings().model_copy(update={"verify_attempts": 3})
    code = service.new_code()

    async def one() -> int | str:
        try:
            async with engine.begin() as conn:
                return await service.take_attempt(conn, "demo", settings_, code, NOW)
        except service.Locked:
            return "locked"

    got = await asyncio.gather(*(one() for _ in range(25)))
    assert sorted(x for x in got if isinstance(x, int)) == [1, 2, 3]
    assert got.count("locked") == 22
