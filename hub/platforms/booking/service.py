"""Appointments: free slots, booking, cancelling, moving, the day list and no-shows.

Slots come from the office's opening hours in Europe/Rome (wall-clock times, so a 09:00
slot is 09:00 on both sides of a DST change), minus holidays, minus the seats already
taken. A booking takes a seat row (``tables.booking_seats``) with an insert that does
nothing on conflict: the database lets exactly ``capacity`` bookings into a slot however
many arrive at once. Every function works in the caller's transaction.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello import audit
from sportello.connectors.fiscal_code import is_person_code
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.booking.settings import (
    BookingOffice,
    BookingService,
    BookingTenantSettings,
)
from sportello.platforms.booking.tables import booking_appointments, booking_seats

ROME = ZoneInfo("Europe/Rome")
REMINDER_KIND = "booking.reminder"

#: Booking codes: 12 characters of an alphabet without look-alikes (no 0/O, 1/I/L), about
#: 59 bits from ``secrets``: not guessable, and a second factor is asked on top.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12


class BookingError(Exception):
    """A refusal the API turns into problem+json: ``status`` and a detail naming the field."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotOffered(BookingError):
    """The office, service or time is not one citizens may book (422)."""

    status = 422


class SlotFull(BookingError):
    """Every seat of the slot is taken (409)."""

    status = 409


class Conflict(BookingError):
    """The appointment is not in a state that allows this (409)."""

    status = 409


class NotFound(BookingError):
    """No such appointment, or the second factor does not match (404: the same answer)."""

    status = 404


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime  # UTC
    end: datetime  # UTC
    free: int
    capacity: int


@dataclass(frozen=True, slots=True)
class Citizen:
    name: str
    surname: str
    email: str
    reason: str
    fiscal_code: str | None = None
    phone: str | None = None
    logged_in: bool = False


# --- codes ---------------------------------------------------------------------------------


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    """``ABCDEFGHJKMN`` as ``ABCD-EFGH-JKMN``."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalize_code(raw: str) -> str:
    """The stored form of a code as a citizen types it (any case, dashes, spaces); a
    string that cannot be a code is :class:`NotFound`."""
    code = raw.replace("-", "").replace(" ", "").upper()
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        raise NotFound(f"booking {raw[:40]!r} not found")
    return code


# --- the calendar --------------------------------------------------------------------------


def local_day(moment: datetime) -> date:
    return moment.astimezone(ROME).date()


def _exists(local: datetime) -> bool:
    """Whether a Europe/Rome wall-clock time exists (not in the spring-forward gap)."""
    back = local.astimezone(UTC).astimezone(ROME)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def closed_on(settings: BookingTenantSettings, office: BookingOffice, day: date) -> bool:
    return day in settings.holidays or day in office.holidays


def slot_times(
    settings: BookingTenantSettings, office: BookingOffice, service: BookingService, day: date
) -> list[tuple[datetime, datetime]]:
    """(start, end) in UTC of every slot of ``service`` at ``office`` on the local ``day``."""
    if closed_on(settings, office, day):
        return []
    step = timedelta(minutes=service.minutes)
    out = []
    for opens, closes in office.intervals(day.weekday()):
        start = datetime.combine(day, opens, ROME)
        end_of_interval = datetime.combine(day, closes, ROME)
        while start + step <= end_of_interval:  # wall-clock arithmetic in Europe/Rome
            end = start + step
            if _exists(start) and _exists(end):
                out.append((start.astimezone(UTC), end.astimezone(UTC)))
            start = end
    return out


def resolve(
    settings: BookingTenantSettings, office_id: str, service_id: str
) -> tuple[BookingOffice, BookingService]:
    office = settings.office(office_id)
    if office is None:
        raise NotOffered(f"office_id: no office {office_id[:40]!r}")
    service = office.service(service_id)
    if service is None:
        raise NotOffered(f"service_id: office {office.id!r} offers no service {service_id[:40]!r}")
    return office, service


def last_day(settings: BookingTenantSettings, now: datetime) -> date:
    return local_day(now) + timedelta(days=settings.horizon_days)


def check_slot(
    settings: BookingTenantSettings,
    office: BookingOffice,
    service: BookingService,
    start: datetime,
    now: datetime,
) -> datetime:
    """The slot's end when ``start`` is a bookable slot; else :class:`NotOffered` saying why."""
    if start.tzinfo is None:
        raise NotOffered("start: give the time with its offset (e.g. 2027-03-01T09:00:00+01:00)")
    try:
        start = start.astimezone(UTC)
        day = local_day(start)
    except (OverflowError, ValueError):
        raise NotOffered("start: out of range") from None
    if start <= now:
        raise NotOffered("start: the time is in the past")
    if day > last_day(settings, now):
        raise NotOffered(f"start: bookings open {settings.horizon_days} days ahead")
    if closed_on(settings, office, day):
        raise NotOffered(f"start: office {office.id!r} is closed on {day.isoformat()}")
    for slot_start, slot_end in slot_times(settings, office, service, day):
        if slot_start == start:
            return slot_end
    raise NotOffered(
        f"start: not a slot of {service.id!r} at {office.id!r} "
        "(outside the opening hours or not on a slot boundary)"
    )


