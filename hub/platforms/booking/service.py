"""Appointments: free slots, booking, cancelling, moving, the day list and no-shows.

Slots come from the office's opening hours in Europe/Rome (wall-clock times, so a 09:00
slot is 09:00 on both sides of a DST change), minus holidays, minus the seats already
taken. A booking takes a seat row (``tables.booking_seats``) with an insert that does
nothing on conflict: the database lets exactly ``capacity`` bookings into a slot however
many arrive at once. Every function works in the caller's transaction.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello import audit
from sportello.adapters.agenda.base import (
    AgendaAdapter,
    AgendaBooking,
    AgendaEntry,
    AgendaError,
    AgendaHolder,
    AgendaOffice,
    AgendaService,
    AgendaSlot,
    AgendaUnavailable,
    NotBookable,
    SlotTaken,
    UnknownBooking,
)
from sportello.connectors.fiscal_code import is_person_code
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.booking.settings import (
    BookingOffice,
    BookingService,
    BookingTenantSettings,
)
from sportello.platforms.booking.tables import (
    booking_appointments,
    booking_attempts,
    booking_seats,
)

log = logging.getLogger("sportello.booking")
ROME = ZoneInfo("Europe/Rome")
REMINDER_KIND = "booking.reminder"
EMAIL_KIND = "booking.email"
#: What an e-mail of an appointment's version says (``jobs.email_handler``).
EMAIL_WHAT = ("confirmation", "reminder", "cancellation")

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


class Unavailable(BookingError):
    """The comune's agenda cannot be reached (503): try again later."""

    status = 503


class Locked(BookingError):
    """Too many wrong second factors for this code: locked for ``retry_after`` seconds (429)."""

    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


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


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants a local day (Europe/Rome) starts and ends."""
    since = datetime.combine(day, datetime.min.time(), ROME).astimezone(UTC)
    until = datetime.combine(day + timedelta(days=1), datetime.min.time(), ROME).astimezone(UTC)
    return since, until


def refused_by_agenda(exc: AgendaError) -> BookingError:
    """What the hub answers for an agenda's refusal."""
    detail = str(exc)[:300] or type(exc).__name__
    if isinstance(exc, SlotTaken):
        return SlotFull(detail)
    if isinstance(exc, NotBookable):
        return NotOffered(detail)
    if isinstance(exc, UnknownBooking):
        return Conflict(f"the agenda no longer holds this appointment: {detail}")
    if isinstance(exc, AgendaUnavailable):
        return Unavailable(f"the comune's agenda is unavailable: {detail}")
    return Unavailable(f"the comune's agenda refused: {detail}")


def check_window(settings: BookingTenantSettings, start: datetime, now: datetime) -> None:
    """What the hub checks before asking a comune's agenda: an aware time, not past, within
    the horizon (the agenda checks its own hours)."""
    if start.tzinfo is None:
        raise NotOffered("start: give the time with its offset (e.g. 2027-03-01T09:00:00+01:00)")
    try:
        day = local_day(start.astimezone(UTC))
    except (OverflowError, ValueError):
        raise NotOffered("start: out of range") from None
    if start <= now:
        raise NotOffered("start: the time is in the past")
    if day > last_day(settings, now):
        raise NotOffered(f"start: bookings open {settings.horizon_days} days ahead")


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


