"""REST API routes for appointments (``/api/v1/tenants/{tenant}/booking/...``), for the
software houses that build the comune's booking pages and desk software.

Scopes: ``read`` for the catalogue, the free slots and the ``.ics``; ``write`` to book,
cancel, move and mark a no-show; ``personal_data`` for what returns a citizen's data (the
appointment read with its code, the operator's day list), every such read audited. A
citizen's own actions (read, cancel, move) need the booking code and a second factor, the
fiscal code or the e-mail given at booking; a wrong one is the same 404 as a wrong code,
and after ``verify_attempts`` wrong ones the code is locked (429 with Retry-After).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello.adapters.agenda.base import KIND as AGENDA_KIND
from sportello.adapters.agenda.base import AgendaAdapter, AgendaError
from sportello.api.bodies import read_body
from sportello.api.core import (
    PREFIX,
    _Problem,
    handles_problems,
    idempotency_key,
    idempotent,
    principal_of,
    require,
    tenant_of,
)
from sportello.api.openapi import Answer, Query, operation
from sportello.appkeys import CLOCK, CONFIG, ENGINE, SERVICES
from sportello.db import reading
from sportello.platforms.booking import ics, service
from sportello.platforms.booking.api_models import (
    Booking,
    BookingRequest,
    DayList,
    Offices,
    RescheduleRequest,
    Slots,
    VerifyRequest,
)
from sportello.platforms.booking.settings import BookingTenantSettings, booking_settings
from sportello.tenant_adapters import AdapterNotInstalled

B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")

_NOT_CONFIGURED = "The tenant has no [tenants.booking]"
_TITLES = {
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
MAX_DAYS = 31
_LOCKED = "Too many wrong second factors for this code: locked (Retry-After)"


def _settings(request: web.Request, tenant_id: str) -> BookingTenantSettings:
    tenant = request.app[CONFIG].tenant(tenant_id)
    settings = booking_settings(tenant) if tenant is not None else None
    if settings is None:
        raise _Problem(409, "Conflict", f"{_NOT_CONFIGURED}: add it to book appointments")
    return settings


def _agenda(request: web.Request, tenant_id: str) -> AgendaAdapter | None:
    """The comune's agenda (``[tenants.adapters.booking]``), None for the hub's own tables;
    an agenda that is not installed or cannot be built is a 503 naming it."""
    try:
        agenda: AgendaAdapter | None = request.app[SERVICES].adapters.get(tenant_id, AGENDA_KIND)
        return agenda
    except (AdapterNotInstalled, ValueError, TypeError) as exc:
        raise _Problem(
            503, "Service Unavailable", f"[tenants.adapters.booking]: {str(exc)[:200]}"
        ) from None


def _configured(request: web.Request, scope: str) -> tuple[str, BookingTenantSettings]:
    """The request's tenant and its booking settings, once the key has ``scope``."""
    tenant_id = tenant_of(request)
    require(request, scope)
    return tenant_id, _settings(request, tenant_id)


def _body(model: type[B], raw: bytes) -> B:
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise _Problem(400, "Bad Request", f"{where}: {first['msg']}") from None


def _refused(exc: service.BookingError) -> _Problem:
    problem = _Problem(exc.status, _TITLES.get(exc.status, "Bad Request"), exc.detail)
    if isinstance(exc, service.Locked):
        problem.response.headers["Retry-After"] = str(exc.retry_after)
    return problem


async def _booking(
    request: web.Request,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    write: bool = True,
) -> T:
    """``work`` in one transaction (a read-only connection when not ``write``); a refusal
    of the booking service becomes its problem answer."""
    engine = request.app[ENGINE]
    try:
        async with engine.begin() if write else reading(engine) as conn:
            return await work(conn)
    except service.BookingError as exc:
        raise _refused(exc) from None


async def _verified(
    request: web.Request,
    tenant_id: str,
    settings: BookingTenantSettings,
    work: Callable[[AsyncConnection], Awaitable[T]],
) -> T:
    """``work`` (which checks the second factor) under the per-code limit: the attempt
    takes its number in a committed transaction first (429 with Retry-After once the code
    is locked), a wrong factor (404) counts, a right one starts the count again."""
    engine = request.app[ENGINE]
    code = _code(request)
    now = request.app[CLOCK].now()
    taken = await _booking(
        request, lambda conn: service.take_attempt(conn, tenant_id, settings, code, now)
    )
    try:
        result = await _booking(request, work)
    except _Problem as exc:
        if exc.response.status == 404:
            async with engine.begin() as conn:
                await service.attempt_failed(conn, tenant_id, settings, code, taken, now)
        raise
    async with engine.begin() as conn:
        await service.attempt_succeeded(conn, tenant_id, code, now)
    return result