async def free_slots(
    conn: AsyncConnection,
    tenant_id: str,
    settings: BookingTenantSettings,
    office_id: str,
    service_id: str,
    first: date,
    days: int,
    now: datetime,
) -> list[Slot]:
    """The slots from local day ``first`` for ``days`` days with at least one free seat."""
    office, service = resolve(settings, office_id, service_id)
    last = min(first + timedelta(days=days - 1), last_day(settings, now))
    times: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        times.extend(t for t in slot_times(settings, office, service, day) if t[0] > now)
        day += timedelta(days=1)
    if not times:
        return []
    taken: dict[datetime, int] = {
        start: int(n)
        for start, n in (
            await conn.execute(
                select(booking_seats.c.starts_at, func.count())
                .where(
                    booking_seats.c.tenant_id == tenant_id,
                    booking_seats.c.office_id == office.id,
                    booking_seats.c.service_id == service.id,
                    booking_seats.c.starts_at >= times[0][0],
                    booking_seats.c.starts_at <= times[-1][0],
                )
                .group_by(booking_seats.c.starts_at)
            )
        ).all()
    }
    out = []
    for start, end in times:
        free = service.capacity - int(taken.get(start, 0))
        if free > 0:
            out.append(Slot(start, end, free, service.capacity))
    return out


# --- seats ---------------------------------------------------------------------------------