async def take_seat(
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


async def free_seat(conn: AsyncConnection, code: str) -> None:
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


async def _queue_emails(
    conn: AsyncConnection,
    tenant_id: str,
    settings: BookingTenantSettings,
    code: str,
    version: int,
    start: datetime,
    now: datetime,
    max_attempts: int,
    *,
    what: str,
) -> int:
    """Queue the e-mails of this version of the appointment when the tenant has
    ``[tenants.booking.email]``: ``what`` (a confirmation, at once, of the booking, the
    move or the cancellation) and, for a booked version, the reminder ``reminder_hours``
    before it (when that moment is still ahead). The idempotency key names the version,
    so the e-mail's Message-ID is the same on every attempt (``jobs.email_handler``)."""
    mail = settings.email
    if mail is None:
        return 0
    jobs: list[tuple[str, datetime | None]] = []
    if mail.confirmation:
        jobs.append((what, None))
    when = start - timedelta(hours=settings.reminder_hours)
    if mail.reminder and what != "cancellation" and when > now:
        jobs.append(("reminder", when))
    await enqueue_many(
        conn,
        [
            NewJob(
                tenant_id,
                EMAIL_KIND,
                {"code": code, "version": version, "what": kind},
                idempotency_key=f"{EMAIL_KIND}:{kind}:{code}:{version}",
                not_before=at,
            )
            for kind, at in jobs
        ],
        now=now,
        default_max_attempts=max_attempts,
    )
    return len(jobs)


def _agenda(
    conn: AsyncConnection,
    tenant_id: str,
    settings: BookingTenantSettings,
    now: datetime,
    external: AgendaAdapter | None,
) -> AgendaAdapter:
    """The comune's agenda when the tenant names one, else the hub's own tables."""
    if external is not None:
        return external
    return HubAgenda(conn, tenant_id, settings, now)


async def _forget(agenda: AgendaAdapter | None, booking_id: str) -> None:
    """Undo a booking the comune's agenda made when the hub's own record of it failed (the
    failure is what the caller sees; this one is only logged)."""
    if agenda is None:
        return
    try:
        await agenda.cancel(booking_id)
    except Exception:
        log.exception("booking: the agenda kept a seat the hub could not record")


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
    agenda: AgendaAdapter | None = None,
) -> dict[str, Any]:
    """Book a seat through the agenda (``agenda``: the comune's, from
    ``[tenants.adapters.booking]``; None: the hub's own tables); the appointment's view
    (with its code). Raises a :class:`BookingError`."""
    if agenda is None:
        resolve(settings, office_id, service_id)  # the office and service first, by name
    validate_citizen(citizen)
    if agenda is not None:
        check_window(settings, start, now)
    code = new_code()
    holder = AgendaHolder(
        name=citizen.name, surname=citizen.surname, reference=code, reason=citizen.reason
    )
    try:
        held = await _agenda(conn, tenant_id, settings, now, agenda).book(
            office_id, service_id, start, holder
        )
    except AgendaError as exc:
        raise refused_by_agenda(exc) from None
    start = held.start.astimezone(UTC)
    values = {
        "tenant_id": tenant_id,
        "code": code,
        "office_id": held.office_id,
        "service_id": held.service_id,
        "starts_at": start,
        "ends_at": held.end.astimezone(UTC),
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
        "agenda_ref": held.id if agenda is not None else None,
    }
    try:
        await conn.execute(booking_appointments.insert().values(**values))
        await _queue_reminder(
            conn, tenant_id, settings, code, 1, start, citizen.fiscal_code, now, max_attempts
        )
        await _queue_emails(
            conn, tenant_id, settings, code, 1, start, now, max_attempts, what="confirmation"
        )
    except BaseException:
        await _forget(agenda, held.id)
        raise
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


# --- the limit on second-factor attempts ------------------------------------------------------


def _upsert(conn: AsyncConnection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(booking_attempts)


async def take_attempt(
    conn: AsyncConnection,
    tenant_id: str,
    settings: BookingTenantSettings,
    raw_code: str,
    now: datetime,
) -> int:
    """Take the next second-factor attempt of a code, in its own transaction (commit it
    before checking the factor): its number, or :class:`Locked`.

    One upsert increments the count and returns it, so concurrent attempts (any replica,
    SQLite or PostgreSQL) get distinct numbers and at most ``verify_attempts`` are ever
    checked: the one that takes a number beyond the limit is refused before its factor is
    looked at, and locks the code if the last allowed attempt has not already. An expired
    lock starts the count again. A malformed code is :class:`NotFound` (nothing counted)."""
    code = normalize_code(raw_code)
    table = booking_attempts
    expired = and_(table.c.locked_until.is_not(None), table.c.locked_until <= now)
    stmt = _upsert(conn).values(
        tenant_id=tenant_id, code=code, attempts=1, locked_until=None, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.tenant_id, table.c.code],
        set_={
            "attempts": case((expired, 1), else_=table.c.attempts + 1),
            "locked_until": case((expired, None), else_=table.c.locked_until),
            "updated_at": now,
        },
    ).returning(table.c.attempts, table.c.locked_until)
    taken, locked_until = (await conn.execute(stmt)).one()
    if locked_until is None and taken > settings.verify_attempts:
        locked_until = now + timedelta(minutes=settings.verify_lock_minutes)
        await conn.execute(
            update(table)
            .where(table.c.tenant_id == tenant_id, table.c.code == code)
            .where(table.c.locked_until.is_(None))
            .values(locked_until=locked_until)
        )
    if locked_until is not None:
        wait = max(1, int((locked_until - now).total_seconds() + 0.999))
        raise Locked(
            f"verify: too many wrong attempts for booking {display_code(code)!r}; "
            f"try again in {(wait + 59) // 60} minutes",
            wait,
        )
    return int(taken)