def _date(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise _Problem(400, "Bad Request", f"{name}: a date as YYYY-MM-DD") from None
    if not 2000 <= value.year <= 2999:
        raise _Problem(400, "Bad Request", f"{name}: a date between 2000 and 2999")
    return value


def _max_attempts(request: web.Request) -> int:
    return request.app[CONFIG].outbox.max_attempts


@operation(
    "listBookingOffices",
    "The offices, the services each offers, opening hours and holidays (scope read)",
    responses={200: Offices, 409: _NOT_CONFIGURED},
    scope="read",
)
@handles_problems
async def list_offices(request: web.Request) -> web.StreamResponse:
    tenant_id, settings = _configured(request, "read")
    agenda = _agenda(request, tenant_id)
    if agenda is not None:  # the comune's agenda owns offices, services and hours
        try:
            offices = await agenda.offices()
        except AgendaError as exc:
            raise _refused(service.refused_by_agenda(exc)) from None
        items = [
            {
                "id": o.id,
                "name": o.name,
                "address": o.address,
                "services": [s.model_dump() for s in o.services],
                "hours": {},
                "holidays": [],
            }
            for o in offices
        ]
        return web.json_response(
            {"items": items, "horizon_days": settings.horizon_days, "timezone": "Europe/Rome"}
        )
    items = [
        {
            "id": o.id,
            "name": o.name,
            "address": o.address,
            "services": [s.model_dump() for s in o.services],
            "hours": {day: list(v) for day, v in o.hours.items()},
            "holidays": sorted(d.isoformat() for d in {*o.holidays, *settings.holidays}),
        }
        for o in settings.offices
    ]
    return web.json_response(
        {"items": items, "horizon_days": settings.horizon_days, "timezone": "Europe/Rome"}
    )


@operation(
    "listBookingSlots",
    "Free slots of a service at an office, day by day in Europe/Rome (scope read)",
    query=[
        Query("from", date, "first day (default today)"),
        Query("days", Annotated[int, Field(ge=1, le=MAX_DAYS)], "how many days (default 7)"),
    ],
    responses={200: Slots, 409: _NOT_CONFIGURED, 422: "No such office or service"},
    scope="read",
)
@handles_problems
async def list_slots(request: web.Request) -> web.StreamResponse:
    tenant_id, settings = _configured(request, "read")
    now = request.app[CLOCK].now()
    first = max(_date(request, "from", service.local_day(now)), service.local_day(now))
    try:
        days = int(request.query.get("days", "7"))
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise _Problem(400, "Bad Request", f"days: an integer from 1 to {MAX_DAYS}")
    agenda = _agenda(request, tenant_id)
    office_id, service_id = request.match_info["office_id"], request.match_info["service_id"]
    if agenda is not None:
        try:
            found = await service.agenda_slots(
                agenda, settings, office_id, service_id, first, days, now
            )
        except service.BookingError as exc:
            raise _refused(exc) from None
    else:
        found = await _booking(
            request,
            lambda conn: service.free_slots(
                conn, tenant_id, settings, office_id, service_id, first, days, now
            ),
            write=False,
        )
    items = [
        {
            "start": s.start.isoformat(),
            "end": s.end.isoformat(),
            "free": s.free,
            "capacity": s.capacity,
        }
        for s in found
    ]
    return web.json_response({"items": items})


@operation(
    "createBooking",
    "Book an appointment, with or without login: the answer carries the booking code (scope write)",
    body=BookingRequest,
    idempotent=True,
    responses={
        201: Answer(Booking, "Booked"),
        409: "Every seat of the slot is taken, or the tenant has no [tenants.booking]",
        422: "Not a bookable slot (past, beyond the horizon, closed, outside the hours), or "
        "an Idempotency-Key reused for another request",
    },
    scope="write",
)
@handles_problems
async def create_booking(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    idempotency_key(request)  # a missing header is a 400 before anything else
    settings = _settings(request, tenant_id)
    raw = await read_body(request)
    body = _body(BookingRequest, raw)
    now = request.app[CLOCK].now()
    citizen = service.Citizen(
        name=body.name,
        surname=body.surname,
        email=body.email,
        reason=body.reason,
        fiscal_code=body.fiscal_code,
        phone=body.phone,
        logged_in=body.logged_in,
    )

    agenda = _agenda(request, tenant_id)

    async def produce(conn: Any) -> tuple[int, dict[str, Any]]:
        try:
            booked = await service.book(
                conn,
                tenant_id=tenant_id,
                settings=settings,
                office_id=body.office_id,
                service_id=body.service_id,
                start=body.start,
                citizen=citizen,
                now=now,
                max_attempts=_max_attempts(request),
                agenda=agenda,
            )
        except service.BookingError as exc:
            raise _refused(exc) from None
        return 201, booked

    return await idempotent(request, tenant_id, raw, produce)


def _code(request: web.Request) -> str:
    return request.match_info["code"]


@operation(
    "readBooking",
    "An appointment, for the citizen with its code and second factor (personal_data; audited)",
    body=VerifyRequest,
    responses={200: Booking, 409: _NOT_CONFIGURED, 429: _LOCKED},
    scope="personal_data",
)
@handles_problems
async def read_booking(request: web.Request) -> web.StreamResponse:
    tenant_id, settings = _configured(request, "personal_data")
    body = _body(VerifyRequest, await read_body(request))
    now = request.app[CLOCK].now()
    actor = principal_of(request).actor
    found = await _verified(
        request,
        tenant_id,
        settings,
        lambda conn: service.read(conn, tenant_id, _code(request), body.verify, actor, now),
    )
    return web.json_response(found)


@operation(
    "cancelBooking",
    "Cancel an appointment with its code and second factor (scope write)",
    body=VerifyRequest,
    responses={
        200: Booking,
        409: "Already started, marked a no-show, or not configured",
        429: _LOCKED,
    },
    scope="write",
)
@handles_problems
async def cancel_booking(request: web.Request) -> web.StreamResponse:
    tenant_id, settings = _configured(request, "write")
    body = _body(VerifyRequest, await read_body(request))
    now = request.app[CLOCK].now()
    found = await _verified(
        request,
        tenant_id,
        settings,
        lambda conn: service.cancel(
            conn,
            tenant_id,
            _code(request),
            body.verify,
            now,
            settings=settings,
            max_attempts=_max_attempts(request),
            agenda=_agenda(request, tenant_id),
        ),
    )
    return web.json_response(found)


@operation(
    "rescheduleBooking",
    "Move an appointment to another slot of its office and service (scope write)",
    body=RescheduleRequest,
    responses={
        200: Booking,
        409: "The new slot is full, the appointment cannot change, or not configured",
        422: "Not a bookable slot",
        429: _LOCKED,
    },
    scope="write",
)
@handles_problems
async def reschedule_booking(request: web.Request) -> web.StreamResponse:
    tenant_id, settings = _configured(request, "write")
    body = _body(RescheduleRequest, await read_body(request))
    now = request.app[CLOCK].now()
    found = await _verified(
        request,
        tenant_id,
        settings,
        lambda conn: service.reschedule(
            conn,
            tenant_id=tenant_id,
            settings=settings,
            raw_code=_code(request),
            verify=body.verify,
            start=body.start,
            now=now,
            max_attempts=_max_attempts(request),
            agenda=_agenda(request, tenant_id),
        ),
    )
    return web.json_response(found)


@operation(
    "getBookingCalendar",
    "The appointment as an iCalendar file (RFC 5545; no personal data; scope read)",
    responses={200: Answer(bytes, "The event", "text/calendar"), 409: _NOT_CONFIGURED},
    scope="read",
)
@handles_problems
async def booking_ics(request: web.Request) -> web.StreamResponse:
    tenant_id, settings = _configured(request, "read")
    row = await _booking(
        request, lambda conn: service.ics_data(conn, tenant_id, _code(request)), write=False
    )
    code, body = ics.appointment(settings, tenant_id, row)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="appuntamento-{code}.ics"'},
    )


@operation(
    "listBookingDay",
    "An office's appointments of one day, for the desk (personal_data; audited)",
    query=[Query("date", date, "the day (default today, Europe/Rome)")],
    responses={200: DayList, 409: _NOT_CONFIGURED},
    scope="personal_data",
)
@handles_problems
async def list_day(request: web.Request) -> web.StreamResponse:
    tenant_id, settings = _configured(request, "personal_data")
    now = request.app[CLOCK].now()
    day = _date(request, "date", service.local_day(now))
    office_id = request.match_info["office_id"]
    actor = principal_of(request).actor
    items = await _booking(
        request,
        lambda conn: service.day_list(
            conn,
            tenant_id=tenant_id,
            settings=settings,
            office_id=office_id,
            day=day,
            actor=actor,
            now=now,
            agenda=_agenda(request, tenant_id),
        ),
    )
    return web.json_response({"office_id": office_id, "date": day.isoformat(), "items": items})


@operation(
    "markBookingNoShow",
    "The desk marks that the citizen did not come (scope write)",
    responses={200: Booking, 409: "Not started yet, cancelled, or not configured"},
    scope="write",
)
@handles_problems
async def no_show(request: web.Request) -> web.StreamResponse:
    tenant_id, _ = _configured(request, "write")
    now = request.app[CLOCK].now()
    found = await _booking(
        request, lambda conn: service.mark_no_show(conn, tenant_id, _code(request), now)
    )
    return web.json_response(found)


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/tenants/{tenant}/booking"
    office = base + "/offices/{office_id}"
    one = base + "/bookings/{code}"
    return [
        web.get(base + "/offices", list_offices),
        web.get(office + "/services/{service_id}/slots", list_slots),
        web.get(office + "/day", list_day),
        web.post(base + "/bookings", create_booking),
        web.post(one + "/read", read_booking),
        web.post(one + "/cancel", cancel_booking),
        web.post(one + "/reschedule", reschedule_booking),
        web.post(one + "/no-show", no_show),
        web.get(one + "/calendar.ics", booking_ics),
    ]


__all__ = ["routes"]