def _insert_ignore(conn: AsyncConnection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(booking_seats).on_conflict_do_nothing()


async def _take_seat(
    conn: AsyncConnection,
    tenant_id: str,
    office: BookingOffice,
    service: BookingService,
    start: datetime,
    code: str,
) -> int:
    """Take a free seat of the slot for ``code``; :class:`SlotFull` when none is left.

    Each seat number is one row: the insert of a taken seat does nothing (on PostgreSQL it
    waits for a concurrent insert of the same seat to commit or roll back first; SQLite's
    writers run one at a time), so two bookings never hold one seat."""
    for seat in range(service.capacity):
        got = (
            await conn.execute(
                _insert_ignore(conn)
                .values(
                    tenant_id=tenant_id,
                    office_id=office.id,
                    service_id=service.id,
                    starts_at=start,
                    seat=seat,
                    code=code,
                )
                .returning(booking_seats.c.seat)
            )
        ).first()
        if got is not None:
            return seat
    raise SlotFull(f"start: every seat of this slot is taken ({service.capacity})")


async def _free_seat(conn: AsyncConnection, code: str) -> None:
    await conn.execute(booking_seats.delete().where(booking_seats.c.code == code))


# --- appointments --------------------------------------------------------------------------


def validate_citizen(citizen: Citizen) -> None:
    if citizen.fiscal_code is not None and not is_person_code(citizen.fiscal_code):
        raise BookingError("fiscal_code: not a valid personal fiscal code")
    if citizen.logged_in and citizen.fiscal_code is None:
        raise BookingError("fiscal_code: a logged-in citizen's booking carries the fiscal code")


async def _queue_reminder(
    conn: AsyncConnection,
    tenant_id: str,
    settings: BookingTenantSettings,
    code: str,
    version: int,
    start: datetime,
    fiscal_code: str | None,
    now: datetime,
    max_attempts: int,
) -> bool:
    """Queue the App IO reminder of this version of the appointment, to run
    ``reminder_hours`` before it (when the tenant has an App IO service and the citizen
    gave a fiscal code, and that moment is still ahead)."""
    when = start - timedelta(hours=settings.reminder_hours)
    if settings.io_service is None or fiscal_code is None or when <= now:
        return False
    await enqueue_many(
        conn,
        [
            NewJob(
                tenant_id,
                REMINDER_KIND,
                {"code": code, "version": version},
                idempotency_key=f"{REMINDER_KIND}:{code}:{version}",
                not_before=when,
            )
        ],
        now=now,
        default_max_attempts=max_attempts,
    )
    return True


async def book(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    settings: BookingTenantSettings,
    office_id: str,
    service_id: str,
    start: datetime,
    citizen: Citizen,
    now: datetime,
    max_attempts: int,
) -> dict[str, Any]:
    """Book a seat; the appointment's view (with its code). Raises a :class:`BookingError`."""
    office, service = resolve(settings, office_id, service_id)
    validate_citizen(citizen)
    end = check_slot(settings, office, service, start, now)
    start = start.astimezone(UTC)
    code = new_code()
    await _take_seat(conn, tenant_id, office, service, start, code)
    values = {
        "tenant_id": tenant_id,
        "code": code,
        "office_id": office.id,
        "service_id": service.id,
        "starts_at": start,
        "ends_at": end,
        "status": "booked",
        "name": citizen.name,
        "surname": citizen.surname,
        "fiscal_code": citizen.fiscal_code,
        "email": citizen.email,
        "phone": citizen.phone,
        "reason": citizen.reason,
        "logged_in": int(citizen.logged_in),
        "version": 1,
        "reminded_version": None,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(booking_appointments.insert().values(**values))
    await _queue_reminder(
        conn, tenant_id, settings, code, 1, start, citizen.fiscal_code, now, max_attempts
    )
    return view(values)


def view(row: Any) -> dict[str, Any]:
    m = dict(row if isinstance(row, dict) else row._mapping)
    return {
        "code": display_code(m["code"]),
        "office_id": m["office_id"],
        "service_id": m["service_id"],
        "start": m["starts_at"].isoformat(),
        "end": m["ends_at"].isoformat(),
        "status": m["status"],
        "name": m["name"],
        "surname": m["surname"],
        "fiscal_code": m["fiscal_code"],
        "email": m["email"],
        "phone": m["phone"],
        "reason": m["reason"],
        "logged_in": bool(m["logged_in"]),
    }


def _matches(row: Any, verify: str) -> bool:
    """The second factor: the fiscal code or the e-mail given at booking (any case)."""
    given = verify.strip().casefold().encode()
    ok = False
    for known in (row.fiscal_code, row.email):
        if known:
            ok |= hmac.compare_digest(given, known.casefold().encode())
    return ok


async def _load(
    conn: AsyncConnection, tenant_id: str, raw_code: str, verify: str | None, *, lock: bool = False
) -> Any:
    code = normalize_code(raw_code)
    query = select(booking_appointments).where(
        booking_appointments.c.tenant_id == tenant_id, booking_appointments.c.code == code
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None or (verify is not None and not _matches(row, verify)):
        raise NotFound(f"booking {display_code(code)!r} not found")
    return row


async def _audit(
    conn: AsyncConnection, tenant_id: str, actor: str, action: str, subject: str, now: datetime
) -> None:
    await audit.record(
        conn,
        audit.AuditEntry(
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            subject=subject,
            purpose="booking",
            sources="booking",
            outcome="ok",
        ),
        at=now,
    )


async def read(
    conn: AsyncConnection, tenant_id: str, raw_code: str, verify: str, actor: str, now: datetime
) -> dict[str, Any]:
    """The appointment, for the citizen who has its code and second factor (audited)."""
    row = await _load(conn, tenant_id, raw_code, verify)
    await _audit(conn, tenant_id, actor, "booking.read", display_code(row.code), now)
    return view(row)


async def ics_data(conn: AsyncConnection, tenant_id: str, raw_code: str) -> Any:
    """The appointment's row for its ``.ics`` (which carries no personal data)."""
    return await _load(conn, tenant_id, raw_code, None)


async def _change(conn: AsyncConnection, row: Any, now: datetime, **values: Any) -> None:
    changed = await conn.execute(
        update(booking_appointments)
        .where(booking_appointments.c.id == row.id, booking_appointments.c.version == row.version)
        .values(version=row.version + 1, updated_at=now, **values)
    )
    if changed.rowcount != 1:
        raise Conflict("the appointment changed meanwhile: read it again")


def _changeable(row: Any, now: datetime) -> None:
    if row.status != "booked":
        raise Conflict(f"the appointment is {row.status}")
    if row.starts_at <= now:
        raise Conflict("the appointment has already started")


async def cancel(
    conn: AsyncConnection, tenant_id: str, raw_code: str, verify: str, now: datetime
) -> dict[str, Any]:
    """Cancel (the seat is free again; a queued reminder will see the new version and not
    go). Cancelling a cancelled appointment answers it as it is."""
    row = await _load(conn, tenant_id, raw_code, verify, lock=True)
    if row.status == "cancelled":
        return view(row)
    _changeable(row, now)
    await _free_seat(conn, row.code)
    await _change(conn, row, now, status="cancelled")
    return view(await _load(conn, tenant_id, row.code, None))


async def reschedule(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    settings: BookingTenantSettings,
    raw_code: str,
    verify: str,
    start: datetime,
    now: datetime,
    max_attempts: int,
) -> dict[str, Any]:
    """Move the appointment to another slot of the same office and service."""
    row = await _load(conn, tenant_id, raw_code, verify, lock=True)
    _changeable(row, now)
    office, service = resolve(settings, row.office_id, row.service_id)
    end = check_slot(settings, office, service, start, now)
    start = start.astimezone(UTC)
    if start == row.starts_at:
        return view(row)
    await _free_seat(conn, row.code)
    await _take_seat(conn, tenant_id, office, service, start, row.code)  # SlotFull: rolled back
    await _change(conn, row, now, starts_at=start, ends_at=end)
    await _queue_reminder(
        conn,
        tenant_id,
        settings,
        row.code,
        row.version + 1,
        start,
        row.fiscal_code,
        now,
        max_attempts,
    )
    return view(await _load(conn, tenant_id, row.code, None))


async def day_list(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    settings: BookingTenantSettings,
    office_id: str,
    day: date,
    actor: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """Every appointment of an office on a local day, by time (audited: an operator's read)."""
    office = settings.office(office_id)
    if office is None:
        raise NotFound(f"office {office_id[:40]!r} not found")
    since = datetime.combine(day, datetime.min.time(), ROME).astimezone(UTC)
    until = datetime.combine(day + timedelta(days=1), datetime.min.time(), ROME).astimezone(UTC)
    rows = (
        await conn.execute(
            select(booking_appointments)
            .where(
                and_(
                    booking_appointments.c.tenant_id == tenant_id,
                    booking_appointments.c.office_id == office.id,
                    booking_appointments.c.starts_at >= since,
                    booking_appointments.c.starts_at < until,
                )
            )
            .order_by(booking_appointments.c.starts_at, booking_appointments.c.id)
        )
    ).all()
    await _audit(conn, tenant_id, actor, "booking.day", f"{office.id}:{day.isoformat()}", now)
    return [view(r) for r in rows]


async def mark_no_show(
    conn: AsyncConnection, tenant_id: str, raw_code: str, now: datetime
) -> dict[str, Any]:
    """The operator marks that the citizen did not come (once the appointment started)."""
    row = await _load(conn, tenant_id, raw_code, None, lock=True)
    if row.status == "no_show":
        return view(row)
    if row.status != "booked":
        raise Conflict(f"the appointment is {row.status}")
    if row.starts_at > now:
        raise Conflict("the appointment has not started yet")
    await _change(conn, row, now, status="no_show")
    return view(await _load(conn, tenant_id, row.code, None))
