"""The ``booking`` adapter kind: a platform declares it (``hub_adapter_kinds``) without a
kernel edit; the adapter kit's agenda contract passes for the reference SQLite agenda and
for the hub's own tables (SQLite and PostgreSQL); and the booking API books, moves, cancels
and lists the day through a comune's agenda when ``[tenants.adapters.booking]`` names one."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from booking.test_booking import citizen, tenant
from sqlalchemy import select, update

from sportello import apikeys
from sportello.adapter_kit import canonical_agenda, run_agenda_contract
from sportello.adapter_kit.pytest_plugin import AgendaContractTests
from sportello.adapters import plugin as adapters_plugin
from sportello.adapters.agenda.base import AgendaAdapter, AgendaHolder
from sportello.adapters.agenda.sqlite_adapter import SqliteAgenda
from sportello.app import ENGINE, SERVICES, create_app
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.hookspecs import AdapterKind, hookimpl
from sportello.platforms.booking.service import HubAgenda
from sportello.platforms.booking.settings import BookingTenantSettings
from sportello.platforms.booking.tables import booking_appointments
from sportello.plugins import Plugins
from sportello.tenant_adapters import AdapterNotInstalled, TenantAdapters

KIT_NOW = datetime(2030, 3, 1, 8, tzinfo=UTC)


# --- the reference adapter through the kit ------------------------------------------------------


async def _sqlite_factory(agenda: dict[str, Any], workdir: Path) -> SqliteAgenda:
    SqliteAgenda.load(workdir / "agenda.sqlite", agenda)
    return SqliteAgenda({"path": "agenda.sqlite"}, base_dir=workdir)


@pytest.mark.sportello_plugin(adapters_plugin, name="adapters")
class TestSqliteAgendaContract(AgendaContractTests):
    @pytest.fixture
    def agenda_factory(self):  # type: ignore[no-untyped-def]
        return _sqlite_factory


# --- the hub's own tables through the same kit ----------------------------------------------------


class _TablesAgenda:
    """HubAgenda in a transaction of its own per call, with the appointment row the booking
    service writes next to each seat (HubAgenda holds the seat, the row holds who it is for).
    A tenant per build keeps the builds apart on a shared PostgreSQL database."""

    name = "hub"
    _builds = itertools.count()

    def __init__(self, engine: Any, settings: BookingTenantSettings) -> None:
        n = next(self._builds)
        self.engine, self.settings = engine, settings
        self.tenant = f"kit{n}-{id(self) % 10**6}"
        self.prefix = f"{n % 10000:04d}"  # seat codes are unique across tenants

    def _agenda(self, conn: Any) -> HubAgenda:
        return HubAgenda(conn, self.tenant, self.settings, KIT_NOW)

    async def offices(self) -> Any:
        async with self.engine.connect() as conn:
            return await self._agenda(conn).offices()

    async def free_slots(self, office_id: str, service_id: str, first: date, days: int) -> Any:
        async with self.engine.connect() as conn:
            return await self._agenda(conn).free_slots(office_id, service_id, first, days)

    async def book(self, office_id: str, service_id: str, start: datetime, holder: Any) -> Any:
        code = self.prefix + holder.reference
        async with self.engine.begin() as conn:
            held = await self._agenda(conn).book(
                office_id, service_id, start, holder.model_copy(update={"reference": code})
            )
            await conn.execute(
                booking_appointments.insert().values(
                    tenant_id=self.tenant,
                    code=code,
                    office_id=held.office_id,
                    service_id=held.service_id,
                    starts_at=held.start,
                    ends_at=held.end,
                    status="booked",
                    name=holder.name,
                    surname=holder.surname,
                    email="kit@example.it",
                    reason=holder.reason,
                    logged_in=0,
                    version=1,
                    created_at=KIT_NOW,
                    updated_at=KIT_NOW,
                )
            )
        return held

    async def move(self, booking_id: str, start: datetime) -> Any:
        async with self.engine.begin() as conn:
            held = await self._agenda(conn).move(booking_id, start)
            await conn.execute(
                update(booking_appointments)
                .where(booking_appointments.c.code == booking_id)
                .values(starts_at=held.start, ends_at=held.end)
            )
        return held

    async def cancel(self, booking_id: str) -> None:
        async with self.engine.begin() as conn:
            await self._agenda(conn).cancel(booking_id)
            await conn.execute(
                update(booking_appointments)
                .where(booking_appointments.c.code == booking_id)
                .values(status="cancelled")
            )

    async def day(self, office_id: str, day: date) -> Any:
        async with self.engine.connect() as conn:
            entries = await self._agenda(conn).day(office_id, day)
        return [e.model_copy(update={"reference": e.reference[4:]}) for e in entries]

    async def close(self) -> None:
        return None


async def test_the_hubs_own_tables_pass_the_agenda_contract(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = canonical_agenda()
    settings = BookingTenantSettings.model_validate({**spec, "horizon_days": 366})

    async def factory(agenda: dict[str, Any], workdir: Path) -> _TablesAgenda:
        return _TablesAgenda(engine, settings)

    outcome = await run_agenda_contract(factory, tmp_path)
    assert outcome.pop("registered_through_the_hook").startswith("skipped")
    assert set(outcome.values()) == {"passed"}, outcome
    assert isinstance(HubAgenda(None, "t", settings, KIT_NOW), AgendaAdapter)  # type: ignore[arg-type]


async def test_a_broken_adapter_fails_the_contract(tmp_path: Path) -> None:
    """The kit catches an agenda that overbooks (a check that can fail)."""

    class Overbooking(SqliteAgenda):
        async def book(self, office_id: str, service_id: str, start: datetime, holder: Any) -> Any:
            real = self._hold
            self._hold = lambda conn, service, start: self._slot_end(conn, service, start)  # type: ignore[method-assign]
            try:
                return await super().book(office_id, service_id, start, holder)
            finally:
                self._hold = real  # type: ignore[method-assign]

    async def factory(agenda: dict[str, Any], workdir: Path) -> SqliteAgenda:
        SqliteAgenda.load(workdir / "agenda.sqlite", agenda)
        return Overbooking({"path": "agenda.sqlite"}, base_dir=workdir)

    with pytest.raises(AssertionError, match="simultaneous"):
        await run_agenda_contract(factory, tmp_path)


# --- the adapter kind: declared by a plugin, no kernel edit ---------------------------------


def test_a_plugin_declares_an_adapter_kind_the_kernel_did_not_know(tmp_path: Path) -> None:
    class Kiosk:
        name = "paper"

        def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
            self.options, self.base_dir = options, base_dir

    class KioskPlugin:
        @hookimpl
        def hub_adapter_kinds(self) -> dict[str, AdapterKind]:
            return {"kiosk": AdapterKind(Kiosk, "a ticket machine")}

        @hookimpl
        def hub_adapters(self) -> dict[str, dict[str, type[Any]]]:
            return {"kiosk": {"paper": Kiosk}}

    plugins = Plugins(entry_points=False)
    plugins.register(KioskPlugin(), name="kiosk")
    assert set(plugins.adapter_kinds()) >= {"booking", "kiosk"}
    assert plugins.kind_adapters("booking") == {"sqlite": SqliteAgenda}
    config = parse_config(
        {
            "tenants": [
                {
                    **tenant("demo", None),
                    "adapters": {
                        "kiosk": {"plugin": "paper", "options": {"rolls": 2}},
                        "booking": {"plugin": "nessuno"},
                    },
                }
            ]
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    adapters = TenantAdapters(config, plugins)
    built = adapters.get("demo", "kiosk")
    assert isinstance(built, Kiosk) and built.options == {"rolls": 2}
    assert adapters.get("demo", "kiosk") is built  # once per tenant and kind
    with pytest.raises(AdapterNotInstalled, match=r"booking adapter 'nessuno'.*sqlite"):
        adapters.get("demo", "booking")


# --- the booking API through a comune's agenda -----------------------------------------------

NOW = datetime(2030, 3, 14, 8, tzinfo=UTC)
MONDAY = "2030-03-18"


@pytest.fixture
async def agenda_hub(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    SqliteAgenda.load(tmp_path / "agenda.sqlite", canonical_agenda())
    demo = {
        **tenant("demo", {"horizon_days": 30}),
        "adapters": {"booking": {"plugin": "sqlite", "options": {"path": "agenda.sqlite"}}},
    }
    config = parse_config(
        {"database": {"url": db_url}, "outbox": {"workers": False}, "tenants": [demo]},
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True, clock=FakeClock(NOW))
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            key = await apikeys.create(
                conn,
                tenant_id="demo",
                name="fo",
                scopes=["read", "write", "personal_data"],
                now=NOW,
            )
        yield client, {"Authorization": f"Bearer {key}"}, tmp_path / "agenda.sqlite"


_keys = itertools.count()


async def _post(client: TestClient, path: str, body: Any, auth: dict[str, str]) -> Any:
    headers = {**auth, "Idempotency-Key": f"agenda-{next(_keys)}"}
    return await client.post(f"/api/v1/tenants/demo/booking{path}", json=body, headers=headers)


async def _book(client: TestClient, start: str, auth: dict[str, str]) -> Any:
    return await _post(client, "/bookings", citizen(service_id="residenza", start=start), auth)


async def test_the_api_books_moves_and_cancels_in_the_comunes_agenda(agenda_hub) -> None:  # type: ignore[no-untyped-def]
    client, auth, path = agenda_hub
    base = "/api/v1/tenants/demo/booking"
    offices = await (await client.get(f"{base}/offices", headers=auth)).json()
    assert [o["id"] for o in offices["items"]] == ["anagrafe", "tecnico"]
    slots_url = f"{base}/offices/anagrafe/services/residenza/slots?from={MONDAY}&days=1"
    slots = (await (await client.get(slots_url, headers=auth)).json())["items"]
    assert len(slots) == 9 and slots[0]["start"] == "2030-03-18T08:00:00+00:00"

    r = await _book(client, slots[0]["start"], auth)
    assert r.status == 201, await r.text()
    booked = await r.json()
    # the seat is in the agenda, with the hub's code as reference; the hub holds the rest
    agenda = sqlite3.connect(path)
    rows = agenda.execute("SELECT id, reference, status, surname FROM appointments").fetchall()
    assert rows == [(1, booked["code"].replace("-", ""), "booked", "Rossi")]
    async with client.app[ENGINE].connect() as conn:
        ref = (await conn.execute(select(booking_appointments.c.agenda_ref))).scalar_one()
    assert ref == "1"
    r = await _book(client, slots[0]["start"], auth)
    assert r.status == 409  # the agenda's only seat
    r = await _book(client, "2030-03-18T09:10:00+01:00", auth)
    assert r.status == 422 and "slot" in (await r.json())["detail"]
    r = await _book(client, "2030-05-20T09:00:00+02:00", auth)
    assert r.status == 422 and "30 days" in (await r.json())["detail"]  # the hub's horizon

    # someone books at the desk, straight in the agenda: the day list shows both
    agenda.execute(
        "INSERT INTO appointments (office_id, service_id, starts_at, ends_at, status, name,"
        " surname) VALUES ('anagrafe', 'cie', '2030-03-18T09:00:00Z', '2030-03-18T09:30:00Z',"
        " 'booked', 'Mario', 'Bianchi')"
    )
    agenda.commit()
    r = await client.get(f"{base}/offices/anagrafe/day?date={MONDAY}", headers=auth)
    day = await r.json()
    assert [(i["surname"], i["code"], i["agenda_id"]) for i in day["items"]] == [
        ("Rossi", booked["code"], "1"),
        ("Bianchi", None, "2"),
    ]

    later = "2030-03-18T10:40:00+01:00"
    move = {"verify": booked["email"], "start": later}
    r = await _post(client, f"/bookings/{booked['code']}/reschedule", move, auth)
    assert r.status == 200, await r.text()
    assert (await r.json())["start"] == "2030-03-18T09:40:00+00:00"
    assert agenda.execute("SELECT starts_at FROM appointments WHERE id = 1").fetchone() == (
        "2030-03-18T09:40:00Z",
    )
    r = await _post(client, f"/bookings/{booked['code']}/cancel", {"verify": booked["email"]}, auth)
    assert r.status == 200 and (await r.json())["status"] == "cancelled"
    assert agenda.execute("SELECT status FROM appointments WHERE id = 1").fetchone() == (
        "cancelled",
    )
    agenda.close()

    # the agenda gone: 503 naming it, never a 500
    path.unlink()
    r = await client.get(slots_url, headers=auth)
    assert r.status == 503 and "agenda" in (await r.json())["detail"]
    r = await _post(client, "/bookings", citizen(service_id="residenza", start=later), auth)
    assert r.status == 503 and r.content_type == "application/problem+json"


async def test_a_refused_hub_record_gives_the_agenda_seat_back(agenda_hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The agenda books first; if the hub cannot record the appointment, the seat is freed."""
    client, auth, path = agenda_hub
    from sportello.platforms.booking import service

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(service, "_queue_reminder", broken)
    r = await _book(client, "2030-03-18T09:00:00+01:00", auth)
    assert r.status >= 500  # an internal failure, injected
    with sqlite3.connect(path) as agenda:
        assert agenda.execute("SELECT status FROM appointments").fetchall() == [("cancelled",)]
    async with client.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(booking_appointments))).all() == []
    adapters = client.app[SERVICES].adapters
    assert isinstance(adapters.get("demo", "booking"), SqliteAgenda)
    held = await adapters.get("demo", "booking").book(
        "anagrafe",
        "residenza",
        datetime(2030, 3, 18, 8, tzinfo=UTC) + timedelta(minutes=20),
        AgendaHolder(name="A", surname="B", reference="R"),
    )
    assert held.id == "2"