async def attempt_failed(
    conn: AsyncConnection,
    tenant_id: str,
    settings: BookingTenantSettings,
    raw_code: str,
    taken: int,
    now: datetime,
) -> None:
    """The attempt numbered ``taken`` was wrong (its own transaction): the last allowed
    one locks the code for ``verify_lock_minutes``."""
    if taken < settings.verify_attempts:
        return
    table = booking_attempts
    await conn.execute(
        update(table)
        .where(table.c.tenant_id == tenant_id, table.c.code == normalize_code(raw_code))
        .where(table.c.locked_until.is_(None))
        .values(locked_until=now + timedelta(minutes=settings.verify_lock_minutes))
    )


async def attempt_succeeded(
    conn: AsyncConnection, tenant_id: str, raw_code: str, now: datetime
) -> None:
    """The right factor was given: the count starts again (unless the code got locked
    meanwhile by concurrent wrong attempts: then the lock stays)."""
    table = booking_attempts
    await conn.execute(
        update(table)
        .where(table.c.tenant_id == tenant_id, table.c.code == normalize_code(raw_code))
        .where(table.c.locked_until.is_(None))
        .values(attempts=0, updated_at=now)
    )


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
    conn: AsyncConnection,
    tenant_id: str,
    raw_code: str,
    verify: str,
    now: datetime,
    *,
    settings: BookingTenantSettings,
    max_attempts: int = 5,
    agenda: AgendaAdapter | None = None,
) -> dict[str, Any]:
    """Cancel (the seat is free again, in the hub's tables or in the comune's agenda that
    holds it; a queued reminder will see the new version and not go; with ``settings`` the
    cancellation is e-mailed). Cancelling a cancelled appointment answers it as it is."""
    row = await _load(conn, tenant_id, raw_code, verify, lock=True)
    if row.status == "cancelled":
        return view(row)
    _changeable(row, now)
    try:
        if row.agenda_ref is None:  # the hub's own seat (also under a later external agenda)
            await _agenda(conn, tenant_id, settings, now, None).cancel(row.code)
        else:
            await _held_by(agenda).cancel(row.agenda_ref)  # cancelling twice is no error
    except AgendaError as exc:
        raise refused_by_agenda(exc) from None
    await _change(conn, row, now, status="cancelled")
    await _queue_emails(
        conn,
        tenant_id,
        settings,
        row.code,
        row.version + 1,
        row.starts_at,
        now,
        max_attempts,
        what="cancellation",
    )
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
    agenda: AgendaAdapter | None = None,
) -> dict[str, Any]:
    """Move the appointment to another slot of the same office and service (in the hub's
    tables, or in the comune's agenda that holds it)."""
    row = await _load(conn, tenant_id, raw_code, verify, lock=True)
    _changeable(row, now)
    if row.agenda_ref is None:  # the hub's own seat: the hub's agenda, in this transaction
        office, service = resolve(settings, row.office_id, row.service_id)
        check_slot(settings, office, service, start, now)
        if start.astimezone(UTC) == row.starts_at:
            return view(row)
        try:  # SlotTaken: the transaction rolls back, the old seat stays
            held = await _agenda(conn, tenant_id, settings, now, None).move(row.code, start)
        except AgendaError as exc:
            raise refused_by_agenda(exc) from None
        start = held.start.astimezone(UTC)
        await _change(conn, row, now, starts_at=start, ends_at=held.end.astimezone(UTC))
    else:
        check_window(settings, start, now)
        start = start.astimezone(UTC)
        if start == row.starts_at:
            return view(row)
        held_by = _held_by(agenda)
        try:
            held = await held_by.move(row.agenda_ref, start)  # SlotTaken: the old seat kept
        except AgendaError as exc:
            raise refused_by_agenda(exc) from None
        start = held.start.astimezone(UTC)
        try:
            await _change(conn, row, now, starts_at=start, ends_at=held.end.astimezone(UTC))
        except BaseException:
            try:
                await held_by.move(row.agenda_ref, row.starts_at)
            except Exception:
                log.exception("booking: the agenda kept a move the hub could not record")
            raise
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
    await _queue_emails(
        conn,
        tenant_id,
        settings,
        row.code,
        row.version + 1,
        start,
        now,
        max_attempts,
        what="confirmation",
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
    agenda: AgendaAdapter | None = None,
) -> list[dict[str, Any]]:
    """Every appointment of an office on a local day, by time (audited: an operator's read).
    With the comune's agenda, its list of the day: the hub's appointments with their data,
    the ones booked elsewhere (at the desk, by phone) as the agenda shows them."""
    if agenda is not None:
        return await _agenda_day(conn, tenant_id, agenda, office_id, day, actor, now)
    office = settings.office(office_id)
    if office is None:
        raise NotFound(f"office {office_id[:40]!r} not found")
    since, until = day_bounds(day)
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


