"""Booking e-mails through the outbox and the SMTP connector, against the SMTP twin:
confirmation with the .ics, reminder the day before only for the current version, the
cancellation, Message-ID from the outbox key (a resend after a lost answer is a counted
duplicate), STARTTLS with the twin's certificate and AUTH by reference; and the twin's own
checks (envelope, headers, alignment, faults). SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from booking.test_booking import BOOKING, NOW, citizen, post, tenant

from sportello import apikeys
from sportello.app import ENGINE, SERVICES, create_app
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.connectors import errors
from sportello.connectors.email import (
    SmtpClient,
    SmtpSettings,
    build_message,
    message_id_for,
)
from sportello.outbox import Job, store
from sportello.platforms.booking import service
from sportello.platforms.booking.jobs import email_handler
from sportello.sandbox.email.app import DEMO_PASSWORD, DEMO_USER

FROM = "prenotazioni@comune.demo.example.it"


def _mail(port: int, pem: Path, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "starttls": True,
        "ca_file": str(pem),
        "username": DEMO_USER,
        "password": {"env": "SPORTELLO_TEST_SMTP_PASSWORD"},
        "from_address": FROM,
        "timeout": 1.5,
        **extra,
    }


@pytest.fixture
async def hub(tmp_path: Path, db_url: str, twin, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SPORTELLO_TEST_SMTP_PASSWORD", DEMO_PASSWORD)
    twin_client, port, pem = twin
    booking = {**BOOKING, "io_service": None, "email": _mail(port, pem)}
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [tenant("demo", booking)],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True, clock=FakeClock(NOW))
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            key = await apikeys.create(
                conn, tenant_id="demo", name="fo", scopes=["read", "write"], now=NOW
            )
        yield client, {"Authorization": f"Bearer {key}"}, twin_client


async def _jobs(client: TestClient) -> list[Job]:
    out = []
    async with client.app[ENGINE].connect() as conn:
        for row in await store.list_rows(conn, tenant_id="demo"):
            if row["kind"] != service.EMAIL_KIND:
                continue
            full = await store.inspect(conn, row["id"])
            assert full is not None
            payload = full["payload"]
            payload = payload if isinstance(payload, dict) else json.loads(payload)
            out.append(
                Job(full["id"], "demo", service.EMAIL_KIND, payload, full["idempotency_key"], 1, 5)
            )
    return out


async def _messages(twin: TestClient) -> dict[str, Any]:
    return await (await twin.get("/__sandbox/messages")).json()  # type: ignore[no-any-return]


async def test_confirmation_reminder_and_cancellation_emails(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, twin = hub
    r = await post(client, "/bookings", citizen(start="2027-03-10T09:00:00+01:00"), auth)
    moved = await r.json()
    r = await post(client, "/bookings", citizen(start="2027-03-11T09:00:00+01:00"), auth)
    cancelled = await r.json()
    r = await post(
        client,
        f"/bookings/{moved['code']}/reschedule",
        {"verify": moved["email"], "start": "2027-03-10T10:00:00+01:00"},
        auth,
    )
    assert r.status == 200
    r = await post(
        client, f"/bookings/{cancelled['code']}/cancel", {"verify": "ANNA.ROSSI@example.it"}, auth
    )
    assert r.status == 200

    jobs = await _jobs(client)
    kinds = sorted((j.payload["what"], j.payload["version"]) for j in jobs)
    # each booking: confirmation + reminder (v1); the move: confirmation + reminder (v2);
    # the cancellation: its e-mail (v2), no reminder
    assert kinds == sorted(
        [
            ("confirmation", 1),
            ("reminder", 1),
            ("confirmation", 1),
            ("reminder", 1),
            ("confirmation", 2),
            ("reminder", 2),
            ("cancellation", 2),
        ]
    )
    handle = email_handler(client.app[SERVICES])
    remote = {}
    for j in jobs:
        delivery = await handle(j)
        assert delivery is not None and delivery.remote_id is not None
        remote[(j.payload["code"], j.payload["what"], j.payload["version"])] = delivery.remote_id
    sent = {k: v for k, v in remote.items() if v.startswith("smtp:")}
    m_code = service.normalize_code(moved["code"])
    c_code = service.normalize_code(cancelled["code"])
    assert set(sent) == {
        (m_code, "confirmation", 2),
        (m_code, "reminder", 2),
        (c_code, "cancellation", 2),
    }, remote  # v1's confirmation and reminder of both: moved or cancelled, not sent

    box = await _messages(twin)
    assert box["count"] == 3 and box["duplicates"] == 0
    by_subject = {m["subject"]: m for m in box["items"]}
    reminder = by_subject["Promemoria appuntamento del 10/03/2027 alle 10:00"]
    assert reminder["recipients"] == ["anna.rossi@example.it"]
    assert reminder["envelope_from"] == FROM and reminder["tls"] and reminder["authenticated"]
    assert "Gentile Anna Rossi" in reminder["text"] and moved["code"] in reminder["text"]
    (ics,) = reminder["attachments"]
    assert ics["content_type"] == "text/calendar" and ics["method"] == "PUBLISH"
    assert "DTSTART:20270310T090000Z" in ics["text"] and "SEQUENCE:1" in ics["text"]
    assert "Rossi" not in ics["text"]
    wanted = {"code": m_code, "version": 2, "what": "reminder"}
    key = next(j.idempotency_key for j in jobs if j.payload == wanted)
    assert reminder["message_id"] == message_id_for(key, "comune.demo.example.it")
    assert "Appuntamento spostato al 10/03/2027 alle 10:00" in by_subject
    gone = by_subject["Appuntamento del 11/03/2027 alle 09:00 annullato"]
    assert "STATUS:CANCELLED" in gone["attachments"][0]["text"]

    # the reminder job's not-before is the day before (reminder_hours = 24)
    async with client.app[ENGINE].connect() as conn:
        row = next(
            r for r in await store.list_rows(conn, tenant_id="demo") if r["idempotency_key"] == key
        )
        full = await store.inspect(conn, row["id"])
    assert full is not None
    at = full["next_attempt_at"]
    at = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    assert at.astimezone(UTC) == datetime(2027, 3, 9, 9, tzinfo=UTC)


async def test_a_lost_answer_is_resent_with_the_same_message_id(hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, twin = hub
    await post(client, "/bookings", citizen(start="2027-03-10T09:00:00+01:00"), auth)
    (confirmation,) = [j for j in await _jobs(client) if j.payload["what"] == "confirmation"]
    handle = email_handler(client.app[SERVICES])
    # the twin stores the message, then its answer never comes: the client times out
    await twin.post("/__sandbox/faults", json={"stage": "after_data", "hang": 3})
    with pytest.raises(errors.ConnectorTimeout) as lost:
        await handle(confirmation)
    assert lost.value.retryable
    delivery = await handle(confirmation)  # the outbox's next attempt
    assert delivery is not None and delivery.remote_id is not None
    box = await _messages(twin)
    assert box["count"] == 2 and box["duplicates"] == 1
    assert box["items"][0]["message_id"] == box["items"][1]["message_id"]
    assert delivery.remote_id == f"smtp:{box['items'][0]['message_id']}"
    # a deferral (4xx) is retryable, a refusal (5xx) is not
    await twin.post("/__sandbox/faults", json={"stage": "rcpt", "code": 451})
    with pytest.raises(errors.ConnectorError) as deferred:
        await handle(confirmation)
    assert deferred.value.retryable
    await twin.post("/__sandbox/faults", json={"stage": "data", "code": 554})
    with pytest.raises(errors.PermanentError):
        await handle(confirmation)


async def test_missing_password_and_wrong_login_are_not_retried(hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = hub
    await post(client, "/bookings", citizen(start="2027-03-10T09:00:00+01:00"), auth)
    (confirmation,) = [j for j in await _jobs(client) if j.payload["what"] == "confirmation"]
    handle = email_handler(client.app[SERVICES])
    monkeypatch.setenv("SPORTELLO_TEST_SMTP_PASSWORD", "wrong")
    with pytest.raises(errors.AuthError) as refused:
        await handle(confirmation)
    assert not refused.value.retryable and "wrong" not in str(refused.value)
    monkeypatch.delenv("SPORTELLO_TEST_SMTP_PASSWORD")
    with pytest.raises(errors.PermanentError) as missing:
        await handle(confirmation)
    assert "SPORTELLO_TEST_SMTP_PASSWORD" in str(missing.value)


# --- the twin's own checks ----------------------------------------------------------------------


def _message(**headers: str) -> EmailMessage:
    msg = build_message(
        sender=FROM,
        sender_name="Comune",
        to="anna@example.it",
        subject="Prova",
        text="è una prova",
        message_id=message_id_for("k", "example.it"),
        date=NOW,
    )
    for name, value in headers.items():
        del msg[name.replace("_", "-")]
        if value:
            msg[name.replace("_", "-")] = value
    return msg


async def test_the_twin_checks_envelope_headers_and_auth(twin) -> None:  # type: ignore[no-untyped-def]
    client, port, pem = twin
    good = SmtpSettings(
        "127.0.0.1", port, username=DEMO_USER, password=DEMO_PASSWORD, ca_file=str(pem), timeout=3
    )
    await SmtpClient(good).send(_message())
    plain = SmtpSettings("127.0.0.1", port, starttls=False, timeout=3)
    with pytest.raises(errors.AuthError):  # 530 before MAIL without AUTH
        await SmtpClient(plain).send(_message())
    untrusted = SmtpSettings(
        "127.0.0.1", port, username=DEMO_USER, password=DEMO_PASSWORD, timeout=3
    )
    with pytest.raises(errors.TransportError):  # the twin's certificate is not trusted
        await SmtpClient(untrusted).send(_message())
    client_ = SmtpClient(good)
    with pytest.raises(errors.PermanentError, match="Message-ID"):
        await client_.send(_message(Message_ID=""))
    with pytest.raises(errors.PermanentError, match="not the envelope sender"):
        await client_.send(_message(), envelope_from="altro@example.it")
    with pytest.raises(errors.PermanentError, match="No such mailbox"):
        await client_.send(_message(To="nessuno@example.invalid"))
    box = await (await client.get("/__sandbox/messages")).json()
    assert box["count"] == 1 and box["refused"] == 3
    r = await client.post("/__sandbox/faults", json={"stage": "nowhere"})
    assert r.status == 400 and "stage" in (await r.json())["detail"]