def test_config_check_wants_offices_or_an_agenda() -> None:
    from sportello.platforms import booking

    config = parse_config({"tenants": [tenant("demo", {"horizon_days": 30})]})
    problems = booking.hub_config_problems(config, config.tenants[0], None)
    assert [p[0] for p in problems] == ["booking"] and "no offices" in problems[0][1]
    with_agenda = {
        **tenant("demo", {"horizon_days": 30}),
        "adapters": {"booking": {"plugin": "sqlite", "options": {"path": "a.sqlite"}}},
    }
    config = parse_config({"tenants": [with_agenda]})
    assert booking.hub_config_problems(config, config.tenants[0], None) == []


async def test_emails_of_an_agenda_appointment_name_the_agendas_office(  # type: ignore[no-untyped-def]
    tmp_path: Path, db_url: str, twin, monkeypatch
) -> None:
    from booking.test_booking_email import _mail

    from sportello.outbox import Job, store
    from sportello.platforms.booking import service
    from sportello.platforms.booking.jobs import email_handler
    from sportello.sandbox.email.app import DEMO_PASSWORD

    monkeypatch.setenv("SPORTELLO_TEST_SMTP_PASSWORD", DEMO_PASSWORD)
    twin_client, port, pem = twin
    SqliteAgenda.load(tmp_path / "agenda.sqlite", canonical_agenda())
    demo = {
        **tenant("demo", {"horizon_days": 30, "email": _mail(port, pem, reminder=False)}),
        "adapters": {"booking": {"plugin": "sqlite", "options": {"path": "agenda.sqlite"}}},
    }
    config = parse_config(
        {"database": {"url": db_url}, "outbox": {"workers": False}, "tenants": [demo]},
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True, clock=FakeClock(NOW))
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            key = await apikeys.create(conn, tenant_id="demo", name="x", scopes=["write"], now=NOW)
        r = await _book(client, "2030-03-18T09:00:00+01:00", {"Authorization": f"Bearer {key}"})
        assert r.status == 201, await r.text()
        async with app[ENGINE].connect() as conn:
            (row,) = await store.list_rows(conn, tenant_id="demo")
            full = await store.inspect(conn, row["id"])
        assert full is not None and row["kind"] == service.EMAIL_KIND
        payload = full["payload"] if isinstance(full["payload"], dict) else None
        payload = payload or __import__("json").loads(full["payload"])
        job = Job(full["id"], "demo", service.EMAIL_KIND, payload, full["idempotency_key"], 1, 3)
        delivery = await email_handler(app[SERVICES])(job)
        assert delivery is not None and str(delivery.remote_id).startswith("smtp:")
    (message,) = (await (await twin_client.get("/__sandbox/messages")).json())["items"]
    assert "Cambio di residenza presso Ufficio Anagrafe, Piazza del Municipio 1" in message["text"]
    assert "LOCATION:Ufficio Anagrafe\\, Piazza del Municipio 1\\, piano terra" in (
        message["attachments"][0]["text"].replace("\r\n ", "")
    )