async def _agenda_day(
    conn: AsyncConnection,
    tenant_id: str,
    agenda: AgendaAdapter,
    office_id: str,
    day: date,
    actor: str,
    now: datetime,
) -> list[dict[str, Any]]:
    try:
        entries = await agenda.day(office_id, day)
    except AgendaError as exc:
        raise refused_by_agenda(exc) from None
    ids = [e.id for e in entries]
    ours = (
        {
            r.agenda_ref: r
            for r in (
                await conn.execute(
                    select(booking_appointments).where(
                        booking_appointments.c.tenant_id == tenant_id,
                        booking_appointments.c.agenda_ref.in_(ids),
                    )
                )
            ).all()
        }
        if ids
        else {}
    )
    await _audit(conn, tenant_id, actor, "booking.day", f"{office_id}:{day.isoformat()}", now)
    out = []
    for e in entries:
        row = ours.get(e.id)
        if row is not None:
            out.append({**view(row), "agenda_id": e.id})
            continue
        out.append(
            {
                "code": None,
                "office_id": e.office_id,
                "service_id": e.service_id,
                "start": e.start.astimezone(UTC).isoformat(),
                "end": e.end.astimezone(UTC).isoformat(),
                "status": "booked",
                "name": e.name,
                "surname": e.surname,
                "fiscal_code": None,
                "email": None,
                "phone": None,
                "reason": None,
                "logged_in": False,
                "agenda_id": e.id,
            }
        )
    return out


def _held_by(agenda: AgendaAdapter | None) -> AgendaAdapter:
    if agenda is None:
        raise Unavailable(
            "the appointment is held by the comune's agenda, and the tenant names none "
            "([tenants.adapters.booking])"
        )
    return agenda


async def agenda_slots(
    agenda: AgendaAdapter,
    settings: BookingTenantSettings,
    office_id: str,
    service_id: str,
    first: date,
    days: int,
    now: datetime,
) -> list[Slot]:
    """The comune's agenda's free slots, from now to the horizon."""
    last = min(first + timedelta(days=days - 1), last_day(settings, now))
    if last < first:
        return []
    try:
        found = await agenda.free_slots(office_id, service_id, first, (last - first).days + 1)
    except AgendaError as exc:
        raise refused_by_agenda(exc) from None
    return [
        Slot(s.start.astimezone(UTC), s.end.astimezone(UTC), s.free, s.capacity)
        for s in found
        if s.start > now
    ]


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


# --- the hub's own tables as an agenda ---------------------------------------------------------


class HubAgenda:
    """The hub's own tables as an agenda: the reference implementation of the ``booking``
    adapter kind (:class:`~sportello.adapters.agenda.base.AgendaAdapter`), used whenever the
    tenant names no ``[tenants.adapters.booking]``.

    Seats in ``booking_seats`` (one row per seat: never more than capacity), keyed by the
    booking code, which is also the booking's id here; offices, services and hours from
    ``[tenants.booking]``. It works in the caller's transaction (``conn``), so the seat and
    the appointment's row commit together. The adapter kit's agenda checks run against it
    (tests/booking/test_booking_agenda.py) as against any adapter."""

    name = "hub"

    def __init__(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        settings: BookingTenantSettings,
        now: datetime,
    ) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.settings = settings
        self.now = now

    async def offices(self) -> list[AgendaOffice]:
        return [
            AgendaOffice(
                id=o.id,
                name=o.name,
                address=o.address,
                services=tuple(AgendaService(**s.model_dump()) for s in o.services),
            )
            for o in self.settings.offices
        ]

    async def free_slots(
        self, office_id: str, service_id: str, first: date, days: int
    ) -> list[AgendaSlot]:
        try:
            found = await free_slots(
                self.conn,
                self.tenant_id,
                self.settings,
                office_id,
                service_id,
                first,
                days,
                self.now,
            )
        except BookingError as exc:
            raise NotBookable(exc.detail) from None
        return [
            AgendaSlot(start=s.start, end=s.end, free=s.free, capacity=s.capacity) for s in found
        ]

    async def _hold(
        self, office_id: str, service_id: str, start: datetime, code: str
    ) -> AgendaBooking:
        try:
            office, svc = resolve(self.settings, office_id, service_id)
            end = check_slot(self.settings, office, svc, start, self.now)
            start = start.astimezone(UTC)
            await take_seat(self.conn, self.tenant_id, office, svc, start, code)
        except SlotFull as exc:
            raise SlotTaken(exc.detail) from None
        except BookingError as exc:
            raise NotBookable(exc.detail) from None
        return AgendaBooking(id=code, office_id=office.id, service_id=svc.id, start=start, end=end)

    async def book(
        self, office_id: str, service_id: str, start: datetime, holder: AgendaHolder
    ) -> AgendaBooking:
        return await self._hold(office_id, service_id, start, holder.reference)

    async def _seat(self, booking_id: str) -> object:
        seat = (
            await self.conn.execute(
                select(booking_seats).where(
                    booking_seats.c.tenant_id == self.tenant_id,
                    booking_seats.c.code == booking_id,
                )
            )
        ).first()
        if seat is None:
            raise UnknownBooking(f"no seat held by {booking_id[:40]!r}")
        return seat

    async def move(self, booking_id: str, start: datetime) -> AgendaBooking:
        seat = await self._seat(booking_id)
        office_id, service_id = seat.office_id, seat.service_id  # type: ignore[attr-defined]
        if seat.starts_at == start.astimezone(UTC):  # type: ignore[attr-defined]
            _, svc = resolve(self.settings, office_id, service_id)
            end = start.astimezone(UTC) + timedelta(minutes=svc.minutes)
            return AgendaBooking(
                id=booking_id, office_id=office_id, service_id=service_id, start=start, end=end
            )
        await free_seat(self.conn, booking_id)
        return await self._hold(office_id, service_id, start, booking_id)  # a failure rolls back

    async def cancel(self, booking_id: str) -> None:
        await free_seat(self.conn, booking_id)

    async def day(self, office_id: str, day: date) -> list[AgendaEntry]:
        since, until = day_bounds(day)
        rows = (
            await self.conn.execute(
                select(booking_appointments)
                .where(
                    and_(
                        booking_appointments.c.tenant_id == self.tenant_id,
                        booking_appointments.c.office_id == office_id,
                        booking_appointments.c.status == "booked",
                        booking_appointments.c.starts_at >= since,
                        booking_appointments.c.starts_at < until,
                    )
                )
                .order_by(booking_appointments.c.starts_at, booking_appointments.c.id)
            )
        ).all()
        return [
            AgendaEntry(
                id=r.code,
                office_id=r.office_id,
                service_id=r.service_id,
                start=r.starts_at,
                end=r.ends_at,
                name=r.name,
                surname=r.surname,
                reference=r.code,
            )
            for r in rows
        ]

    async def close(self) -> None:
        return None
